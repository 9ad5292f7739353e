//! What every handler shares: the database handle, the push inbox's applier and the grouped
//! session lookups. The one piece of process state the routers are built over.

use super::db::{Database, DbError, Sql};
use super::error::Failure;
use super::{auth, inbox};

/// What every handler shares: the database handle and the push inbox's applier.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Database,
    pub inbox: std::sync::Arc<inbox::Inbox>,
    /// Every API request's session lookup, grouped under load.
    pub sessions: std::sync::Arc<auth::Sessions>,
    /// The database's generation, read once: it changes only when a backup is restored into
    /// the database, which `restore` does only while no server uses it.
    generation: std::sync::Arc<tokio::sync::OnceCell<String>>,
    /// Where the generation comes from when it is not this database's own: a village-office
    /// relay answers with the county's, as mirrored, read for every pull (none yet: 503).
    generation_from: Option<GenerationFrom>,
}

/// Reads the generation pulls answer with, if there is one yet.
pub type GenerationFrom = fn(&mut dyn Sql) -> Result<Option<String>, DbError>;

impl AppState {
    pub fn new(db: Database) -> AppState {
        AppState {
            db,
            inbox: Default::default(),
            sessions: Default::default(),
            generation: Default::default(),
            generation_from: None,
        }
    }

    /// The same state answering pulls with the generation `f` reads, read again for every
    /// pull (a relay's mirror of the county).
    pub fn with_generation_from(mut self, f: GenerationFrom) -> AppState {
        self.generation_from = Some(f);
        self
    }

    /// The database's generation (`repo::GENERATION`), for every pull's answer.
    pub async fn generation(&self) -> Result<String, Failure> {
        if let Some(f) = self.generation_from {
            return self.read(move |db| Ok(f(db)?)).await?.ok_or_else(|| {
                Failure::Db(DbError::Type("no generation to answer with yet".into()))
            });
        }
        self.generation
            .get_or_try_init(|| self.write(|db| Ok(super::repo::ensure_generation(db)?)))
            .await
            .cloned()
    }
}

impl AppState {
    /// A read in its turn (as many at once as the database allows readers), run off the
    /// async threads: what a handler that only reads does.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, Failure> + Send + 'static,
    ) -> Result<R, Failure> {
        let _turn = self.db.read_turn().await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(|e| Failure::Internal(format!("task failed: {e}")))?
    }

    /// A transaction in the writers' turn, run off the async threads.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, Failure> + Send + 'static,
    ) -> Result<R, Failure> {
        let _turn = self.db.write_turn().await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.tx(f))
            .await
            .map_err(|e| Failure::Internal(format!("task failed: {e}")))?
    }
}
