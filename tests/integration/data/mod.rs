//! The county's imports and exports (`server::data`), on SQLite files and on the real
//! PostgreSQL at 127.0.0.1:5432, and through the `gridwalk-server` binary.

mod cli;
mod exports;
mod imports;

use chrono::{DateTime, Utc};
use gridwalk::demo::{County, CountySpec};
use gridwalk::server::data::{self, ImportKind, ImportReport, Mode};
use gridwalk::server::db::{Database, Sql};
use gridwalk::server::{demo, repo};

pub const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::data::Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                super::$name($crate::data::Backend::Postgres);
            }
        }
    };
}
pub(crate) use on_both;

/// A migrated database in a temporary file or a PostgreSQL database of its own (dropped
/// afterwards), optionally seeded with a tiny demo county and its demo accounts.
pub struct TestDb {
    pub db: Database,
    pub url: String,
    pub county: County,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

pub fn tiny_spec() -> CountySpec {
    CountySpec {
        seed: 11,
        villages: 2,
        grids: 4,
        households_per_grid: (6, 9),
        history_per_household: 2.0,
        today: Utc::now().date_naive(),
    }
}

impl TestDb {
    pub fn new(backend: Backend, seeded: bool) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_name) = match backend {
            Backend::Sqlite => (dir.path().join("server.db").display().to_string(), None),
            Backend::Postgres => {
                let name = format!("gridwalk_data_{}", uuid::Uuid::now_v7().simple());
                let mut c = postgres::Client::connect(PG_ADMIN, postgres::NoTls)
                    .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)");
                c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let db = Database::open(&url).unwrap();
        db.migrate().unwrap();
        let county = County::generate(&tiny_spec());
        if seeded {
            db.tx(|tx| demo::seed(tx, &county, Utc::now()))
                .unwrap()
                .expect("seeded");
        }
        TestDb {
            db,
            url,
            county,
            pg_name,
            _dir: dir,
        }
    }

    pub fn user(&self, name: &str) -> repo::User {
        self.db
            .read(|tx| repo::user_by_name(tx, name))
            .unwrap()
            .expect("account")
            .0
    }

    pub fn count(&self, sql: &str) -> i64 {
        let sql = sql.to_owned();
        self.db
            .read(move |tx: &mut dyn Sql| tx.query_one(&sql, &[]))
            .unwrap()[0]
            .i64()
            .unwrap()
    }

    /// Imports as `username` in one transaction.
    pub fn import(
        &self,
        username: &str,
        kind: ImportKind,
        file: &str,
        bytes: &[u8],
        mode: Mode,
    ) -> Result<ImportReport, data::DataError> {
        let user = self.user(username);
        let mut calls = 0;
        let r = self.db.tx(|tx| {
            data::import(
                tx,
                &user,
                kind,
                file,
                bytes,
                mode,
                &mut |d, t| {
                    assert!(d <= t, "progress {d} of {t}");
                    calls += 1;
                },
                now(),
            )
        });
        if let Ok(rep) = &r {
            assert!(calls > 0 || rep.rows == 0, "progress was reported");
        }
        r
    }

    /// The grid code of grid `i` of the tiny county.
    pub fn grid(&self, i: usize) -> String {
        self.county.grids[i].grid.code.as_str().to_owned()
    }

    /// The index of a grid outside the first village (the secretary's).
    pub fn other_village_grid(&self) -> usize {
        self.county.villages[1].grids.start
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let _ = postgres::Client::connect(PG_ADMIN, postgres::NoTls).map(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
        }
    }
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A valid 居民身份证 number born on `birth` (YYYYMMDD) with sequence `seq` (odd: male).
pub fn id_number(birth: &str, seq: u32) -> String {
    let first17 = format!("361003{birth}{seq:03}");
    format!(
        "{first17}{}",
        gridwalk::domain::validate::IdNumber::check_char(&first17)
    )
}
