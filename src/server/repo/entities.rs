//! Entities as stored: the change sequence, reads and writes of entities, case numbers and
//! status histories.

use super::*;

/// Reserves `n` sequence numbers at once (bulk imports); returns the first.
pub fn reserve_seqs(db: &mut dyn Sql, n: i64) -> Result<i64, DbError> {
    let last = db.query_one(
        "UPDATE counters SET value = value + $1 WHERE name = 'change_seq' RETURNING value",
        args![n],
    )?[0]
        .i64()?;
    Ok(last - n + 1)
}

/// The next server sequence number. In PostgreSQL the counter row stays locked until the
/// transaction ends, so numbers are handed out in commit order and a pull never skips one.
pub fn next_seq(db: &mut dyn Sql) -> Result<i64, DbError> {
    db.query_one(
        "UPDATE counters SET value = value + 1 WHERE name = 'change_seq' RETURNING value",
        &[],
    )?[0]
        .i64()
}

/// Per-field versions of an entity: the stamp of its creation, and of each field changed
/// since (a field without its own stamp was last set when the entity was made).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntityMeta {
    pub created: FieldMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldMeta>,
}

impl EntityMeta {
    pub fn get(&self, field: &str) -> &FieldMeta {
        self.fields.get(field).unwrap_or(&self.created)
    }

    pub fn set(&mut self, field: &str, m: FieldMeta) {
        self.fields.insert(field.to_owned(), m);
    }
}

/// One stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub id: Uuid,
    pub kind: EntityKind,
    pub grid_id: Uuid,
    pub grid_code: String,
    pub parent_id: Option<Uuid>,
    pub data: Map<String, Value>,
    pub meta: EntityMeta,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl Entity {
    pub fn status(&self) -> Option<&str> {
        self.data.get("status").and_then(Value::as_str)
    }
}

pub fn get_entity(db: &mut dyn Sql, id: Uuid) -> Result<Option<Entity>, DbError> {
    let Some(r) = db.query_opt(
        "SELECT kind, grid_id, grid_code, parent_id, data, meta, version, created_at FROM entities WHERE id = $1",
        args![id.to_string()],
    )?
    else {
        return Ok(None);
    };
    let data: Value =
        serde_json::from_str(r[4].str()?).map_err(|e| DbError::Type(e.to_string()))?;
    let Value::Object(data) = data else {
        return Err(DbError::Type(format!("entity {id} is not an object")));
    };
    Ok(Some(Entity {
        id,
        kind: EntityKind::from_code(r[0].str()?).map_err(|e| DbError::Type(e.to_string()))?,
        grid_id: uuid(r[1].str()?)?,
        grid_code: r[2].string()?,
        parent_id: r[3].opt_string()?.map(|s| uuid(&s)).transpose()?,
        data,
        meta: serde_json::from_str(r[5].str()?).map_err(|e| DbError::Type(e.to_string()))?,
        version: r[6].i64()?,
        created_at: parse_ts(r[7].str()?)?,
    }))
}

/// `$first, $first+1, ...`: `n` numbered parameters, for an `IN (...)` list or one row of a
/// multi-row `VALUES`.
pub(super) fn params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An entity's kind and grid code without reading its JSON (scope checks on the hot path).
pub fn entity_head(db: &mut dyn Sql, id: Uuid) -> Result<Option<(EntityKind, String)>, DbError> {
    db.query_opt(
        "SELECT kind, grid_code FROM entities WHERE id = $1",
        args![id.to_string()],
    )?
    .map(|r| {
        Ok((
            EntityKind::from_code(r[0].str()?).map_err(|e| DbError::Type(e.to_string()))?,
            r[1].string()?,
        ))
    })
    .transpose()
}

/// Inserts or replaces an entity (its indexed columns come from its data).
pub fn put_entity(db: &mut dyn Sql, e: &Entity, now: DateTime<Utc>) -> Result<(), DbError> {
    put_entities(db, std::slice::from_ref(e), now)
}

