//! A scope's data (one or more grids and what is in them) as the county holds it: what a
//! device imports on enrolment, what the demo county generates. Pure data; the device store
//! writes it (`store::scope`), the server seeds from it (`server::demo`).

use crate::domain::codes::Tag;
use crate::domain::geo::Grid;
use crate::domain::model::{
    AnyRecord, EmergencyReport, House, Household, MediationSession, PatrolPoints, Person, Reply,
    StatusChange, Visit,
};

/// Everything of one scope (one or more grids), as the server holds it.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub grids: Vec<Grid>,
    /// Visit cadence per tag in days, as the county set it.
    pub cadence: Vec<(Tag, u32)>,
    pub houses: Vec<House>,
    pub households: Vec<Household>,
    pub people: Vec<Person>,
    pub visits: Vec<Visit>,
    pub records: Vec<AnyRecord>,
    pub sessions: Vec<MediationSession>,
    pub reports: Vec<EmergencyReport>,
    pub replies: Vec<Reply>,
    pub tracks: Vec<PatrolPoints>,
    pub history: Vec<StatusChange>,
}

impl Scope {
    /// How many rows of each kind: for logs and progress.
    pub fn len(&self) -> usize {
        self.grids.len()
            + self.houses.len()
            + self.households.len()
            + self.people.len()
            + self.visits.len()
            + self.records.len()
            + self.sessions.len()
            + self.reports.len()
            + self.replies.len()
            + self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
