//! What every handler shares: the database handle, the push inbox's applier and the grouped
//! session lookups. The one piece of process state the routers are built over.

use super::db::Database;
use super::{auth, inbox};

/// What every handler shares: the database handle and the push inbox's applier.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
    pub inbox: std::sync::Arc<inbox::Inbox>,
    /// Every API request's session lookup, grouped under load.
    pub sessions: std::sync::Arc<auth::Sessions>,
}

impl AppState {
    pub fn new(db: Database) -> AppState {
        AppState {
            db,
            inbox: Default::default(),
            sessions: Default::default(),
        }
    }
}
