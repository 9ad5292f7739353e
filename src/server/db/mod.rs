//! The server's storage: one small trait ([`Sql`]: execute and query with positional `$n`
//! parameters over plain values) and two implementations, SQLite (rusqlite, the embedded
//! default) and PostgreSQL (pooled). The backend is chosen by the database URL.
//!
//! Everything the server stores is written once, in `server::repo`, against `&mut dyn Sql`,
//! so both backends run the same statements and pass the same tests. Each backend has its own
//! append-only migrations (`migrations/sqlite`, `migrations/postgres`).

use std::fmt;

pub mod postgres;
pub mod sqlite;

/// One SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    I(i64),
    F(f64),
    T(String),
    B(Vec<u8>),
}

impl V {
    pub fn i64(&self) -> Result<i64, DbError> {
        match self {
            V::I(i) => Ok(*i),
            other => Err(DbError::Type(format!("expected an integer, got {other:?}"))),
        }
    }

    pub fn opt_i64(&self) -> Result<Option<i64>, DbError> {
        match self {
            V::Null => Ok(None),
            v => v.i64().map(Some),
        }
    }

    pub fn str(&self) -> Result<&str, DbError> {
        match self {
            V::T(s) => Ok(s),
            other => Err(DbError::Type(format!("expected text, got {other:?}"))),
        }
    }

    pub fn string(&self) -> Result<String, DbError> {
        self.str().map(str::to_owned)
    }

    pub fn opt_string(&self) -> Result<Option<String>, DbError> {
        match self {
            V::Null => Ok(None),
            v => v.string().map(Some),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, DbError> {
        match self {
            V::B(b) => Ok(b.clone()),
            V::Null => Ok(Vec::new()),
            other => Err(DbError::Type(format!("expected bytes, got {other:?}"))),
        }
    }
}

impl From<i64> for V {
    fn from(v: i64) -> V {
        V::I(v)
    }
}
impl From<&str> for V {
    fn from(v: &str) -> V {
        V::T(v.to_owned())
    }
}
impl From<String> for V {
    fn from(v: String) -> V {
        V::T(v)
    }
}
impl From<&String> for V {
    fn from(v: &String) -> V {
        V::T(v.clone())
    }
}
impl From<Vec<u8>> for V {
    fn from(v: Vec<u8>) -> V {
        V::B(v)
    }
}
impl<T: Into<V>> From<Option<T>> for V {
    fn from(v: Option<T>) -> V {
        v.map(Into::into).unwrap_or(V::Null)
    }
}

/// Builds a `&[V]` argument list.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::server::db::V::from($v)),*] };
}

/// What can go wrong below the repository.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("unexpected value: {0}")]
    Type(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("unsupported database URL {0:?}: use a file path, sqlite://PATH or postgres://...")]
    Url(String),
    #[error("a unique key already exists: {0}")]
    Duplicate(String),
}

impl DbError {
    /// A failure of the database's surroundings rather than of what was asked: a lost or
    /// refused connection, a lock or serialization conflict, a busy or full disk, a server
    /// shutting down. Trying the same work again later may succeed, so it is never counted
    /// against the work (see the push inbox's quarantine).
    pub fn is_transient(&self) -> bool {
        use ::postgres::error::SqlState;
        match self {
            DbError::Pool(_) => true,
            DbError::Postgres(e) => match e.code() {
                // No SQLSTATE: the connection itself failed.
                None => true,
                Some(c) => {
                    let class = &c.code()[..2];
                    [
                        SqlState::T_R_SERIALIZATION_FAILURE,
                        SqlState::T_R_DEADLOCK_DETECTED,
                        SqlState::LOCK_NOT_AVAILABLE,
                        SqlState::QUERY_CANCELED,
                    ]
                    .contains(c)
                        // connection exceptions, insufficient resources, operator
                        // intervention, system errors
                        || ["08", "53", "57", "58"].contains(&class)
                }
            },
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::OutOfMemory
                    | rusqlite::ErrorCode::CannotOpen
            ),
            _ => false,
        }
    }

    /// A unique-constraint violation (the caller may turn it into a domain answer).
    pub fn is_duplicate(&self) -> bool {
        match self {
            DbError::Duplicate(_) => true,
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
            }
            DbError::Postgres(e) => {
                e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }
}

/// The one storage trait: statements with `$1`, `$2`, ... parameters.
pub trait Sql {
    /// Runs a statement; returns the number of rows it changed.
    fn exec(&mut self, sql: &str, args: &[V]) -> Result<u64, DbError>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, args: &[V]) -> Result<Vec<Vec<V>>, DbError>;
    /// Which backend this is (for logs and health answers).
    fn backend(&self) -> &'static str;
}

impl dyn Sql + '_ {
    /// The first row, if any.
    pub fn query_opt(&mut self, sql: &str, args: &[V]) -> Result<Option<Vec<V>>, DbError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Exactly one row.
    pub fn query_one(&mut self, sql: &str, args: &[V]) -> Result<Vec<V>, DbError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| DbError::Type(format!("no row for {sql}")))
    }
}