/// Inserts or replaces entities, 100 to a statement (one round trip each on PostgreSQL). No
/// id may appear twice in `es`.
pub fn put_entities(db: &mut dyn Sql, es: &[Entity], now: DateTime<Utc>) -> Result<(), DbError> {
    const COLS: usize = 15;
    for chunk in es.chunks(100) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args: Vec<V> = Vec::with_capacity(chunk.len() * COLS);
        for (i, e) in chunk.iter().enumerate() {
            let s = |k: &str| e.data.get(k).and_then(Value::as_str).map(str::to_owned);
            let category = s("category").or_else(|| s("domain"));
            let marks = params(i * COLS + 1, COLS);
            rows.push(format!("({})", marks));
            args.extend([
                V::T(e.id.to_string()),
                V::T(e.kind.code().to_owned()),
                V::T(e.grid_id.to_string()),
                V::T(e.grid_code.clone()),
                e.parent_id.map(|p| p.to_string()).into(),
                s("status").into(),
                s("urgency").into(),
                category.into(),
                s("author").into(),
                V::T(ts(e.created_at)),
                V::T(ts(now)),
                V::T(Value::Object(e.data.clone()).to_string()),
                V::T(serde_json::to_string(&e.meta).map_err(|e| DbError::Type(e.to_string()))?),
                V::I(e.version),
                // A record's household; a person's and a visit's is their parent.
                if e.kind.is_record() {
                    s("household_id")
                } else {
                    None
                }
                .into(),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO entities (id, kind, grid_id, grid_code, parent_id, status, urgency, category, author,
                                       created_at, updated_at, data, meta, version, household_id)
                 VALUES {}
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, grid_id = excluded.grid_id,
                   grid_code = excluded.grid_code, parent_id = excluded.parent_id, status = excluded.status,
                   urgency = excluded.urgency, category = excluded.category, author = excluded.author,
                   updated_at = excluded.updated_at, data = excluded.data, meta = excluded.meta,
                   version = excluded.version, household_id = excluded.household_id",
                rows.join(", ")
            ),
            &args,
        )?;
        let new_records: Vec<(Uuid, DateTime<Utc>)> = chunk
            .iter()
            .filter(|e| e.kind.is_record())
            .map(|e| (e.id, e.created_at))
            .collect();
        number_cases(db, new_records)?;
    }
    Ok(())
}

/// A case number as people read and type it: `2026-00042`.
pub fn case_label(year: i64, seq: i64) -> String {
    format!("{year}-{seq:05}")
}

/// Gives each of `records` that has no case number the next of its filing year's, in the
/// order they were filed. The per-year counter is one row, bumped once per year per call,
/// so replicas on one PostgreSQL never hand out a number twice.
pub(super) fn number_cases(
    db: &mut dyn Sql,
    records: Vec<(Uuid, DateTime<Utc>)>,
) -> Result<(), DbError> {
    if records.is_empty() {
        return Ok(());
    }
    let args: Vec<V> = records.iter().map(|(id, _)| V::T(id.to_string())).collect();
    let mut have = std::collections::HashSet::new();
    for chunk in args.chunks(500) {
        for r in db.query(
            &format!(
                "SELECT record_id FROM case_numbers WHERE record_id IN ({})",
                params(1, chunk.len())
            ),
            chunk,
        )? {
            have.insert(r[0].string()?);
        }
    }
    let mut new: Vec<(i64, DateTime<Utc>, Uuid)> = records
        .into_iter()
        .filter(|(id, _)| !have.contains(&id.to_string()))
        .map(|(id, at)| (i64::from(crate::domain::cst::local(at).year()), at, id))
        .collect();
    new.sort();
    for year_group in new.chunk_by(|a, b| a.0 == b.0) {
        let year = year_group[0].0;
        let n = year_group.len() as i64;
        let last = db.query_one(
            "INSERT INTO counters (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value
             RETURNING value",
            &[V::T(format!("case_seq:{year}")), V::I(n)],
        )?[0]
            .i64()?;
        for (k, rows) in year_group.chunks(300).enumerate() {
            let mut args = Vec::with_capacity(rows.len() * 3);
            let mut values = Vec::with_capacity(rows.len());
            for (i, (_, _, id)) in rows.iter().enumerate() {
                let seq = last - n + 1 + (k * 300 + i) as i64;
                values.push(format!("({})", params(i * 3 + 1, 3)));
                args.extend([V::T(id.to_string()), V::I(year), V::I(seq)]);
            }
            db.exec(
                &format!(
                    "INSERT INTO case_numbers (record_id, year, seq) VALUES {}",
                    values.join(", ")
                ),
                &args,
            )?;
        }
    }
    Ok(())
}

/// Numbers the records stored before case numbers existed (run when the server starts; a
/// no-op once every record has one).
pub fn number_unnumbered_cases(db: &mut dyn Sql) -> Result<usize, DbError> {
    let mut missing = Vec::new();
    for r in db.query(
        &format!(
            "SELECT e.id, e.created_at FROM entities e WHERE e.kind IN ({RECORD_KINDS})
             AND NOT EXISTS (SELECT 1 FROM case_numbers c WHERE c.record_id = e.id)"
        ),
        &[],
    )? {
        missing.push((uuid(r[0].str()?)?, parse_ts(r[1].str()?)?));
    }
    let n = missing.len();
    number_cases(db, missing)?;
    Ok(n)
}

