//! Field app benchmark: cold start to the first screen, the household list over 2,000
//! households, and opening a household, each rendered through the real `App` (VirtualDom +
//! dioxus-ssr, no webview), against a baseline measured in the same run: rendering a static
//! list of 50 cards with no store behind it.
//!
//!     cargo bench --features desktop --bench app            # full
//!     cargo bench --features desktop --bench app -- --quick # smoke size
//!
//! Goals: first screen < 1 s, household open < 50 ms, the list stays smooth (it
//! renders 50 cards a page whatever the grid's size). Prints medians and ratios; no assertion.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveTime, Utc};
use dioxus::prelude::*;
use geo::Centroid;
use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::{App, AppProps, Route, Services};
use gridwalk::demo::{County, CountySpec, seed_device};
use gridwalk::domain::codes::Lang;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::store::Store;
use gridwalk::store::people::HouseholdQuery;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p95(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[component]
fn Baseline() -> Element {
    rsx! {
        ul { for i in 0..50 { li { key: "{i}", a { class: "card", div { class: "card-title", "某某村 {i} 号" } div { "户主 张三 · 3 人" } } } } }
    }
}

fn services(
    store: Arc<Mutex<Store>>,
    here: GeoPoint,
    start: Route,
    now: chrono::DateTime<Utc>,
) -> Services {
    Services {
        db_path: None,
        store: Some(store),
        location: Arc::new(FixedLocation::new(here, 0.0)),
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(move || now),
        fix_interval_ms: 60_000,
        start: Some(start),
        lang: Lang::Zh,
        autosync: None,
    }
}

fn render(s: Services) -> String {
    let mut dom = VirtualDom::new_with_props(App, AppProps { services: s });
    dom.rebuild_in_place();
    dioxus_ssr::render(&dom)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 5 } else { 30 };
    let grids: Vec<usize> = if quick { vec![0] } else { vec![0, 1, 2, 3] };
    let today = Utc::now().date_naive();
    let now = today
        .and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default())
        .and_utc();

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("device.db");
    let county = County::generate(&CountySpec::bench(1, today));
    let t = Instant::now();
    {
        let mut s = gridwalk::store::vault::open_with_pin(&path, "123456").expect("open");
        seed_device(&mut s, &county, &grids, "worker-a").expect("seed");
    }
    let c = county.grids[0].grid.boundary.centroid().expect("centroid");
    let here = GeoPoint::new(c.x(), c.y(), Some(5.0)).expect("point");
    println!(
        "seeded {} grid(s) in {:.1} s",
        grids.len(),
        t.elapsed().as_secs_f64()
    );

    // Baseline: a static 50-card list, no store.
    let base = median(
        (0..runs * 4)
            .map(|_| {
                let t = Instant::now();
                let mut dom = VirtualDom::new(Baseline);
                dom.rebuild_in_place();
                std::hint::black_box(dioxus_ssr::render(&dom));
                t.elapsed()
            })
            .collect(),
    );
    println!("baseline (static 50-card list): {:.2} ms", ms(base));

    // Cold start: open the encrypted store with the PIN (SQLCipher key derivation included),
    // then build and render the Today screen.
    let cold: Vec<Duration> = (0..runs.min(10))
        .map(|_| {
            let t = Instant::now();
            let s = gridwalk::store::vault::open_with_pin(&path, "123456").expect("open");
            let html = render(services(
                Arc::new(Mutex::new(s)),
                here,
                Route::Today {},
                now,
            ));
            assert!(html.contains("今日工作"));
            t.elapsed()
        })
        .collect();
    let store = Arc::new(Mutex::new(
        gridwalk::store::vault::open_with_pin(&path, "123456").expect("open"),
    ));
    let n = store
        .lock()
        .map(|s| {
            s.households(
                &HouseholdQuery {
                    limit: Some(100_000),
                    ..Default::default()
                },
                today,
            )
            .map(|v| v.len())
        })
        .expect("lock")
        .expect("count");

    let list: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let html = render(services(store.clone(), here, Route::Households {}, now));
            assert!(html.contains("hh-card"));
            t.elapsed()
        })
        .collect();

    let ids: Vec<uuid::Uuid> = store
        .lock()
        .map(|s| {
            s.households(
                &HouseholdQuery {
                    limit: Some(runs),
                    ..Default::default()
                },
                today,
            )
        })
        .expect("lock")
        .expect("ids")
        .into_iter()
        .map(|c| c.id)
        .collect();
    let open: Vec<Duration> = ids
        .iter()
        .map(|id| {
            let t = Instant::now();
            let html = render(services(
                store.clone(),
                here,
                Route::HouseholdPage { id: *id },
                now,
            ));
            assert!(html.contains("走访记录"));
            t.elapsed()
        })
        .collect();

    println!("households in the store: {n}");
    let row = |name: &str, v: Vec<Duration>, goal: &str| {
        let (m, p) = (median(v.clone()), p95(v));
        println!(
            "{name:<42} median {:>8.2} ms  p95 {:>8.2} ms  = {:>7.1} × baseline  (goal {goal})",
            ms(m),
            ms(p),
            m.as_secs_f64() / base.as_secs_f64()
        );
    };
    row("cold start: unlock + Today screen", cold, "< 1000 ms");
    row(
        &format!("household list ({n} households, page 1)"),
        list,
        "smooth: one page of 50",
    );
    row("open a household (detail screen)", open, "< 50 ms");
}
