//! Sync wire types shared by the device and the server. No I/O.
//!
//! An [`OutboxEntry`] is one local write as the device recorded it, and exactly what a push
//! sends: the device's lane and dense sequence number, what it is about, the changed fields,
//! the server version the edit was based on, and when (by the device's clock) it was made.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::codes::coded_enum;
use crate::domain::model::EntityKind;

coded_enum!(
    /// The operation an outbox entry carries.
    Op, "operation" {
        Create = "CREATE", "新建", "Create";
        Update = "UPDATE", "修改", "Update";
        Transition = "TRANSITION", "状态变更", "Status change";
        Append = "APPEND", "追加", "Append";
    }
);

coded_enum!(
    /// Outbox lanes. Each has its own dense sequence so that emergencies can be pushed before
    /// a long backlog of routine records without leaving a gap in either lane.
    Lane, "outbox lane" {
        Urgent = "URGENT", "紧急", "Urgent";
        Normal = "NORMAL", "普通", "Normal";
    }
);

impl Lane {
    /// The lane an entry about `kind` goes into.
    pub fn for_kind(kind: EntityKind) -> Lane {
        match kind {
            EntityKind::Emergency | EntityKind::EmergencyReport => Lane::Urgent,
            _ => Lane::Normal,
        }
    }
}

/// One local write, waiting to be pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub lane: Lane,
    /// Dense per device and lane: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    pub kind: EntityKind,
    pub record_id: Uuid,
    pub op: Op,
    /// The changed fields and their new values (every field for a create or an append).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The server version of the record the edit was made on; 0 for a record the server
    /// has not seen.
    pub base_version: i64,
    /// When the edit was made, by the device's clock (the server corrects for skew).
    pub edited_at: DateTime<Utc>,
}
