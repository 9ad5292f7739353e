//! The SQLite backend: one writer connection (writes queue on it, in order) and a small pool
//! of readers, all in WAL mode on one file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};
use rusqlite_migration::{M, Migrations};

use super::{DbError, Sql, Turns, V};

/// Every migration of the SQLite schema, in order (`user_version` counts those applied).
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_history_versions.sql"),
    include_str!("migrations/sqlite/0003_dashboard_indexes.sql"),
    include_str!("migrations/sqlite/0004_push_inbox.sql"),
    include_str!("migrations/sqlite/0005_inbox_zstd.sql"),
    include_str!("migrations/sqlite/0006_hostile_clients.sql"),
    include_str!("migrations/sqlite/0007_sliding_sessions.sql"),
    include_str!("migrations/sqlite/0008_case_numbers.sql"),
    include_str!("migrations/sqlite/0009_county_settings.sql"),
    include_str!("migrations/sqlite/0010_assignees.sql"),
    include_str!("migrations/sqlite/0011_record_household.sql"),
    include_str!("migrations/sqlite/0012_volunteers.sql"),
    include_str!("migrations/sqlite/0013_redemptions.sql"),
    include_str!("migrations/sqlite/0014_device_recovery.sql"),
    include_str!("migrations/sqlite/0015_relay.sql"),
];
const MAX_READERS: usize = 8;
/// Reads at once: as many as this machine's cores. A pull page is CPU work (reading,
/// serialising, compressing); more at once only share the same cores and slow the writer's
/// turn, which pushes wait on (the county crunch's push p99 is lower with 2 than with 8).
const READ_TURNS: usize = 2;

#[derive(Clone)]
pub struct SqlitePool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// One writer at a time (there is one connection to write with), as many readers as the
    /// pool keeps.
    turns: Turns,
}

fn connect(path: &Path) -> Result<Connection, DbError> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(c)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a transaction poisons the lock; the connection itself is still fine
    // (the open transaction is rolled back below before reuse).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SqlitePool {
    pub fn open(path: &str) -> Result<SqlitePool, DbError> {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Migration(format!("creating {}: {e}", dir.display())))?;
        }
        let writer = connect(&path)?;
        Ok(SqlitePool {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                turns: Turns::new(1, READ_TURNS),
            }),
        })
    }

    pub fn turns(&self) -> &Turns {
        &self.inner.turns
    }

    pub fn migrate(&self) -> Result<usize, DbError> {
        let mut w = lock(&self.inner.writer);
        let m = Migrations::new(MIGRATIONS.iter().map(|s| M::up(s)).collect());
        m.to_latest(&mut w)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(MIGRATIONS.len())
    }

    pub fn tx<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        let conn = lock(&self.inner.writer);
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(DbError::from)?;
        }
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(DbError::from)?;
        let mut s = SqliteSql { conn: &conn };
        match f(&mut s) {
            Ok(r) => {
                conn.execute_batch("COMMIT").map_err(DbError::from)?;
                Ok(r)
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK").map_err(DbError::from)?;
                Err(e)
            }
        }
    }

    pub fn read<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        let taken = lock(&self.inner.readers).pop();
        let conn = match taken {
            Some(c) => c,
            None => connect(&self.inner.path)?,
        };
        let out = f(&mut SqliteSql { conn: &conn });
        let mut pool = lock(&self.inner.readers);
        if pool.len() < MAX_READERS && conn.is_autocommit() {
            pool.push(conn);
        }
        out
    }
}

/// `$1` → `?1`: SQLite numbers `$name` parameters by first appearance, `?N` by N.
fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

struct SqliteSql<'a> {
    conn: &'a Connection,
}

fn to_value(v: &V) -> Value {
    match v {
        V::Null => Value::Null,
        V::I(i) => Value::Integer(*i),
        V::F(f) => Value::Real(*f),
        V::T(s) => Value::Text(s.clone()),
        V::B(b) => Value::Blob(b.clone()),
    }
}

impl Sql for SqliteSql<'_> {
    fn exec(&mut self, sql: &str, args: &[V]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(&translate(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(args.iter().map(to_value)))? as u64)
    }

    fn query(&mut self, sql: &str, args: &[V]) -> Result<Vec<Vec<V>>, DbError> {
        let mut stmt = self.conn.prepare_cached(&translate(sql))?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter().map(to_value)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => V::Null,
                    ValueRef::Integer(i) => V::I(i),
                    ValueRef::Real(f) => V::F(f),
                    ValueRef::Text(t) => V::T(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => V::B(b.to_vec()),
                });
            }
            out.push(row);
        }
        Ok(out)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollar_parameters_become_numbered() {
        assert_eq!(
            super::translate("SELECT $2, $1, '$x' FROM t WHERE a = $10"),
            "SELECT ?2, ?1, '$x' FROM t WHERE a = ?10"
        );
    }
}
