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

/// The protocol version this build speaks; the server refuses others with 426.
pub const PROTOCOL_VERSION: u32 = 1;
/// The header that carries it on every request.
pub const PROTOCOL_HEADER: &str = "x-gridwalk-protocol";

coded_enum!(
    /// What an account may do and see.
    Role, "role" {
        Admin = "ADMIN", "县级管理员", "County administrator";
        Town = "TOWN", "乡镇总网格长", "Town";
        Secretary = "SECRETARY", "村网格长", "Village secretary";
        Worker = "WORKER", "网格员", "Grid worker";
    }
);

impl Role {
    /// Roles that review records (accept, assign, reply, close) on the server.
    pub fn reviews(self) -> bool {
        !matches!(self, Role::Worker)
    }
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    pub device_id: Uuid,
}

/// A grid an account works in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRef {
    pub id: Uuid,
    pub code: String,
    pub name: String,
}

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// The area code the account covers: county (6 digits), town (9), village (12) or, for a
    /// worker, the village of their grids.
    pub scope_code: String,
    /// A worker's own grids (empty for other roles: their scope is the area code).
    pub grids: Vec<GridRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
    pub protocol: u32,
}

/// `POST /api/v1/sync/push`: one lane's entries, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest {
    pub device_id: Uuid,
    pub lane: Lane,
    /// The device's clock when it sent this: the server corrects edit times by the skew.
    pub device_now: DateTime<Utc>,
    pub entries: Vec<OutboxEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    pub lane: Lane,
    /// Every entry up to and including this sequence number is on the server: delete them.
    pub acked_through: u64,
    /// Entries applied now.
    pub applied: u32,
    /// Entries at or below the watermark, answered as already applied.
    pub replayed: u32,
    /// Conflicts this batch made (their records come down with the next pull).
    pub conflicts: u32,
}

/// One entity as it stands on the server, in a pull page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The server sequence number of its last change (its version).
    pub seq: i64,
    pub kind: EntityKind,
    pub id: Uuid,
    /// The whole entity as JSON.
    pub data: serde_json::Value,
    /// For event records: the whole status history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<crate::domain::model::StatusChange>>,
}

/// `GET /api/v1/sync/pull?cursor=N&limit=M`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub changes: Vec<Change>,
    /// Pass this as the next cursor.
    pub cursor: i64,
    /// More changes wait after this page.
    pub more: bool,
    /// Visit cadence per tag, sent with the first page (cursor 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence: Option<Vec<(crate::domain::codes::Tag, u32)>>,
}

/// Every error answer: what was wrong and, where it applies, where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// A stable machine code: `unauthorized`, `forbidden`, `not_found`, `invalid`, `gap`, ...
    pub error: String,
    /// What was wrong, in words.
    pub message: String,
    /// Where: a JSON path such as `entries[3].fields.location.lon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a gap: the sequence number the server expects next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
}
