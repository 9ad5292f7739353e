//! The location behind the trait, as the worker meets it: the patrol recorder fed by a
//! provider that pushes fixes (accurate ones kept, poor ones and jitter dropped, a refusal
//! said on the Patrol screen), and the report form's states (refused, no fix yet, a poor fix,
//! a fix with its accuracy and age) with manual entry kept.

use std::sync::{Arc, Mutex};

use dioxus::prelude::*;
use geo::Centroid;
use gridwalk::app::platform::{Fix, FixFeed, Location, NoCamera, PlatformError};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::{App, AppProps, Route, Services};
use gridwalk::domain::codes::{Domain, Lang};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::{Common, Patrol};
use gridwalk::store::Store;
use gridwalk::store::records::RecordQuery;

use crate::util::{demo_store, now};

fn services(store: Arc<Mutex<Store>>, location: Arc<dyn Location>, start: Route) -> Services {
    Services {
        db_path: None,
        store: Some(store),
        location,
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(now),
        fix_interval_ms: 1_000,
        start: Some(start),
        lang: Lang::Zh,
        autosync: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the app's tasks until `done` says the page (or the store) is there (fails after 10 s).
fn pump(rt: &tokio::runtime::Runtime, d: &mut VirtualDom, done: impl Fn(&VirtualDom) -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done(d) {
        assert!(
            std::time::Instant::now() < until,
            "the app's tasks did not finish"
        );
        rt.block_on(async {
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(20), d.wait_for_work()).await;
        });
        d.render_immediate_to_vec();
    }
}

/// The middle of the demo device's first grid.
fn middle(store: &Store) -> GeoPoint {
    let c = store.grids().unwrap()[0].boundary.centroid().unwrap();
    GeoPoint::new(c.x(), c.y(), None).unwrap()
}

/// A fix `east_m` metres east of `p`, accurate to `acc` metres, taken `ago_s` seconds before now.
fn fix(p: GeoPoint, east_m: f64, acc: f64, ago_s: i64) -> Fix {
    let lon = p.lon + east_m / (111_320.0 * p.lat.to_radians().cos());
    Fix::new(
        GeoPoint::new(lon, p.lat, Some(acc)).unwrap(),
        now() - chrono::Duration::seconds(ago_s),
    )
}

#[test]
fn the_patrol_recorder_keeps_the_accurate_fixes_a_provider_pushes_and_drops_poor_ones() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, mut store, _county, _scope) = demo_store();
    let here = middle(&store);
    // A patrol left running (the app restarts into it).
    let grid = store.grids().unwrap()[0].id;
    let patrol = Patrol {
        common: Common::new(Domain::Patrol, grid, "worker-a", now()),
        started_at: now(),
        ended_at: None,
        notes: String::new(),
        distance_m: 0.0,
    };
    store.create_record(&patrol, now()).unwrap();
    let id = patrol.common.id;
    let running: Vec<_> = store
        .records(&RecordQuery {
            domain: Some(Domain::Patrol),
            statuses: vec![Status::Recording],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        running.len(),
        1,
        "the demo device has no other running patrol"
    );
    let store = Arc::new(Mutex::new(store));
    let feed = FixFeed::new("test GPS");
    let mut d = VirtualDom::new_with_props(
        App,
        AppProps {
            services: services(store.clone(), Arc::new(feed.clone()), Route::PatrolPage {}),
        },
    );
    d.rebuild_in_place();
    // The recorder watches by itself: no timer of the UI's asks for fixes.
    pump(&rt, &mut d, |_| feed.watchers() == 1);
    assert!(dioxus_ssr::render(&d).contains("正在等待定位"));
    let track = |s: &Arc<Mutex<Store>>| s.lock().unwrap().patrol_track(id).unwrap();

    feed.push(Ok(fix(here, 0.0, 6.0, 0)));
    pump(&rt, &mut d, |_| track(&store).len() == 1);
    assert!(dioxus_ssr::render(&d).contains("最近定位：± 6 m · 刚刚"));

    // Poor (±80 m): not recorded, and the screen says why.
    feed.push(Ok(fix(here, 60.0, 80.0, 0)));
    pump(&rt, &mut d, |d| {
        dioxus_ssr::render(d).contains("定位精度较差")
    });
    // Jitter (2 m from the last point kept): heard, not recorded.
    feed.push(Ok(fix(here, 2.0, 5.0, 0)));
    pump(&rt, &mut d, |d| {
        dioxus_ssr::render(d).contains("最近定位：± 5 m")
    });
    assert_eq!(
        track(&store).len(),
        1,
        "neither the poor fix nor the jitter"
    );
    feed.push(Ok(fix(here, 25.0, 8.0, 0)));
    pump(&rt, &mut d, |_| track(&store).len() >= 2);
    let t = track(&store);
    assert_eq!(t.len(), 2, "the accurate fixes only: {t:?}");
    assert_eq!(t[0].accuracy_m, Some(6.0));
    assert_eq!(t[1].accuracy_m, Some(8.0));
    let p: Patrol = store.lock().unwrap().record(id).unwrap();
    assert!(
        (p.distance_m - 25.0).abs() < 1.0,
        "25 m walked, none of it from the poor fix: {}",
        p.distance_m
    );

    // Permission withdrawn mid-patrol: the screen says so; nothing more is recorded.
    feed.push(Err(PlatformError::Refused));
    pump(&rt, &mut d, |d| {
        dioxus_ssr::render(d).contains("定位权限被拒绝，轨迹无法记录")
    });
    assert_eq!(track(&store).len(), 2);
}

