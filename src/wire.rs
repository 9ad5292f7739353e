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

/// An outbox entry's changed fields, parsed: field name to new value.
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// An outbox entry's changed fields as JSON text, checked to be one object but not parsed
/// into values. A push travels this way: the device sends the text its outbox holds, and the
/// server, which only queues a push's entries, keeps them as they came; the fields are
/// parsed ([`Fields`]) when the entry is applied. In a burst of pushes, building and
/// re-serialising every field's value was a fifth of the server's work.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RawFields(Box<serde_json::value::RawValue>);

impl RawFields {
    /// `json` if it is one JSON object.
    pub fn from_json(json: String) -> Result<RawFields, serde_json::Error> {
        let raw = serde_json::value::RawValue::from_string(json)?;
        Self::object(raw)
    }

    fn object(raw: Box<serde_json::value::RawValue>) -> Result<RawFields, serde_json::Error> {
        if raw.get().starts_with('{') {
            Ok(RawFields(raw))
        } else {
            Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Other(raw.get().chars().next().map_or(
                    "nothing",
                    |c| match c {
                        '[' => "an array",
                        '"' => "a string",
                        'n' => "null",
                        't' | 'f' => "a boolean",
                        _ => "a number",
                    },
                )),
                &"an object of fields",
            ))
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl<'de> Deserialize<'de> for RawFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        RawFields::object(raw).map_err(serde::de::Error::custom)
    }
}

/// In the API's description: an object of fields (the text is kept as sent, not parsed).
#[cfg(feature = "server")]
impl utoipa::PartialSchema for RawFields {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Object)
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
            ))
            .description(Some(
                "The entry's changed fields: field name to new value (every field for a create \
                 or an append), as the record type's JSON has them. Received as one JSON object \
                 and kept as sent; each value is checked when the entry is applied, and a \
                 refused one comes back with a pull (`rejected`).",
            ))
            .into()
    }
}

#[cfg(feature = "server")]
impl utoipa::ToSchema for RawFields {}

impl PartialEq for RawFields {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// One local write, waiting to be pushed; its fields parsed ([`Fields`], the default) or as
/// text ([`RawFields`]).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "server",
    schema(description = "One local write of the device, as its outbox recorded it.")
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry<F = Fields> {
    pub lane: Lane,
    /// Dense per device and lane: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    pub kind: EntityKind,
    pub record_id: Uuid,
    pub op: Op,
    /// The changed fields and their new values (every field for a create or an append).
    pub fields: F,
    /// The server version of the record the edit was made on; 0 for a record the server
    /// has not seen.
    pub base_version: i64,
    /// When the edit was made, by the device's clock (the server corrects for skew).
    pub edited_at: DateTime<Utc>,
}

/// The protocol version this build speaks; the server refuses others with 426.
/// 2: pulls name their `base`, and event records changed since it come as partial changes.
/// 3: a push is acknowledged once received and applied just after; entries refused then
///    come down with the pull (`rejected`).
pub const PROTOCOL_VERSION: u32 = 3;
/// The header that carries it on every request.
pub const PROTOCOL_HEADER: &str = "x-gridwalk-protocol";
/// On every authenticated API answer: when the session ends if the device does not use it
/// again (RFC 3339, UTC, seconds). Each use slides it out.
pub const SESSION_EXPIRES_HEADER: &str = "x-gridwalk-session-expires";
/// On every authenticated API answer: when the session ends however often it is used; the
/// device must sign in again before then.
pub const SESSION_ENDS_HEADER: &str = "x-gridwalk-session-ends";
/// On every pull answer: the county database's generation, a random id replaced when the
/// database is restored from a backup. A cursor is a place in one generation's change
/// sequence; under another, the device pulls whole from 0.
pub const GENERATION_HEADER: &str = "x-gridwalk-generation";
/// Bytes per photo upload request: the phone's to the county or the office's relay, and the
/// relay's forwarding to the county.
pub const PHOTO_CHUNK: usize = 256 * 1024;

coded_enum!(
    /// What an account may do and see.
    Role, "role" {
        Admin = "ADMIN", "县级管理员", "County administrator";
        Town = "TOWN", "乡镇总网格长", "Town";
        Secretary = "SECRETARY", "村网格长", "Village secretary";
        Worker = "WORKER", "网格员", "Grid worker";
        Assignee = "ASSIGNEE", "承办部门", "Assignee";
        Relay = "RELAY", "村办中转站", "Village-office relay";
    }
);

impl Role {
    /// Roles that review records (accept, assign, reply, close) on the server.
    pub fn reviews(self) -> bool {
        matches!(self, Role::Admin | Role::Town | Role::Secretary)
    }
}

/// `POST /api/v1/auth/login`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    pub device_id: Uuid,
}

