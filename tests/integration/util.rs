//! Shared helpers: a fixed "today", and device stores filled from the demo county.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use gridwalk::demo::{County, CountySpec, seed_device};
use gridwalk::store::Store;
use gridwalk::store::scope::Scope;

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
}

pub fn now() -> DateTime<Utc> {
    today()
        .and_time(NaiveTime::from_hms_opt(9, 30, 0).unwrap())
        .and_utc()
}

pub fn small_county() -> County {
    County::generate(&CountySpec::small(7, today()))
}

/// A store in a real file holding worker-a's grid (grid 0) of the small demo county.
pub fn demo_store() -> (tempfile::TempDir, Store, County, Scope) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("device.db")).unwrap();
    let county = small_county();
    let scope = seed_device(&mut store, &county, &[0], "worker-a").unwrap();
    (dir, store, county, scope)
}
