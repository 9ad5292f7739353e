//! Seeds an empty server database with the demo county and its demo accounts:
//! `worker-a` and `worker-b` (grid workers of the first two grids of 山下村), `secretary`
//! (山下村's 网格长), `admin` (the county) and the departments records are dispatched to,
//! `town-safety` (镇安监办) and `town-justice` (镇司法所) of the first town and
//! `village-committee` (山下村's 村委会), and `office` (山下村's 村办中转站, a relay account),
//! all with password `gridwalk-demo`. Every other
//! grid's worker (`grid-<grid code>`) and village's secretary (`secretary-<village code>`)
//! has an account too, with the same password, so every seeded record has a named author.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::auth::hash_password;
use super::db::Sql;
use super::error::Failure;
use super::records::import_entity;
use super::repo::{self, NewUser};
use crate::demo::County;
use crate::domain::codes::Coded;
use crate::domain::model::EntityKind;
use crate::wire::Role;

pub const DEMO_PASSWORD: &str = "gridwalk-demo";

/// What seeding wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub grids: usize,
    pub entities: usize,
    pub accounts: usize,
}

fn json<T: serde::Serialize>(v: &T) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| Failure::Internal(e.to_string()))
}

/// Writes the county (every grid with its population and history) and the demo accounts,
/// unless the database already has accounts. One transaction: all or nothing.
pub fn seed(
    db: &mut dyn Sql,
    county: &County,
    now: DateTime<Utc>,
) -> Result<Option<Seeded>, Failure> {
    let all: Vec<usize> = (0..county.grids.len()).collect();
    seed_grids(db, county, &all, now)
}

/// As [`seed`], but only the given grids (by index) of the county, with the same demo
/// accounts: what the sync benchmarks use to serve one grid of a big county.
pub fn seed_grids(
    db: &mut dyn Sql,
    county: &County,
    grids: &[usize],
    now: DateTime<Utc>,
) -> Result<Option<Seeded>, Failure> {
    let users = db.query_one("SELECT count(*) FROM users", &[])?[0].i64()?;
    if users > 0 {
        return Ok(None);
    }
    let mut entities = seed_grid_shapes(db, county, grids, now)?;
    for &i in grids {
        entities += seed_population(db, county, i, now)?;
    }
    let accounts = demo_accounts(county, &hash_password(DEMO_PASSWORD)?);
    for account in &accounts {
        repo::create_user(db, account, now)?;
    }
    repo::audit(
        db,
        now,
        "system",
        None,
        "SEED_DEMO",
        None,
        None,
        Some(format!("{} grids, {entities} entities", grids.len())),
    )?;
    Ok(Some(Seeded {
        grids: grids.len(),
        entities,
        accounts: accounts.len(),
    }))
}

/// Writes the grids themselves (their codes and boundaries); returns how many.
fn seed_grid_shapes(
    db: &mut dyn Sql,
    county: &County,
    grids: &[usize],
    now: DateTime<Utc>,
) -> Result<usize, Failure> {
    let first = repo::reserve_seqs(db, grids.len() as i64)?;
    for (seq, g) in (first..).zip(grids.iter().map(|i| &county.grids[*i])) {
        let code = g.grid.code.as_str().to_owned();
        let data = json(&g.grid)?;
        import_entity(
            db,
            seq,
            EntityKind::Grid,
            g.grid.id,
            g.grid.id,
            &code,
            None,
            data,
            now,
            now,
        )?;
    }
    Ok(grids.len())
}

/// Writes everything in grid `i` (houses, households, people, visits, records with their
/// status history, mediation sessions, emergency reports, replies, patrol tracks), parents
/// before children; returns how many entities.
fn seed_population(
    db: &mut dyn Sql,
    county: &County,
    i: usize,
    now: DateTime<Utc>,
) -> Result<usize, Failure> {
    let g = &county.grids[i];
    let s = county.population(i);
    let n = s.houses.len()
        + s.households.len()
        + s.people.len()
        + s.visits.len()
        + s.records.len()
        + s.sessions.len()
        + s.reports.len()
        + s.replies.len()
        + s.tracks.len();
    let seq = repo::reserve_seqs(db, n as i64)?;
    let mut w = GridWriter {
        db,
        seq,
        grid: g.grid.id,
        code: g.grid.code.as_str(),
        now,
    };
    for h in &s.houses {
        w.put(EntityKind::House, h.id, None, json(h)?, now)?;
    }
    for h in &s.households {
        w.put(EntityKind::Household, h.id, None, json(h)?, now)?;
    }
    for p in &s.people {
        w.put(
            EntityKind::Person,
            p.id,
            Some(p.household_id),
            json(p)?,
            now,
        )?;
    }
    for v in &s.visits {
        w.put(
            EntityKind::Visit,
            v.id,
            Some(v.household_id),
            json(v)?,
            v.created_at,
        )?;
    }
    for r in &s.records {
        let (kind, c) = (EntityKind::of_domain(r.domain()), r.common());
        w.put(kind, c.id, None, r.to_json(), c.created_at)?;
    }
    for h in &s.history {
        repo::add_status_change(w.db, h)?;
    }
    for m in &s.sessions {
        let kind = EntityKind::MediationSession;
        w.put(kind, m.id, Some(m.dispute_id), json(m)?, m.created_at)?;
    }
    for r in &s.reports {
        let kind = EntityKind::EmergencyReport;
        w.put(kind, r.id, Some(r.emergency_id), json(r)?, r.created_at)?;
    }
    for r in &s.replies {
        w.put(
            EntityKind::Reply,
            r.id,
            Some(r.record_id),
            json(r)?,
            r.created_at,
        )?;
    }
    for t in &s.tracks {
        w.put(
            EntityKind::PatrolPoints,
            t.id,
            Some(t.patrol_id),
            json(t)?,
            now,
        )?;
    }
    Ok(n)
}