#[test]
fn a_report_form_shows_the_location_state_and_keeps_manual_entry() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let here = middle(&store);
    let store = Arc::new(Mutex::new(store));
    let page = |reading: Result<Fix, PlatformError>| {
        let feed = FixFeed::new("test GPS");
        feed.push(reading);
        let mut d = VirtualDom::new_with_props(
            App,
            AppProps {
                services: services(
                    store.clone(),
                    Arc::new(feed),
                    Route::Report {
                        kind: "hazard".into(),
                    },
                ),
            },
        );
        d.rebuild_in_place();
        dioxus_ssr::render(&d)
    };
    let manual = |html: &str| {
        html.contains("id=\"loc-manual\"")
            && html.contains("手动输入 经度,纬度")
            && html.contains("id=\"loc-set\"")
    };

    let refused = page(Err(PlatformError::Refused));
    assert!(refused.contains("data-state=\"refused\""), "{refused}");
    assert!(refused.contains("定位权限被拒绝"));
    assert!(refused.contains("未定位"));
    assert!(manual(&refused), "manual entry kept when refused");

    let none = page(Err(PlatformError::NoFix("indoors".into())));
    assert!(none.contains("data-state=\"no-fix\""));
    assert!(none.contains("还没有定位"));
    assert!(manual(&none), "manual entry kept without a fix");

    let poor = page(Ok(fix(here, 0.0, 80.0, 0)));
    assert!(poor.contains("定位精度较差"), "{poor}");
    assert!(poor.contains("± 80 m · 刚刚"));
    assert!(poor.contains("所在网格"), "a poor fix still finds the grid");
    assert!(manual(&poor));

    let good = page(Ok(fix(here, 0.0, 5.0, 90)));
    assert!(good.contains("± 5 m · 1 分钟前"), "{good}");
    assert!(good.contains("test GPS"));
    assert!(!good.contains("loc-state"), "no warning on a good fix");
    assert!(manual(&good));
}

/// The providers and the track filter on their own (no app around them).
mod provider {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use gridwalk::app::platform::{
        Admit, Fix, FixFeed, FixedLocation, Locating, Location, POOR_ACCURACY_M, PlatformError,
        TrackFilter,
    };
    use gridwalk::domain::geo::GeoPoint;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    /// A fix `east_m` metres east of a point in Jiangxi, with `acc` metres accuracy.
    fn fix(east_m: f64, acc: Option<f64>, s: i64) -> Fix {
        let lat: f64 = 28.6765;
        let lon = 115.8921 + east_m / (111_320.0 * lat.to_radians().cos());
        Fix::new(GeoPoint::new(lon, lat, acc).unwrap(), at(s))
    }