/// A grid an account works in.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRef {
    pub id: Uuid,
    pub code: String,
    pub name: String,
}

/// Who is signed in.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
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
    /// The village office's relay, where the county knows one for the account's village
    /// (the address the relay gave when it last synced with the county): the device syncs
    /// there when it answers, with the county otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    /// When the session ends if unused; each use slides it out.
    pub expires_at: DateTime<Utc>,
    /// When the session ends however often it is used (absent from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub account: Account,
    pub protocol: u32,
}

/// `PUT /api/v1/device/recovery`: the device's recovery secret (32 bytes, base64), which
/// seals its database key in the app's key file. The county never sees the key itself.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryStore {
    pub secret: String,
}

/// `POST /api/v1/device/recovery/release`: the device's recovery secret, released to its own
/// account signing in with its password from that device, and the new session.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryRelease {
    pub secret: String,
    pub session: LoginResponse,
}

/// `POST /api/v1/sync/push`: one lane's entries, in order (sent and received with
/// [`RawFields`]).
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "server",
    schema(description = "`POST /api/v1/sync/push`: one lane's entries, in order.")
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest<F = Fields> {
    pub device_id: Uuid,
    pub lane: Lane,
    /// The device's clock when it sent this: the server corrects edit times by the skew.
    pub device_now: DateTime<Utc>,
    pub entries: Vec<OutboxEntry<F>>,
}

impl OutboxEntry {
    /// The same entry with its fields as JSON text.
    pub fn to_raw(&self) -> OutboxEntry<RawFields> {
        let json = serde_json::to_string(&self.fields).expect("a map of JSON values");
        OutboxEntry {
            lane: self.lane,
            seq: self.seq,
            kind: self.kind,
            record_id: self.record_id,
            op: self.op,
            fields: RawFields::from_json(json).expect("a map serialises as an object"),
            base_version: self.base_version,
            edited_at: self.edited_at,
        }
    }
}

impl PushRequest {
    /// The same push with its entries' fields as JSON text.
    pub fn to_raw(&self) -> PushRequest<RawFields> {
        PushRequest {
            device_id: self.device_id,
            lane: self.lane,
            device_now: self.device_now,
            entries: self.entries.iter().map(OutboxEntry::to_raw).collect(),
        }
    }
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    pub lane: Lane,
    /// Every entry up to and including this sequence number is on the server: delete them.
    pub acked_through: u64,
    /// Entries received now. The server applies them just after, in order; one it refuses
    /// then comes down with the next pull (see [`PullResponse::rejected`]), as do the
    /// conflicts they make.
    pub queued: u32,
    /// Entries at or below the watermark, answered as already received.
    pub replayed: u32,
    /// Only a village-office relay answers this: every entry up to and including this
    /// sequence number is held at the office (已交村办) and will be forwarded to the county.
    /// The device keeps them in its outbox, marked held, until `acked_through` (the county's
    /// own acknowledgement, relayed back) covers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_through: Option<u64>,
}

