//! Seeds an empty server database with the demo county and its demo accounts:
//! `worker-a` and `worker-b` (grid workers of the first two grids of 山下村), `secretary`
//! (山下村's 网格长) and `admin` (the county), all with password `gridwalk-demo`. Every other
//! grid's worker (`grid-<grid code>`) and village's secretary (`secretary-<village code>`)
//! has an account too, with the same password, so every seeded record has a named author.

use chrono::{DateTime, Utc};
use serde_json::Value;

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
    let mut entities = 0;
    let first = repo::reserve_seqs(db, grids.len() as i64)?;
    for (seq, g) in (first..).zip(grids.iter().map(|i| &county.grids[*i])) {
        let code = g.grid.code.as_str().to_owned();
        import_entity(
            db,
            seq,
            EntityKind::Grid,
            g.grid.id,
            g.grid.id,
            &code,
            None,
            json(&g.grid)?,
            now,
            now,
        )?;
        entities += 1;
    }
    for &i in grids {
        let g = &county.grids[i];
        let code = g.grid.code.as_str();
        let gid = g.grid.id;
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
        let mut seq = repo::reserve_seqs(db, n as i64)?;
        let mut next = || {
            seq += 1;
            seq - 1
        };
        for h in &s.houses {
            import_entity(
                db,
                next(),
                EntityKind::House,
                h.id,
                gid,
                code,
                None,
                json(h)?,
                now,
                now,
            )?;
        }
        for h in &s.households {
            import_entity(
                db,
                next(),
                EntityKind::Household,
                h.id,
                gid,
                code,
                None,
                json(h)?,
                now,
                now,
            )?;
        }
        for p in &s.people {
            import_entity(
                db,
                next(),
                EntityKind::Person,
                p.id,
                gid,
                code,
                Some(p.household_id),
                json(p)?,
                now,
                now,
            )?;
        }
        for v in &s.visits {
            import_entity(
                db,
                next(),
                EntityKind::Visit,
                v.id,
                gid,
                code,
                Some(v.household_id),
                json(v)?,
                v.created_at,
                now,
            )?;
        }
        for r in &s.records {
            let c = r.common();
            import_entity(
                db,
                next(),
                EntityKind::of_domain(r.domain()),
                c.id,
                gid,
                code,
                None,
                r.to_json(),
                c.created_at,
                now,
            )?;
        }
        for h in &s.history {
            repo::add_status_change(db, h)?;
        }
        for m in &s.sessions {
            import_entity(
                db,
                next(),
                EntityKind::MediationSession,
                m.id,
                gid,
                code,
                Some(m.dispute_id),
                json(m)?,
                m.created_at,
                now,
            )?;
        }
        for r in &s.reports {
            import_entity(
                db,
                next(),
                EntityKind::EmergencyReport,
                r.id,
                gid,
                code,
                Some(r.emergency_id),
                json(r)?,
                r.created_at,
                now,
            )?;
        }
        for r in &s.replies {
            import_entity(
                db,
                next(),
                EntityKind::Reply,
                r.id,
                gid,
                code,
                Some(r.record_id),
                json(r)?,
                r.created_at,
                now,
            )?;
        }
        for t in &s.tracks {
            import_entity(
                db,
                next(),
                EntityKind::PatrolPoints,
                t.id,
                gid,
                code,
                Some(t.patrol_id),
                json(t)?,
                now,
                now,
            )?;
        }
        entities += n;
    }
    let hash = hash_password(DEMO_PASSWORD)?;
    let village = &county.villages[0];
    let mut accounts = vec![
        (
            "worker-a".to_owned(),
            county.grids[0].worker.name.clone(),
            Role::Worker,
            village.code.clone(),
            vec![county.grids[0].grid.id],
        ),
        (
            "worker-b".to_owned(),
            county.grids[1].worker.name.clone(),
            Role::Worker,
            village.code.clone(),
            vec![county.grids[1].grid.id],
        ),
        (
            "secretary".to_owned(),
            village.secretary.name.clone(),
            Role::Secretary,
            village.code.clone(),
            vec![],
        ),
        (
            "admin".to_owned(),
            "县综治中心".to_owned(),
            Role::Admin,
            crate::demo::names::COUNTY_CODE.to_owned(),
            vec![],
        ),
    ];
    // Every other grid's worker and village's secretary has an account too, so the dashboard
    // names the author of every seeded record (the same demo password).
    for g in &county.grids[2..] {
        accounts.push((
            g.worker.username.clone(),
            g.worker.name.clone(),
            Role::Worker,
            county.villages[g.village].code.clone(),
            vec![g.grid.id],
        ));
    }
    for v in &county.villages[1..] {
        accounts.push((
            v.secretary.username.clone(),
            v.secretary.name.clone(),
            Role::Secretary,
            v.code.clone(),
            vec![],
        ));
    }
    for (username, name, role, scope, grids) in &accounts {
        repo::create_user(
            db,
            &NewUser {
                username: username.clone(),
                display_name: name.clone(),
                role: *role,
                scope_code: scope.clone(),
                password_hash: hash.clone(),
                grids: grids.clone(),
            },
            now,
        )?;
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

/// The role of a code, for operators adding accounts.
pub fn parse_role(s: &str) -> Result<Role, Failure> {
    Role::from_code(&s.to_uppercase()).map_err(|e| Failure::invalid(e.to_string(), Some("role")))
}
