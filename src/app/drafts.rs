//! Drafts saved as the worker types: one JSON value per form in the store's `meta` table
//! (key `draft:<form>`), so nothing typed is lost when the app is closed or the phone dies.
//! The meta table is encrypted with the rest of the store. Photos attached to a draft are kept
//! apart, in the store's content-addressed photos (`Store::stage_photo`), and cleared with it.

use serde::{Serialize, de::DeserializeOwned};

use crate::store::{Store, StoreError};

fn key(form: &str) -> String {
    format!("draft:{form}")
}

/// Saves the draft of `form`.
pub fn save<T: Serialize>(store: &Store, form: &str, value: &T) -> Result<(), StoreError> {
    store.set_meta(&key(form), &serde_json::to_string(value)?)
}

/// The saved draft of `form`, if any; a draft that no longer parses is dropped.
pub fn load<T: DeserializeOwned>(store: &Store, form: &str) -> Result<Option<T>, StoreError> {
    Ok(store
        .meta(&key(form))?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// Forgets the draft of `form` and its photos (after it was submitted).
pub fn clear(store: &mut Store, form: &str) -> Result<(), StoreError> {
    store.set_meta(&key(form), "null")?;
    store.clear_staged_photos(form)
}
