//! `gridwalk`: the field app's command line. Until the UI lands it prints a worker's day from
//! a device store (seeding a demo store on first run), and exports demo scopes as NDJSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use clap::{Parser, Subcommand};
use geo::Centroid;
use gridwalk::demo::{County, CountySpec, seed_device, write_ndjson};
use gridwalk::domain::codes::{Coded, Lang};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::lifecycle;
use gridwalk::store::Store;
use gridwalk::store::records::RecordQuery;

#[derive(Parser)]
#[command(name = "gridwalk", about = "gridwalk field app (网格员)", version)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: print the day.
    #[command(flatten)]
    day: DayArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print a worker's day: due visits, nearest households, open records, pending uploads.
    Day(DayArgs),
    /// Write a demo scope as NDJSON (one record per line with a string `id`).
    Export(ExportArgs),
    /// Open the field app: a phone-sized window where there is a display, else the browser
    /// harness on a printed loopback URL.
    #[cfg(feature = "app")]
    App(app_cmd::AppArgs),
}

#[derive(clap::Args)]
struct DayArgs {
    /// The device store; a demo store is made there if it does not exist.
    #[arg(long, env = "GRIDWALK_DB", default_value = "gridwalk-demo.db")]
    db: PathBuf,
    /// Seed of the demo county.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Label language: zh or en.
    #[arg(long, default_value = "zh")]
    lang: String,
    /// Where the worker stands, as lon,lat (default: the middle of their first grid).
    #[arg(long)]
    at: Option<String>,
    /// The day to plan (default: today).
    #[arg(long)]
    today: Option<NaiveDate>,
}

#[derive(clap::Args)]
struct ExportArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// County size: small, full or bench.
    #[arg(long, default_value = "small")]
    size: String,
    /// Grid indexes to export (default: the first).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    grids: Vec<usize>,
    #[arg(long)]
    out: PathBuf,
}

fn spec(size: &str, seed: u64, today: NaiveDate) -> Result<CountySpec> {
    Ok(match size {
        "small" => CountySpec::small(seed, today),
        "full" => CountySpec::full(seed, today),
        "bench" => CountySpec::bench(seed, today),
        other => anyhow::bail!("unknown size {other:?}: use small, full or bench"),
    })
}

fn main() -> Result<()> {
    // On a phone the app is all there is: no command line, the phone's own data directory.
    #[cfg(all(feature = "mobile", any(target_os = "android", target_os = "ios")))]
    {
        gridwalk::app::phone::launch();
        return Ok(());
    }
    #[allow(unreachable_code)]
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Day(cli.day)) {
        Command::Day(a) => day(a),
        #[cfg(feature = "app")]
        Command::App(a) => app_cmd::run(a),
        Command::Export(a) => {
            let county = County::generate(&spec(
                &a.size,
                a.seed,
                gridwalk::domain::cst::today(Utc::now()),
            )?);
            for g in &a.grids {
                anyhow::ensure!(
                    *g < county.grids.len(),
                    "grid index {g} is out of range (0..{})",
                    county.grids.len()
                );
            }
            let scope = county.scope(&a.grids);
            let file = std::fs::File::create(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            let n = write_ndjson(&scope, std::io::BufWriter::new(file))?;
            println!("wrote {n} records to {}", a.out.display());
            Ok(())
        }
    }
}

