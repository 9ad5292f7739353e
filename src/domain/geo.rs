//! Places: WGS84 points, the grid hierarchy with boundary polygons (GeoJSON in and out), and
//! GPS track measures. Pure functions over `geo` types; no I/O.

use chrono::{DateTime, Utc};
use geo::{Distance, Haversine, Length, LineString, MultiPolygon, Point, Polygon};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::validate::{Problem, ValidationErrors, Validator};

/// A WGS84 position as the phone reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
    /// Horizontal accuracy in metres, when the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

impl GeoPoint {
    /// A checked point: finite, longitude in [-180, 180], latitude in [-90, 90], accuracy ≥ 0.
    pub fn new(lon: f64, lat: f64, accuracy_m: Option<f64>) -> Result<GeoPoint, ValidationErrors> {
        let p = GeoPoint {
            lon,
            lat,
            accuracy_m,
        };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        check_coord(&mut v, "lon", self.lon, 180.0);
        check_coord(&mut v, "lat", self.lat, 90.0);
        if let Some(a) = self.accuracy_m
            && (!a.is_finite() || a < 0.0)
        {
            v.error("accuracy_m", Problem::BadDistance);
        }
        v.finish()
    }

    /// Whether the point lies in China's bounding box ([`CHINA_LON`], [`CHINA_LAT`]): a
    /// grid worker's record is somewhere in it, whatever the province.
    pub fn in_china(&self) -> bool {
        CHINA_LON.contains(&self.lon) && CHINA_LAT.contains(&self.lat)
    }

    /// Metres from this point to the grid `boundary`: 0 inside it or on it.
    pub fn distance_outside_m(&self, boundary: &Polygon<f64>) -> f64 {
        use geo::{Closest, ClosestPoint, Contains, Distance, Haversine};
        let pt = self.point();
        if boundary.contains(&pt) || boundary.exterior().0.is_empty() {
            return 0.0;
        }
        match boundary.exterior().closest_point(&pt) {
            Closest::Intersection(_) => 0.0,
            Closest::SinglePoint(q) => Haversine.distance(pt, q),
            Closest::Indeterminate => 0.0,
        }
    }

    /// [`GeoPoint::validate`], and the point is in China ([`GeoPoint::in_china`]): where a
    /// record or a house can be.
    pub fn validate_place(&self) -> Result<(), ValidationErrors> {
        self.validate()?;
        let mut v = Validator::new();
        if v.is_ok() && !self.in_china() {
            // Swapped coordinates (lat, lon) land here too.
            v.error(
                "lon",
                Problem::OutsideChina {
                    lon: format!("{:.5}", self.lon),
                    lat: format!("{:.5}", self.lat),
                },
            );
        }
        v.finish()
    }

    pub fn point(&self) -> Point<f64> {
        Point::new(self.lon, self.lat)
    }

    /// Great-circle distance in metres.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        Haversine.distance(self.point(), other.point())
    }
}

/// How far outside its grid a record may have been located before the dashboard flags it
/// (位置异常): a hazard across the road from the boundary is normal, one in the next village
/// is not. The record is kept either way.
pub const PLACE_TOLERANCE_M: f64 = 500.0;

/// Longitudes of China's bounding box (Xinjiang's western border to the Wusuli river).
pub const CHINA_LON: std::ops::RangeInclusive<f64> = 73.0..=135.5;
/// Latitudes of China's bounding box (the Nansha islands to Mohe).
pub const CHINA_LAT: std::ops::RangeInclusive<f64> = 3.5..=54.0;

fn check_coord(v: &mut Validator, field: &str, value: f64, limit: f64) {
    if !value.is_finite() {
        v.error(field, Problem::NotFinite);
    } else if value.abs() > limit {
        v.error(
            field,
            Problem::OutOfRange {
                value: value.to_string(),
                limit: limit.to_string(),
            },
        );
    }
}

/// The 15-digit grid code: the village's 12-digit statistical area code plus a 3-digit number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GridCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grid code {0:?} must be 15 digits: the 12-digit village code and a 3-digit grid number")]
pub struct GridCodeError(pub String);

impl GridCode {
    pub fn parse(s: &str) -> Result<GridCode, GridCodeError> {
        if s.len() == 15 && s.bytes().all(|b| b.is_ascii_digit()) && &s[12..] != "000" {
            Ok(GridCode(s.to_owned()))
        } else {
            Err(GridCodeError(s.to_owned()))
        }
    }

