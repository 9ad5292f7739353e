//! The device store: one SQLite file per device (WAL, foreign keys on), migrated on open.
//!
//! Two kinds of write reach it:
//! - **local writes**, made by the worker on this device: each runs in one transaction that
//!   also appends an [`OutboxEntry`](crate::wire::OutboxEntry) (see [`outbox`]);
//! - **remote state**, from the server or the demo seeder: written without an outbox entry
//!   (see [`scope`]).
//!
//! The store only stores. It knows nothing of HTTP, the UI or how sync plans its work.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rusqlite_migration::{M, Migrations};
use uuid::Uuid;

use crate::domain::codes::{Coded, UnknownCode};
use crate::domain::lifecycle::TransitionError;
use crate::domain::validate::ValidationErrors;

pub mod drafts;
pub mod feedback;
#[cfg(feature = "vault")]
pub mod keystore;
pub mod outbox;
pub mod people;
pub mod points;
pub mod records;
pub mod register;
pub mod remote;
pub mod scope;
pub mod tasks;
#[cfg(feature = "vault")]
pub mod vault;

/// Every migration of the device schema, in order. Append only.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_spatial_photos_audit.sql"),
    include_str!("migrations/0003_household_summary.sql"),
    include_str!("migrations/0004_sync.sql"),
    include_str!("migrations/0005_draft_photos.sql"),
    include_str!("migrations/0006_rejections.sql"),
    include_str!("migrations/0007_feedback.sql"),
    include_str!("migrations/0008_restores.sql"),
    include_str!("migrations/0009_tasks.sql"),
    include_str!("migrations/0010_person_register.sql"),
    include_str!("migrations/0011_relay_held.sql"),
];

impl crate::domain::labels::Explain for StoreError {
    fn explain(&self, lang: crate::domain::Lang) -> String {
        use crate::domain::Lang;
        if lang == Lang::En {
            return match self {
                StoreError::Invalid(e) => e.message(lang),
                StoreError::Transition(e) => e.text(lang),
                other => other.to_string(),
            };
        }
        match self {
            StoreError::Sqlite(e) => {
                format!("本机数据库出错，刚才的操作没有保存：请再试一次，仍不行请重启应用（{e}）")
            }
            StoreError::Migration(e) => format!(
                "本机数据无法升级到这一版应用：请不要卸载应用（数据在本机），联系县综治中心（{e}）"
            ),
            StoreError::TooNew { found, known } => format!(
                "本机数据来自更新版本的应用（数据版本 {found}，本应用只认识到 {known}），请升级应用"
            ),
            StoreError::Invalid(e) => e.message(lang),
            StoreError::Transition(e) => e.text(lang),
            StoreError::NotFound { kind, .. } => format!(
                "找不到这条{}：可能已被删除或还没同步到本机，请返回列表刷新",
                match *kind {
                    "household" => "住户",
                    "person" => "人员",
                    "photo" => "照片",
                    "rejection" => "退回的上传",
                    _ => "记录",
                }
            ),
            StoreError::Conflict(m) => m.clone(),
            StoreError::Corrupt(m) => {
                format!("本机保存的数据已损坏，请联系县综治中心（{m}）")
            }
            StoreError::WrongKey => "PIN 不正确，请重新输入".into(),
            StoreError::NoEncryption => "这个版本的应用不能打开加密的数据，请安装正式版应用".into(),
        }
    }
}

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not bring the database schema up to date: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error(
        "the database has schema version {found}, newer than this app knows ({known}); update the app"
    )]
    TooNew { found: usize, known: usize },
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the PIN or key does not open this database (file is not a database)")]
    WrongKey,
    #[error("this build has no database encryption (SQLCipher); build the app features")]
    NoEncryption,
}

