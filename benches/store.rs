//! Device store benchmark: the write path against raw rusqlite in the same run, and "who is
//! due" over 2,000 households.
//!
//!     cargo bench --bench store            # full: 2,000 writes, 200 due queries
//!     cargo bench --bench store -- --quick # smoke size for CI
//!
//! Prints medians and the ratio to the baseline; goals are in BENCHMARKS.md. No assertion:
//! the figures are for people to read and record.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use gridwalk::demo::{County, CountySpec, seed_device};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::{Common, Hazard};
use gridwalk::store::Store;
use rusqlite::params;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn hazard(grid: uuid::Uuid, i: usize) -> Hazard {
    let now = Utc::now();
    let mut c = Common::new(Domain::Hazard, grid, "worker-a", now);
    c.location = Some(GeoPoint::new(116.4 + i as f64 * 1e-5, 28.1, Some(5.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::CorridorEbike,
        severity: Severity::Medium,
        description: format!("楼道内电动车飞线充电 #{i}"),
        place: "3组12号".into(),
        owner: None,
        due_date: None,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let writes = if quick { 200 } else { 2000 };
    let due_runs = if quick { 20 } else { 200 };
    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let county = County::generate(&CountySpec::bench(1, today));

    // 1. The write path: record + outbox entry in one transaction, against the same two rows
    //    inserted with raw prepared statements in one transaction each, on the same kind of file.
    let mut store = Store::open(dir.path().join("store.db")).unwrap();
    seed_device(&mut store, &county, &[0], "worker-a").unwrap();
    let mut raw = Store::open(dir.path().join("raw.db")).unwrap();
    seed_device(&mut raw, &county, &[0], "worker-a").unwrap();
    let grid = county.grids[0].grid.id;
    let items: Vec<Hazard> = (0..writes).map(|i| hazard(grid, i)).collect();
    // Pre-serialise for the baseline: it measures SQLite, not JSON.
    let rows: Vec<(Hazard, String)> = items
        .iter()
        .map(|h| (h.clone(), serde_json::to_string(h).unwrap()))
        .collect();

    let mut store_t = Vec::with_capacity(writes);
    let mut raw_t = Vec::with_capacity(writes);
    // Interleave so that both see the same machine state.
    for (i, h) in items.iter().enumerate() {
        let t = Instant::now();
        store.create_record(h, Utc::now()).unwrap();
        store_t.push(t.elapsed());

        let (h, json) = &rows[i];
        let c = raw.conn();
        let t = Instant::now();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        c.prepare_cached(
            "INSERT INTO records (id, kind, grid_id, author, status, urgency, category, summary, lon, lat,
                                  patrol_id, created_at, updated_at, data, version)
             VALUES (?1, 'HAZARD', ?2, ?3, 'REPORTED', 'NORMAL', 'CORRIDOR_EBIKE', ?4, ?5, ?6, NULL, ?7, ?7, ?8, 0)",
        )
        .unwrap()
        .execute(params![
            h.common.id.to_string(),
            grid.to_string(),
            h.common.author,
            h.description,
            h.common.location.unwrap().lon,
            h.common.location.unwrap().lat,
            h.common.created_at.to_rfc3339(),
            json
        ])
        .unwrap();
        c.prepare_cached(
            "INSERT INTO outbox (lane, seq, kind, record_id, op, fields, base_version, edited_at)
             VALUES ('NORMAL', ?1, 'HAZARD', ?2, 'CREATE', ?3, 0, ?4)",
        )
        .unwrap()
        .execute(params![
            i as i64 + 1,
            h.common.id.to_string(),
            json,
            h.common.created_at.to_rfc3339()
        ])
        .unwrap();
        c.execute_batch("COMMIT").unwrap();
        raw_t.push(t.elapsed());
    }
    let (s, r) = (median(store_t), median(raw_t));
    println!("write path ({writes} hazards, one transaction each, median):");
    println!(
        "  store.create_record (record + outbox)  {:>8.1} µs",
        s.as_secs_f64() * 1e6
    );
    println!(
        "  raw rusqlite, same two rows            {:>8.1} µs",
        r.as_secs_f64() * 1e6
    );
    println!(
        "  ratio store / raw                      {:>8.2}×   (goal ≤ 2×)",
        s.as_secs_f64() / r.as_secs_f64()
    );

    // 2. Who is due over 2,000 households: four bench grids of 500 in one store.
    let mut due_store = Store::open(dir.path().join("due.db")).unwrap();
    seed_device(&mut due_store, &county, &[0, 1, 2, 3], "worker-a").unwrap();
    let n = due_store.counts().unwrap().households;
    let mut due_t = Vec::with_capacity(due_runs);
    let mut found = 0;
    for _ in 0..due_runs {
        let t = Instant::now();
        found = due_store.due_visits(today).unwrap().len();
        due_t.push(t.elapsed());
    }
    // Baseline in the same run: a bare scan of the households table.
    let mut scan_t = Vec::with_capacity(due_runs);
    for _ in 0..due_runs {
        let t = Instant::now();
        let c: i64 = due_store
            .conn()
            .query_row("SELECT count(address) FROM households", [], |r| r.get(0))
            .unwrap();
        std::hint::black_box(c);
        scan_t.push(t.elapsed());
    }
    let (d, sc) = (median(due_t), median(scan_t));
    println!("who is due ({n} households, {found} due, median of {due_runs}):");
    println!(
        "  store.due_visits                       {:>8.2} ms   (goal < 5 ms)",
        d.as_secs_f64() * 1e3
    );
    println!(
        "  baseline: bare scan of households      {:>8.2} ms",
        sc.as_secs_f64() * 1e3
    );
    println!(
        "  ratio due / scan                       {:>8.1}×",
        d.as_secs_f64() / sc.as_secs_f64()
    );
}
