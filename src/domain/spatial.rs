//! Which of my grids a point falls in: an R-tree over grid bounding boxes, then an exact
//! point-in-polygon test.
//!
//! A point on a boundary shared by two grids belongs to both; the index says so
//! ([`Location::OnBoundary`]) and picks the grid with the smallest code, so the answer is the
//! same on every device. A point outside all grids gets the nearest grid and its distance, so
//! the UI can warn "outside your grids (120 m from 第3网格)".

use geo::{
    BoundingRect, Closest, ClosestPoint, Coord, CoordinatePosition, Distance, Haversine, Point,
    coordinate_position::CoordPos,
};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};
use uuid::Uuid;

use super::geo::{GeoPoint, Grid};

/// Where a point lies among a set of grids.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    /// Strictly inside exactly one grid.
    Inside { grid: Uuid },
    /// On the boundary of one or more grids; `grid` is the one chosen (smallest code),
    /// `all` every grid whose boundary it touches, in code order.
    OnBoundary { grid: Uuid, all: Vec<Uuid> },
    /// Outside every grid; the nearest grid and the distance to its boundary, if any grid exists.
    Outside { nearest: Option<(Uuid, f64)> },
}

impl Location {
    /// The grid a record made at this point belongs to, if it lies in any.
    pub fn grid(&self) -> Option<Uuid> {
        match self {
            Location::Inside { grid } | Location::OnBoundary { grid, .. } => Some(*grid),
            Location::Outside { .. } => None,
        }
    }
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// A spatial index over a worker's (or a county's) grids.
pub struct GridIndex {
    grids: Vec<Grid>,
    tree: RTree<Entry>,
}

impl GridIndex {
    pub fn new(mut grids: Vec<Grid>) -> GridIndex {
        grids.sort_by(|a, b| a.code.cmp(&b.code));
        let entries = grids
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let r = g.boundary.bounding_rect()?;
                Some(GeomWithData::new(
                    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                    i,
                ))
            })
            .collect();
        GridIndex {
            grids,
            tree: RTree::bulk_load(entries),
        }
    }

    pub fn grids(&self) -> &[Grid] {
        &self.grids
    }

    pub fn get(&self, id: Uuid) -> Option<&Grid> {
        self.grids.iter().find(|g| g.id == id)
    }

    /// Locates a point among the grids.
    pub fn locate(&self, p: &GeoPoint) -> Location {
        let c = Coord { x: p.lon, y: p.lat };
        let mut inside = None;
        let mut boundary: Vec<usize> = Vec::new();
        for e in self.tree.locate_all_at_point([p.lon, p.lat]) {
            match self.grids[e.data].boundary.coordinate_position(&c) {
                CoordPos::Inside => inside = Some(e.data),
                CoordPos::OnBoundary => boundary.push(e.data),
                CoordPos::Outside => {}
            }
        }
        if let Some(i) = inside
            && boundary.is_empty()
        {
            return Location::Inside {
                grid: self.grids[i].id,
            };
        }
        if !boundary.is_empty() {
            // Overlapping grids would be a data error; a boundary point still gets one answer.
            boundary.extend(inside);
            boundary.sort();
            boundary.dedup();
            return Location::OnBoundary {
                grid: self.grids[boundary[0]].id,
                all: boundary.iter().map(|i| self.grids[*i].id).collect(),
            };
        }
        Location::Outside {
            nearest: self.nearest(p),
        }
    }

    /// The grid whose boundary is nearest to `p`, with the distance in metres.
    fn nearest(&self, p: &GeoPoint) -> Option<(Uuid, f64)> {
        let pt = Point::new(p.lon, p.lat);
        // Candidates: the few nearest bounding boxes; the exact distance decides among them.
        self.tree
            .nearest_neighbor_iter([p.lon, p.lat])
            .take(8)
            .filter_map(|e| {
                let g = &self.grids[e.data];
                let q = match g.boundary.exterior().closest_point(&pt) {
                    Closest::Intersection(q) | Closest::SinglePoint(q) => q,
                    Closest::Indeterminate => return None,
                };
                Some((g.id, Haversine.distance(pt, q)))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The bounding box of every grid, for map views.
    pub fn envelope(&self) -> Option<([f64; 2], [f64; 2])> {
        if self.grids.is_empty() {
            return None;
        }
        let e: AABB<[f64; 2]> = self.tree.root().envelope();
        Some((e.lower(), e.upper()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geo::GridCode;
    use geo::polygon;

    fn grid(n: u16, x0: f64, x1: f64) -> Grid {
        Grid {
            id: Uuid::from_u128(n as u128),
            code: GridCode::new("361003101201", n).unwrap(),
            name: format!("第{n}网格"),
            village_name: "山下村".into(),
            town_name: "杨桥殿镇".into(),
            county_name: "东乡区".into(),
            boundary: polygon![(x: x0, y: 28.0), (x: x1, y: 28.0), (x: x1, y: 28.01), (x: x0, y: 28.01), (x: x0, y: 28.0)],
        }
    }

    fn index() -> GridIndex {
        GridIndex::new(vec![grid(2, 116.01, 116.02), grid(1, 116.0, 116.01)])
    }

    #[test]
    fn inside_a_grid() {
        let loc = index().locate(&GeoPoint::new(116.005, 28.005, None).unwrap());
        assert_eq!(
            loc,
            Location::Inside {
                grid: Uuid::from_u128(1)
            }
        );
    }

    #[test]
    fn on_a_shared_boundary_the_smaller_code_wins_and_both_are_named() {
        let loc = index().locate(&GeoPoint::new(116.01, 28.005, None).unwrap());
        assert_eq!(
            loc,
            Location::OnBoundary {
                grid: Uuid::from_u128(1),
                all: vec![Uuid::from_u128(1), Uuid::from_u128(2)]
            }
        );
    }

    #[test]
    fn outside_all_grids_names_the_nearest() {
        // 0.001 degree of latitude south of the grids: about 111 m.
        let loc = index().locate(&GeoPoint::new(116.015, 27.999, None).unwrap());
        match loc {
            Location::Outside {
                nearest: Some((id, d)),
            } => {
                assert_eq!(id, Uuid::from_u128(2));
                assert!((d - 111.2).abs() < 1.0, "{d}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            GridIndex::new(vec![]).locate(&GeoPoint::new(0.0, 0.0, None).unwrap()),
            Location::Outside { nearest: None }
        );
    }
}
