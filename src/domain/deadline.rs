//! Deadlines (时限) beside a record's status: when it must be accepted and when closed, and
//! where it stands against them (正常 / 将到期 / 已超期).
//!
//! The defaults are the domain notes' suggestions: URGENT (and MAJOR, and every emergency)
//! accept within 30 minutes and close within 24 hours; NORMAL accept within 1 working day and
//! close within 5; disputes close within 15 working days. Working days skip Saturday and
//! Sunday in China Standard Time (UTC+8), and the county's policy lists its public holidays
//! (节假日) and the weekend days worked in their place (调休).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::codes::{DeadlineState, Domain, Urgency};
use super::lifecycle::{Status, lifecycle};

/// A county's deadline policy (stored as a server setting when it differs from the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlinePolicy {
    pub urgent_accept_minutes: i64,
    pub urgent_close_hours: i64,
    pub normal_accept_working_days: i64,
    pub normal_close_working_days: i64,
    pub dispute_close_working_days: i64,
    /// A deadline is "due soon" when less than this share of its window is left.
    pub due_soon_share: f64,
    /// Public holidays (节假日) that fall on weekdays: not working days.
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    /// Weekend days worked in a holiday's place (调休): working days.
    #[serde(default)]
    pub workdays: Vec<NaiveDate>,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        DeadlinePolicy {
            urgent_accept_minutes: 30,
            urgent_close_hours: 24,
            normal_accept_working_days: 1,
            normal_close_working_days: 5,
            dispute_close_working_days: 15,
            due_soon_share: 0.25,
            holidays: Vec::new(),
            workdays: Vec::new(),
        }
    }
}

impl DeadlinePolicy {
    /// Whether `day` (a date in UTC+8) is a working day: a weekday that is not a holiday, or a
    /// weekend day worked in a holiday's place.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.workdays.contains(&day) {
            return true;
        }
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&day)
    }

    /// `start` plus `n` working days (same wall-clock time, UTC+8; a start on a day off counts
    /// from the next working day at 09:00).
    pub fn add_working_days(&self, start: DateTime<Utc>, n: i64) -> DateTime<Utc> {
        let tz = super::cst::offset();
        let mut t = start.with_timezone(&tz);
        if !self.is_working_day(t.date_naive()) {
            // At most a year of days off in a row: a policy cannot stop the clock for good.
            for _ in 0..366 {
                t += Duration::days(1);
                if self.is_working_day(t.date_naive()) {
                    break;
                }
            }
            let nine = t
                .date_naive()
                .and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("09:00"));
            t = tz
                .from_local_datetime(&nine)
                .single()
                .expect("UTC+8 is unambiguous");
        }
        let mut left = n;
        let mut guard = 0;
        while left > 0 && guard < 366 * 3 {
            t += Duration::days(1);
            guard += 1;
            if self.is_working_day(t.date_naive()) {
                left -= 1;
            }
        }
        t.with_timezone(&Utc)
    }
}

/// Which deadline a record is running against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Filed, waiting to be accepted.
    Accept,
    /// Accepted, waiting to be handled.
    Close,
    /// Handled, ended, or a kind without deadlines (patrol logs).
    Done,
}

/// Whether a status means the matter has been dealt with (办结 or beyond): what the
/// resolution rate counts and where deadlines stop.
pub fn is_handled(status: Status) -> bool {
    use Status::*;
    matches!(
        status,
        Resolved
            | Verified
            | Evaluated
            | Archived
            | Replied
            | Rectified
            | Recheck
            | Closed
            | Success
            | Referred
            | FollowUp
            | Final
            | Reviewed
    )
}

/// The phase of a record of `domain` in `status`.
pub fn phase(domain: Domain, status: Status) -> Phase {
    let lc = lifecycle(domain);
    if domain == Domain::Patrol || is_handled(status) || !lc.is_open(status) {
        Phase::Done
    } else if status == lc.initial {
        Phase::Accept
    } else {
        Phase::Close
    }
}

/// `start` plus `n` working days by the default policy (weekends only).
pub fn add_working_days(start: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    DeadlinePolicy::default().add_working_days(start, n)
}

/// A record's deadline: what it runs against, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadline {
    pub phase: Phase,
    pub start: DateTime<Utc>,
    pub due: DateTime<Utc>,
}

impl Deadline {
    /// Where the record stands at `now`.
    pub fn state(&self, now: DateTime<Utc>, policy: &DeadlinePolicy) -> DeadlineState {
        if now > self.due {
            return DeadlineState::Overdue;
        }
        let window = (self.due - self.start).num_seconds().max(1) as f64;
        let left = (self.due - now).num_seconds() as f64;
        if left / window < policy.due_soon_share {
            DeadlineState::DueSoon
        } else {
            DeadlineState::OnTime
        }
    }
}

