//! Volunteer points (时间银行 积分): a ledger of entries, each with its reason, derived from
//! what happened (records filed and handled, visits made, residents' satisfaction), never a
//! counter that is edited. The same inputs always give the same ledger.
//!
//! The rules (per handled matter, by count, quality and resident satisfaction):
//! - a visit to a household: +1 (入户走访);
//! - a record filed (not voided): +1 (上报);
//! - a record handled (办结 or beyond) that was never sent back: +2 (办结质量);
//! - a record sent back (退回) for rework: −1 each time (退回);
//! - the resident's satisfaction on a handled matter: 满意 +2, 基本满意 +1, 不满意 0.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use super::codes::Satisfaction;
use super::deadline::is_handled;
use super::lifecycle::Status;
use super::model::StatusChange;

/// Points for each rule.
pub const VISIT: i64 = 1;
pub const FILED: i64 = 1;
pub const HANDLED_CLEAN: i64 = 2;
pub const RETURNED: i64 = -1;

pub fn satisfaction_points(s: Satisfaction) -> i64 {
    match s {
        Satisfaction::Satisfied => 2,
        Satisfaction::Basic => 1,
        Satisfaction::Unsatisfied => 0,
    }
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub worker: String,
    pub points: i64,
    pub reason: &'static str,
    /// The record or household it is for.
    pub subject: Option<Uuid>,
}

/// What the ledger needs of a record.
#[derive(Debug, Clone)]
pub struct RecordFacts<'a> {
    pub id: Uuid,
    pub author: &'a str,
    pub created_at: DateTime<Utc>,
    pub status: Status,
    /// Its status changes, oldest first (at least those into handled states and returns).
    pub history: &'a [StatusChange],
    pub satisfaction: Option<Satisfaction>,
}

/// What the ledger needs of a visit.
#[derive(Debug, Clone)]
pub struct VisitFacts<'a> {
    pub author: &'a str,
    pub household: Uuid,
    pub on: NaiveDate,
}

/// The ledger of every worker, oldest entry first.
pub fn ledger(records: &[RecordFacts<'_>], visits: &[VisitFacts<'_>]) -> Vec<Entry> {
    let mut out = Vec::new();
    for r in records {
        if r.status == Status::Void {
            continue;
        }
        let e = |at, points, reason| Entry {
            at,
            worker: r.author.to_owned(),
            points,
            reason,
            subject: Some(r.id),
        };
        out.push(e(r.created_at, FILED, "上报"));
        let mut returned = false;
        for h in r.history {
            if h.to == Status::Returned {
                returned = true;
                out.push(e(h.at, RETURNED, "退回"));
            }
        }
        // The first move into a handled state counts once.
        if let Some(h) = r.history.iter().find(|h| is_handled(h.to))
            && !returned
        {
            out.push(e(h.at, HANDLED_CLEAN, "办结质量"));
        }
        if let Some(s) = r.satisfaction
            && is_handled(r.status)
        {
            let at = r.history.last().map(|h| h.at).unwrap_or(r.created_at);
            out.push(e(at, satisfaction_points(s), "居民满意度"));
        }
    }
    for v in visits {
        out.push(Entry {
            at: v.on.and_time(NaiveTime::MIN).and_utc(),
            worker: v.author.to_owned(),
            points: VISIT,
            reason: "入户走访",
            subject: Some(v.household),
        });
    }
    out.sort_by(|a, b| (a.at, &a.worker).cmp(&(b.at, &b.worker)));
    out
}

