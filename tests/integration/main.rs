//! The one integration-test binary (one link on two cores): a module per area.

mod demo;
mod migrations;
mod queries;
mod spatial;
mod store_writes;
mod util;
