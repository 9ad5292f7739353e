//! One file per screen; each is the component its [`Route`](super::Route) variant names.

pub mod duty_forms;
pub mod feedback;
pub mod households;
pub mod map;
pub mod moves;
pub mod new_household;
pub mod patrol;
pub mod points;
pub mod records;
pub mod report;
pub mod settings;
pub mod sync;
pub mod tasks;
pub mod today;
pub mod unlock;

pub use feedback::Feedback;
pub use households::{HouseholdPage, HouseholdReport, Households};
pub use map::MapPage;
pub use patrol::PatrolPage;
pub use points::PointsPage;
pub use records::{RecordPage, Records};
pub use report::Report;
pub use settings::Settings;
pub use sync::SyncPage;
pub use tasks::TaskPage;
pub use today::Today;
