//! The county's geography: towns, villages tiling the county on a jittered lattice, grids
//! cutting each village into strips, and the people who work them.

use super::*;

impl County {
    /// Makes the county's geography: towns, villages tiling the county, grids tiling each village.
    pub fn generate(spec: &CountySpec) -> County {
        assert!(
            spec.villages > 0 && spec.grids >= spec.villages,
            "need at least one grid per village"
        );
        let mut rng = rng_for(spec.seed, u64::MAX);
        // Villages are the cells of a jittered lattice over the county's extent.
        let cols = (spec.villages as f64).sqrt().ceil() as usize;
        let rows = spec.villages.div_ceil(cols);
        let lattice = village_lattice(&mut rng, rows, cols);
        let per_village = grids_per_village(&mut rng, spec);
        let n_towns = names::TOWNS.len().min(spec.villages.div_ceil(8)).max(1);
        let towns: Vec<DemoTown> = (0..n_towns)
            .map(|t| DemoTown {
                code: format!("{}{}", names::COUNTY_CODE, 100 + t),
                name: names::TOWNS[t].to_owned(),
            })
            .collect();
        let village_names = village_names(spec.villages);
        let mut villages = Vec::new();
        let mut grids = Vec::new();
        let per_town = spec.villages.div_ceil(n_towns);
        for (v, name) in village_names.into_iter().enumerate() {
            // Snake order keeps a town's villages next to each other.
            let (r, c0) = (v / cols, v % cols);
            let c = if r % 2 == 0 { c0 } else { cols - 1 - c0 };
            let q = [
                lattice[r][c],
                lattice[r][c + 1],
                lattice[r + 1][c + 1],
                lattice[r + 1][c],
            ];
            let town = (v / per_town).min(n_towns - 1);
            let code = format!("{}{}", towns[town].code, 200 + v % per_town);
            let first = grids.len();
            let place = Place {
                village: v,
                code: &code,
                name: &name,
                town: &towns[town],
                quad: q,
            };
            grids.extend(village_grids(&mut rng, spec, &place, per_village[v]));
            let sex = rng_sex(&mut rng);
            let secretary_name = person_name(&mut rng, sex);
            villages.push(DemoVillage {
                code: code.clone(),
                name,
                town,
                boundary: quad_polygon(&q),
                grids: first..grids.len(),
                secretary: Worker {
                    username: format!("secretary-{code}"),
                    name: secretary_name,
                },
            });
        }
        // The demo's sign-in accounts are the workers of the first two grids and the first
        // village's secretary: their history is filed under the names they sign in with, so
        // one person is one row in the ledger.
        for (g, username) in grids.iter_mut().zip(["worker-a", "worker-b"]) {
            g.worker.username = username.to_owned();
        }
        if let Some(v) = villages.first_mut() {
            v.secretary.username = "secretary".to_owned();
        }
        County {
            spec: spec.clone(),
            towns,
            villages,
            grids,
        }
    }
}

/// The corners of the villages: a lattice of `rows` × `cols` cells over the county's extent,
/// its inner points jittered (its edge stays the county's edge).
fn village_lattice(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Vec<Vec<Coord<f64>>> {
    let ([x0, y0], [x1, y1]) = names::EXTENT;
    let (dx, dy) = ((x1 - x0) / cols as f64, (y1 - y0) / rows as f64);
    let mut lattice = vec![vec![Coord { x: 0.0, y: 0.0 }; cols + 1]; rows + 1];
    for (r, row) in lattice.iter_mut().enumerate() {
        for (c, p) in row.iter_mut().enumerate() {
            let inner = r > 0 && r < rows && c > 0 && c < cols;
            let (jx, jy) = if inner {
                (rng.random_range(-0.18..0.18), rng.random_range(-0.18..0.18))
            } else {
                (0.0, 0.0)
            };
            *p = round6(Coord {
                x: x0 + (c as f64 + jx) * dx,
                y: y0 + (r as f64 + jy) * dy,
            });
        }
    }
    lattice
}

/// Grids per village: an even share, the remainder to villages chosen by the stream.
fn grids_per_village(rng: &mut ChaCha8Rng, spec: &CountySpec) -> Vec<usize> {
    let mut per_village = vec![spec.grids / spec.villages; spec.villages];
    let mut order: Vec<usize> = (0..spec.villages).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], rng);
    for i in order.iter().take(spec.grids % spec.villages) {
        per_village[*i] += 1;
    }
    per_village
}

/// `n` village names: the named ones first, then made from prefixes, then from surnames,
/// then numbered.
fn village_names(n: usize) -> Vec<String> {
    let mut village_names: Vec<String> = names::NAMED_VILLAGES
        .iter()
        .map(|s| s.to_string())
        .collect();
    'outer: for p in names::VILLAGE_PREFIXES {
        for s in ["村", "新村"] {
            if village_names.len() >= n {
                break 'outer;
            }
            village_names.push(format!("{p}{s}"));
        }
    }
    for s in names::SURNAMES {
        if village_names.len() >= n {
            break;
        }
        let name = format!("{s}家村");
        if !village_names.contains(&name) {
            village_names.push(name);
        }
    }
    let mut k = 0;
    while village_names.len() < n {
        k += 1;
        village_names.push(format!("新建{k}村"));
    }
    village_names.truncate(n);
    village_names
}

/// A village being cut into grids: its index, code, name, town and corners.
struct Place<'a> {
    village: usize,
    code: &'a str,
    name: &'a str,
    town: &'a DemoTown,
    quad: [Coord<f64>; 4],
}

/// Cuts a village into `n_grids` strips along its width, at jittered fractions, each a grid
/// with its worker.
fn village_grids(
    rng: &mut ChaCha8Rng,
    spec: &CountySpec,
    place: &Place<'_>,
    n_grids: usize,
) -> Vec<DemoGrid> {
    let q = place.quad;
    let mut cuts: Vec<f64> = (0..=n_grids)
        .map(|i| {
            let t = i as f64 / n_grids as f64;
            if i == 0 || i == n_grids {
                t
            } else {
                t + rng.random_range(-0.25..0.25) / n_grids as f64
            }
        })
        .collect();
    cuts.sort_by(f64::total_cmp);
    let mut grids = Vec::with_capacity(n_grids);
    for g in 0..n_grids {
        let (a, b) = (cuts[g], cuts[g + 1]);
        // Not rounded: a rounded cut point would leave the village edge and open slivers.
        let gq = [
            lerp(q[0], q[1], a),
            lerp(q[0], q[1], b),
            lerp(q[3], q[2], b),
            lerp(q[3], q[2], a),
        ];
        let number = (g + 1) as u16;
        let grid_id = id_at(
            rng,
            spec.today.and_time(NaiveTime::MIN).and_utc() - Duration::days(400),
        );
        let sex = rng_sex(rng);
        let worker_name = person_name(rng, sex);
        let (code, name) = (place.code, place.name);
        grids.push(DemoGrid {
            grid: Grid {
                id: grid_id,
                code: GridCode::new(code, number).expect("generated codes are 15 digits"),
                name: format!("{name}第{number}网格"),
                village_name: name.to_owned(),
                town_name: place.town.name.clone(),
                county_name: names::COUNTY_NAME.to_owned(),
                boundary: quad_polygon(&gq),
            },
            village: place.village,
            worker: Worker {
                username: format!("grid-{code}{number:03}"),
                name: worker_name,
            },
            quad: gq,
        });
    }
    grids
}