/// The deadline of a record filed at `created_at`, or `None` when none runs (handled, ended,
/// patrol logs). Both deadlines count from filing.
pub fn deadline(
    domain: Domain,
    urgency: Urgency,
    status: Status,
    created_at: DateTime<Utc>,
    policy: &DeadlinePolicy,
) -> Option<Deadline> {
    let ph = phase(domain, status);
    let fast = urgency != Urgency::Normal || domain == Domain::Emergency;
    let due = match (ph, fast) {
        (Phase::Done, _) => return None,
        (Phase::Accept, true) => created_at + Duration::minutes(policy.urgent_accept_minutes),
        (Phase::Close, true) => created_at + Duration::hours(policy.urgent_close_hours),
        (Phase::Accept, false) => {
            policy.add_working_days(created_at, policy.normal_accept_working_days)
        }
        (Phase::Close, false) if domain == Domain::Dispute => {
            policy.add_working_days(created_at, policy.dispute_close_working_days)
        }
        (Phase::Close, false) => {
            policy.add_working_days(created_at, policy.normal_close_working_days)
        }
    };
    Some(Deadline {
        phase: ph,
        start: created_at,
        due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn working_days_skip_the_weekend() {
        // Friday 10:00 CST + 1 working day = Monday 10:00 CST.
        assert_eq!(
            add_working_days(t("2026-11-27T10:00:00+08:00"), 1),
            t("2026-11-30T10:00:00+08:00")
        );
        // Saturday counts from Monday 09:00.
        assert_eq!(
            add_working_days(t("2026-11-28T15:00:00+08:00"), 1),
            t("2026-12-01T09:00:00+08:00")
        );
        assert_eq!(
            add_working_days(t("2026-11-23T08:00:00+08:00"), 5),
            t("2026-11-30T08:00:00+08:00")
        );
    }

    #[test]
    fn holidays_are_skipped_and_make_up_days_worked() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let p = DeadlinePolicy {
            // 2026-10-01 (Thursday) and 10-02 off; Saturday 10-10 worked in their place.
            holidays: vec![d("2026-10-01"), d("2026-10-02")],
            workdays: vec![d("2026-10-10")],
            ..DeadlinePolicy::default()
        };
        assert!(!p.is_working_day(d("2026-10-01")));
        assert!(p.is_working_day(d("2026-10-10")));
        // Wednesday 10:00 + 1 working day skips the holidays and the weekend: Monday.
        assert_eq!(
            p.add_working_days(t("2026-09-30T10:00:00+08:00"), 1),
            t("2026-10-05T10:00:00+08:00")
        );
        // Friday 10-09 + 1 is the make-up Saturday.
        assert_eq!(
            p.add_working_days(t("2026-10-09T10:00:00+08:00"), 1),
            t("2026-10-10T10:00:00+08:00")
        );
        // Filed on a holiday: counts from the next working day at 09:00.
        assert_eq!(
            p.add_working_days(t("2026-10-01T15:00:00+08:00"), 1),
            t("2026-10-06T09:00:00+08:00")
        );
        // A normal report filed before the holiday closes later than the default says.
        let filed = t("2026-09-30T10:00:00+08:00");
        let due = |p: &DeadlinePolicy| {
            deadline(Domain::Hazard, Urgency::Normal, Status::Confirmed, filed, p)
                .unwrap()
                .due
        };
        assert_eq!(
            due(&DeadlinePolicy::default()),
            t("2026-10-07T10:00:00+08:00")
        );
        assert_eq!(due(&p), t("2026-10-09T10:00:00+08:00"));
    }

    #[test]
    fn urgent_hazard_must_be_accepted_in_30_minutes() {
        let p = DeadlinePolicy::default();
        let filed = t("2026-11-29T08:00:00Z");
        let d = deadline(Domain::Hazard, Urgency::Urgent, Status::Reported, filed, &p).unwrap();
        assert_eq!(d.phase, Phase::Accept);
        assert_eq!(d.due, t("2026-11-29T08:30:00Z"));
        assert_eq!(
            d.state(t("2026-11-29T08:10:00Z"), &p),
            DeadlineState::OnTime
        );
        assert_eq!(
            d.state(t("2026-11-29T08:25:00Z"), &p),
            DeadlineState::DueSoon
        );
        assert_eq!(
            d.state(t("2026-11-29T08:31:00Z"), &p),
            DeadlineState::Overdue
        );
        // Accepted: the 24-hour close deadline runs.
        let d = deadline(
            Domain::Hazard,
            Urgency::Urgent,
            Status::Confirmed,
            filed,
            &p,
        )
        .unwrap();
        assert_eq!((d.phase, d.due), (Phase::Close, t("2026-11-30T08:00:00Z")));
    }

    #[test]
    fn disputes_get_15_working_days_and_handled_records_none() {
        let p = DeadlinePolicy::default();
        let filed = t("2026-11-23T09:00:00+08:00"); // a Monday
        let d = deadline(
            Domain::Dispute,
            Urgency::Normal,
            Status::Mediating,
            filed,
            &p,
        )
        .unwrap();
        assert_eq!(d.due, t("2026-12-14T09:00:00+08:00"));
        assert!(deadline(Domain::Dispute, Urgency::Normal, Status::Success, filed, &p).is_none());
        assert!(deadline(Domain::Hazard, Urgency::Major, Status::Closed, filed, &p).is_none());
        assert!(
            deadline(
                Domain::Patrol,
                Urgency::Normal,
                Status::Submitted,
                filed,
                &p
            )
            .is_none()
        );
        // Emergencies are always on the fast clock.
        let d = deadline(
            Domain::Emergency,
            Urgency::Normal,
            Status::Initial,
            filed,
            &p,
        )
        .unwrap();
        assert_eq!(d.due - filed, Duration::minutes(30));
    }
}
