//! The worker's own points ledger (时间银行 积分) on the phone: derived from the records they
//! filed and the visits they made as the device holds them, by the same rules the county's
//! statistics use ([`crate::domain::points`]), so the phone and the dashboard agree once the
//! phone has synced.

use std::collections::HashMap;

use rusqlite::OptionalExtension;
use uuid::Uuid;

use super::{Result, Store, code, date, time, uuid};
use crate::domain::codes::Satisfaction;
use crate::domain::model::StatusChange;
use crate::domain::points::{self, Entry, RecordFacts, VisitFacts};

impl Store {
    /// The signed-in worker's ledger, newest entry first.
    pub fn my_points(&self) -> Result<Vec<Entry>> {
        let me = self.worker().to_owned();
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, created_at, status, json_extract(data, '$.satisfaction')
             FROM records WHERE author = ?1",
        )?;
        let rows = stmt
            .query_map([&me], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // Every history of my records in one query (Today shows the sum on each render).
        let mut histories: HashMap<Uuid, Vec<StatusChange>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT record_id, from_status, to_status, at, actor, note FROM status_history
             WHERE record_id IN (SELECT id FROM records WHERE author = ?1) ORDER BY at, id",
        )?;
        let changes = stmt
            .query_map([&me], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (id, from, to, at, actor, note) in changes {
            let record_id = uuid(&id)?;
            histories.entry(record_id).or_default().push(StatusChange {
                record_id,
                from: code(&from)?,
                to: code(&to)?,
                at: time(&at)?,
                actor,
                note,
            });
        }
        let mut records = Vec::with_capacity(rows.len());
        for (id, created_at, status, satisfaction) in rows {
            let id = uuid(&id)?;
            records.push((
                id,
                time(&created_at)?,
                code(&status)?,
                satisfaction.map(|s| code::<Satisfaction>(&s)).transpose()?,
                histories.remove(&id).unwrap_or_default(),
            ));
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT household_id, visited_on FROM visits WHERE author = ?1")?;
        let visits = stmt
            .query_map([&me], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|(h, on)| Ok((uuid(&h)?, date(&on)?)))
            .collect::<Result<Vec<_>>>()?;
        let facts: Vec<RecordFacts<'_>> = records
            .iter()
            .map(
                |(id, created_at, status, satisfaction, history)| RecordFacts {
                    id: *id,
                    author: &me,
                    created_at: *created_at,
                    status: *status,
                    history,
                    satisfaction: *satisfaction,
                },
            )
            .collect();
        let vfacts: Vec<VisitFacts<'_>> = visits
            .iter()
            .map(|(household, on)| VisitFacts {
                author: &me,
                household: *household,
                on: *on,
            })
            .collect();
        let mut ledger = points::ledger(&facts, &vfacts);
        ledger.reverse();
        Ok(ledger)
    }

    /// What a ledger entry is about, as the worker knows it: a record's summary or a
    /// household's address.
    pub fn points_subject(&self, id: Uuid) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT summary FROM records WHERE id = ?1
                 UNION ALL SELECT address FROM households WHERE id = ?1 LIMIT 1",
                [id.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use crate::domain::codes::{Domain, HazardCategory, Severity};
    use crate::domain::model::{Common, Hazard};

    #[test]
    fn the_ledger_counts_my_records_and_visits_by_the_county_rules() {
        let (mut s, grid) = crate::store::testing::store_with_grid();
        let me = s.worker().to_owned();
        let now = Utc::now();
        let hazard = |author: &str| Hazard {
            common: Common::new(Domain::Hazard, grid, author, now - Duration::hours(2)),
            category: HazardCategory::Fire,
            severity: Severity::Medium,
            description: "柴草堆放".into(),
            place: "村口".into(),
            owner: None,
            due_date: None,
        };
        let mine = hazard(&me);
        s.create_record(&mine, now - Duration::hours(2)).unwrap();
        // Someone else's record in my grid earns me nothing.
        let theirs = hazard("worker-b");
        s.create_record(&theirs, now).unwrap();
        let ledger = s.my_points().unwrap();
        assert_eq!(ledger.len(), 1);
        assert_eq!((ledger[0].points, ledger[0].reason), (1, "上报"));
        assert_eq!(ledger[0].subject, Some(mine.common.id));
        let rec = s.any_record(mine.common.id).unwrap();
        assert_eq!(
            s.points_subject(mine.common.id).unwrap().as_deref(),
            Some(rec.summary())
        );
        // Visits are mine only when I made them; none yet.
        assert!(ledger.iter().all(|e| e.reason != "入户走访"));
    }
}
