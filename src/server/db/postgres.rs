//! The PostgreSQL backend: an r2d2 pool of `postgres` clients, each keeping its statements
//! prepared; migrations under an advisory lock so that several replicas may start at once.

use std::collections::HashMap;
use std::error::Error;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, GenericClient, NoTls, Statement};

use super::{DbError, Sql, Turns, V};

/// Every migration of the PostgreSQL schema, in order, by the name `schema_migrations` keeps.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_history_versions",
        include_str!("migrations/postgres/0002_history_versions.sql"),
    ),
    (
        "0003_dashboard_indexes",
        include_str!("migrations/postgres/0003_dashboard_indexes.sql"),
    ),
    (
        "0004_push_inbox",
        include_str!("migrations/postgres/0004_push_inbox.sql"),
    ),
    (
        "0005_inbox_zstd",
        include_str!("migrations/postgres/0005_inbox_zstd.sql"),
    ),
    (
        "0006_hostile_clients",
        include_str!("migrations/postgres/0006_hostile_clients.sql"),
    ),
    (
        "0007_sliding_sessions",
        include_str!("migrations/postgres/0007_sliding_sessions.sql"),
    ),
    (
        "0008_case_numbers",
        include_str!("migrations/postgres/0008_case_numbers.sql"),
    ),
    (
        "0009_county_settings",
        include_str!("migrations/postgres/0009_county_settings.sql"),
    ),
    (
        "0010_assignees",
        include_str!("migrations/postgres/0010_assignees.sql"),
    ),
    (
        "0011_record_household",
        include_str!("migrations/postgres/0011_record_household.sql"),
    ),
    (
        "0012_volunteers",
        include_str!("migrations/postgres/0012_volunteers.sql"),
    ),
    (
        "0013_redemptions",
        include_str!("migrations/postgres/0013_redemptions.sql"),
    ),
    (
        "0014_device_recovery",
        include_str!("migrations/postgres/0014_device_recovery.sql"),
    ),
    (
        "0015_relay",
        include_str!("migrations/postgres/0015_relay.sql"),
    ),
];

type Pool = r2d2::Pool<Manager>;

/// Statements kept prepared per connection, at most (dynamic `IN` lists make many).
const PREPARED: usize = 128;

/// A pooled client and the statements it has prepared: a statement run again skips the
/// round trip and the planning of a fresh prepare (the server runs the same few statements
/// thousands of times, most of them while holding the change counter).
pub struct PgConn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

/// Opens clients for the pool (as `r2d2_postgres` does, with a statement cache each).
#[derive(Debug)]
struct Manager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.config.connect(NoTls)?,
            prepared: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

#[derive(Clone)]
pub struct PgPool {
    pool: std::sync::Arc<PoolHandle>,
    turns: std::sync::Arc<Turns>,
    config: std::sync::Arc<postgres::Config>,
}

/// Owns the pool. The `postgres` client blocks on its own runtime when a connection closes,
/// which panics on an async worker thread; so the last handle drops the pool on a plain
/// thread, wherever it is dropped.
struct PoolHandle(Option<Pool>);

impl Drop for PoolHandle {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::thread::spawn(move || drop(p)).join();
        }
    }
}

impl std::ops::Deref for PoolHandle {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        self.0.as_ref().expect("present until dropped")
    }
}

impl PgPool {
    pub fn open(url: &str) -> Result<PgPool, DbError> {
        let config: postgres::Config = url.parse()?;
        let size = std::env::var("GRIDWALK_PG_POOL")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(16);
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(30))
            .build(Manager {
                config: config.clone(),
            })?;
        // A quarter of the connections for writes (they queue on the change counter, so more
        // would only wait there), half for reads; the rest stay free for everything else.
        Ok(PgPool {
            pool: std::sync::Arc::new(PoolHandle(Some(pool))),
            turns: std::sync::Arc::new(Turns::new(size as usize / 4, size as usize / 2)),
            config: std::sync::Arc::new(config),
        })
    }

    pub fn turns(&self) -> &Turns {
        &self.turns
    }

    /// Where the pool connects, for a connection of its own outside the pool (the push
    /// inbox's listener keeps one: `server::wake`).
    pub fn config(&self) -> &postgres::Config {
        &self.config
    }

    pub fn migrate(&self) -> Result<usize, DbError> {
        let mut c = self.pool.get()?;
        let mut tx = c.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(4242)", &[])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
        for (name, sql) in MIGRATIONS {
            let done = tx.query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[name])?;
            if done.is_none() {
                tx.batch_execute(sql)
                    .map_err(|e| DbError::Migration(format!("{name}: {e}")))?;
                tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])?;
            }
        }
        tx.commit()?;
        Ok(MIGRATIONS.len())
    }

    pub fn tx<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut c = self.pool.get().map_err(DbError::from)?;
        let PgConn { client, prepared } = &mut *c;
        let mut tx = client.transaction().map_err(DbError::from)?;
        let r = f(&mut PgSql {
            c: &mut tx,
            prepared,
        })?;
        tx.commit().map_err(DbError::from)?;
        Ok(r)
    }

    /// Runs `f`'s statements each on its own, outside a transaction: for a lookup that
    /// needs no snapshot, one round trip per statement instead of two more for BEGIN and
    /// COMMIT.
    pub fn lookup<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut c = self.pool.get().map_err(DbError::from)?;
        let PgConn { client, prepared } = &mut *c;
        f(&mut PgSql {
            c: client,
            prepared,
        })
    }
}

/// Statements on a connection: in a transaction, or each on its own (a `Client`).
struct PgSql<'a, C: GenericClient> {
    c: &'a mut C,
    prepared: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> PgSql<'_, C> {
    /// The statement for `sql`, prepared once per connection. (A prepared statement belongs
    /// to the session, not the transaction: a rollback keeps it.)
    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.c.prepare(sql)?;
        if self.prepared.len() >= PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl ToSql for V {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            V::Null => Ok(IsNull::Yes),
            V::I(i) => match *ty {
                Type::INT2 => (*i as i16).to_sql(ty, out),
                Type::INT4 => (*i as i32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            V::F(f) => f.to_sql(ty, out),
            V::T(s) => s.to_sql(ty, out),
            V::B(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for V {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<V, Box<dyn Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => V::I(i64::from_sql(ty, raw)?),
            Type::INT4 => V::I(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => V::I(i16::from_sql(ty, raw)? as i64),
            Type::BOOL => V::I(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => V::F(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => V::F(f32::from_sql(ty, raw)? as f64),
            Type::BYTEA => V::B(Vec::<u8>::from_sql(ty, raw)?),
            _ => V::T(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<V, Box<dyn Error + Sync + Send>> {
        Ok(V::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn params(args: &[V]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl<C: GenericClient> Sql for PgSql<'_, C> {
    fn exec(&mut self, sql: &str, args: &[V]) -> Result<u64, DbError> {
        let st = self.statement(sql)?;
        Ok(self.c.execute(&st, &params(args))?)
    }

    fn query(&mut self, sql: &str, args: &[V]) -> Result<Vec<Vec<V>>, DbError> {
        let st = self.statement(sql)?;
        let rows = self.c.query(&st, &params(args))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                row.push(r.try_get::<_, V>(i)?);
            }
            out.push(row);
        }
        Ok(out)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
