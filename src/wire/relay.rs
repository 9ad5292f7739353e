//! The county ↔ village-office relay wire (no I/O): what the county sends a relay so that the
//! relay can answer its village's devices as the county would, and how the relay forwards
//! what devices left with it.
//!
//! A relay signs in upstream as an account of role [`Role::Relay`](super::Role), scoped to
//! one village. It mirrors the county's rows of that village as the county stores them (so
//! the county's own pull code, run over the mirror, gives a device at the office exactly what
//! the county would: the same sequence numbers, partial changes, histories and refusals), and
//! the village's sessions by their token hashes (never a password hash). Pushes a device
//! leaves at the office go up through `POST /api/v1/relay/push` with the device's own id,
//! lane and sequence numbers, so the county's watermarks decide as for a direct push.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Lane, PushRequest, RawFields};

/// On a relay's answer to a photo's `HEAD`: `1` when the county has the photo whole (the
/// relay forwarded it), so the phone counts it uploaded, not only held at the office.
pub const FORWARDED_HEADER: &str = "x-gridwalk-forwarded";

/// `GET /api/v1/relay/mirror?cursor=N&limit=M` (role RELAY): one page of the village's rows
/// changed after `cursor`, in the county's version order, and the village's accounts as they
/// stand now. Asked again with the answered `cursor` while `more`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorPage {
    /// The county database's generation (as `x-gridwalk-generation`): a relay holding another
    /// generation's rows drops its mirror and starts again from 0.
    pub generation: String,
    /// The county's change sequence this page reaches: every row of the village with a
    /// version at or below it is in this page or an earlier one. The next page's `cursor`.
    pub cursor: i64,
    /// Whether there is more after `cursor` (ask again at once).
    pub more: bool,
    /// Entities of the village with a version after the asked cursor, up to `cursor`, whole
    /// as the county stores them (data and per-field stamps).
    pub entities: Vec<MirrorEntity>,
    /// The whole status history of every record in `entities` (replaces the relay's).
    pub histories: Vec<MirrorHistory>,
    /// Refused pushed entries of the village's devices with a `seq` after the asked cursor,
    /// up to `cursor`.
    pub rejections: Vec<MirrorRejection>,
    /// The village's accounts that may sync at the office (its workers and its secretary),
    /// all of them, every page: the relay replaces its copy. No password hashes.
    pub accounts: Vec<MirrorAccount>,
    /// Every session of those accounts as the county holds it (revoked ones included, so a
    /// revocation reaches the relay with its next page). The relay replaces its copy.
    pub sessions: Vec<MirrorSession>,
    /// Which account each of the village's devices is enrolled to.
    pub devices: Vec<MirrorDevice>,
    /// The county's watermark of each lane of those devices: what the county already has.
    pub watermarks: Vec<MirrorWatermark>,
    /// The county settings a pull answers from (visit cadence, its change number, the
    /// deadline policy): key and stored value.
    pub settings: Vec<(String, String)>,
}

/// One row of `entities`, every column as stored.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorEntity {
    pub id: Uuid,
    pub kind: String,
    pub grid_id: String,
    pub grid_code: String,
    pub parent_id: Option<String>,
    pub status: Option<String>,
    pub urgency: Option<String>,
    pub category: Option<String>,
    pub author: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The entity's JSON, as stored.
    pub data: String,
    /// Its per-field stamps (`EntityMeta`), JSON as stored.
    pub meta: String,
    pub version: i64,
}

/// One row of `status_history`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorHistory {
    pub id: i64,
    pub record_id: Uuid,
    pub from_status: String,
    pub to_status: String,
    pub at: String,
    pub actor: String,
    pub note: Option<String>,
    pub version: Option<i64>,
}

/// One row of `push_rejections`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorRejection {
    pub seq: i64,
    pub device_id: Uuid,
    pub username: String,
    pub lane: String,
    pub entry_seq: i64,
    pub kind: String,
    pub record_id: String,
    pub op: String,
    pub error: String,
    pub message: String,
    pub field: Option<String>,
    pub entry: String,
    pub at: String,
}

/// An account that may sync at the office, without its password hash.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorAccount {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub scope_code: String,
    pub disabled: bool,
    pub created_at: String,
    /// A worker's grids (ids).
    pub grids: Vec<Uuid>,
}

/// One row of `sessions`: the token's hash, never the token.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorSession {
    pub token_hash: String,
    pub user_id: Uuid,
    pub device_id: String,
    pub created_at: String,
    pub expires_at: String,
    pub ends_at: String,
    pub revoked: bool,
}

/// One row of `devices`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorDevice {
    pub device_id: String,
    pub username: String,
    pub enrolled_at: String,
}

/// The county's watermark of one device lane.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorWatermark {
    pub device_id: Uuid,
    pub lane: Lane,
    pub seq: i64,
}

/// `POST /api/v1/relay/push` (role RELAY): a device's entries that it left at the office,
/// forwarded as the device pushed them (its id, lane and sequence numbers; the fields as
/// they came). `device_now` is the device's clock as the relay measured it (the relay's
/// clock now, less the skew it saw when the device pushed), so the county's skew correction
/// holds. Answered as a direct push (`PushResponse`, 409 gap, 422), and refused entries go
/// to the device's account as for a direct push. A device not enrolled to an account of the
/// relay's village is not found.
pub type RelayPushRequest = PushRequest<RawFields>;

/// The relay's own status, `GET /status.json` at the relay (the page `/` shows the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayStatus {
    /// The village's code.
    pub village: String,
    /// The county's address.
    pub upstream: String,
    /// Whether the last upstream exchange succeeded.
    pub uplink_up: bool,
    /// Entries held at the office, not yet acknowledged by the county.
    pub waiting_entries: u64,
    /// Photos held at the office, not yet complete at the county.
    pub waiting_photos: u64,
    /// The last upstream sync that completed (mirror and forwarding).
    pub last_upstream_sync: Option<DateTime<Utc>>,
    /// The county change sequence the mirror reaches.
    pub mirror_cursor: i64,
    /// Devices that pushed or pulled here today (China time).
    pub devices_seen_today: u64,
    /// The last upstream failure, in words.
    pub last_error: Option<String>,
}
