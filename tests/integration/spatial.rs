//! Which of my grids a point falls in, on the demo county's grids: inside, outside, and on a
//! boundary two grids share.

use geo::{Centroid, CoordsIter};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::spatial::{GridIndex, Location};
use gridwalk::store::Store;

use crate::util::{demo_store, small_county};

#[test]
fn a_point_inside_a_grid_finds_it() {
    let county = small_county();
    let index = GridIndex::new(county.grids.iter().map(|g| g.grid.clone()).collect());
    for g in county.grids.iter().step_by(7) {
        let c = g.grid.boundary.centroid().unwrap();
        let loc = index.locate(&GeoPoint::new(c.x(), c.y(), None).unwrap());
        assert_eq!(loc, Location::Inside { grid: g.grid.id }, "{}", g.grid.name);
    }
}

#[test]
fn a_point_on_a_shared_boundary_belongs_to_both_and_one_is_chosen() {
    let county = small_county();
    let index = GridIndex::new(county.grids.iter().map(|g| g.grid.clone()).collect());
    let (a, b) = (&county.grids[0].grid, &county.grids[1].grid);
    // Grids 0 and 1 of a village share an edge from grid 0's second corner to its third;
    // the second corner is a vertex of both.
    let corners: Vec<_> = a.boundary.exterior().coords_iter().collect();
    let mid = GeoPoint::new(corners[1].x, corners[1].y, None).unwrap();
    match index.locate(&mid) {
        Location::OnBoundary { grid, all } => {
            assert!(all.contains(&a.id) && all.contains(&b.id), "{all:?}");
            let first = if a.code < b.code { a.id } else { b.id };
            assert_eq!(grid, first, "the smaller code wins, on every device");
        }
        other => panic!("expected a boundary point, got {other:?}"),
    }
}

#[test]
fn outside_my_grids_is_its_own_answer_with_the_nearest_grid() {
    let (_d, store, county, _) = demo_store();
    // worker-a holds only grid 0: the middle of grid 1 is outside their grids.
    let c = county.grids[1].grid.boundary.centroid().unwrap();
    match store
        .locate(&GeoPoint::new(c.x(), c.y(), None).unwrap())
        .unwrap()
    {
        Location::Outside {
            nearest: Some((id, d)),
        } => {
            assert_eq!(id, county.grids[0].grid.id);
            assert!(d > 10.0, "{d}");
        }
        other => panic!("{other:?}"),
    }
    let empty = Store::open_in_memory().unwrap();
    assert_eq!(
        empty
            .locate(&GeoPoint::new(116.5, 28.2, None).unwrap())
            .unwrap(),
        Location::Outside { nearest: None }
    );
}
