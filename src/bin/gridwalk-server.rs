//! `gridwalk-server`: the county server. `serve` (optionally seeding the demo county),
//! `migrate`, and `user add | passwd | disable` for operators.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use gridwalk::demo::{County, CountySpec};
use gridwalk::server::db::Database;
use gridwalk::server::repo::{self, NewUser};
use gridwalk::server::{AppState, auth, demo, router};

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
    /// Bring the database schema up to date.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account; the password is read from GRIDWALK_PASSWORD or the first line of stdin.
    Add {
        username: String,
        #[arg(long)]
        name: String,
        /// ADMIN, TOWN, SECRETARY or WORKER.
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let db = Database::open(&cli.db).with_context(|| format!("opening the database {}", cli.db))?;
    db.migrate().context("migrating the database")?;
    match cli.command {
        Command::Migrate => {
            println!("database {} is at the latest schema", db.backend());
            Ok(())
        }
        Command::User(u) => user(&db, u),
        Command::Serve {
            listen,
            demo,
            demo_size,
            addr_file,
        } => {
            if demo {
                if !listen.ip().is_loopback() {
                    bail!(
                        "demo mode serves only on a loopback address (127.0.0.1 or ::1), not {listen}: its passwords are public"
                    );
                }
                let today = Utc::now().date_naive();
                let spec = match demo_size.as_str() {
                    "small" => CountySpec::small(1, today),
                    "full" => CountySpec::full(1, today),
                    other => bail!("unknown demo size {other:?}: small or full"),
                };
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
                        "seeded the demo county; accounts worker-a, worker-b, secretary, admin (password {})",
                        demo::DEMO_PASSWORD
                    ),
                    None => tracing::info!("database already has accounts; not seeding"),
                }
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                let addr = listener.local_addr()?;
                if let Some(f) = addr_file {
                    std::fs::write(&f, addr.to_string())
                        .with_context(|| format!("writing {}", f.display()))?;
                }
                tracing::info!(%addr, backend = db.backend(), "gridwalk-server listening");
                println!("gridwalk-server listening on http://{addr}");
                axum::serve(listener, router(AppState { db }))
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
                Ok(())
            })
        }
    }
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