/// One entity as it stands on the server, in a pull page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The server sequence number of its last change (its version).
    pub seq: i64,
    pub kind: EntityKind,
    pub id: Uuid,
    /// The whole entity as JSON; when `partial`, only the fields changed after the pull's
    /// `base` (an event record the device already holds as of that base).
    pub data: serde_json::Value,
    /// `data` holds only the changed fields: lay them over the device's copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// For event records: the status changes after the first `history_kept` ones (the whole
    /// history when that is 0); absent when a partial change brings no new status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<crate::domain::model::StatusChange>>,
    /// How many of the record's earliest status changes the device keeps (it holds them as
    /// of the base) before the ones in `history`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_kept: u32,
}

impl Change {
    /// A change that brings its entity whole, with no status history.
    pub fn whole(seq: i64, kind: EntityKind, id: Uuid, data: serde_json::Value) -> Change {
        Change {
            seq,
            kind,
            id,
            data,
            partial: false,
            history: None,
            history_kept: 0,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `GET /api/v1/sync/pull?cursor=N&base=B&limit=M`: the changes after `cursor`; entities
/// the device holds as of `base` (the cursor at which its last complete pull ended) may come
/// as partial changes relative to it. `GET /api/v1/sync/pull/stream` sends several of these,
/// one a line.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// In version order. On the wire they travel column-wise by kind (see [`columns`]).
    #[serde(with = "columns")]
    #[cfg_attr(feature = "server", schema(value_type = columns::PullChanges))]
    pub changes: Vec<Change>,
    /// Pass this as the next cursor.
    pub cursor: i64,
    /// The base the partial changes are relative to (pass it again while `more`).
    #[serde(default)]
    pub base: i64,
    /// More changes wait after this page.
    pub more: bool,
    /// Visit cadence per tag, sent with the first page (cursor 0) and with the last page of a
    /// pull whose cursor is before the county's last change of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence: Option<Vec<(crate::domain::codes::Tag, u32)>>,
    /// This device's pushed entries the server took but could not apply (checked when it
    /// applied them, after the push was acknowledged), after `cursor` and up to this page's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
}

/// A pushed entry the server received but refused when it applied it: what was wrong and
/// where. The entry itself is kept on the server (county staff can see it); the device keeps
/// its own copy of the record and shows the worker why it did not reach the county.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// The server sequence number of the refusal (pulls deliver it once, in order).
    pub seq: i64,
    pub lane: Lane,
    /// The entry's outbox sequence number on the device.
    pub entry_seq: u64,
    pub kind: EntityKind,
    pub record_id: Uuid,
    pub op: Op,
    /// A stable machine code, as in [`ApiError::error`]: `invalid`, `not_found`, `conflict`...
    pub error: String,
    /// What was wrong, in words.
    pub message: String,
    /// Where, as a JSON path into the entry (`fields.location.lon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// When the server refused it.
    pub at: DateTime<Utc>,
}

/// Every error answer: what was wrong and, where it applies, where.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// A stable machine code: `unauthorized`, `forbidden`, `not_found`, `invalid`, `gap`, ...
    pub error: String,
    /// What was wrong, in words.
    pub message: String,
    /// Where: a JSON path such as `entries[3].fields.location.lon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a gap: the sequence number the server expects next; for `upgrade_required`, the
    /// protocol version the server speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
}

/// The wire form of a pull page's changes: grouped by kind, and within a kind column by
/// column, so that each field's name is written once per page instead of once per entity,
/// and values of one field (ids, times, codes, coordinates) stand side by side for the
/// compressor. Lossless: decoding gives back every change as it was, in version order.
///
/// `{"HOUSE": {"seq": [..], "id": [..], "data": TABLE, "partial": [row, ..]?,
///   "history": [[[from, to, at, actor, note], ..] or null, ..]?, "history_kept": [..]?}, ..}`
///
/// A TABLE holds n JSON objects: `keys` every row has with their `cols` of n values, `nested`
/// tables for keys whose value is an object in every row, and per row the `rest` (the keys
/// not every row has), left out when every rest is empty.
pub mod columns;
pub mod relay;