impl From<UnknownCode> for StoreError {
    fn from(e: UnknownCode) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(format!("bad JSON in the store: {e}"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The device store. Not `Sync`: one connection, owned by one thread at a time.
pub struct Store {
    conn: Connection,
    device_id: Uuid,
    /// The worker signed in on this device (author of local records).
    worker: String,
}

impl Store {
    /// Opens (or creates) the store at `path` and migrates it to the current schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// Opens (or creates) an encrypted store at `path` with SQLCipher. `key` is applied with
    /// `PRAGMA key` before anything else touches the file; a wrong key gives
    /// [`StoreError::WrongKey`]. Builds without SQLCipher refuse with
    /// [`StoreError::NoEncryption`] rather than write a plain file.
    pub fn open_encrypted(path: impl AsRef<Path>, key: &str) -> Result<Store> {
        let conn = Connection::open(path)?;
        // A wrong PIN is answered as `WrongKey` below; SQLCipher's own log would print it as
        // three "ERROR CORE … hmac check failed" lines that read like a corrupt database.
        conn.pragma_update(None, "cipher_log_level", "NONE")?;
        conn.pragma_update(None, "key", key)?;
        let cipher: Option<String> = conn
            .query_row("PRAGMA cipher_version", [], |r| r.get(0))
            .optional()?;
        if cipher.is_none() {
            return Err(StoreError::NoEncryption);
        }
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::NotADatabase =>
            {
                return Err(StoreError::WrongKey);
            }
            Err(e) => return Err(e.into()),
        }
        Self::init(conn)
    }

    /// Re-encrypts the whole database under `key` (SQLCipher's `PRAGMA rekey`), for moving a
    /// store from the PIN as its passphrase to the vault's random key.
    pub fn rekey(&self, key: &str) -> Result<()> {
        // Out of WAL first, so every page is in the main file when it is rewritten.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.conn.pragma_update(None, "journal_mode", "DELETE")?;
        self.conn.pragma_update(None, "rekey", key)?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        Ok(())
    }

    /// The entries waiting in the outbox, counted by kind code (what a wipe would lose).
    pub fn unsent_by_kind(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, count(*) FROM outbox GROUP BY kind")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<std::collections::BTreeMap<_, _>, rusqlite::Error>>()?)
    }

    /// A throwaway store in memory, for tests and previews.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Applying a pull uses a couple of dozen statements in turn: keep them all prepared.
        conn.set_prepared_statement_cache_capacity(64);
        // A whole grid's first pull is one transaction: a page cache that holds it (up to
        // 32 MiB) spares writing pages out twice, and statement journals stay in memory.
        conn.pragma_update(None, "cache_size", -32_768)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let found = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
        if found > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found,
                known: MIGRATIONS.len(),
            });
        }
        migrations().to_latest(&mut conn)?;
        let device_id = match get_meta(&conn, "device_id")? {
            Some(s) => {
                Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("device_id: {e}")))?
            }
            None => {
                let id = Uuid::now_v7();
                set_meta(&conn, "device_id", &id.to_string())?;
                id
            }
        };
        let worker = get_meta(&conn, "worker")?.unwrap_or_default();
        people::backfill_summaries(&conn)?;
        Ok(Store {
            conn,
            device_id,
            worker,
        })
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<usize> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize)
    }

    /// This device's id, made when the store was first created.
    pub fn device_id(&self) -> Uuid {
        self.device_id
    }

    /// The worker signed in on this device.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Records who works on this device (set at enrolment).
    pub fn set_worker(&mut self, username: &str) -> Result<()> {
        set_meta(&self.conn, "worker", username)?;
        self.worker = username.to_owned();
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        get_meta(&self.conn, key)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        set_meta(&self.conn, key, value)
    }

    /// The raw connection, for queries in this crate and for benchmarks.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one immediate transaction; commits if it returns Ok, rolls back otherwise.
    pub(crate) fn tx<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Reads a coded enum from a column.
pub(crate) fn code<T: Coded>(s: &str) -> Result<T> {
    Ok(T::from_code(s)?)
}

pub(crate) fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad id {s:?}: {e}")))
}

pub(crate) fn date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| StoreError::Corrupt(format!("bad date {s:?}: {e}")))
}

pub(crate) fn time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad time {s:?}: {e}")))
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What the store's unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use geo::polygon;

    use super::Store;
    use crate::domain::geo::{Grid, GridCode};

    /// An in-memory store of worker-a holding one grid; its id.
    pub(crate) fn store_with_grid() -> (Store, uuid::Uuid) {
        let mut s = Store::open_in_memory().unwrap();
        s.set_worker("worker-a").unwrap();
        let grid = Grid {
            id: uuid::Uuid::now_v7(),
            code: GridCode::parse("361003100200001").unwrap(),
            name: "山下村第1网格".into(),
            village_name: "山下村".into(),
            town_name: "杨桥殿镇".into(),
            county_name: "东乡区".into(),
            boundary: polygon![(x: 116.39, y: 28.09), (x: 116.41, y: 28.09), (x: 116.41, y: 28.11), (x: 116.39, y: 28.11), (x: 116.39, y: 28.09)],
        };
        s.tx(|tx| super::scope::write_grid(tx, &grid, 1)).unwrap();
        (s, grid.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_keeps_the_device_id_and_reaches_the_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.db");
        let a = Store::open(&path).unwrap();
        let id = a.device_id();
        assert_eq!(a.schema_version().unwrap(), MIGRATIONS.len());
        drop(a);
        let b = Store::open(&path).unwrap();
        assert_eq!(b.device_id(), id);
        let mode: String = b
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = b
            .conn()
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn a_database_from_a_newer_app_is_refused_not_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.db");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        match Store::open(&path) {
            Err(StoreError::TooNew { found: 99, .. }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a newer schema"),
        }
    }
}
