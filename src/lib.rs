//! gridwalk: an offline-first field app for community grid workers (网格员) and the county
//! server it syncs with. See ARCHITECTURE.md for the map of this crate.

#[cfg(feature = "app")]
pub mod app;
#[cfg(feature = "client")]
pub mod client;
pub mod demo;
pub mod domain;
pub mod merge;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
pub mod wire;
