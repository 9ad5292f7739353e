//! `gridwalk-server`: the county server. `serve` (optionally seeding the demo county),
//! `relay` (a village-office relay), `migrate`, `user add | passwd | disable` for operators, `import` and `export` of the
//! county's data, `backup` and `restore`, and `demo-files` (the demo county as import files).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use gridwalk::demo::{County, CountySpec};
use gridwalk::server::db::Database;
use gridwalk::server::repo::{self, NewUser};
use gridwalk::server::wake::{self, Move};
use gridwalk::server::{AppState, auth, data, demo, router};

#[derive(Parser)]
#[command(
    name = "gridwalk-server",
    about = "gridwalk county server (综治中心)",
    version
)]
struct Cli {
    /// Database: a file path or sqlite://PATH (embedded SQLite), or postgres://...
    #[arg(
        long,
        global = true,
        env = "GRIDWALK_DB",
        default_value = "sqlite://gridwalk-server.db"
    )]
    db: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (and, with --demo, seed an empty database with the demo county first).
    Serve {
        #[arg(long, env = "GRIDWALK_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed the demo county and accounts (password gridwalk-demo). Loopback only.
        #[arg(long)]
        demo: bool,
        /// Demo county size: small or full.
        #[arg(long, default_value = "small")]
        demo_size: String,
        /// Write the bound address to this file once listening (for scripts and tests).
        #[arg(long)]
        addr_file: Option<std::path::PathBuf>,
    },
    /// Run as a village-office relay: devices at the office sync here (pushes held for the
    /// county, pulls answered from a mirror of the village's rows), and the relay forwards
    /// and mirrors whenever the county answers. The relay's account (role RELAY) signs in
    /// upstream; its password comes from GRIDWALK_PASSWORD or the first line of stdin. Give
    /// the relay its own database with --db (e.g. sqlite://relay.db).
    Relay {
        /// The county server's address, e.g. https://county.example.cn
        #[arg(long)]
        upstream: String,
        /// Where devices reach the relay.
        #[arg(long, env = "GRIDWALK_LISTEN", default_value = gridwalk::server::relay::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// The relay's account at the county (role RELAY, scoped to the village).
        #[arg(long)]
        user: String,
        /// The address the office's phones reach this relay at (told to the county, which
        /// tells the village's accounts), e.g. http://192.168.1.10:8090
        #[arg(long)]
        advertise: Option<String>,
        /// Seconds between syncs with the county while it answers (and at once when a device
        /// pushes).
        #[arg(long, default_value_t = gridwalk::server::relay::DEFAULT_EVERY.as_secs())]
        every: u64,
        /// Write the bound address to this file once listening (for scripts and tests).
        #[arg(long)]
        addr_file: Option<std::path::PathBuf>,
    },
    /// Bring the database schema up to date.
    Migrate,
    /// Back up the database while it serves: SQLite through its online backup API (one
    /// consistent snapshot, in steps that never hold up pushes), PostgreSQL with
    /// `pg_dump --format=custom`. FILE is replaced only once the new copy is whole.
    Backup {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// SQLite: pages copied per step.
        #[arg(long, default_value_t = gridwalk::server::backup::Pace::default().pages)]
        pages_per_step: i32,
        /// SQLite: pause after each step, in milliseconds.
        #[arg(long, default_value_t = 10)]
        pause_ms: u64,
    },
    /// Restore a backup into the database --db names: a new file or database (made if
    /// missing), or with --force one whose data it replaces. Refused while anything uses the
    /// database (stop every server first). The restored database gets a new generation:
    /// devices re-send what the backup lacks and pull it whole.
    Restore {
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Replace the data the database holds.
        #[arg(long)]
        force: bool,
    },
    /// Show the database's generation; --renew gives it a new one, which devices take as a
    /// restore (run it after restoring a backup by hand, before serving).
    Generation {
        #[arg(long)]
        renew: bool,
    },
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// The push inbox's quarantined rows: pushes whose application failed repeatedly (not
    /// an entry's refusal, which goes back to its device) and were set aside.
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// Devices: release one from its account (a phone that changes hands).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Import households and people (CSV, XLSX), grid boundaries (GeoJSON) or accounts (CSV,
    /// XLSX). A file with errors imports nothing (unless --valid-only); the row report is
    /// printed, and the exit status is 1 when there were errors.
    Import {
        /// households, grids or accounts.
        kind: data::ImportKind,
        file: PathBuf,
        /// Import the good rows and report the bad ones, instead of nothing at all.
        #[arg(long)]
        valid_only: bool,
        /// The account the import is made as (its scope applies; audited under its name).
        /// Default: the only county administrator account.
        #[arg(long = "as", env = "GRIDWALK_AS")]
        as_user: Option<String>,
        /// Also write the row report to this file (.csv or .xlsx).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Export records or people of an account's scope (ID numbers and phones masked).
    Export {
        /// records or people.
        what: String,
        /// xlsx or csv (default: from --out's extension).
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long = "as", env = "GRIDWALK_AS")]
        as_user: Option<String>,
        /// People with full ID numbers and phones (county administrators only; audited).
        #[arg(long)]
        unmasked: bool,
        /// Records of one type only (HAZARD, DISPUTE, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Records in one status only (SUBMITTED, RESOLVED, ...).
        #[arg(long)]
        status: Option<String>,
    },
    /// Write an empty import file with the right columns (households or accounts).
    Template {
        kind: data::ImportKind,
        /// .xlsx or .csv
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the demo county as import files: grids.geojson, accounts.csv, households.csv.
    DemoFiles {
        /// small or full (the article's 693 grids).
        #[arg(long, default_value = "small")]
        size: String,
        /// Only the first N grids.
        #[arg(long)]
        grids: Option<usize>,
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account; the password is read from GRIDWALK_PASSWORD or the first line of stdin.
    Add {
        username: String,
        #[arg(long)]
        name: String,
        /// ADMIN, TOWN, SECRETARY, WORKER, ASSIGNEE (a department or person the county
        /// dispatches records to; its name is the department's, its scope the area it serves)
        /// or RELAY (a village office's relay; its scope the village).
        #[arg(long)]
        role: String,
        /// The area code the account covers (county 6, town 9, village 12 digits).
        #[arg(long)]
        scope: String,
        /// A worker's grid, by its 15-digit code (repeatable).
        #[arg(long = "grid")]
        grids: Vec<String>,
    },
    /// Set a new password (GRIDWALK_PASSWORD or stdin).
    Passwd { username: String },
    /// Disable an account and revoke its sessions.
    Disable { username: String },
}

#[derive(Subcommand)]
enum InboxCommand {
    /// List the quarantined rows (id, device, account, when, tries, error).
    List,
    /// Put a quarantined row back in the queue (after the cause is fixed); the running
    /// server applies it at once on PostgreSQL (SQLite: with the next push, or at its next
    /// start).
    Retry { id: i64 },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Release a device id from its account: its sessions are revoked and its sync lanes
    /// start afresh, so another account can sign in with it.
    Release { device_id: uuid::Uuid },
}

fn read_password() -> Result<String> {
    if let Ok(p) = std::env::var("GRIDWALK_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let p = line.trim_end_matches(['\n', '\r']).to_owned();
    if p.chars().count() < 8 {
        bail!("a password needs at least 8 characters");
    }
    Ok(p)
}

fn main() -> Result<()> {
    init_logging();
    let cli = Cli::parse();
    // These two work on the database as it is: no migration first.
    match cli.command {
        Command::Backup {
            out,
            pages_per_step,
            pause_ms,
        } => return backup(&cli.db, &out, pages_per_step, pause_ms),
        Command::Restore { from, force } => return restore(&cli.db, &from, force),
        _ => {}
    }
    let db = Database::open(&cli.db).with_context(|| format!("opening the database {}", cli.db))?;
    db.migrate().context("migrating the database")?;
    match cli.command {
        Command::Migrate => {
            println!("database {} is at the latest schema", db.backend());
            Ok(())
        }
        Command::Backup { .. } | Command::Restore { .. } => unreachable!("handled above"),
        Command::Generation { renew } => generation(&db, renew),
        Command::User(u) => user(&db, u),
        Command::Inbox(cmd) => inbox(&db, cmd),
        Command::Device(DeviceCommand::Release { device_id }) => release_device(&db, device_id),
        Command::Import {
            kind,
            file,
            valid_only,
            as_user,
            report,
        } => import(&db, kind, &file, valid_only, as_user, report),
        Command::Export {
            what,
            format,
            out,
            as_user,
            unmasked,
            kind,
            status,
        } => export(&db, &what, format, &out, as_user, unmasked, kind, status),
        Command::DemoFiles { size, grids, dir } => demo_files(&size, grids, &dir),
        Command::Template { kind, out } => template(kind, &out),
        Command::Serve {
            listen,
            demo,
            demo_size,
            addr_file,
        } => serve(db, listen, demo, &demo_size, addr_file),
        Command::Relay {
            upstream,
            listen,
            user,
            advertise,
            every,
            addr_file,
        } => {
            let config = gridwalk::server::relay::Config {
                upstream,
                user,
                password: read_password()?,
                advertise,
                every: std::time::Duration::from_secs(every.max(1)),
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(run_relay(db, config, listen, addr_file))
        }
    }
}

/// Serves a village-office relay until Ctrl-C, syncing with the county meanwhile.
async fn run_relay(
    db: Database,
    config: gridwalk::server::relay::Config,
    listen: SocketAddr,
    addr_file: Option<PathBuf>,
) -> Result<()> {
    let listener =
        gridwalk::server::listen(listen).with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(f) = addr_file {
        std::fs::write(&f, addr.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    tracing::info!(%addr, upstream = %config.upstream, user = %config.user, "gridwalk relay listening");
    println!("gridwalk relay listening on http://{addr}");
    let relay = gridwalk::server::relay::Relay::new(db, config)?;
    relay.start();
    gridwalk::server::relay::serve(relay, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Shows the database's generation, or gives it a new one (after a restore made by hand).
fn generation(db: &Database, renew: bool) -> Result<()> {
    let g = if renew {
        db.tx(|tx| -> Result<String> {
            let g = repo::renew_generation(tx)?;
            repo::audit(
                tx,
                Utc::now(),
                "operator",
                None,
                "GENERATION_RENEW",
                None,
                None,
                Some(g.clone()),
            )?;
            Ok(g)
        })?
    } else {
        db.read(|tx| repo::get_setting(tx, repo::GENERATION))?
            .context("the database has no generation yet")?
    };
    println!("{g}");
    Ok(())
}

/// Logs on stderr, filtered by `RUST_LOG` (default: info, tower_http's warnings).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        // A log written to a file or a pipe carries no colour codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn inbox(db: &Database, cmd: InboxCommand) -> Result<()> {
    match cmd {
        InboxCommand::List => {
            let rows = db.read(repo::quarantined_pushes)?;
            if rows.is_empty() {
                println!("no quarantined pushes");
            }
            for r in rows {
                println!(
                    "{}\tdevice {} ({} lane)\t{}\treceived {}\tquarantined {}\t{} tries\t{}",
                    r.id,
                    r.device,
                    r.lane,
                    r.username,
                    r.received_at,
                    r.quarantined_at,
                    r.attempts,
                    r.last_error
                );
            }
            Ok(())
        }
        InboxCommand::Retry { id } => {
            // Announced, so that a running server on PostgreSQL applies it at once.
            let ok = db.tx(|tx| {
                let ok = repo::retry_quarantined(tx, id, "operator", Utc::now())?;
                if ok {
                    wake::notify(tx, Move::Queued, "operator")?;
                }
                Ok::<_, gridwalk::server::db::DbError>(ok)
            })?;
            if !ok {
                bail!("no quarantined push {id}: `gridwalk-server inbox list` shows them");
            }
            println!("push {id} is queued again");
            Ok(())
        }
    }
}

fn backup(db_url: &str, out: &Path, pages: i32, pause_ms: u64) -> Result<()> {
    use gridwalk::server::backup::{self, Pace};
    let started = std::time::Instant::now();
    let mut last_tenth = None;
    let report = backup::backup(
        db_url,
        out,
        Pace {
            pages: pages.max(1),
            pause: std::time::Duration::from_millis(pause_ms),
        },
        &mut |done, total| {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if last_tenth != Some(tenth) {
                last_tenth = Some(tenth);
                eprintln!("backup: {done}/{total} pages ({}%)", tenth * 10);
            }
        },
    )
    .with_context(|| format!("backing up {db_url}"))?;
    println!(
        "backed up the {} database (schema {}, generation {}) to {}: {} bytes in {:.1} s",
        report.backend,
        report.schema,
        report.generation.as_deref().unwrap_or("none"),
        out.display(),
        report.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn restore(db_url: &str, from: &Path, force: bool) -> Result<()> {
    let report = gridwalk::server::backup::restore(db_url, from, force)
        .with_context(|| format!("restoring {} into {db_url}", from.display()))?;
    println!(
        "restored {} into the {} database{} (schema {} brought up to date); new generation {} (was {})",
        from.display(),
        report.backend,
        match (report.created, report.replaced) {
            (true, _) => ", created for it",
            (_, true) => ", replacing what it held",
            _ => "",
        },
        report.schema,
        report.generation,
        report.from_generation.as_deref().unwrap_or("none"),
    );
    println!(
        "devices re-send what the backup lacks with their next sync and pull the restored database whole; those signed in after the backup sign in again"
    );
    Ok(())
}

fn release_device(db: &Database, device_id: uuid::Uuid) -> Result<()> {
    let owner = db.tx(|tx| -> Result<Option<String>> {
        let owner = repo::release_device(tx, device_id)?;
        repo::audit(
            tx,
            Utc::now(),
            "operator",
            Some(device_id),
            "DEVICE_RELEASE",
            None,
            None,
            owner.clone(),
        )?;
        Ok(owner)
    })?;
    match owner {
        Some(o) => println!("device {device_id} released from {o}"),
        None => println!("device {device_id} was not enrolled"),
    }
    Ok(())
}

fn template(kind: data::ImportKind, out: &Path) -> Result<()> {
    let sheet = kind
        .template()
        .context("grids are imported from GeoJSON (a FeatureCollection with a `code` per feature); there is no template")?;
    write_sheet(out, &sheet, None)?;
    println!("template written to {}", out.display());
    Ok(())
}

/// Numbers earlier records, seeds the demo county if asked, and serves until Ctrl-C.
fn serve(
    db: Database,
    listen: SocketAddr,
    demo: bool,
    demo_size: &str,
    addr_file: Option<PathBuf>,
) -> Result<()> {
    // Records stored before case numbers existed get theirs (none once all have one).
    let numbered = db
        .tx(|tx| gridwalk::server::repo::number_unnumbered_cases(tx))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if numbered > 0 {
        tracing::info!(records = numbered, "gave case numbers to earlier records");
    }
    if demo {
        seed_demo(&db, listen, demo_size)?;
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run_server(db, listen, addr_file))
}

/// Seeds an empty database with the demo county; only on a loopback address, since its
/// passwords are public.
fn seed_demo(db: &Database, listen: SocketAddr, demo_size: &str) -> Result<()> {
    if !listen.ip().is_loopback() {
        bail!(
            "demo mode serves only on a loopback address (127.0.0.1 or ::1), not {listen}: its passwords are public"
        );
    }
    let spec = demo_spec(demo_size)?;
    let started = std::time::Instant::now();
    let county = County::generate(&spec);
    match db
        .tx(|tx| demo::seed(tx, &county, Utc::now()))
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        Some(s) => tracing::info!(
            grids = s.grids,
            entities = s.entities,
            seconds = started.elapsed().as_secs_f64(),
            "seeded the demo county; accounts worker-a, worker-b, secretary, admin, town-safety, town-justice, village-committee, office (password {})",
            demo::DEMO_PASSWORD
        ),
        None => tracing::info!("database already has accounts; not seeding"),
    }
    Ok(())
}

/// The demo county of this size (small or full), as of today.
fn demo_spec(size: &str) -> Result<CountySpec> {
    let today = gridwalk::domain::cst::today(Utc::now());
    Ok(match size {
        "small" => CountySpec::small(1, today),
        "full" => CountySpec::full(1, today),
        other => bail!("unknown demo size {other:?}: small or full"),
    })
}

/// Listens (writing the bound address to `addr_file`), applies the pushes left in the
/// inbox, and serves until Ctrl-C.
async fn run_server(db: Database, listen: SocketAddr, addr_file: Option<PathBuf>) -> Result<()> {
    let listener =
        gridwalk::server::listen(listen).with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(f) = addr_file {
        std::fs::write(&f, addr.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    tracing::info!(%addr, backend = db.backend(), "gridwalk-server listening");
    println!("gridwalk-server listening on http://{addr}");
    let state = AppState::new(db);
    // Pushes received before a restart and not yet applied: apply them now.
    state.inbox.kick(&state.db);
    // As a make-service, the router's routes are built once; served as a plain Router, axum
    // rebuilds them for every connection it accepts. With connect info, sign-in failures are
    // counted per address.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(gridwalk::server::no_delay(listener), app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn user(db: &Database, cmd: UserCommand) -> Result<()> {
    let now = Utc::now();
    match cmd {
        UserCommand::Add {
            username,
            name,
            role,
            scope,
            grids,
        } => {
            let role = demo::parse_role(&role).map_err(|e| anyhow::anyhow!("{e}"))?;
            let password = read_password()?;
            let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            db.tx(|tx| -> Result<()> {
                let mut ids = Vec::new();
                for code in &grids {
                    ids.push(
                        repo::grid_id_by_code(tx, code)?
                            .with_context(|| format!("no grid with code {code}"))?,
                    );
                }
                if role == gridwalk::wire::Role::Worker && ids.is_empty() {
                    bail!("a worker needs at least one --grid");
                }
                if role != gridwalk::wire::Role::Worker && !ids.is_empty() {
                    bail!("only a worker has grids; leave out --grid");
                }
                if role == gridwalk::wire::Role::Relay
                    && (scope.len() != 12 || !scope.bytes().all(|b| b.is_ascii_digit()))
                {
                    bail!("a relay serves one village: --scope is its 12-digit village code");
                }
                repo::create_user(
                    tx,
                    &NewUser {
                        username: username.clone(),
                        display_name: name,
                        role,
                        scope_code: scope,
                        password_hash: hash,
                        grids: ids,
                    },
                    now,
                )
                .map_err(|e| {
                    if e.is_duplicate() {
                        anyhow::anyhow!("an account named {username} already exists")
                    } else {
                        e.into()
                    }
                })?;
                repo::audit(
                    tx,
                    now,
                    "operator",
                    None,
                    "USER_ADD",
                    None,
                    None,
                    Some(username.clone()),
                )?;
                Ok(())
            })?;
            println!("added {username}");
        }
        UserCommand::Passwd { username } => {
            let hash =
                auth::hash_password(&read_password()?).map_err(|e| anyhow::anyhow!("{e}"))?;
            let ok = db.tx(|tx| -> Result<bool> {
                let ok = repo::set_password(tx, &username, &hash)?;
                repo::audit(
                    tx,
                    now,
                    "operator",
                    None,
                    "USER_PASSWD",
                    None,
                    None,
                    Some(username.clone()),
                )?;
                Ok(ok)
            })?;
            if !ok {
                bail!("no account named {username}");
            }
            println!("password of {username} changed");
        }
        UserCommand::Disable { username } => {
            let ok = db.tx(|tx| -> Result<bool> {
                let ok = repo::set_disabled(tx, &username, true)?;
                repo::audit(
                    tx,
                    now,
                    "operator",
                    None,
                    "USER_DISABLE",
                    None,
                    None,
                    Some(username.clone()),
                )?;
                Ok(ok)
            })?;
            if !ok {
                bail!("no account named {username}");
            }
            println!("disabled {username} and revoked its sessions");
        }
    }
    Ok(())
}

/// The account an import or export is made as: named, or the only county administrator.
fn actor(db: &Database, name: Option<String>) -> Result<repo::User> {
    let name = match name {
        Some(n) => n,
        None => {
            let admins = db.read(|tx| {
                tx.query(
                    "SELECT username FROM users WHERE role = 'ADMIN' AND disabled = 0 ORDER BY username",
                    &[],
                )
            })?;
            match admins.as_slice() {
                [one] => one[0].string()?,
                [] => bail!(
                    "no county administrator account: add one with `user add`, or name the account with --as"
                ),
                _ => bail!("there are several administrator accounts: name one with --as"),
            }
        }
    };
    let (user, _) = db
        .read(|tx| repo::user_by_name(tx, &name))?
        .with_context(|| format!("no account named {name}"))?;
    Ok(user)
}

/// Progress on stderr: a bar on a terminal, a line every tenth otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_tenth: usize,
    started: std::time::Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: None,
            last_tenth: usize::MAX,
            started: std::time::Instant::now(),
        }
    }

    fn update(&mut self, done: usize, total: usize) {
        if std::io::stderr().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(total as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({per_sec}, {eta} left)",
                    )
                    .expect("a valid template"),
                );
                b
            });
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        } else {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if tenth != self.last_tenth {
                self.last_tenth = tenth;
                eprintln!(
                    "progress: {done}/{total} rows ({}%) after {:.1} s",
                    tenth * 10,
                    self.started.elapsed().as_secs_f64()
                );
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

fn write_sheet(path: &Path, sheet: &data::Sheet, format: Option<&str>) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match format.or(ext.as_deref()) {
        Some("xlsx") => data::to_xlsx(std::slice::from_ref(sheet))?,
        Some("csv") => data::to_csv(sheet)?,
        other => bail!("unknown format {other:?}: xlsx or csv"),
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn import(
    db: &Database,
    kind: data::ImportKind,
    file: &Path,
    valid_only: bool,
    as_user: Option<String>,
    report_file: Option<PathBuf>,
) -> Result<()> {
    let user = actor(db, as_user)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let mode = if valid_only {
        data::Mode::ValidRowsOnly
    } else {
        data::Mode::AllOrNothing
    };
    eprintln!(
        "reading and checking {} as {}...",
        file.display(),
        user.username
    );
    let started = std::time::Instant::now();
    let mut progress = Progress::new();
    let report = db.tx(|tx| -> Result<data::ImportReport> {
        Ok(data::import(
            tx,
            &user,
            kind,
            &name,
            &bytes,
            mode,
            &mut |d, t| progress.update(d, t),
            Utc::now(),
        )?)
    })?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{name}: {} rows, {} imported, {} skipped, {} errors; {} created, {} changed ({seconds:.1} s)",
        report.rows,
        report.imported,
        report.skipped,
        report.errors.len(),
        report.created,
        report.updated
    );
    if !report.passwords.is_empty() {
        println!("\nGenerated passwords (shown only this once; hand each to its owner):");
        for p in &report.passwords {
            println!("  {:<32} {}", p.username, p.password);
        }
    }
    if !report.errors.is_empty() {
        const SHOWN: usize = 50;
        println!("\n{:>6}  {:<16}  reason", "row", "field");
        for e in report.errors.iter().take(SHOWN) {
            println!("{:>6}  {:<16}  {}", e.row, e.field, e.reason);
        }
        if report.errors.len() > SHOWN {
            println!(
                "... and {} more{}",
                report.errors.len() - SHOWN,
                if report_file.is_none() {
                    " (write them all with --report FILE)"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(path) = &report_file {
        write_sheet(path, &report.errors_sheet(), None)?;
        println!("row report written to {}", path.display());
    }
    if !report.errors.is_empty() {
        if report.imported == 0 {
            bail!(
                "nothing was imported: fix the rows above and import the file again, or import only the valid rows with --valid-only"
            );
        }
        bail!(
            "{} rows were not imported: fix them and import the file again",
            report.skipped
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one per command-line option
fn export(
    db: &Database,
    what: &str,
    format: Option<String>,
    out: &Path,
    as_user: Option<String>,
    unmasked: bool,
    kind: Option<String>,
    status: Option<String>,
) -> Result<()> {
    use gridwalk::domain::codes::Coded;
    let user = actor(db, as_user)?;
    let now = Utc::now();
    let sheet = match what {
        "records" => {
            let filter = data::RecordFilter {
                kind: kind
                    .map(|k| gridwalk::domain::model::EntityKind::from_code(&k.to_uppercase()))
                    .transpose()?,
                status: status
                    .map(|s| gridwalk::domain::lifecycle::Status::from_code(&s.to_uppercase()))
                    .transpose()?,
                ..Default::default()
            };
            db.tx(|tx| data::export_records(tx, &user, &filter, now))?
        }
        "people" => db.tx(|tx| data::export_people(tx, &user, unmasked, now))?,
        other => bail!("unknown export {other:?}: records or people"),
    };
    write_sheet(out, &sheet, format.as_deref())?;
    println!("{} rows written to {}", sheet.rows.len(), out.display());
    Ok(())
}

fn demo_files(size: &str, grids: Option<usize>, dir: &Path) -> Result<()> {
    let county = County::generate(&demo_spec(size)?);
    let n = grids.unwrap_or(county.grids.len()).min(county.grids.len());
    let which: Vec<usize> = (0..n).collect();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("grids.geojson"),
        data::demo_grids_geojson(&county, &which),
    )?;
    write_sheet(
        &dir.join("accounts.csv"),
        &data::demo_accounts(&county, &which),
        None,
    )?;
    let households = data::demo_households(&county, &which);
    write_sheet(&dir.join("households.csv"), &households, None)?;
    println!(
        "wrote {n} grids, their accounts and {} people to {}",
        households.rows.len(),
        dir.display()
    );
    Ok(())
}
