//! The county server (`gridwalk-server`): accounts and scope, the sync protocol, photos and
//! the county's actions on records, over one storage trait with SQLite and PostgreSQL.
//!
//! The server keeps no state between requests in memory: sessions, rate limits, watermarks
//! and the change sequence live in the database, so several replicas can serve one
//! PostgreSQL.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod data;
pub mod db;
pub mod demo;
pub mod error;
pub mod repo;
pub mod sync;

use db::Database;

/// Largest photo accepted, in bytes.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Largest JSON body accepted (a push batch), in bytes.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// What every handler shares: only the database handle.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
}

pub use api::router;
