//! Backups of the county database, and restoring one (`gridwalk-server backup | restore`).
//!
//! SQLite: SQLite's online backup API, while the server serves. The copy reads one snapshot:
//! a read transaction is held from the first page to the last, which in WAL mode never holds
//! up the server's writer, and without which every push committed between two steps would
//! start the copy over. It goes in steps of a few hundred pages with a short pause between,
//! so the server's own reads get the disk in between, into `FILE.partial`, which is checked
//! (`quick_check`) and renamed to `FILE` only when whole.
//!
//! PostgreSQL: `pg_dump --format=custom` (one snapshot; it takes no lock a push waits for)
//! and `pg_restore`, run as README.md's "Backups" section shows them, so an operator can run
//! them by hand too.
//!
//! A restore refuses a database in use (every server on it must be stopped: a running server
//! keeps the database's generation in memory) and, unless forced, one that holds data; it
//! checks that the file is a gridwalk database of a schema this server knows, applies the
//! later migrations, and gives the database a new generation: devices then re-send what the
//! backup lacks and pull the restored database whole.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::db::{Database, DbError, Location, postgres as pg, sqlite};
use super::repo;

/// What can go wrong backing up or restoring.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a gridwalk-server backup ({why})", .file.display())]
    NotABackup { file: PathBuf, why: String },
    #[error(
        "{}: its schema ({found}) is newer than this gridwalk-server knows ({known}); restore it with the gridwalk-server version that made it, or a newer one",
        .file.display()
    )]
    TooNew {
        file: PathBuf,
        found: String,
        known: String,
    },
    #[error(
        "the database {0} is in use (another connection has it open): stop every gridwalk-server using it, then restore"
    )]
    InUse(String),
    #[error(
        "the database {0} already holds data: restore into a new database or file, or pass --force to replace what it holds"
    )]
    NotEmpty(String),
    #[error("no database at {0}")]
    Missing(String),
    #[error(
        "could not run {program}: {source} (it comes with PostgreSQL's client tools, e.g. Debian's postgresql-client)"
    )]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Tool {
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error("the copy failed SQLite's check: {0}")]
    Damaged(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How an SQLite backup goes easy on the server: pages copied per step, and the pause after
/// each step.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub pages: i32,
    pub pause: Duration,
}

impl Default for Pace {
    /// A megabyte a step (4 KiB pages), 10 ms apart.
    fn default() -> Pace {
        Pace {
            pages: 256,
            pause: Duration::from_millis(10),
        }
    }
}

/// What a backup made.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub backend: &'static str,
    pub bytes: u64,
    /// The schema the backup holds: SQLite's `user_version`, or PostgreSQL's last migration.
    pub schema: String,
    /// The generation of the database backed up.
    pub generation: Option<String>,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub backend: &'static str,
    /// The schema the backup held (migrations after it were applied).
    pub schema: String,
    /// The generation of the database the backup was made of.
    pub from_generation: Option<String>,
    /// The restored database's new generation.
    pub generation: String,
    /// A PostgreSQL database that did not exist and was created.
    pub created: bool,
    /// Data that was there before and was replaced (`force`).
    pub replaced: bool,
}

/// Backs up the database `db_url` names into `out` (replaced only once the new copy is
/// whole), while servers keep serving it.
pub fn backup(
    db_url: &str,
    out: &Path,
    pace: Pace,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport, BackupError> {
    let partial = partial_path(out);
    let report = match Location::parse(db_url)? {
        Location::Sqlite(path) => sqlite_backup(path, &partial, pace, progress),
        Location::Postgres(url) => pg_backup(url, &partial),
    };
    let report = report.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, out).map_err(io(out))?;
    Ok(report)
}

