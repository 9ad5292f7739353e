//! Map: my grids' polygons, households, open hazards and the running patrol's track, drawn as
//! SVG from the local store (no tiles, no network). Tapping a point opens it.

use dioxus::prelude::*;

use crate::app::Route;
use crate::app::components::ErrorNote;
use crate::app::context::{use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::domain::codes::Domain;
use crate::store::people::HouseholdQuery;
use crate::store::records::RecordQuery;

const W: f64 = 360.0;

/// Lon/lat → SVG coordinates over a bounding box, keeping metres square.
#[derive(Clone, Copy)]
pub struct Projection {
    min_lon: f64,
    max_lat: f64,
    sx: f64,
    sy: f64,
    pub height: f64,
}

impl Projection {
    pub fn fit(points: impl Iterator<Item = (f64, f64)>) -> Option<Projection> {
        let (mut a, mut b, mut c, mut d) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in points {
            a = a.min(x);
            b = b.max(x);
            c = c.min(y);
            d = d.max(y);
        }
        if a > b || c > d {
            return None;
        }
        let k = ((c + d) / 2.0).to_radians().cos();
        let (w, h) = (((b - a) * k).max(1e-9), (d - c).max(1e-9));
        let pad = 0.04;
        let scale = W / (w * (1.0 + 2.0 * pad));
        Some(Projection {
            min_lon: a - (b - a) * pad,
            max_lat: d + (d - c) * pad,
            sx: scale * k,
            sy: scale,
            height: h * scale * (1.0 + 2.0 * pad),
        })
    }
    pub fn xy(&self, lon: f64, lat: f64) -> (f64, f64) {
        (
            (lon - self.min_lon) * self.sx,
            (self.max_lat - lat) * self.sy,
        )
    }
}

#[component]
pub fn MapPage() -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let _track = session.track.read();
    let today = services.today();
    let patrol = *session.patrol.read();
    let data = store.read(|s| {
        let grids = s.grids()?;
        let homes = s.households(
            &HouseholdQuery {
                limit: Some(5000),
                ..Default::default()
            },
            today,
        )?;
        let hazards = s.records(&RecordQuery {
            domain: Some(Domain::Hazard),
            open_only: true,
            ..Default::default()
        })?;
        let track = match patrol {
            Some(id) => s.patrol_track(id)?,
            None => Vec::new(),
        };
        Ok((grids, homes, hazards, track))
    });
    let (grids, homes, hazards, track) = match data {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let proj = Projection::fit(
        grids
            .iter()
            .flat_map(|g| g.boundary.exterior().coords().map(|c| (c.x, c.y))),
    );
    let Some(proj) = proj else {
        return rsx! { p { class: "hint", {t(l, "本机还没有网格数据，请先同步。", "No grid on this device yet: sync first.")} } };
    };
    let here = services.location.fix().ok().map(|f| f.point);
    // Marks keep the same size on screen whatever the grid's shape.
    let mark = (proj.height.max(W) / 90.0).max(3.0);
    let nav = navigator();
    let track_pts: String = track
        .iter()
        .map(|p| {
            let (x, y) = proj.xy(p.lon, p.lat);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    rsx! {
        section { class: "map",
            h1 { {t(l, "网格地图", "Grid map")} }
            p { class: "legend",
                span { class: "sw home" } {t(l, "住户", "Household")} " "
                span { class: "sw due" } {t(l, "待走访", "Due")} " "
                span { class: "sw hazard" } {t(l, "未闭环隐患", "Open hazard")} " "
                span { class: "sw track" } {t(l, "巡防轨迹", "Patrol track")}
            }
            svg { id: "grid-map", class: "grid-map", view_box: "0 0 {W} {proj.height:.0}", xmlns: "http://www.w3.org/2000/svg",
                for g in grids.iter() {
                    polygon { key: "{g.id}", class: "grid-poly",
                        points: g.boundary.exterior().coords().map(|c| { let (x, y) = proj.xy(c.x, c.y); format!("{x:.1},{y:.1}") }).collect::<Vec<_>>().join(" ") }
                }
                for h in homes.iter().filter(|h| h.location.is_some()) {
                    {
                        let p = h.location.unwrap_or_else(|| unreachable!());
                        let (x, y) = proj.xy(p.lon, p.lat);
                        let id = h.id;
                        rsx! {
                            circle { key: "{h.id}", class: if h.due.is_due(today) { "home due" } else { "home" }, cx: "{x:.1}", cy: "{y:.1}", r: "{mark:.1}",
                                onclick: move |_| { nav.push(Route::HouseholdPage { id }); },
                                title { "{h.address}" } }
                        }
                    }
                }
                for r in hazards.iter().filter(|r| r.location.is_some()) {
                    {
                        let p = r.location.unwrap_or_else(|| unreachable!());
                        let (x, y) = proj.xy(p.lon, p.lat);
                        let id = r.id;
                        rsx! {
                            rect { key: "{r.id}", class: "hazard", x: "{x - mark:.1}", y: "{y - mark:.1}", width: "{2.0 * mark:.1}", height: "{2.0 * mark:.1}",
                                onclick: move |_| { nav.push(Route::RecordPage { id }); },
                                title { "{r.summary}" } }
                        }
                    }
                }
                if !track_pts.is_empty() {
                    polyline { id: "track", class: "track", points: "{track_pts}", stroke_width: "{mark * 0.7:.1}" }
                }
                if let Some(p) = here {
                    {
                        let (x, y) = proj.xy(p.lon, p.lat);
                        rsx! { circle { class: "me", cx: "{x:.1}", cy: "{y:.1}", r: "{mark * 1.4:.1}" } }
                    }
                }
            }
            p { class: "hint", {t(l, "点按圆点打开住户，方块打开隐患。地图数据全部来自本机。", "Tap a dot for a household, a square for a hazard. Drawn from this device's data only.")} }
        }
    }
}
