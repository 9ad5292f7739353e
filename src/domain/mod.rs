//! The domain model of grid work: codes, lifecycles, validation, places and records.
//!
//! Pure data and rules. Nothing here touches SQL, HTTP, files or the clock: callers pass
//! `now` and `today` in, so every rule is testable and the same on device and server.

pub mod codes;
pub mod cst;
pub mod deadline;
pub mod geo;
pub mod labels;
pub mod lifecycle;
pub mod model;
pub mod points;
pub mod scope;
pub mod spatial;
pub mod task;
pub mod validate;

pub use codes::{Coded, Lang};
pub use lifecycle::{Actor, Status, TransitionError};
pub use model::new_id;
pub use validate::{FieldError, Problem, ValidationErrors};