    pub fn new(village_code: &str, number: u16) -> Result<GridCode, GridCodeError> {
        GridCode::parse(&format!("{village_code}{number:03}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The village's 12-digit code.
    pub fn village(&self) -> &str {
        &self.0[..12]
    }

    /// The town's 9-digit code.
    pub fn town(&self) -> &str {
        &self.0[..9]
    }

    /// The county's 6-digit code.
    pub fn county(&self) -> &str {
        &self.0[..6]
    }
}

impl TryFrom<String> for GridCode {
    type Error = GridCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        GridCode::parse(&s)
    }
}

impl From<GridCode> for String {
    fn from(v: GridCode) -> String {
        v.0
    }
}

/// A county (区/县).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct County {
    /// 6-digit administrative code.
    pub code: String,
    pub name: String,
}

/// A town (乡镇/街道).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Town {
    /// 9-digit code.
    pub code: String,
    pub name: String,
}

/// A village or community (村/社区).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Village {
    /// 12-digit statistical area code.
    pub code: String,
    pub name: String,
    pub town_code: String,
    pub boundary: Polygon<f64>,
}

/// A grid unit (网格): the smallest area a worker covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub id: Uuid,
    pub code: GridCode,
    pub name: String,
    pub village_name: String,
    pub town_name: String,
    pub county_name: String,
    pub boundary: Polygon<f64>,
}

/// Why a GeoJSON boundary was refused.
#[derive(Debug, thiserror::Error)]
pub enum GeoJsonError {
    #[error("not valid GeoJSON: {0}")]
    Parse(String),
    #[error("expected a Polygon (or a Feature holding one), got {0}")]
    NotPolygon(String),
    #[error("polygon ring {ring} has {points} points; a ring needs at least 4 (closed)")]
    TooFewPoints { ring: usize, points: usize },
    #[error("polygon ring {ring}, point {index}: {reason}")]
    BadCoordinate {
        ring: usize,
        index: usize,
        reason: String,
    },
}

/// Reads a boundary polygon from GeoJSON text: a Polygon geometry, or a Feature holding one.
pub fn polygon_from_geojson(text: &str) -> Result<Polygon<f64>, GeoJsonError> {
    let gj: geojson::GeoJson = text
        .parse()
        .map_err(|e: geojson::Error| GeoJsonError::Parse(e.to_string()))?;
    let geometry = match gj {
        geojson::GeoJson::Geometry(g) => g,
        geojson::GeoJson::Feature(f) => f
            .geometry
            .ok_or_else(|| GeoJsonError::NotPolygon("a Feature without geometry".into()))?,
        geojson::GeoJson::FeatureCollection(_) => {
            return Err(GeoJsonError::NotPolygon("a FeatureCollection".into()));
        }
    };
    polygon_from_geometry(&geometry)
}

/// Converts one GeoJSON geometry to a checked polygon.
pub fn polygon_from_geometry(geometry: &geojson::Geometry) -> Result<Polygon<f64>, GeoJsonError> {
    let geojson::GeometryValue::Polygon { coordinates: rings } = &geometry.value else {
        return Err(GeoJsonError::NotPolygon(
            geometry.value.type_name().to_string(),
        ));
    };
    for (r, ring) in rings.iter().enumerate() {
        if ring.len() < 4 {
            return Err(GeoJsonError::TooFewPoints {
                ring: r,
                points: ring.len(),
            });
        }
        for (i, pos) in ring.iter().enumerate() {
            if pos.len() < 2 {
                return Err(GeoJsonError::BadCoordinate {
                    ring: r,
                    index: i,
                    reason: "a position needs longitude and latitude".into(),
                });
            }
            if let Err(e) = GeoPoint::new(pos[0], pos[1], None) {
                return Err(GeoJsonError::BadCoordinate {
                    ring: r,
                    index: i,
                    reason: e.to_string(),
                });
            }
        }
    }
    let to_ls = |ring: &Vec<geojson::Position>| -> LineString<f64> {
        ring.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>().into()
    };
    let exterior = to_ls(&rings[0]);
    let interiors = rings[1..].iter().map(to_ls).collect();
    Ok(Polygon::new(exterior, interiors))
}

/// Writes a polygon as a GeoJSON Polygon geometry.
pub fn polygon_to_geojson(p: &Polygon<f64>) -> String {
    let g = geojson::Geometry::new(geojson::GeometryValue::from(p));
    g.to_string()
}