/// Writes one grid's entities under the sequence numbers reserved for them, in turn.
struct GridWriter<'a> {
    db: &'a mut dyn Sql,
    /// The next reserved sequence number.
    seq: i64,
    grid: Uuid,
    code: &'a str,
    now: DateTime<Utc>,
}

impl GridWriter<'_> {
    fn put(
        &mut self,
        kind: EntityKind,
        id: Uuid,
        parent: Option<Uuid>,
        data: Value,
        created_at: DateTime<Utc>,
    ) -> Result<(), Failure> {
        let seq = self.seq;
        self.seq += 1;
        import_entity(
            self.db, seq, kind, id, self.grid, self.code, parent, data, created_at, self.now,
        )?;
        Ok(())
    }
}

/// The demo accounts, all with the same password: `worker-a` and `worker-b` (the first two
/// grids' workers), `secretary` (the first village's), `admin` (the county), then every other
/// grid's worker and village's secretary, so the dashboard names the author of every seeded
/// record.
fn demo_accounts(county: &County, password_hash: &str) -> Vec<NewUser> {
    let account = |username: &str, name: &str, role: Role, scope: &str, grids: Vec<Uuid>| NewUser {
        username: username.to_owned(),
        display_name: name.to_owned(),
        role,
        scope_code: scope.to_owned(),
        password_hash: password_hash.to_owned(),
        grids,
    };
    let village = &county.villages[0];
    let (first, second) = (&county.grids[0], &county.grids[1]);
    let mut accounts = vec![
        account(
            "worker-a",
            &first.worker.name,
            Role::Worker,
            &village.code,
            vec![first.grid.id],
        ),
        account(
            "worker-b",
            &second.worker.name,
            Role::Worker,
            &village.code,
            vec![second.grid.id],
        ),
        account(
            "secretary",
            &village.secretary.name,
            Role::Secretary,
            &village.code,
            vec![],
        ),
        account(
            "admin",
            "县综治中心",
            Role::Admin,
            crate::demo::names::COUNTY_CODE,
            vec![],
        ),
    ];
    for g in &county.grids[2..] {
        let scope = &county.villages[g.village].code;
        let w = &g.worker;
        accounts.push(account(
            &w.username,
            &w.name,
            Role::Worker,
            scope,
            vec![g.grid.id],
        ));
    }
    // Departments the county dispatches work to: two of the first town's offices and the
    // first village's committee, each one account (承办部门).
    let town = &village.code[..9];
    accounts.push(account(
        "town-safety",
        "镇安监办",
        Role::Assignee,
        town,
        vec![],
    ));
    accounts.push(account(
        "town-justice",
        "镇司法所",
        Role::Assignee,
        town,
        vec![],
    ));
    accounts.push(account(
        "village-committee",
        &format!("{}村委会", village.name.trim_end_matches('村')),
        Role::Assignee,
        &village.code,
        vec![],
    ));
    // The first village's office relay (村办中转站): it mirrors the village from the county.
    accounts.push(account(
        "office",
        &format!("{}村办中转站", village.name),
        Role::Relay,
        &village.code,
        vec![],
    ));
    for v in &county.villages[1..] {
        let sec = &v.secretary;
        accounts.push(account(
            &sec.username,
            &sec.name,
            Role::Secretary,
            &v.code,
            vec![],
        ));
    }
    accounts
}

/// The role of a code, for operators adding accounts.
pub fn parse_role(s: &str) -> Result<Role, Failure> {
    Role::from_code(&s.to_uppercase()).map_err(|e| Failure::invalid(e.to_string(), Some("role")))
}