/// How many requests may work on the database at once. Requests beyond these wait their turn
/// in memory (a fair queue), not on a pooled connection, a blocking thread or a lock inside
/// the database: with a thousand devices syncing at once, pushes that would only queue on the
/// one writer (SQLite) or the change counter (PostgreSQL) leave connections and threads to
/// pulls and sign-ins.
///
/// Bulk work (building a pull page, applying a chunk of the push inbox) also takes a bulk
/// turn first, and there are fewer of those than cores ([`bulk_turns`]): that work is
/// CPU-bound, so more of it at once only makes every request's turn on the CPU rarer. With
/// eight pull pages at once on two cores (PostgreSQL's read turns), a push waits for the CPU
/// at every step.
#[derive(Debug)]
pub struct Turns {
    writes: std::sync::Arc<tokio::sync::Semaphore>,
    reads: std::sync::Arc<tokio::sync::Semaphore>,
    bulk: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Bulk jobs at once: `GRIDWALK_BULK_TURNS`, or one fewer than the cores this process may
/// use (at least one), which leaves a core to answer requests.
pub fn bulk_turns() -> usize {
    std::env::var("GRIDWALK_BULK_TURNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1))
        })
        .max(1)
}

/// A turn at the database: held until dropped.
pub type Turn = tokio::sync::OwnedSemaphorePermit;

impl Turns {
    pub fn new(writes: usize, reads: usize) -> Turns {
        Turns {
            writes: std::sync::Arc::new(tokio::sync::Semaphore::new(writes.max(1))),
            reads: std::sync::Arc::new(tokio::sync::Semaphore::new(reads.max(1))),
            bulk: std::sync::Arc::new(tokio::sync::Semaphore::new(bulk_turns())),
        }
    }
}

/// Where a database URL points: `postgres://` or `postgresql://` is PostgreSQL (the URL as
/// given), `sqlite://PATH` or a plain path an SQLite file (the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    Sqlite(&'a str),
    Postgres(&'a str),
}

impl Location<'_> {
    pub fn parse(url: &str) -> Result<Location<'_>, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(Location::Sqlite(path))
        } else if url.contains("://") {
            Err(DbError::Url(url.to_owned()))
        } else {
            Ok(Location::Sqlite(url))
        }
    }
}

/// A database: SQLite file or PostgreSQL server, with a pool of connections.
#[derive(Clone)]
pub enum Database {
    Sqlite(sqlite::SqlitePool),
    Postgres(postgres::PgPool),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.backend())
    }
}

impl Database {
    /// Opens the database a URL names: `postgres://` or `postgresql://` for PostgreSQL;
    /// `sqlite://PATH` or a plain path for SQLite (created if missing).
    pub fn open(url: &str) -> Result<Database, DbError> {
        match Location::parse(url)? {
            Location::Postgres(url) => Ok(Database::Postgres(postgres::PgPool::open(url)?)),
            Location::Sqlite(path) => Ok(Database::Sqlite(sqlite::SqlitePool::open(path)?)),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Brings the schema up to date (safe to run from several replicas at once), and gives a
    /// database its generation if it has none yet ([`crate::server::repo::ensure_generation`]).
    pub fn migrate(&self) -> Result<usize, DbError> {
        let n = match self {
            Database::Sqlite(p) => p.migrate(),
            Database::Postgres(p) => p.migrate(),
        }?;
        self.tx(|db| crate::server::repo::ensure_generation(db))?;
        Ok(n)
    }

    /// Runs `f` in one transaction: committed if it returns Ok, rolled back otherwise
    /// (and if it panics: the connection is dropped with the transaction open).
    pub fn tx<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        match self {
            Database::Sqlite(p) => p.tx(f),
            Database::Postgres(p) => p.tx(f),
        }
    }

    /// Runs read-only work on one connection (a consistent snapshot for PostgreSQL too).
    pub fn read<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        match self {
            Database::Sqlite(p) => p.read(f),
            Database::Postgres(p) => p.tx(f),
        }
    }

    /// Runs a lookup that needs no snapshot (rows by their keys): on PostgreSQL its
    /// statements run outside a transaction, saving the round trips of BEGIN and COMMIT.
    pub fn lookup<R, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, E>,
    ) -> Result<R, E> {
        match self {
            Database::Sqlite(p) => p.read(f),
            Database::Postgres(p) => p.lookup(f),
        }
    }

    fn turns(&self) -> &Turns {
        match self {
            Database::Sqlite(p) => p.turns(),
            Database::Postgres(p) => p.turns(),
        }
    }

    /// Waits for a turn to write (hold it while the write runs).
    pub async fn write_turn(&self) -> Turn {
        self.turns()
            .writes
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Waits for a turn to read (hold it while the read runs).
    pub async fn read_turn(&self) -> Turn {
        self.turns()
            .reads
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Waits for a turn at bulk work (a pull page, a chunk of the push inbox); take it before
    /// the read or write turn, and hold it while the work runs.
    pub async fn bulk_turn(&self) -> Turn {
        self.turns()
            .bulk
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Answers whether the database is reachable.
    pub fn ping(&self) -> Result<(), DbError> {
        self.read(|db| db.query("SELECT 1", &[]).map(|_| ()))
    }
}