/// Writes grids as a GeoJSON FeatureCollection with code and names as properties.
pub fn grids_to_geojson(grids: &[Grid]) -> String {
    let features = grids
        .iter()
        .map(|g| {
            let mut props = serde_json::Map::new();
            props.insert("id".into(), g.id.to_string().into());
            props.insert("code".into(), g.code.as_str().into());
            props.insert("name".into(), g.name.clone().into());
            props.insert("village".into(), g.village_name.clone().into());
            props.insert("town".into(), g.town_name.clone().into());
            geojson::Feature {
                bbox: None,
                geometry: Some(geojson::Geometry::new(geojson::GeometryValue::from(
                    &g.boundary,
                ))),
                id: None,
                properties: Some(props),
                foreign_members: None,
            }
        })
        .collect();
    geojson::FeatureCollection {
        bbox: None,
        features,
        foreign_members: None,
    }
    .to_string()
}

/// A union of grid polygons, e.g. a worker's whole scope.
pub fn scope_polygon(grids: &[Grid]) -> MultiPolygon<f64> {
    MultiPolygon(grids.iter().map(|g| g.boundary.clone()).collect())
}

/// One fix of a GPS track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackPoint {
    pub at: DateTime<Utc>,
    pub lon: f64,
    pub lat: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

/// A GPS track as a line string, in time order.
pub fn track_line(points: &[TrackPoint]) -> LineString<f64> {
    points
        .iter()
        .map(|p| (p.lon, p.lat))
        .collect::<Vec<_>>()
        .into()
}

/// Length of a track in metres (haversine, over the fixes in order).
pub fn track_length_m(points: &[TrackPoint]) -> f64 {
    Haversine.length(&track_line(points))
}

/// Time from the first to the last fix.
pub fn track_duration(points: &[TrackPoint]) -> chrono::Duration {
    match (points.first(), points.last()) {
        (Some(a), Some(b)) => b.at - a.at,
        _ => chrono::Duration::zero(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_outside_wgs84_or_not_finite_are_refused_by_field() {
        assert!(GeoPoint::new(116.6, 28.2, Some(8.0)).is_ok());
        let e = GeoPoint::new(f64::NAN, 95.0, Some(-1.0)).unwrap_err();
        assert!(e.for_field("lon").unwrap().contains("finite"));
        assert!(e.for_field("lat").unwrap().contains("-90..90"));
        assert!(e.for_field("accuracy_m").is_some());
        assert!(GeoPoint::new(180.5, 0.0, None).is_err());
    }

    #[test]
    fn grid_code_has_its_parts() {
        let c = GridCode::new("361003101201", 7).unwrap();
        assert_eq!(c.as_str(), "361003101201007");
        assert_eq!(c.village(), "361003101201");
        assert_eq!(c.town(), "361003101");
        assert_eq!(c.county(), "361003");
        assert!(GridCode::parse("36100310120100").is_err());
        assert!(GridCode::parse("361003101201000").is_err());
    }

    #[test]
    fn geojson_round_trip_and_errors() {
        let text = r#"{"type":"Polygon","coordinates":[[[116.0,28.0],[116.1,28.0],[116.1,28.1],[116.0,28.1],[116.0,28.0]]]}"#;
        let p = polygon_from_geojson(text).unwrap();
        let back = polygon_from_geojson(&polygon_to_geojson(&p)).unwrap();
        assert_eq!(p, back);
        let bad = r#"{"type":"Polygon","coordinates":[[[116.0,28.0],[216.1,28.0],[116.1,28.1],[116.0,28.0]]]}"#;
        let msg = polygon_from_geojson(bad).unwrap_err().to_string();
        assert!(msg.contains("point 1") && msg.contains("lon"), "{msg}");
        let line = r#"{"type":"LineString","coordinates":[[116.0,28.0],[116.1,28.0]]}"#;
        assert!(matches!(
            polygon_from_geojson(line),
            Err(GeoJsonError::NotPolygon(_))
        ));
    }

    #[test]
    fn track_length_and_duration() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 0.01 degree of latitude is about 1.11 km.
        let pts = [
            TrackPoint {
                at: t0,
                lon: 116.6,
                lat: 28.20,
                accuracy_m: None,
            },
            TrackPoint {
                at: t0 + chrono::Duration::minutes(10),
                lon: 116.6,
                lat: 28.21,
                accuracy_m: None,
            },
            TrackPoint {
                at: t0 + chrono::Duration::minutes(25),
                lon: 116.6,
                lat: 28.22,
                accuracy_m: None,
            },
        ];
        let len = track_length_m(&pts);
        assert!((len - 2224.0).abs() < 5.0, "{len}");
        assert_eq!(track_duration(&pts), chrono::Duration::minutes(25));
        assert_eq!(track_length_m(&pts[..1]), 0.0);
    }
}