/// The ledger of the volunteers credited for records: each credited record earns its
/// volunteer what it earns its author under the same rules (上报, 办结质量, 退回, 居民满意度),
/// the entry's `worker` being the volunteer's key in `credits` (record id, volunteer). A
/// credit for a record not among `records` earns nothing. Oldest entry first.
pub fn credited(records: &[RecordFacts<'_>], credits: &[(Uuid, &str)]) -> Vec<Entry> {
    let facts: Vec<RecordFacts<'_>> = credits
        .iter()
        .filter_map(|(id, who)| {
            let r = records.iter().find(|r| r.id == *id)?;
            Some(RecordFacts {
                author: who,
                ..r.clone()
            })
        })
        .collect();
    ledger(&facts, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
    }

    fn change(id: Uuid, from: Status, to: Status, at: DateTime<Utc>) -> StatusChange {
        StatusChange {
            record_id: id,
            from,
            to,
            at,
            actor: "secretary".into(),
            note: None,
        }
    }

    #[test]
    fn a_clean_handled_matter_with_a_satisfied_resident_earns_five() {
        let id = Uuid::now_v7();
        let h = vec![
            change(id, Status::Submitted, Status::Accepted, t(9)),
            change(id, Status::Accepted, Status::InProgress, t(10)),
            change(id, Status::InProgress, Status::Resolved, t(11)),
            change(id, Status::Resolved, Status::Verified, t(12)),
        ];
        let r = RecordFacts {
            id,
            author: "worker-a",
            created_at: t(8),
            status: Status::Verified,
            history: &h,
            satisfaction: Some(Satisfaction::Satisfied),
        };
        let l = ledger(&[r], &[]);
        let total: i64 = l.iter().map(|e| e.points).sum();
        assert_eq!(total, FILED + HANDLED_CLEAN + 2);
        assert_eq!(
            l.iter().filter(|e| e.reason == "办结质量").count(),
            1,
            "once"
        );
    }

    #[test]
    fn a_returned_matter_loses_its_quality_points_and_void_earns_nothing() {
        let id = Uuid::now_v7();
        let h = vec![
            change(id, Status::Submitted, Status::Returned, t(9)),
            change(id, Status::Returned, Status::Submitted, t(10)),
            change(id, Status::Submitted, Status::Resolved, t(11)),
        ];
        let r = RecordFacts {
            id,
            author: "worker-a",
            created_at: t(8),
            status: Status::Resolved,
            history: &h,
            satisfaction: None,
        };
        let void = RecordFacts {
            id: Uuid::now_v7(),
            author: "worker-a",
            created_at: t(8),
            status: Status::Void,
            history: &[],
            satisfaction: None,
        };
        let hh = Uuid::now_v7();
        let visits = [VisitFacts {
            author: "worker-b",
            household: hh,
            on: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        }];
        let l = ledger(&[r, void], &visits);
        let sum = |w: &str| {
            l.iter()
                .filter(|e| e.worker == w)
                .map(|e| e.points)
                .sum::<i64>()
        };
        assert_eq!(sum("worker-a"), FILED + RETURNED);
        assert_eq!(sum("worker-b"), VISIT);
        assert!(l.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
    }

    #[test]
    fn a_volunteer_earns_what_the_credited_matter_earns_and_nothing_else() {
        let id = Uuid::now_v7();
        let h = vec![
            change(id, Status::Submitted, Status::Accepted, t(9)),
            change(id, Status::Accepted, Status::Resolved, t(11)),
        ];
        let r = RecordFacts {
            id,
            author: "worker-a",
            created_at: t(8),
            status: Status::Resolved,
            history: &h,
            satisfaction: Some(Satisfaction::Basic),
        };
        let other = RecordFacts {
            id: Uuid::now_v7(),
            author: "worker-a",
            created_at: t(8),
            status: Status::Submitted,
            history: &[],
            satisfaction: None,
        };
        let records = [r, other];
        let l = credited(&records, &[(id, "v1"), (Uuid::now_v7(), "v2")]);
        assert!(l.iter().all(|e| e.worker == "v1"), "{l:?}");
        let total: i64 = l.iter().map(|e| e.points).sum();
        // The same as the author's entries of that record.
        let authors: i64 = ledger(&records[..1], &[]).iter().map(|e| e.points).sum();
        assert_eq!(total, authors);
        assert_eq!(total, FILED + HANDLED_CLEAN + 1);
    }
}
