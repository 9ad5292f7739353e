//! The one integration-test binary (one link on two cores): a module per area.

#[cfg(all(feature = "app", feature = "server"))]
mod app_autosync;
#[cfg(feature = "browser")]
mod app_browser;
#[cfg(feature = "app")]
mod app_forms;
#[cfg(feature = "app")]
mod app_location;
#[cfg(all(feature = "app", feature = "server"))]
mod app_lock;
#[cfg(feature = "app")]
mod app_moves;
#[cfg(all(feature = "browser", feature = "server"))]
mod app_moves_browser;
#[cfg(feature = "app")]
mod app_relay;
#[cfg(all(feature = "browser", feature = "server"))]
mod app_sync_browser;
#[cfg(all(feature = "browser", feature = "server"))]
mod app_task_browser;
#[cfg(feature = "app")]
mod app_views;
#[cfg(all(feature = "server", feature = "client"))]
mod dashboard;
#[cfg(feature = "server")]
mod data;
mod demo;
mod migrations;
#[cfg(all(feature = "server", feature = "client"))]
mod phone_relay;
mod queries;
mod register;
#[cfg(all(feature = "server", feature = "client"))]
mod relay;
#[cfg(all(feature = "server", feature = "client"))]
mod relay_county;
#[cfg(all(feature = "server", feature = "client"))]
mod relay_e2e;
#[cfg(all(feature = "server", feature = "client"))]
mod relay_faults;
mod spatial;
mod store_writes;
#[cfg(all(feature = "server", feature = "client"))]
mod sync;
mod util;
#[cfg(feature = "vault")]
mod vault;
