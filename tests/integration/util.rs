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

/// Runs a Playwright script of `tests/browser/` with `node`, and returns its log. It must exit 0
/// and print `marker`; otherwise the test fails with the log and the failure screenshot the
/// script took (kept outside the test's temporary directory, which the panic removes).
#[cfg(any(feature = "browser", all(feature = "server", feature = "client")))]
pub fn run_node(script: &str, args: &[&str], marker: &str) -> String {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "run `npm install --prefix tests/browser` (scripts/test-app.sh does)"
    );
    let shot = std::env::temp_dir().join(format!(
        "gridwalk-{}-failure-{}.png",
        script.trim_end_matches(".mjs"),
        std::process::id()
    ));
    let out = std::process::Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .env("FAIL_SHOT", &shot)
        .output()
        .expect("node runs (scripts/test-app.sh installs it)");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && log.contains(marker),
        "{script} {args:?} failed (screenshot {}):\n{log}",
        shot.display()
    );
    log
}