/// The case numbers of those of `ids` that have one.
pub fn case_numbers(db: &mut dyn Sql, ids: &[Uuid]) -> Result<BTreeMap<Uuid, String>, DbError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        for r in db.query(
            &format!(
                "SELECT record_id, year, seq FROM case_numbers WHERE record_id IN ({})",
                params(1, chunk.len())
            ),
            &args,
        )? {
            out.insert(uuid(r[0].str()?)?, case_label(r[1].i64()?, r[2].i64()?));
        }
    }
    Ok(out)
}

/// The record with case number `label` (`2026-42` and `2026-00042` alike), if any.
pub fn record_by_case(db: &mut dyn Sql, label: &str) -> Result<Option<Uuid>, DbError> {
    let Some((y, s)) = label.trim().split_once('-') else {
        return Ok(None);
    };
    let (Ok(year), Ok(seq)) = (y.parse::<i64>(), s.parse::<i64>()) else {
        return Ok(None);
    };
    db.query(
        "SELECT record_id FROM case_numbers WHERE year = $1 AND seq = $2",
        &[V::I(year), V::I(seq)],
    )?
    .first()
    .map(|r| uuid(r[0].str()?))
    .transpose()
}

/// Kind and grid code of those of `ids` that exist (one query per 500 ids).
pub fn entity_heads(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, (EntityKind, String)>, DbError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        for r in db.query(
            &format!(
                "SELECT id, kind, grid_code FROM entities WHERE id IN ({})",
                marks
            ),
            &args,
        )? {
            out.insert(
                uuid(r[0].str()?)?,
                (
                    EntityKind::from_code(r[1].str()?).map_err(|e| DbError::Type(e.to_string()))?,
                    r[2].string()?,
                ),
            );
        }
    }
    Ok(out)
}

/// Adds a status change, stamped with the record's current version (write the record first):
/// a pull sends a device only the changes after its base.
pub fn add_status_change(db: &mut dyn Sql, c: &StatusChange) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO status_history (record_id, from_status, to_status, at, actor, note, version)
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT version FROM entities WHERE id = $1))",
        args![
            c.record_id.to_string(),
            c.from.code(),
            c.to.code(),
            ts(c.at),
            &c.actor,
            c.note.clone()
        ],
    )?;
    Ok(())
}

/// The status history of records, oldest first, by record.
pub fn status_histories(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<StatusChange>>, DbError> {
    let mut out: BTreeMap<Uuid, Vec<StatusChange>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        let rows = db.query(
            &format!(
                "SELECT record_id, from_status, to_status, at, actor, note FROM status_history
                 WHERE record_id IN ({}) ORDER BY id",
                marks
            ),
            &args,
        )?;
        for r in rows {
            let id = uuid(r[0].str()?)?;
            let code = |v: &V| -> Result<crate::domain::Status, DbError> {
                crate::domain::Status::from_code(v.str()?).map_err(|e| DbError::Type(e.to_string()))
            };
            out.entry(id).or_default().push(StatusChange {
                record_id: id,
                from: code(&r[1])?,
                to: code(&r[2])?,
                at: parse_ts(r[3].str()?)?,
                actor: r[4].string()?,
                note: r[5].opt_string()?,
            });
        }
    }
    Ok(out)
}

/// The status history of records, oldest first, by record, each change with the version
/// it was made at (a change from before versions were kept counts as its record's version
/// when that was recorded, never as older than it is).
pub fn versioned_histories(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<(i64, StatusChange)>>, DbError> {
    let mut out: BTreeMap<Uuid, Vec<(i64, StatusChange)>> = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let marks = params(1, chunk.len());
        let args: Vec<V> = chunk.iter().map(|i| V::T(i.to_string())).collect();
        let rows = db.query(
            &format!(
                "SELECT record_id, from_status, to_status, at, actor, note,
                        COALESCE(version, 9223372036854775807) FROM status_history
                 WHERE record_id IN ({}) ORDER BY id",
                marks
            ),
            &args,
        )?;
        for r in rows {
            let id = uuid(r[0].str()?)?;
            let code = |v: &V| -> Result<crate::domain::Status, DbError> {
                crate::domain::Status::from_code(v.str()?).map_err(|e| DbError::Type(e.to_string()))
            };
            out.entry(id).or_default().push((
                r[6].i64()?,
                StatusChange {
                    record_id: id,
                    from: code(&r[1])?,
                    to: code(&r[2])?,
                    at: parse_ts(r[3].str()?)?,
                    actor: r[4].string()?,
                    note: r[5].opt_string()?,
                },
            ));
        }
    }
    Ok(out)
}
