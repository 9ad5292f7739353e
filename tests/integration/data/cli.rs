//! The `gridwalk-server` binary: a county's first import of the demo grids, accounts and
//! households from the files `demo-files` writes, with progress on stderr.
//!
//! Smoke size by default (the first 3 grids of the small demo county). Long mode, the full
//! demo county (693 grids): `GRIDWALK_DATA_FULL=1 cargo test --release --features server
//! --test integration data::cli -- --nocapture` (prints the time each step took).

use std::process::{Command, Output};
use std::time::Instant;

use super::{Backend, TestDb, on_both};

fn run(db_url: &str, args: &[&str]) -> (Output, f64) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
        .arg("--db")
        .arg(db_url)
        .args(args)
        .env("GRIDWALK_PASSWORD", "county-admin-pw")
        .env("RUST_LOG", "warn")
        .env_remove("GRIDWALK_AS")
        .output()
        .expect("the gridwalk-server binary runs");
    (out, started.elapsed().as_secs_f64())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cli_imports_a_demo_county_with_progress(backend: Backend) {
    let t = TestDb::new(backend, false);
    let dir = tempfile::tempdir().unwrap();
    let full = std::env::var("GRIDWALK_DATA_FULL").is_ok_and(|v| v == "1");
    let d = dir.path().to_str().unwrap();
    let (out, _) = run(
        &t.url,
        &if full {
            vec!["demo-files", "--size", "full", "--dir", d]
        } else {
            vec!["demo-files", "--size", "small", "--grids", "3", "--dir", d]
        },
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, _) = run(
        &t.url,
        &[
            "user",
            "add",
            "county",
            "--name",
            "县综治中心",
            "--role",
            "ADMIN",
            "--scope",
            "361003",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut timings = Vec::new();
    for kind in ["grids", "accounts", "households"] {
        let file = dir.path().join(match kind {
            "grids" => "grids.geojson",
            "accounts" => "accounts.csv",
            _ => "households.csv",
        });
        let (out, secs) = run(&t.url, &["import", kind, file.to_str().unwrap()]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "import {kind}: {stdout}\n{stderr}");
        assert!(stdout.contains("0 errors"), "{stdout}");
        assert!(
            stderr.contains("progress: 0/"),
            "progress is shown: {stderr}"
        );
        assert!(
            stderr.contains("(100%)"),
            "progress reaches the end: {stderr}"
        );
        if kind == "accounts" {
            assert!(stdout.contains("Generated passwords"), "{stdout}");
        }
        timings.push((kind, secs, stdout.lines().next().unwrap_or("").to_owned()));
    }
    for (kind, secs, line) in &timings {
        eprintln!(
            "import {kind} ({backend:?}, {}): {secs:.1} s; {line}",
            if full { "full" } else { "smoke" }
        );
    }
    let people = std::fs::read_to_string(dir.path().join("households.csv"))
        .unwrap()
        .lines()
        .count() as i64
        - 1;
    assert_eq!(
        t.count("SELECT count(*) FROM entities WHERE kind = 'PERSON'"),
        people
    );
    assert!(t.count("SELECT count(*) FROM entities WHERE kind = 'HOUSEHOLD'") > 0);

    // Exports of what was imported, as the county administrator.
    let x = dir.path().join("people.xlsx");
    let (out, _) = run(
        &t.url,
        &[
            "export",
            "people",
            "--out",
            x.to_str().unwrap(),
            "--as",
            "county",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("{people} rows written")));

    // A bad file: exit status 1, the report on stdout and in a CSV; nothing imported.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "网格编码,地址,姓名,与户主关系\n361003100200001,某村1号,,户主\n",
    )
    .unwrap();
    let report = dir.path().join("report.csv");
    let (out, _) = run(
        &t.url,
        &[
            "import",
            "households",
            bad.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("     2  姓名"), "{stdout}");
    assert!(text(&out.stderr).contains("nothing was imported"));
    let report = std::fs::read_to_string(report).unwrap();
    assert!(report.contains("2,姓名,须填写姓名"), "{report}");
}
on_both!(cli_imports_a_demo_county_with_progress);