fn day(a: DayArgs) -> Result<()> {
    let lang = match a.lang.as_str() {
        "zh" => Lang::Zh,
        "en" => Lang::En,
        other => anyhow::bail!("unknown language {other:?}: use zh or en"),
    };
    let zh = lang == Lang::Zh;
    let t = |z: &'static str, e: &'static str| if zh { z } else { e };
    let today = a
        .today
        .unwrap_or_else(|| gridwalk::domain::cst::today(Utc::now()));
    let fresh = !a.db.exists();
    let mut store = Store::open(&a.db)
        .with_context(|| format!("opening the device store {}", a.db.display()))?;
    if fresh {
        let started = std::time::Instant::now();
        let county = County::generate(&CountySpec::small(a.seed, today));
        seed_device(&mut store, &county, &[0], "worker-a")?;
        println!(
            "{} {} ({:.1} s)",
            t("已生成演示设备库", "made a demo device store at"),
            a.db.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let grids = store.grids()?;
    let first = grids
        .first()
        .context("the device store holds no grid: enrol first")?;
    let here = match &a.at {
        Some(s) => {
            let (lon, lat) = s.split_once(',').context("--at takes lon,lat")?;
            GeoPoint::new(lon.trim().parse()?, lat.trim().parse()?, None)?
        }
        None => {
            let c = first.boundary.centroid().context("grid has no area")?;
            GeoPoint::new(c.x(), c.y(), None)?
        }
    };
    println!(
        "\n{} {} · {} {} · {today}",
        t("网格员", "Grid worker"),
        store.worker(),
        first.town_name,
        grids
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join("、")
    );

    let due = store.due_visits(today)?;
    println!(
        "\n{} ({})",
        t("今日待走访（含逾期）", "Due a visit today or overdue"),
        due.len()
    );
    for (i, c) in due.iter().take(10).enumerate() {
        let tags: Vec<&str> = c.care_tags.iter().map(|t| t.label(lang)).collect();
        let late = c.due.overdue_days(today);
        let when = match c.due.last_visited_on {
            None => t("从未走访", "never visited").to_owned(),
            Some(d) if late == 0 && zh => format!("今日到期，上次 {d}"),
            Some(d) if late == 0 => format!("due today, last {d}"),
            Some(d) if zh => format!("逾期 {late} 天，上次 {d}"),
            Some(d) => format!("{late} days overdue, last {d}"),
        };
        println!(
            "  {:>2}. {} · {} {} ({}{}) {} — {when}",
            i + 1,
            c.address,
            t("户主", "head"),
            c.head_name.as_deref().unwrap_or("-"),
            c.members,
            t("人", " people"),
            tags.join(" "),
        );
    }
    if due.len() > 10 {
        println!("  … {} {}", due.len() - 10, t("户未列出", "more"));
    }

    println!(
        "\n{} ({:.5}, {:.5})",
        t("附近住户", "Nearest households to"),
        here.lon,
        here.lat
    );
    for c in store.nearest_households(&here, 5, today)? {
        println!(
            "  {:>6.0} m · {} · {} {}",
            c.distance_m.unwrap_or(f64::NAN),
            c.address,
            t("户主", "head"),
            c.head_name.as_deref().unwrap_or("-")
        );
    }

    let open = store.records(&RecordQuery {
        open_only: true,
        ..Default::default()
    })?;
    println!("\n{} ({})", t("未办结记录", "Open records"), open.len());
    let mut by: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for r in &open {
        *by.entry((
            r.domain.label(lang).to_owned(),
            r.status.label(lang).to_owned(),
        ))
        .or_default() += 1;
    }
    for ((d, s), n) in by {
        println!("  {d} · {s}: {n}");
    }
    for r in open.iter().take(5) {
        let lc = lifecycle(r.domain);
        println!(
            "  - [{}] {} {} ({}, {})",
            r.status.label(lang),
            r.domain.label(lang),
            r.summary,
            r.created_at.format("%Y-%m-%d"),
            lc.name
        );
    }
    println!(
        "\n{}: {}",
        t("待上传", "Waiting to upload"),
        store.outbox_len()?
    );
    Ok(())
}

#[cfg(feature = "app")]
mod app_cmd {
    //! `gridwalk app`: builds the app's services from the command line and opens it.

    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use anyhow::{Context, Result};
    use chrono::Utc;
    use geo::Centroid;
    use gridwalk::app::platform::{FixFeed, FixedLocation, Location, NoCamera, PlatformError};
    use gridwalk::app::sync_port::SyncPort;
    use gridwalk::app::sync_port::client::ClientSync;
    use gridwalk::app::{MakeServices, Services};
    use gridwalk::demo::{County, CountySpec, seed_device};
    use gridwalk::domain::codes::Lang;
    use gridwalk::domain::geo::GeoPoint;
    use gridwalk::store::Store;

    #[derive(clap::Args)]
    pub struct AppArgs {
        /// The encrypted device store (made at enrolment, or by --demo).
        #[arg(long, env = "GRIDWALK_APP_DB", default_value = "gridwalk-app.db")]
        db: PathBuf,
        /// If the store does not exist, make a demo one (worker-a's grid, no server needed),
        /// encrypted with --pin.
        #[arg(long)]
        demo: bool,
        /// The PIN of a store made by --demo.
        #[arg(long, default_value = "123456")]
        pin: String,
        /// Seed of the demo county.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the device is, as lon,lat (desktop has no GPS). Default with --demo: the middle
        /// of worker-a's grid.
        #[arg(long)]
        at: Option<String>,
        /// Simulated walk: metres moved east per fix (0 = stand still).
        #[arg(long, default_value_t = 0.0)]
        walk_m: f64,
        /// Accuracy of the simulated fixes, in metres (worse than 30 is a poor fix: the forms
        /// warn, the patrol track leaves it out).
        #[arg(long, default_value_t = 8.0)]
        accuracy_m: f64,
        /// The simulated location's state, to try the forms without GPS: ok (a fix at --at),
        /// refused (permission refused) or nofix (no fix yet).
        #[arg(long, default_value = "ok", value_parser = ["ok", "refused", "nofix"])]
        gps: String,
        /// Milliseconds between the simulated fixes pushed while a patrol runs.
        #[arg(long, default_value_t = 5000)]
        fix_interval_ms: u64,
        /// Serve the browser harness even if a display exists.
        #[arg(long)]
        browser: bool,
        /// Address of the browser harness (port 0 = any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Start in English.
        #[arg(long)]
        en: bool,
        /// If the store does not exist, enrol it with this server first (as the enrol screen
        /// would), encrypted with --pin; needs --user and --password. An existing store is
        /// pointed at this server instead (its records and outbox stay).
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, env = "GRIDWALK_PASSWORD")]
        password: Option<String>,
    }

    /// A location that never fixes: none configured (the worker types it in the form), or a
    /// refusal or no fix asked for with --gps.
    fn without_fix(reading: PlatformError) -> Arc<dyn Location> {
        let feed = FixFeed::new("手动 manual");
        feed.push(Err(reading));
        Arc::new(feed)
    }

    pub fn run(a: AppArgs) -> Result<()> {
        let today = gridwalk::domain::cst::today(Utc::now());
        let mut at = match &a.at {
            Some(s) => {
                let (lon, lat) = s.split_once(',').context("--at takes lon,lat")?;
                Some(GeoPoint::new(
                    lon.trim().parse()?,
                    lat.trim().parse()?,
                    Some(a.accuracy_m),
                )?)
            }
            None => None,
        };
        if a.demo {
            let county = County::generate(&CountySpec::small(a.seed, today));
            if at.is_none() {
                let c = county.grids[0]
                    .grid
                    .boundary
                    .centroid()
                    .context("grid has no area")?;
                at = Some(GeoPoint::new(c.x(), c.y(), Some(a.accuracy_m))?);
            }
            if !a.db.exists() {
                let mut store = gridwalk::store::vault::open_with_pin(&a.db, &a.pin)
                    .with_context(|| format!("creating {}", a.db.display()))?;
                seed_device(&mut store, &county, &[0], "worker-a")?;
                println!(
                    "made a demo device store at {} (PIN {})",
                    a.db.display(),
                    a.pin
                );
            }
        }
        if let Some(server) = &a.server
            && !a.db.exists()
        {
            let (Some(user), Some(password)) = (&a.user, &a.password) else {
                anyhow::bail!("--server needs --user and --password (or GRIDWALK_PASSWORD)");
            };
            let store = gridwalk::store::vault::open_with_pin(&a.db, &a.pin)
                .with_context(|| format!("creating {}", a.db.display()))?;
            let store = Arc::new(Mutex::new(store));
            let rt = tokio::runtime::Runtime::new()?;
            let enrolled = rt
                .block_on(gridwalk::client::enrol(server, user, password, &store))
                .with_context(|| format!("enrolling with {server}"))?;
            println!(
                "enrolled {} ({}) with {server}: {} records down; device store {} (PIN {})",
                enrolled.account.username,
                enrolled.account.display_name,
                enrolled.first_sync.pulled,
                a.db.display(),
                a.pin
            );
        }
        if let Some(server) = &a.server
            && a.db.exists()
        {
            // An existing store keeps its records and outbox; only the address it syncs with
            // changes (as the Settings screen does).
            let store = gridwalk::store::vault::open_with_pin(&a.db, &a.pin)
                .with_context(|| format!("opening {}", a.db.display()))?;
            let server = server.trim_end_matches('/');
            let before = store.meta(gridwalk::store::remote::SERVER_URL)?;
            if before.as_deref() != Some(server) {
                store.set_meta(gridwalk::store::remote::SERVER_URL, server)?;
                println!(
                    "device store {}: server address {} -> {server}",
                    a.db.display(),
                    before.as_deref().unwrap_or("(none)")
                );
            }
        }
        if at.is_none() && a.server.is_some() {
            // Desktop has no GPS: stand in the middle of the worker's first grid.
            let store = gridwalk::store::vault::open_with_pin(&a.db, &a.pin)?;
            if let Some(g) = store.grids()?.first()
                && let Some(c) = g.boundary.centroid()
            {
                at = Some(GeoPoint::new(c.x(), c.y(), Some(a.accuracy_m))?);
            }
        }
        let db = a.db.clone();
        let (walk, interval, lang, gps) = (
            a.walk_m,
            a.fix_interval_ms,
            if a.en { Lang::En } else { Lang::Zh },
            a.gps.clone(),
        );
        let make: MakeServices = Arc::new(move || {
            let location: Arc<dyn Location> = match (gps.as_str(), at) {
                ("refused", _) => without_fix(PlatformError::Refused),
                ("nofix", _) => without_fix(PlatformError::NoFix(
                    "模拟：尚无定位 (simulated: no fix yet)".into(),
                )),
                (_, Some(p)) => Arc::new(FixedLocation::new(p, walk)),
                (_, None) => without_fix(PlatformError::NoFix(
                    "没有定位来源，请手动输入经纬度 (no location source: type lon,lat)".into(),
                )),
            };
            let sync: Arc<dyn SyncPort> = Arc::new(ClientSync);
            Services {
                db_path: Some(db.clone()),
                store: None::<Arc<Mutex<Store>>>,
                location,
                camera: Arc::new(NoCamera),
                sync,
                clock: Arc::new(Utc::now),
                fix_interval_ms: interval,
                start: None,
                lang,
                autosync: Some(gridwalk::client::schedule::Config::default()),
            }
        });
        let has_display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
            || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
        #[cfg(feature = "desktop")]
        if has_display && !a.browser {
            gridwalk::app::launch_desktop(make);
            return Ok(());
        }
        #[cfg(feature = "browser")]
        {
            let rt = tokio::runtime::Runtime::new()?;
            return rt.block_on(async move {
                let (addr, server) = gridwalk::app::harness::bind(a.listen, make).await?;
                if !has_display {
                    println!("no display found; serving the app to a browser instead");
                }
                println!("gridwalk app: http://{addr}/");
                server.await?;
                Ok(())
            });
        }
        // The mobile launcher (the phone build's code path, in a window here).
        #[cfg(feature = "mobile")]
        {
            let _ = has_display;
            gridwalk::app::launch_mobile(make);
            return Ok(());
        }
        #[allow(unreachable_code)]
        {
            let _ = (has_display, make);
            anyhow::bail!(
                "this build has neither the desktop window nor the browser harness: build with --features desktop or browser"
            )
        }
    }
}
