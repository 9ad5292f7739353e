//! A task the county gives a grid worker (复查隐患, 入户走访, 核实情况, ...): what it is about,
//! by when, and how it was completed or cancelled. Open until its worker completes it (a note,
//! and a photo where the task asks for evidence), or the county cancels it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::codes::{TaskKind, TaskStatus};
use super::model::{SHORT_MAX, TEXT_MAX};
use super::validate::{Problem, ValidationErrors, Validator};

/// One task for one worker, in the grid of what it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: Uuid,
    /// The grid of the record or household it is about (the assignee works there).
    pub grid_id: Uuid,
    pub kind: TaskKind,
    /// The worker's account (username).
    pub assignee: String,
    /// Who gave it (username) and their name as the worker reads it.
    pub assigned_by: String,
    pub assigned_by_name: String,
    /// What to do, as the county wrote it.
    pub note: String,
    pub due_date: NaiveDate,
    /// The record it is about, if any.
    #[serde(default)]
    pub record_id: Option<Uuid>,
    /// The household it is about, if any.
    #[serde(default)]
    pub household_id: Option<Uuid>,
    /// What it is about in words ("安全隐患 2026-00042 楼道堆放杂物"), so the phone can say it
    /// even before it holds the record.
    pub about: String,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    /// How it was completed: when, by whom, the worker's note and photo (SHA-256).
    #[serde(default)]
    pub done_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub done_by: Option<String>,
    #[serde(default)]
    pub done_note: Option<String>,
    /// The first photo of the completion (what a phone or server that knows one photo reads).
    #[serde(default)]
    pub done_photo: Option<String>,
    /// Every photo of the completion, in the order the worker added them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done_photos: Vec<String>,
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl Task {
    /// The completion's photos: all of them, or the one a completion of a single photo names.
    pub fn photos(&self) -> Vec<&str> {
        if self.done_photos.is_empty() {
            self.done_photo.iter().map(String::as_str).collect()
        } else {
            self.done_photos.iter().map(String::as_str).collect()
        }
    }

    /// A new task's own fields, as the county fills its form.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.text("task_note", &self.note, TEXT_MAX);
        v.text("assignee", &self.assignee, SHORT_MAX);
        v.text("about", &self.about, SHORT_MAX);
        if self.record_id.is_none() && self.household_id.is_none() {
            v.error("about", Problem::Required);
        }
        v.finish()
    }

    /// Past its due date on `today` (China time) and still open.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.status == TaskStatus::Open && self.due_date < today
    }

    /// Whether a completion with this note and photo is whole: the note always, the photo
    /// where the task asks for one (a hazard recheck).
    pub fn check_completion(
        &self,
        note: &str,
        photo: Option<&str>,
    ) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.text("done_note", note, TEXT_MAX);
        if self.kind.needs_photo() && photo.is_none_or(|p| p.trim().is_empty()) {
            v.error("done_photo", Problem::Required);
        }
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(kind: TaskKind) -> Task {
        Task {
            id: Uuid::nil(),
            grid_id: Uuid::nil(),
            kind,
            assignee: "w1".into(),
            assigned_by: "c1".into(),
            assigned_by_name: "县综治中心".into(),
            note: "请复查".into(),
            due_date: NaiveDate::from_ymd_opt(2026, 5, 10).unwrap(),
            record_id: Some(Uuid::nil()),
            household_id: None,
            about: "安全隐患".into(),
            status: TaskStatus::Open,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            done_at: None,
            done_by: None,
            done_note: None,
            done_photo: None,
            done_photos: vec![],
            cancelled_at: None,
        }
    }

    #[test]
    fn a_hazard_recheck_needs_a_note_and_a_photo_a_visit_only_a_note() {
        let t = task(TaskKind::RecheckHazard);
        let e = t.check_completion("  ", None).unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["done_note", "done_photo"]);
        assert!(t.check_completion("已整改", Some("ab")).is_ok());
        let v = task(TaskKind::VisitHousehold);
        assert!(v.check_completion("已走访", None).is_ok());
        assert!(v.check_completion("", None).is_err());
    }

    #[test]
    fn overdue_only_while_open_and_after_the_due_day() {
        let mut t = task(TaskKind::Verify);
        let due = t.due_date;
        assert!(!t.is_overdue(due));
        assert!(t.is_overdue(due.succ_opt().unwrap()));
        t.status = TaskStatus::Done;
        assert!(!t.is_overdue(due.succ_opt().unwrap()));
    }

    #[test]
    fn a_task_is_about_a_record_or_a_household() {
        let mut t = task(TaskKind::Other);
        assert!(t.validate().is_ok());
        t.record_id = None;
        assert!(t.validate().is_err());
    }
}