/// An API error's `message` is Chinese with the English after it in parentheses
/// (`隐患描述须填写 (Description is required)`): its two parts, for a screen that shows the
/// reader's language only. A message not in that form is all Chinese part.
pub fn message_parts(m: &str) -> (&str, Option<&str>) {
    use crate::domain::labels::has_chinese;
    let Some(body) = m.strip_suffix(')') else {
        return (m, None);
    };
    // The `(` that the last `)` closes (the English may hold parentheses of its own).
    let mut depth = 0usize;
    for (i, c) in body.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' if depth > 0 => depth -= 1,
            '(' => {
                let (zh, en) = (body[..i].trim_end(), &body[i + 1..]);
                return if has_chinese(zh) && !has_chinese(en) && !en.is_empty() {
                    (zh, Some(en))
                } else {
                    (m, None)
                };
            }
            _ => {}
        }
    }
    (m, None)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::domain::lifecycle::Status;
    use crate::domain::model::StatusChange;

    fn change(seq: i64, kind: EntityKind, data: serde_json::Value) -> Change {
        Change::whole(seq, kind, Uuid::now_v7(), data)
    }

    /// A page of every shape the column layout handles, with fixed ids.
    fn sample_page() -> PullResponse {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 8, 0, 0).unwrap();
        let mut hazard = change(
            5,
            EntityKind::Hazard,
            json!({"status": "REPORTED", "location": {"lat": 28.05, "lon": 116.4, "accuracy_m": null},
                   "photos": [], "owner": null}),
        );
        hazard.history = Some(vec![StatusChange {
            record_id: hazard.id,
            from: Status::Reported,
            to: Status::Accepted,
            at,
            actor: "admin".into(),
            note: Some("收到".into()),
        }]);
        let mut moved = change(9, EntityKind::Hazard, json!({"status": "ACCEPTED"}));
        moved.partial = true;
        moved.history = Some(vec![]);
        moved.history_kept = 2;
        let mut page = PullResponse {
            changes: vec![
                change(
                    1,
                    EntityKind::House,
                    json!({"number": "1", "location": {"lat": 1.5}}),
                ),
                hazard,
                change(
                    7,
                    EntityKind::House,
                    json!({"number": "2", "location": null, "extra": [1, 2]}),
                ),
                moved,
                change(11, EntityKind::Household, json!({})),
                change(
                    12,
                    EntityKind::PatrolPoints,
                    json!({"points": [
                        {"at": "2026-07-17T14:58:46Z", "lon": 116.384441, "lat": 28.033409, "accuracy_m": 7.0},
                        {"at": "2026-07-17T15:00:32.125Z", "lon": 116.384236, "lat": -28.032796, "accuracy_m": 5.5}]}),
                ),
                change(
                    13,
                    EntityKind::PatrolPoints,
                    json!({"points": [{"at": "2026-07-17T14:58:46Z", "lon": 116.3844411234, "lat": 28.0}]}),
                ),
                change(
                    14,
                    EntityKind::PatrolPoints,
                    json!({"points": [{"at": "2026-07-17T14:58:46Z", "lon": 116.5, "lat": 28.25}]}),
                ),
                // A column of objects goes as a nested table.
                change(
                    15,
                    EntityKind::Person,
                    json!({"name": "甲", "home": {"lat": 1.0}}),
                ),
                change(
                    16,
                    EntityKind::Person,
                    json!({"name": "乙", "home": {"lat": 2.0, "lon": 3.0}}),
                ),
            ],
            cursor: 14,
            base: 3,
            more: true,
            cadence: None,
            rejected: Vec::new(),
        };
        for (i, c) in page.changes.iter_mut().enumerate() {
            c.id = Uuid::from_u128(0x019a_0000_0000_7000_8000_0000_0000_0000 + i as u128);
            for h in c.history.iter_mut().flatten() {
                h.record_id = c.id;
            }
        }
        page
    }

    #[test]
    fn a_page_goes_column_wise_and_comes_back_as_it_was() {
        let page = sample_page();
        let text = serde_json::to_string(&page).unwrap();
        assert!(text.contains(r#""keys":["location","number"]"#), "{text}");
        // Tracks that come back exactly go compact; one with finer coordinates goes as it is.
        assert!(text.contains(r#""x":[116384441,-205]"#), "{text}");
        assert!(text.contains("116.3844411234"), "{text}");
        let back: PullResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(back, page);
    }

    /// The page layout, byte for byte, as devices already in the field read it (taken from
    /// the encoder before it stopped copying the page).
    #[test]
    fn the_page_layout_is_the_one_devices_already_read() {
        let golden = r#"{"changes":{"HAZARD":{"seq":[5,9],"id":["019a0000-0000-7000-8000-000000000001","019a0000-0000-7000-8000-000000000003"],"data":{"keys":["status"],"cols":[["REPORTED","ACCEPTED"]],"rest":[{"location":{"accuracy_m":null,"lat":28.05,"lon":116.4},"owner":null,"photos":[]},{}]},"partial":[1],"history":[[["REPORTED","ACCEPTED","2026-11-29T08:00:00Z","admin","收到"]],[]],"history_kept":[0,2]},"HOUSE":{"seq":[1,7],"id":["019a0000-0000-7000-8000-000000000000","019a0000-0000-7000-8000-000000000002"],"data":{"keys":["location","number"],"cols":[[{"lat":1.5},null],["1","2"]],"rest":[{},{"extra":[1,2]}]}},"HOUSEHOLD":{"seq":[11],"id":["019a0000-0000-7000-8000-000000000004"],"data":{}},"PATROL_POINTS":{"seq":[12,13,14],"id":["019a0000-0000-7000-8000-000000000005","019a0000-0000-7000-8000-000000000006","019a0000-0000-7000-8000-000000000007"],"data":{"rest":[{"points~":{"a":[7.0,5.5],"t":[1784300326000,106125],"x":[116384441,-205],"y":[28033409,-56066205]}},{"points":[{"at":"2026-07-17T14:58:46Z","lat":28.0,"lon":116.3844411234}]},{"points~":{"a":null,"t":[1784300326000],"x":[116500000],"y":[28250000]}}]}},"PERSON":{"seq":[15,16],"id":["019a0000-0000-7000-8000-000000000008","019a0000-0000-7000-8000-000000000009"],"data":{"keys":["name"],"cols":[["甲","乙"]],"nested":{"home":{"keys":["lat"],"cols":[[1.0,2.0]],"rest":[{},{"lon":3.0}]}}}}},"cursor":14,"base":3,"more":true}"#;
        assert_eq!(serde_json::to_string(&sample_page()).unwrap(), golden);
    }

    #[test]
    fn a_column_that_does_not_fit_its_rows_is_refused() {
        let bad = r#"{"changes": {"HOUSE": {"seq": [1, 2], "id": ["019a18aa-3800-7c54-88fd-c3ece617cfbe", "019a18aa-3800-7c54-88fd-c3ece617cfbf"],
                      "data": {"keys": ["number"], "cols": [["1"]]}}}, "cursor": 2, "more": false}"#;
        let err = serde_json::from_str::<PullResponse>(bad).unwrap_err();
        assert!(err.to_string().contains("column number"), "{err}");
    }

    #[test]
    fn an_api_message_splits_into_its_chinese_and_english() {
        assert_eq!(
            message_parts("隐患描述须填写 (Description is required)"),
            ("隐患描述须填写", Some("Description is required"))
        );
        assert_eq!(
            message_parts("证件号码校验码不对 (check digit is 1 (expected X))"),
            ("证件号码校验码不对", Some("check digit is 1 (expected X)"))
        );
        assert_eq!(
            message_parts("只有中文（全角括号）"),
            ("只有中文（全角括号）", None)
        );
        assert_eq!(
            message_parts("plain English (no Chinese)"),
            ("plain English (no Chinese)", None)
        );
    }
}
