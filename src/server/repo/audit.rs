//! The audit log: who did what, when, from which device.

use super::*;

/// One line of the audit log: who, what, when, which device.
#[allow(clippy::too_many_arguments)] // each is one column of the line
pub fn audit(
    db: &mut dyn Sql,
    now: DateTime<Utc>,
    username: &str,
    device: Option<Uuid>,
    action: &str,
    kind: Option<EntityKind>,
    entity: Option<Uuid>,
    detail: Option<String>,
) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO audit (at, username, device_id, action, entity_kind, entity_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            ts(now),
            username,
            device.map(|d| d.to_string()),
            action,
            kind.map(|k| k.code()),
            entity.map(|e| e.to_string()),
            detail
        ],
    )?;
    Ok(())
}

/// One line of the audit log, to write later with others ([`audit_many`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLine {
    pub at: DateTime<Utc>,
    pub username: String,
    pub device: Option<Uuid>,
    pub action: String,
    pub kind: Option<EntityKind>,
    pub entity: Option<Uuid>,
    pub detail: Option<String>,
}

/// Writes audit lines in order, many to a statement (a pushed batch's in one or two).
pub fn audit_many(db: &mut dyn Sql, lines: &[AuditLine]) -> Result<(), DbError> {
    for chunk in lines.chunks(100) {
        let mut rows = Vec::with_capacity(chunk.len());
        let mut args = Vec::with_capacity(chunk.len() * 7);
        for (i, l) in chunk.iter().enumerate() {
            let marks = params(i * 7 + 1, 7);
            rows.push(format!("({})", marks));
            args.extend([
                V::T(ts(l.at)),
                V::T(l.username.clone()),
                l.device.map(|d| d.to_string()).into(),
                V::T(l.action.clone()),
                l.kind.map(|k| k.code()).into(),
                l.entity.map(|e| e.to_string()).into(),
                l.detail.clone().into(),
            ]);
        }
        db.exec(
            &format!(
                "INSERT INTO audit (at, username, device_id, action, entity_kind, entity_id, detail) VALUES {}",
                rows.join(", ")
            ),
            &args,
        )?;
    }
    Ok(())
}

/// A change of the county settings as the audit log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsChange {
    pub at: DateTime<Utc>,
    pub username: String,
    pub detail: String,
}

/// The latest `limit` audit lines of `action` (newest first).
pub fn settings_changes(
    db: &mut dyn Sql,
    action: &str,
    limit: i64,
) -> Result<Vec<SettingsChange>, DbError> {
    db.query(
        "SELECT at, username, detail FROM audit WHERE action = $1 ORDER BY at DESC LIMIT $2",
        args![action, limit],
    )?
    .iter()
    .map(|r| {
        Ok(SettingsChange {
            at: parse_ts(r[0].str()?)?,
            username: r[1].string()?,
            detail: r[2].opt_string()?.unwrap_or_default(),
        })
    })
    .collect()
}