/// Restores the backup `from` into the database `db_url` names (a file or database made for
/// it, or with `force` one whose data it replaces), then brings its schema up to date and
/// gives it a new generation.
pub fn restore(db_url: &str, from: &Path, force: bool) -> Result<RestoreReport, BackupError> {
    if !from.is_file() {
        return Err(BackupError::Io {
            path: from.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let mut report = match Location::parse(db_url)? {
        Location::Sqlite(path) => sqlite_restore(path, from, force)?,
        Location::Postgres(url) => pg_restore(url, from, force)?,
    };
    let db = Database::open(db_url)?;
    report.from_generation = db.read(|tx| repo::get_setting(tx, repo::GENERATION))?;
    db.migrate()?;
    let detail = format!(
        "restored from {} (schema {}, generation {})",
        from.display(),
        report.schema,
        report.from_generation.as_deref().unwrap_or("none")
    );
    report.generation = db.tx(|tx| -> Result<String, DbError> {
        let g = repo::renew_generation(tx)?;
        repo::audit(
            tx,
            Utc::now(),
            "operator",
            None,
            "RESTORE",
            None,
            None,
            Some(detail),
        )?;
        Ok(g)
    })?;
    Ok(report)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// Tables every gridwalk-server database has had since its first schema.
const SQLITE_TABLES: [&str; 4] = ["settings", "entities", "users", "watermarks"];

/// The schema version of a gridwalk-server SQLite database, checked to be one this server
/// knows.
fn sqlite_schema(c: &Connection, file: &Path) -> Result<usize, BackupError> {
    let not = |why: String| BackupError::NotABackup {
        file: file.to_owned(),
        why,
    };
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| not(format!("not an SQLite database: {e}")))?;
    if let Some(t) = SQLITE_TABLES
        .iter()
        .find(|t| !tables.iter().any(|n| n == *t))
    {
        return Err(not(format!("it has no {t} table")));
    }
    let version = c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if version == 0 {
        return Err(not("its schema version is 0".into()));
    }
    if version > sqlite::MIGRATIONS.len() {
        return Err(BackupError::TooNew {
            file: file.to_owned(),
            found: version.to_string(),
            known: sqlite::MIGRATIONS.len().to_string(),
        });
    }
    Ok(version)
}

fn quick_check(c: &Connection) -> Result<(), BackupError> {
    let found: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if found == "ok" {
        Ok(())
    } else {
        Err(BackupError::Damaged(found))
    }
}

fn generation_of(c: &Connection) -> Result<Option<String>, rusqlite::Error> {
    c.query_row(
        "SELECT value FROM settings WHERE key = ?1",
        [repo::GENERATION],
        |r| r.get(0),
    )
    .optional()
}

fn sqlite_backup(
    path: &str,
    partial: &Path,
    pace: Pace,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport, BackupError> {
    if !Path::new(path).is_file() {
        return Err(BackupError::Missing(path.to_owned()));
    }
    let src = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(Duration::from_secs(30))?;
    let schema = sqlite_schema(&src, Path::new(path))?;
    let _ = std::fs::remove_file(partial);
    // One snapshot for the whole copy: a read transaction, begun by the first read and held
    // until the last page is copied. Steps read inside it (the backup API uses the source's
    // open transaction), so a push committed meanwhile neither shows in the copy nor starts it
    // over; in WAL mode, a reader holds up no writer.
    src.execute_batch("BEGIN")?;
    let copied = (|| -> Result<Option<String>, BackupError> {
        let generation = generation_of(&src)?;
        let mut dst = Connection::open(partial)?;
        {
            let b = Backup::new(&src, &mut dst)?;
            loop {
                let step = b.step(pace.pages)?;
                let p = b.progress();
                progress(
                    (p.pagecount - p.remaining).max(0) as u64,
                    p.pagecount.max(0) as u64,
                );
                match step {
                    StepResult::Done => break,
                    _ => std::thread::sleep(pace.pause),
                }
            }
        }
        // One self-contained file, whatever journal mode the live database is in.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        quick_check(&dst)?;
        Ok(generation)
    })();
    src.execute_batch("COMMIT")?;
    let generation = copied?;
    Ok(BackupReport {
        backend: "sqlite",
        bytes: std::fs::metadata(partial).map_err(io(partial))?.len(),
        schema: schema.to_string(),
        generation,
    })
}

fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn sqlite_restore(path: &str, from: &Path, force: bool) -> Result<RestoreReport, BackupError> {
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let schema = sqlite_schema(&src, from)?;
    quick_check(&src).map_err(|e| BackupError::NotABackup {
        file: from.to_owned(),
        why: e.to_string(),
    })?;
    let target = Path::new(path);
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut dst = Connection::open(target)?;
    // From here until this connection closes nobody else can open the file: a server
    // holding it open (in WAL mode, every connection keeps a shared lock) makes this fail
    // at once, and no server can start on it while the pages are replaced.
    dst.busy_timeout(Duration::ZERO)?;
    let exclusive = dst
        .pragma_update(None, "locking_mode", "EXCLUSIVE")
        .and_then(|()| dst.execute_batch("BEGIN EXCLUSIVE; COMMIT;"));
    match exclusive {
        Err(e) if busy(&e) => return Err(BackupError::InUse(path.to_owned())),
        other => other?,
    }
    let tables: i64 = dst.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if tables > 0 && !force {
        return Err(BackupError::NotEmpty(path.to_owned()));
    }
    {
        // One step: the backup file is not written meanwhile, and the target is locked.
        let b = Backup::new(&src, &mut dst)?;
        loop {
            match b.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ => return Err(BackupError::InUse(path.to_owned())),
            }
        }
    }
    drop(dst);
    Ok(RestoreReport {
        backend: "sqlite",
        schema: schema.to_string(),
        from_generation: None,
        generation: String::new(),
        created: false,
        replaced: tables > 0,
    })
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// Runs one of PostgreSQL's client tools; its standard output if it succeeds.
fn run(program: &'static str, args: &[&std::ffi::OsStr]) -> Result<String, BackupError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| BackupError::Spawn { program, source })?;
    if !out.status.success() {
        return Err(BackupError::Tool {
            program,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// The last of `names` (migrations applied), checked to be all known to this server.
fn pg_known(names: &[String], file: &Path) -> Result<String, BackupError> {
    let known: Vec<&str> = pg::MIGRATIONS.iter().map(|(n, _)| *n).collect();
    if let Some(new) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(BackupError::TooNew {
            file: file.to_owned(),
            found: new.clone(),
            known: known.last().copied().unwrap_or_default().to_owned(),
        });
    }
    names
        .iter()
        .max()
        .cloned()
        .ok_or_else(|| BackupError::NotABackup {
            file: file.to_owned(),
            why: "no migration was ever applied to it".into(),
        })
}

fn pg_backup(url: &str, partial: &Path) -> Result<BackupReport, BackupError> {
    let (names, generation) = {
        let mut c = url
            .parse::<::postgres::Config>()?
            .connect(::postgres::NoTls)?;
        let names = c
            .query("SELECT name FROM schema_migrations ORDER BY name", &[])
            .map_err(|e| BackupError::NotABackup {
                file: PathBuf::from(url),
                why: format!("no schema_migrations table: {e}"),
            })?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>();
        let generation: Option<String> = c
            .query_opt(
                "SELECT value FROM settings WHERE key = $1",
                &[&repo::GENERATION],
            )?
            .map(|r| r.get(0));
        (names, generation)
    };
    let schema = pg_known(&names, Path::new(url))?;
    run(
        "pg_dump",
        &[
            os("--format=custom"),
            os("--file"),
            partial.as_os_str(),
            os("--dbname"),
            os(url),
        ],
    )?;
    // The dump reads back as one of ours.
    pg_dump_schema(partial)?;
    Ok(BackupReport {
        backend: "postgres",
        bytes: std::fs::metadata(partial).map_err(io(partial))?.len(),
        schema,
        generation,
    })
}

/// The schema a `pg_dump -Fc` file holds: its last migration, checked to be a gridwalk
/// database's that this server knows. Read with `pg_restore` (its table of contents, and the
/// rows of `schema_migrations`).
fn pg_dump_schema(file: &Path) -> Result<String, BackupError> {
    let not = |why: String| BackupError::NotABackup {
        file: file.to_owned(),
        why,
    };
    let toc = run("pg_restore", &[os("--list"), file.as_os_str()]).map_err(|e| match e {
        BackupError::Tool { stderr, .. } => not(stderr),
        e => e,
    })?;
    for table in ["schema_migrations", "settings", "entities", "users"] {
        if !toc.contains(&format!(" TABLE DATA public {table} ")) {
            return Err(not(format!("it holds no {table} table")));
        }
    }
    let rows = run(
        "pg_restore",
        &[
            os("--data-only"),
            os("--table=schema_migrations"),
            os("--file=-"),
            file.as_os_str(),
        ],
    )?;
    let names: Vec<String> = rows
        .lines()
        .skip_while(|l| !l.starts_with("COPY "))
        .skip(1)
        .take_while(|l| *l != "\\.")
        .filter_map(|l| l.split('\t').next())
        .map(str::to_owned)
        .collect();
    pg_known(&names, file)
}

/// `"name"`, quoted as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn pg_restore(url: &str, from: &Path, force: bool) -> Result<RestoreReport, BackupError> {
    let schema = pg_dump_schema(from)?;
    let config: ::postgres::Config = url.parse()?;
    let name = config
        .get_dbname()
        .or(config.get_user())
        .ok_or_else(|| DbError::Url(url.to_owned()))?
        .to_owned();
    let mut admin = config
        .clone()
        .dbname("postgres")
        .connect(::postgres::NoTls)?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?
        .is_some();
    let (mut created, mut replaced) = (false, false);
    if !exists {
        admin.batch_execute(&format!("CREATE DATABASE {}", ident(&name)))?;
        created = true;
    } else {
        let others: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )?
            .get(0);
        if others > 0 {
            return Err(BackupError::InUse(name));
        }
        let mut c = config.connect(::postgres::NoTls)?;
        let tables: Vec<String> = c
            .query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            if !force {
                return Err(BackupError::NotEmpty(name));
            }
            // Every table goes, not only those the dump has (`--clean` drops only those):
            // tables of a later schema would otherwise stay and trip its migration.
            let list: Vec<String> = tables
                .iter()
                .map(|t| format!("public.{}", ident(t)))
                .collect();
            c.batch_execute(&format!("DROP TABLE IF EXISTS {} CASCADE", list.join(", ")))?;
            replaced = true;
        }
    }
    drop(admin);
    run(
        "pg_restore",
        &[
            os("--clean"),
            os("--if-exists"),
            os("--no-owner"),
            os("--single-transaction"),
            os("--exit-on-error"),
            os("--dbname"),
            os(url),
            from.as_os_str(),
        ],
    )?;
    Ok(RestoreReport {
        backend: "postgres",
        schema,
        from_generation: None,
        generation: String::new(),
        created,
        replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated server database at `path`, with some bulk so a backup takes many steps.
    fn server_db(path: &Path) -> Database {
        let db = Database::open(path.to_str().unwrap()).unwrap();
        db.migrate().unwrap();
        db.tx(|tx| -> Result<(), DbError> {
            for i in 0..200 {
                repo::set_setting(tx, &format!("filler-{i}"), &"x".repeat(2000))?;
            }
            Ok(())
        })
        .unwrap();
        db
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_backup_is_one_snapshot_however_much_is_written_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let db = server_db(&live);
        let before = count(&Connection::open(&live).unwrap());
        let writer = Connection::open(&live).unwrap();
        // No waiting allowed: a write the backup held up would fail here.
        writer.busy_timeout(Duration::ZERO).unwrap();
        let mut steps = 0;
        let out = dir.path().join("copy.db");
        let report = backup(
            live.to_str().unwrap(),
            &out,
            Pace {
                pages: 4,
                pause: Duration::ZERO,
            },
            &mut |_, _| {
                steps += 1;
                writer
                    .execute(
                        "INSERT INTO settings (key, value) VALUES (?1, 'written meanwhile')",
                        [format!("during-{steps}")],
                    )
                    .unwrap();
            },
        )
        .unwrap();
        assert!(steps > 20, "the copy went in many steps ({steps})");
        let copy = Connection::open(&out).unwrap();
        assert_eq!(count(&copy), before, "the copy is the database as it began");
        assert_eq!(
            count(&Connection::open(&live).unwrap()),
            before + steps as i64,
            "every write made meanwhile went through"
        );
        let generation = db
            .read(|tx| repo::get_setting(tx, repo::GENERATION))
            .unwrap();
        assert_eq!(report.generation, generation);
        assert_eq!(report.schema, sqlite::MIGRATIONS.len().to_string());
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "one self-contained file");
        assert!(!partial_path(&out).exists());
    }

    #[test]
    fn a_restore_refuses_a_database_in_use_or_holding_data_and_renews_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let db = server_db(&live);
        let old = db.read(|tx| repo::ensure_generation(tx)).unwrap();
        let file = dir.path().join("backup.db");
        backup(
            live.to_str().unwrap(),
            &file,
            Pace::default(),
            &mut |_, _| {},
        )
        .unwrap();

        // Into a new file: its data, its schema up to date, a new generation, audited.
        let fresh = dir.path().join("restored/server.db");
        let report = restore(fresh.to_str().unwrap(), &file, false).unwrap();
        assert_eq!(report.from_generation.as_deref(), Some(old.as_str()));
        assert_ne!(report.generation, old);
        let restored = Database::open(fresh.to_str().unwrap()).unwrap();
        let (g, filler, audited) = restored
            .read(|tx| -> Result<_, DbError> {
                Ok((
                    repo::get_setting(tx, repo::GENERATION)?,
                    repo::get_setting(tx, "filler-7")?,
                    tx.query_one("SELECT count(*) FROM audit WHERE action = 'RESTORE'", &[])?[0]
                        .i64()?,
                ))
            })
            .unwrap();
        assert_eq!(g.as_deref(), Some(report.generation.as_str()));
        assert_eq!(filler.map(|f| f.len()), Some(2000));
        assert_eq!(audited, 1);

        // A server on it: in use, even with --force.
        let e = restore(fresh.to_str().unwrap(), &file, true).unwrap_err();
        assert!(matches!(e, BackupError::InUse(_)), "{e}");
        drop(restored);
        // Stopped, it holds data: only with --force.
        let e = restore(fresh.to_str().unwrap(), &file, false).unwrap_err();
        assert!(matches!(e, BackupError::NotEmpty(_)), "{e}");
        let again = restore(fresh.to_str().unwrap(), &file, true).unwrap();
        assert!(again.replaced);
        assert_ne!(
            again.generation, report.generation,
            "each restore a new one"
        );

        // Not ours, or newer than this server: refused before anything is touched.
        let stranger = dir.path().join("stranger.db");
        Connection::open(&stranger)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let target = dir.path().join("never.db");
        let e = restore(target.to_str().unwrap(), &stranger, false).unwrap_err();
        assert!(matches!(e, BackupError::NotABackup { .. }), "{e}");
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "not a database at all, but long enough to look like one".repeat(100),
        )
        .unwrap();
        let e = restore(target.to_str().unwrap(), &text, false).unwrap_err();
        assert!(matches!(e, BackupError::NotABackup { .. }), "{e}");
        let newer = dir.path().join("newer.db");
        std::fs::copy(&file, &newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 999)
            .unwrap();
        let e = restore(target.to_str().unwrap(), &newer, false).unwrap_err();
        assert!(matches!(e, BackupError::TooNew { .. }), "{e}");
        assert!(!target.exists() || std::fs::metadata(&target).unwrap().len() == 0);
    }
}