    #[test]
    fn the_track_filter_keeps_accurate_steps_and_drops_poor_fixes_and_jitter() {
        let mut f = TrackFilter::new(None);
        assert_eq!(f.admit(&fix(0.0, Some(8.0), 0)), Admit::Keep);
        // Standing still: a couple of metres of wander is no step.
        assert_eq!(f.admit(&fix(2.0, Some(8.0), 5)), Admit::Jitter);
        assert_eq!(f.admit(&fix(-3.0, Some(6.0), 10)), Admit::Jitter);
        // Under a tree: a fix 80 m off, accurate to ±120 m, is left out however far it jumps.
        assert_eq!(f.admit(&fix(80.0, Some(120.0), 15)), Admit::Poor);
        assert_eq!(
            f.admit(&fix(8.0, Some(POOR_ACCURACY_M + 0.5), 20)),
            Admit::Poor
        );
        // A real step, measured from the last point kept (0 m), not the dropped ones.
        assert_eq!(f.admit(&fix(6.0, Some(POOR_ACCURACY_M), 25)), Admit::Keep);
        assert_eq!(f.admit(&fix(10.0, Some(5.0), 30)), Admit::Jitter);
        assert_eq!(
            f.admit(&fix(12.0, None, 35)),
            Admit::Keep,
            "no accuracy given: not poor"
        );
        // A source that gives no accuracy: a fix 2 km off five seconds later is a bad fix.
        assert_eq!(f.admit(&fix(2_012.0, None, 40)), Admit::Jump);
        assert_eq!(f.admit(&fix(20.0, None, 45)), Admit::Keep);
        // A track picked up after a restart starts from its last stored point.
        let mut resumed = TrackFilter::new(Some(fix(20.0, None, 45)));
        assert_eq!(resumed.admit(&fix(21.0, Some(5.0), 50)), Admit::Jitter);
    }

    #[test]
    fn a_reading_is_good_poor_refused_or_missing() {
        assert!(matches!(
            Locating::of(Ok(fix(0.0, Some(8.0), 0))),
            Locating::Good(_)
        ));
        assert!(matches!(
            Locating::of(Ok(fix(0.0, Some(45.0), 0))),
            Locating::Poor(_)
        ));
        assert!(matches!(
            Locating::of(Ok(fix(0.0, None, 0))),
            Locating::Good(_)
        ));
        assert_eq!(Locating::of(Err(PlatformError::Refused)), Locating::Refused);
        assert!(matches!(
            Locating::of(Err(PlatformError::NoFix("indoors".into()))),
            Locating::NoFix(w) if w == "indoors"
        ));
        // Age: seconds since the fix, never negative when the phone's clock runs ahead.
        let f = fix(0.0, Some(8.0), 100);
        assert_eq!(f.age(at(112)).num_seconds(), 12);
        assert_eq!(f.age(at(90)).num_seconds(), 0);
    }

    #[test]
    fn a_refusal_is_worded_for_the_worker_with_manual_entry() {
        use gridwalk::domain::labels::Explain;
        let zh = PlatformError::Refused.explain(gridwalk::domain::Lang::Zh);
        assert!(
            zh.contains("定位权限被拒绝") && zh.contains("手动输入经纬度"),
            "{zh}"
        );
        let none = PlatformError::NoFix("x".into()).explain(gridwalk::domain::Lang::Zh);
        assert!(
            none.contains("还没有定位") && none.contains("手动输入经纬度"),
            "{none}"
        );
    }

    #[test]
    fn a_feed_pushes_every_reading_to_every_watcher_and_forgets_those_gone() {
        let feed = FixFeed::new("test");
        assert!(
            matches!(feed.fix(), Err(PlatformError::NoFix(_))),
            "nothing pushed yet: no fix"
        );
        let mut a = feed.watch(Duration::from_secs(1));
        let b = feed.watch(Duration::from_secs(1));
        assert_eq!(feed.watchers(), 2);
        feed.push(Err(PlatformError::Refused));
        assert_eq!(feed.fix(), Err(PlatformError::Refused));
        let f = fix(0.0, Some(5.0), 0);
        feed.push(Ok(f));
        assert_eq!(feed.fix(), Ok(f));
        assert_eq!(a.try_recv().unwrap(), Err(PlatformError::Refused));
        assert_eq!(a.try_recv().unwrap(), Ok(f));
        drop(b);
        feed.push(Ok(fix(10.0, Some(5.0), 5)));
        assert_eq!(feed.watchers(), 1, "the dropped watcher is forgotten");
        assert!(a.try_recv().is_ok());
    }

    #[test]
    fn the_simulated_walk_pushes_fixes_from_its_own_thread() {
        let start = fix(0.0, Some(8.0), 0).point;
        let loc = FixedLocation::new(start, 6.0).with_clock(Arc::new(|| at(7)));
        let mut fixes = loc.watch(Duration::from_millis(10));
        // Nothing asks: the fixes come by themselves.
        let first = fixes.blocking_recv().unwrap().unwrap();
        let second = fixes.blocking_recv().unwrap().unwrap();
        assert_eq!(first.at, at(7));
        let step = first.point.distance_m(&second.point);
        assert!((step - 6.0).abs() < 0.1, "walked {step} m");
        assert_eq!(loc.fix().unwrap().point.accuracy_m, Some(8.0));
        assert!(loc.fix().unwrap().point.lon > start.lon);
    }
}
