//! The county server (`gridwalk-server`): accounts and scope, the sync protocol, photos and
//! the county's actions on records, over one storage trait with SQLite and PostgreSQL.
//!
//! The server keeps no state between requests in memory: sessions, rate limits, watermarks,
//! the push inbox and the change sequence live in the database, so several replicas can
//! serve one PostgreSQL.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod data;
pub mod db;
pub mod demo;
pub mod error;
pub mod inbox;
pub mod repo;
pub mod sync;

use db::Database;

/// Largest photo accepted, in bytes.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Largest JSON body accepted (a push batch), in bytes.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// What every handler shares: the database handle and the push inbox's applier.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
    pub inbox: std::sync::Arc<inbox::Inbox>,
}

impl AppState {
    pub fn new(db: Database) -> AppState {
        AppState {
            db,
            inbox: Default::default(),
        }
    }
}

pub use api::router;
