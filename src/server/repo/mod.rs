//! What the server stores, written once against [`Sql`]: accounts and sessions, scopes,
//! entities with per-field versions, the change sequence, watermarks, status history,
//! conflicts, audit and photos, and a village's rows as its office relay mirrors them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::{DbError, Sql, V};
use crate::args;
use crate::domain::codes::Coded;
use crate::domain::model::{EntityKind, StatusChange};
use crate::merge::FieldMeta;
use crate::wire::{Account, GridRef, Role};

/// The event-record kinds as an SQL list, for `kind IN (...)`.
pub const RECORD_KINDS: &str = "'OPINION','DISPUTE','PATROL','HAZARD','SPECIAL_POP','EMERGENCY','PUBLICITY','LIVELIHOOD','OTHER'";

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, DbError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DbError::Type(format!("bad time {s:?}: {e}")))
}

fn uuid(s: &str) -> Result<Uuid, DbError> {
    Uuid::parse_str(s).map_err(|e| DbError::Type(format!("bad id {s:?}: {e}")))
}

mod accounts;
mod assignees;
mod audit;
mod entities;
mod inbox;
mod mirror;
mod photos;
mod redemptions;
mod settings;
mod volunteers;
mod watermarks;

pub use accounts::*;
pub use assignees::*;
pub use audit::*;
pub use entities::*;
pub use inbox::*;
pub use mirror::*;
pub use photos::*;
pub use redemptions::*;
pub use settings::*;
pub use volunteers::*;
pub use watermarks::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_entries_come_back_whole_and_a_row_claiming_too_much_is_refused() {
        let a = r#"[{"seq":1,"fields":{"description":"楼道内电动车飞线充电"}}]"#.repeat(40);
        let b = "[]";
        // The thread's contexts are reused: each packing stands on its own.
        for json in [&a[..], b, &a[..]] {
            assert_eq!(unpack_entries(&pack_entries(json).unwrap()).unwrap(), json);
        }
        let huge = vec![b' '; crate::server::MAX_JSON_BYTES + 1];
        let packed = zstd::bulk::compress(&huge, 1).unwrap();
        let e = unpack_entries(&packed).unwrap_err().to_string();
        assert!(e.contains("claims"), "{e}");
        let e = unpack_entries(b"not zstd").unwrap_err().to_string();
        assert!(e.contains("not a zstd frame"), "{e}");
    }
}
