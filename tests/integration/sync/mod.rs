//! The county server and sync, end to end: a real server on 127.0.0.1:0, real SQLite files,
//! and the real PostgreSQL at 127.0.0.1:5432 (each test in a database it creates and drops).
//! Every test runs on both backends.

mod api;
pub mod e2e;
pub mod faults;
mod hostile;
mod moves;
mod openapi;
mod partial;
mod register;
mod replicas;
mod restore;
mod sessions;
mod tasks;
pub mod util;

pub use e2e::hazard as e2e_hazard;
