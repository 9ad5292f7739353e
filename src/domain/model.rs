//! The things a grid worker records: houses, households and people, visits, and the event
//! records of every domain with their append-only children.
//!
//! Each record type serialises to one flat JSON object (its common header flattened in), which
//! is what the store keeps and what field-level sync diffs. Every type validates itself and
//! names the field at fault.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::codes::*;
use super::geo::{GeoPoint, TrackPoint};
use super::lifecycle::{Status, lifecycle};
use super::validate::{IdNumber, Phone, Problem, ValidationErrors, Validator};

pub use super::task::Task;

/// A new id, made where the record is created: UUIDv7, so ids sort by creation time.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

coded_enum!(
    /// What an outbox entry or a change is about.
    EntityKind, "entity kind" {
        House = "HOUSE", "房屋", "House";
        Household = "HOUSEHOLD", "户", "Household";
        Person = "PERSON", "人员", "Person";
        Visit = "VISIT", "入户走访", "Visit";
        Opinion = "OPINION", "社情民意", "Public opinion";
        Dispute = "DISPUTE", "矛盾纠纷", "Dispute";
        Patrol = "PATROL", "巡防日志", "Patrol";
        Hazard = "HAZARD", "安全隐患", "Safety hazard";
        SpecialPop = "SPECIAL_POP", "特殊人群服务", "Special population service";
        Emergency = "EMERGENCY", "突发事件", "Emergency";
        Publicity = "PUBLICITY", "政策宣传", "Policy publicity";
        Livelihood = "LIVELIHOOD", "民生服务", "Livelihood service";
        Other = "OTHER", "其他", "Other";
        MediationSession = "MEDIATION_SESSION", "调解记录", "Mediation session";
        EmergencyReport = "EMERGENCY_REPORT", "事件报告", "Emergency report";
        PatrolPoints = "PATROL_POINTS", "巡防轨迹", "Patrol track points";
        Photo = "PHOTO", "照片", "Photo";
        Reply = "REPLY", "答复", "Reply";
        Audit = "AUDIT", "审计", "Audit entry";
        Grid = "GRID", "网格", "Grid";
        Conflict = "CONFLICT", "同步冲突", "Sync conflict";
        Task = "TASK", "任务", "Task";
    }
);

impl EntityKind {
    /// The entity kind of an event record of `domain`.
    pub fn of_domain(domain: Domain) -> EntityKind {
        match domain {
            Domain::Opinion => EntityKind::Opinion,
            Domain::Dispute => EntityKind::Dispute,
            Domain::Patrol => EntityKind::Patrol,
            Domain::Hazard => EntityKind::Hazard,
            Domain::SpecialPop => EntityKind::SpecialPop,
            Domain::Emergency => EntityKind::Emergency,
            Domain::Publicity => EntityKind::Publicity,
            Domain::Livelihood => EntityKind::Livelihood,
            Domain::Other => EntityKind::Other,
        }
    }

    /// The domain, for event records.
    pub fn domain(self) -> Option<Domain> {
        Domain::from_code(self.code()).ok()
    }

    /// Append-only kinds never conflict: they are only ever created.
    pub fn is_append_only(self) -> bool {
        matches!(
            self,
            EntityKind::Visit
                | EntityKind::MediationSession
                | EntityKind::EmergencyReport
                | EntityKind::PatrolPoints
                | EntityKind::Photo
                | EntityKind::Reply
                | EntityKind::Audit
        )
    }

    /// Event records (the kinds that have a lifecycle).
    pub fn is_record(self) -> bool {
        self.domain().is_some()
    }
}

/// The longest name (characters).
pub const NAME_MAX: usize = 40;
/// The longest free text: a description, notes, a report (characters).
pub const TEXT_MAX: usize = 2000;
/// The longest short text: an address, a title, a place (characters).
pub const SHORT_MAX: usize = 200;

/// 实有房屋.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct House {
    pub id: Uuid,
    pub grid_id: Uuid,
    /// House number (门牌号).
    pub number: String,
    pub address: String,
    #[serde(rename = "use")]
    pub use_: HouseUse,
    pub location: Option<GeoPoint>,
}

impl House {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.text("number", &self.number, 40);
        v.text("address", &self.address, SHORT_MAX);
        if let Some(p) = &self.location {
            v.nested("location", p.validate_place());
        }
        v.finish()
    }
}

/// A household (户).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Household {
    pub id: Uuid,
    pub grid_id: Uuid,
    pub house_id: Option<Uuid>,
    /// The head's id, once the head is among the members.
    pub head_id: Option<Uuid>,
    pub address: String,
    pub location: Option<GeoPoint>,
}

impl Household {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.text("address", &self.address, SHORT_MAX);
        if let Some(p) = &self.location {
            v.nested("location", p.validate_place());
        }
        v.finish()
    }
}

/// A person (实有人口), member of one household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: Uuid,
    pub household_id: Uuid,
    pub name: String,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub id_type: IdType,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub person_type: PersonType,
    pub residence: ResidenceStatus,
    pub status: PersonStatus,
    pub relation: Relation,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// When the person moved out or died (with `status` MOVED_OUT or DECEASED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_on: Option<NaiveDate>,
    /// Where a floating person (流动人口) is registered, as the worker was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl Person {
    pub fn validate(&self, today: NaiveDate) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.text("name", &self.name, NAME_MAX);
        if let Some(b) = self.birth_date {
            v.not_future_date("birth_date", b, today);
        }
        if let Some(n) = &self.id_number {
            if self.id_type == IdType::ResidentCard {
                match IdNumber::parse(n, today) {
                    Ok(id) => {
                        if let Some(b) = self.birth_date
                            && b != id.birth_date()
                        {
                            v.error(
                                "birth_date",
                                Problem::BirthDateMismatch {
                                    given: b,
                                    from_id: id.birth_date(),
                                },
                            );
                        }
                    }
                    Err(e) => v.error("id_number", Problem::IdNumber(e)),
                }
            } else {
                v.text("id_number", n, 40);
            }
        }
        if let Some(p) = &self.phone
            && Phone::parse(p).is_err()
        {
            v.error("phone", Problem::Phone { typed: p.clone() });
        }
        let mut tags = self.tags.clone();
        tags.sort();
        tags.dedup();
        if tags.len() != self.tags.len() {
            v.error("tags", Problem::DuplicateTag);
        }
        if let Some(d) = self.status_on {
            v.not_future_date("status_on", d, today);
        }
        v.optional_text("origin", self.origin.as_deref(), SHORT_MAX);
        v.finish()
    }

    /// Checks a person the worker is adding to a household, as `how` says, beside
    /// [`Person::validate`]: a member or head by their ID number, a newborn by name, sex and
    /// birth date (relation child or grandchild), a floating person by where they are from.
    pub fn check_registration(
        &self,
        how: Registration,
        today: NaiveDate,
    ) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        match how {
            Registration::Member | Registration::Head => {
                if self
                    .id_number
                    .as_deref()
                    .is_none_or(|n| n.trim().is_empty())
                {
                    v.error("id_number", Problem::Required);
                }
            }
            Registration::Newborn => {
                if self.birth_date.is_none() {
                    v.error("birth_date", Problem::Required);
                }
                if !matches!(
                    self.relation,
                    Relation::Son | Relation::Daughter | Relation::Grandchild
                ) {
                    v.error("relation", Problem::NewbornRelation);
                }
            }
            Registration::Floating => {
                if self.origin.as_deref().is_none_or(|o| o.trim().is_empty()) {
                    v.error("origin", Problem::Required);
                }
            }
        }
        match (self.validate(today), v.finish()) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(mut a), Err(b)) => {
                // One message per field: the registration's own (a missing value) first.
                a.errors
                    .retain(|x| !b.errors.iter().any(|y| y.field == x.field));
                let mut all = b;
                all.errors.extend(a.errors);
                Err(all)
            }
        }
    }
}

/// How a person comes into a household's register on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registration {
    /// A resident with a 居民身份证 number.
    Member,
    /// A baby with no ID number yet.
    Newborn,
    /// 流动人口: living here, registered elsewhere.
    Floating,
    /// The head of a new household.
    Head,
}

impl Person {
    /// Age in whole years on `today`, when the birth date is known.
    pub fn age(&self, today: NaiveDate) -> Option<u32> {
        self.birth_date.and_then(|b| today.years_since(b))
    }
}

/// 入户走访: append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: Uuid,
    pub household_id: Uuid,
    pub grid_id: Uuid,
    pub author: String,
    pub visited_on: NaiveDate,
    pub purpose: VisitPurpose,
    pub notes: String,
    /// Set when the worker agrees a date sooner than the cadence would give.
    pub next_due: Option<NaiveDate>,
    pub location: Option<GeoPoint>,
    pub created_at: DateTime<Utc>,
}

impl Visit {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.not_future_date("visited_on", self.visited_on, super::cst::today(now));
        v.optional_text("notes", Some(&self.notes), TEXT_MAX);
        if let Some(n) = self.next_due
            && n < self.visited_on
        {
            v.error(
                "next_due",
                Problem::Before {
                    value: n.to_string(),
                    other: "visited_on".into(),
                    other_value: self.visited_on.to_string(),
                },
            );
        }
        if let Some(p) = &self.location {
            v.nested("location", p.validate_place());
        }
        v.finish()
    }
}

/// What every event record has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    pub id: Uuid,
    pub grid_id: Uuid,
    /// The worker's username.
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub status: Status,
    pub urgency: Urgency,
    pub location: Option<GeoPoint>,
    /// SHA-256 (hex) of each photo.
    #[serde(default)]
    pub photos: Vec<String>,
    /// The patrol during which it was found, if any.
    #[serde(default)]
    pub patrol_id: Option<Uuid>,
    /// Supervision (督办) the village, town or county put on the matter; only the county's
    /// side sets it (absent means none).
    #[serde(default, skip_serializing_if = "Supervision::is_none")]
    pub supervision: Supervision,
    /// The household it is about, when the worker reported it from the household's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub household_id: Option<Uuid>,
}

impl Common {
    /// A header for a new record of `domain`, in its initial status.
    pub fn new(domain: Domain, grid_id: Uuid, author: &str, now: DateTime<Utc>) -> Common {
        Common {
            id: new_id(),
            grid_id,
            author: author.to_owned(),
            created_at: now,
            status: lifecycle(domain).initial,
            urgency: Urgency::Normal,
            location: None,
            photos: Vec::new(),
            patrol_id: None,
            supervision: Supervision::None,
            household_id: None,
        }
    }

    fn validate(&self, domain: Domain, v: &mut Validator, now: DateTime<Utc>) {
        v.not_future_time("created_at", self.created_at, now);
        v.text("author", &self.author, 64);
        if !lifecycle(domain).statuses().contains(&self.status) {
            v.error(
                "status",
                Problem::NotInLifecycle {
                    status: self.status,
                    domain,
                },
            );
        }
        if let Some(p) = &self.location {
            v.nested("location", p.validate_place());
        }
        for (i, h) in self.photos.iter().enumerate() {
            if !is_sha256_hex(h) {
                v.error(format!("photos[{i}]"), Problem::PhotoDigest);
            }
        }
    }
}

/// The photo types accepted anywhere (device, server, dashboard): rasters a browser shows
/// and that carry no script. SVG, HTML and anything else are refused.
pub const PHOTO_MIMES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// The MIME type of a photo from its first bytes (never from a declared type or a file
/// name); `None` if it is not one of [`PHOTO_MIMES`].
pub fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() > 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A record type of one of the event domains.
pub trait EventRecord: Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug {
    fn domain(&self) -> Domain;
    fn common(&self) -> &Common;
    fn common_mut(&mut self) -> &mut Common;
    /// The category code, for lists and queries.
    fn category_code(&self) -> &'static str;
    /// A one-line summary for lists.
    fn summary(&self) -> &str;
    fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors>;
}

/// 安全隐患.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hazard {
    #[serde(flatten)]
    pub common: Common,
    pub category: HazardCategory,
    pub severity: Severity,
    pub description: String,
    /// Where, in words (e.g. "3号楼一单元楼道").
    #[serde(default)]
    pub place: String,
    /// Who must rectify it, once known.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub due_date: Option<NaiveDate>,
}

/// 社情民意.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opinion {
    #[serde(flatten)]
    pub common: Common,
    pub category: OpinionCategory,
    pub content: String,
    /// The resident who raised it, if they want to be named.
    #[serde(default)]
    pub raised_by: Option<String>,
    /// The 三议四步 deliberation track, when the matter goes to the village's deliberation.
    #[serde(default)]
    pub deliberation: Option<DeliberationStage>,
    #[serde(default)]
    pub deliberation_notes: Option<String>,
}

/// A party (当事人) to a dispute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub role: PartyRole,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub person_id: Option<Uuid>,
}

/// 回访: follow-up after a dispute ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub on: NaiveDate,
    pub satisfaction: Satisfaction,
    #[serde(default)]
    pub notes: String,
}

/// 矛盾纠纷. Mediation sessions are appended separately ([`MediationSession`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    #[serde(flatten)]
    pub common: Common,
    pub category: DisputeCategory,
    pub summary: String,
    pub parties: Vec<Party>,
    #[serde(default)]
    pub follow_up: Option<FollowUp>,
}

/// 巡防日志. Track fixes are appended separately ([`PatrolPoints`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patrol {
    #[serde(flatten)]
    pub common: Common,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub notes: String,
    /// Kept up to date from the track by the store, in metres.
    #[serde(default)]
    pub distance_m: f64,
}

/// 突发事件. Reports (初报, 续报, 终报) are appended separately ([`EmergencyReport`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emergency {
    #[serde(flatten)]
    pub common: Common,
    pub category: EmergencyCategory,
    pub level: EmergencyLevel,
    pub title: String,
    pub occurred_at: DateTime<Utc>,
}

/// The other domains (special populations, publicity, livelihood, other): the common lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(flatten)]
    pub common: Common,
    pub domain: Domain,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub satisfaction: Option<Satisfaction>,
    /// 特殊人群服务: the person served, from the worker's register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_person_id: Option<Uuid>,
    /// 特殊人群服务: the service given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceKind>,
    /// 政策宣传: where it was held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// 政策宣传: how many people heard it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<u32>,
    /// 民生服务: the matter handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matter: Option<LivelihoodMatter>,
}

/// The most people one 政策宣传 session is recorded as reaching.
pub const AUDIENCE_MAX: u32 = 100_000;

impl Event {
    /// A record of one of the other domains with only its title and content.
    pub fn new(common: Common, domain: Domain, title: String, content: String) -> Event {
        Event {
            common,
            domain,
            title,
            content,
            satisfaction: None,
            served_person_id: None,
            service: None,
            place: None,
            audience: None,
            matter: None,
        }
    }

    /// [`EventRecord::validate`], and what a new record of its domain must name to be
    /// triaged: the person served and the service (特殊人群服务), the place and the audience
    /// (政策宣传), the matter (民生服务). Records filed before these fields existed are only
    /// held to `validate`.
    pub fn validate_new(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors> {
        let base = self.validate(now).err();
        let mut v = Validator::new();
        match self.domain {
            Domain::SpecialPop => {
                if self.served_person_id.is_none() {
                    v.error("served_person_id", Problem::NotChosen);
                }
                if self.service.is_none() {
                    v.error("service", Problem::NotChosen);
                }
            }
            Domain::Publicity => {
                if self.place.as_deref().is_none_or(|p| p.trim().is_empty()) {
                    v.error("place", Problem::Required);
                }
                if self.audience.is_none() {
                    v.error("audience", Problem::Required);
                }
            }
            Domain::Livelihood if self.matter.is_none() => {
                v.error("matter", Problem::NotChosen);
            }
            _ => {}
        }
        match (base, v.finish()) {
            (None, more) => more,
            (Some(mut all), Err(more)) => {
                all.errors.extend(more.errors);
                Err(all)
            }
            (Some(all), Ok(())) => Err(all),
        }
    }
}

macro_rules! event_record {
    ($t:ty, $domain:expr, $cat:expr, $summary:expr, |$s:ident, $v:ident, $now:ident| $body:block) => {
        impl EventRecord for $t {
            fn domain(&self) -> Domain {
                let f: fn(&$t) -> Domain = $domain;
                f(self)
            }
            fn common(&self) -> &Common {
                &self.common
            }
            fn common_mut(&mut self) -> &mut Common {
                &mut self.common
            }
            fn category_code(&self) -> &'static str {
                let f: fn(&$t) -> &'static str = $cat;
                f(self)
            }
            fn summary(&self) -> &str {
                let f: fn(&$t) -> &str = $summary;
                f(self)
            }
            fn validate(&self, $now: DateTime<Utc>) -> Result<(), ValidationErrors> {
                let $s = self;
                let mut $v = Validator::new();
                $s.common.validate(self.domain(), &mut $v, $now);
                $body
                $v.finish()
            }
        }
    };
}

event_record!(
    Hazard,
    |_| Domain::Hazard,
    |s| s.category.code(),
    |s| &s.description,
    |s, v, _now| {
        v.text("description", &s.description, TEXT_MAX);
        v.optional_text("place", Some(&s.place), SHORT_MAX);
        v.optional_text("owner", s.owner.as_deref(), NAME_MAX);
    }
);

event_record!(
    Opinion,
    |_| Domain::Opinion,
    |s| s.category.code(),
    |s| &s.content,
    |s, v, _now| {
        v.text("content", &s.content, TEXT_MAX);
        v.optional_text("raised_by", s.raised_by.as_deref(), NAME_MAX);
        v.optional_text(
            "deliberation_notes",
            s.deliberation_notes.as_deref(),
            TEXT_MAX,
        );
    }
);

event_record!(
    Dispute,
    |_| Domain::Dispute,
    |s| s.category.code(),
    |s| &s.summary,
    |s, v, now| {
        v.text("summary", &s.summary, TEXT_MAX);
        if s.parties.is_empty() {
            v.error("parties", Problem::NoParty);
        }
        for (i, p) in s.parties.iter().enumerate() {
            v.text(&format!("parties[{i}].name"), &p.name, NAME_MAX);
            if let Some(ph) = &p.phone
                && Phone::parse(ph).is_err()
            {
                v.error(
                    format!("parties[{i}].phone"),
                    Problem::Phone { typed: ph.clone() },
                );
            }
        }
        if let Some(f) = &s.follow_up {
            v.not_future_date("follow_up.on", f.on, super::cst::today(now));
        }
    }
);

event_record!(
    Patrol,
    |_| Domain::Patrol,
    |_| "PATROL",
    |s| &s.notes,
    |s, v, now| {
        v.not_future_time("started_at", s.started_at, now);
        if let Some(e) = s.ended_at
            && e < s.started_at
        {
            let cst = |t: DateTime<Utc>| {
                (t + chrono::Duration::hours(8))
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            };
            v.error(
                "ended_at",
                Problem::Before {
                    value: cst(e),
                    other: "started_at".into(),
                    other_value: cst(s.started_at),
                },
            );
        }
        if !s.distance_m.is_finite() || s.distance_m < 0.0 {
            v.error("distance_m", Problem::BadDistance);
        }
        v.optional_text("notes", Some(&s.notes), TEXT_MAX);
    }
);

event_record!(
    Emergency,
    |_| Domain::Emergency,
    |s| s.category.code(),
    |s| &s.title,
    |s, v, now| {
        v.text("title", &s.title, SHORT_MAX);
        v.not_future_time("occurred_at", s.occurred_at, now);
    }
);

event_record!(Event, |s| s.domain, |_| "", |s| &s.title, |s, v, _now| {
    if matches!(
        s.domain,
        Domain::Opinion | Domain::Dispute | Domain::Patrol | Domain::Hazard | Domain::Emergency
    ) {
        v.error("domain", Problem::OwnRecordType { domain: s.domain });
    }
    v.text("title", &s.title, SHORT_MAX);
    v.text("content", &s.content, TEXT_MAX);
    // Each domain's own fields: checked when given, refused on another domain's record.
    let own = |field: &str, given: bool, domain: Domain, v: &mut Validator| {
        if given && s.domain != domain {
            v.error(field, Problem::NotForDomain { domain: s.domain });
        }
    };
    own(
        "served_person_id",
        s.served_person_id.is_some(),
        Domain::SpecialPop,
        &mut v,
    );
    own("service", s.service.is_some(), Domain::SpecialPop, &mut v);
    own("place", s.place.is_some(), Domain::Publicity, &mut v);
    own("audience", s.audience.is_some(), Domain::Publicity, &mut v);
    own("matter", s.matter.is_some(), Domain::Livelihood, &mut v);
    v.optional_text("place", s.place.as_deref(), SHORT_MAX);
    if let Some(n) = s.audience
        && !(1..=AUDIENCE_MAX).contains(&n)
    {
        v.error(
            "audience",
            Problem::Headcount {
                value: n.into(),
                max: AUDIENCE_MAX,
            },
        );
    }
});

/// A record of any domain, for code that handles records generically (store, sync, server).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyRecord {
    Hazard(Hazard),
    Opinion(Opinion),
    Dispute(Dispute),
    Patrol(Patrol),
    Emergency(Emergency),
    Event(Event),
}

macro_rules! any_dispatch {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            AnyRecord::Hazard($r) => $e,
            AnyRecord::Opinion($r) => $e,
            AnyRecord::Dispute($r) => $e,
            AnyRecord::Patrol($r) => $e,
            AnyRecord::Emergency($r) => $e,
            AnyRecord::Event($r) => $e,
        }
    };
}

impl AnyRecord {
    /// Reads a record of `domain` from its flat JSON object.
    /// Reads a record of `domain` from JSON: an owned `serde_json::Value`, or a borrowed one
    /// (`&Value`, nothing copied but the strings kept).
    pub fn from_json<'de, D: serde::Deserializer<'de>>(
        domain: Domain,
        value: D,
    ) -> Result<AnyRecord, D::Error> {
        Ok(match domain {
            Domain::Hazard => AnyRecord::Hazard(Hazard::deserialize(value)?),
            Domain::Opinion => AnyRecord::Opinion(Opinion::deserialize(value)?),
            Domain::Dispute => AnyRecord::Dispute(Dispute::deserialize(value)?),
            Domain::Patrol => AnyRecord::Patrol(Patrol::deserialize(value)?),
            Domain::Emergency => AnyRecord::Emergency(Emergency::deserialize(value)?),
            Domain::SpecialPop | Domain::Publicity | Domain::Livelihood | Domain::Other => {
                let ev = Event::deserialize(value)?;
                if ev.domain != domain {
                    return Err(serde::de::Error::custom(format!(
                        "record says domain {}, expected {domain}",
                        ev.domain
                    )));
                }
                AnyRecord::Event(ev)
            }
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        any_dispatch!(self, r => serde_json::to_value(r).expect("records serialise"))
    }

    /// The record as JSON text, written straight from the record (the same fields as
    /// [`AnyRecord::to_json`], in the record's own order rather than sorted).
    pub fn to_json_string(&self) -> String {
        any_dispatch!(self, r => serde_json::to_string(r).expect("records serialise"))
    }

    pub fn domain(&self) -> Domain {
        any_dispatch!(self, r => r.domain())
    }

    pub fn common(&self) -> &Common {
        any_dispatch!(self, r => r.common())
    }

    pub fn common_mut(&mut self) -> &mut Common {
        any_dispatch!(self, r => r.common_mut())
    }

    pub fn category_code(&self) -> &'static str {
        any_dispatch!(self, r => r.category_code())
    }

    pub fn summary(&self) -> &str {
        any_dispatch!(self, r => r.summary())
    }

    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors> {
        any_dispatch!(self, r => r.validate(now))
    }
}

/// One mediation session of a dispute: append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediationSession {
    pub id: Uuid,
    pub dispute_id: Uuid,
    pub held_on: NaiveDate,
    pub method: MediationMethod,
    pub participants: Vec<String>,
    pub notes: String,
    /// The agreement reached (调解协议), if any.
    #[serde(default)]
    pub agreement: Option<String>,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

impl MediationSession {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.not_future_date("held_on", self.held_on, super::cst::today(now));
        if self.participants.iter().all(|p| p.trim().is_empty()) {
            v.error("participants", Problem::NoParticipant);
        }
        v.text("notes", &self.notes, TEXT_MAX);
        v.optional_text("agreement", self.agreement.as_deref(), TEXT_MAX);
        v.finish()
    }
}

/// One report on an emergency (初报, 续报, 终报): append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmergencyReport {
    pub id: Uuid,
    pub emergency_id: Uuid,
    pub stage: ReportStage,
    pub text: String,
    #[serde(default)]
    pub casualties: Option<u32>,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

impl EmergencyReport {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        v.text("text", &self.text, TEXT_MAX);
        v.not_future_time("created_at", self.created_at, now);
        v.finish()
    }

    /// The emergency status a report of this stage moves the record to.
    pub fn status_after(&self) -> Status {
        match self.stage {
            ReportStage::Initial => Status::Initial,
            ReportStage::Update => Status::Update,
            ReportStage::Final => Status::Final,
        }
    }
}

/// The report stage an emergency's move into `status` stands for, as the county reads the
/// reports (初报, 续报, 终报): 初报 at INITIAL, 终报 at FINAL, and 续报 for an update and for a
/// 处置中 (HANDLING) move, whose note says how the handling goes on; none for the county's
/// ARCHIVED or a status no emergency has.
pub fn report_stage(status: Status) -> Option<ReportStage> {
    match status {
        Status::Initial => Some(ReportStage::Initial),
        Status::Update | Status::Handling => Some(ReportStage::Update),
        Status::Final => Some(ReportStage::Final),
        _ => None,
    }
}

/// A batch of GPS fixes appended to a running patrol: append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolPoints {
    pub id: Uuid,
    pub patrol_id: Uuid,
    pub points: Vec<TrackPoint>,
}

impl PatrolPoints {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationErrors> {
        let mut v = Validator::new();
        for (i, p) in self.points.iter().enumerate() {
            v.nested(
                &format!("points[{i}]"),
                GeoPoint::new(p.lon, p.lat, p.accuracy_m).map(|_| ()),
            );
            v.not_future_time(&format!("points[{i}].at"), p.at, now);
        }
        v.finish()
    }
}

/// A reply or instruction from the county on a record: comes down with sync.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: Uuid,
    pub record_id: Uuid,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// Two concurrent edits of one field: the value kept and the value that lost, both visible
/// to the secretary and the county until someone settles it. Travels down to the devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: Uuid,
    pub entity_kind: EntityKind,
    pub entity_id: Uuid,
    pub grid_id: Uuid,
    pub field: String,
    pub kept: serde_json::Value,
    pub lost: serde_json::Value,
    /// Who made each edit (username, and device when it came from one).
    pub kept_by: String,
    pub lost_by: String,
    /// When each edit was made, by the server's clock (device clocks corrected for skew).
    pub kept_at: DateTime<Utc>,
    pub lost_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub settled_by: Option<String>,
    #[serde(default)]
    pub settled_at: Option<DateTime<Utc>>,
}

/// One step of a record's status history.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub record_id: Uuid,
    pub from: Status,
    pub to: Status,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_emergency_move_a_worker_makes_has_its_report_stage() {
        use crate::domain::lifecycle::{Actor, EMERGENCY};
        // 处置中 is a 续报: the handling goes on and is reported on, not finished.
        assert_eq!(report_stage(Status::Handling), Some(ReportStage::Update));
        assert_eq!(report_stage(Status::Initial), Some(ReportStage::Initial));
        assert_eq!(report_stage(Status::Final), Some(ReportStage::Final));
        assert_eq!(report_stage(Status::Archived), None);
        assert_eq!(report_stage(Status::Submitted), None);
        // A report's own stage and the status it moves to agree both ways.
        for stage in [
            ReportStage::Initial,
            ReportStage::Update,
            ReportStage::Final,
        ] {
            let r = EmergencyReport {
                id: Uuid::nil(),
                emergency_id: Uuid::nil(),
                stage,
                text: "x".into(),
                casualties: None,
                author: "w".into(),
                created_at: now(),
            };
            assert_eq!(report_stage(r.status_after()), Some(stage));
        }
        // Every status the worker can move an emergency into is a report stage.
        for (_, to, who) in EMERGENCY.transitions {
            if who.admits(Actor::Worker) {
                assert!(report_stage(*to).is_some(), "{to}");
            }
        }
    }

    fn person() -> Person {
        Person {
            id: new_id(),
            household_id: new_id(),
            name: "张振行".into(),
            sex: Sex::Male,
            birth_date: Some(NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()),
            id_type: IdType::ResidentCard,
            id_number: Some("11010519491231002X".into()),
            phone: Some("13812345678".into()),
            person_type: PersonType::Household,
            residence: ResidenceStatus::Both,
            status: PersonStatus::Active,
            relation: Relation::Head,
            tags: vec![Tag::ElderlyAlone],
            status_on: None,
            origin: None,
        }
    }

    #[test]
    fn ids_are_uuid_v7_and_sort_by_creation() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }

    /// Workers date a visit by the day in China: at 00:30 there (16:30 UTC the day before)
    /// today's visit is not in the future, tomorrow's is.
    #[test]
    fn a_visit_is_dated_by_the_day_in_china() {
        let just_after_midnight = DateTime::parse_from_rfc3339("2026-11-29T16:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let china_today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let visit = |on: NaiveDate| Visit {
            id: new_id(),
            household_id: new_id(),
            grid_id: new_id(),
            author: "w".into(),
            visited_on: on,
            purpose: crate::domain::codes::VisitPurpose::Routine,
            notes: String::new(),
            next_due: None,
            location: None,
            created_at: just_after_midnight,
        };
        assert!(visit(china_today).validate(just_after_midnight).is_ok());
        let e = visit(china_today.succ_opt().unwrap())
            .validate(just_after_midnight)
            .unwrap_err();
        assert!(e.for_field("visited_on").is_some(), "{e:?}");
    }

    #[test]
    fn person_validation_names_each_field() {
        let today = now().date_naive();
        assert!(person().validate(today).is_ok());
        let mut p = person();
        p.name = String::new();
        p.id_number = Some("110105194912310021".into());
        p.phone = Some("555".into());
        p.tags = vec![Tag::DrugUser, Tag::DrugUser];
        let e = p.validate(today).unwrap_err();
        assert_eq!(e.problem("name"), Some(&Problem::Required));
        assert!(e.for_field("id_number").unwrap().contains("check digit"));
        assert!(matches!(e.problem("id_number"), Some(Problem::IdNumber(_))));
        assert!(
            e.message(Lang::Zh).contains("姓名"),
            "{}",
            e.message(Lang::Zh)
        );
        assert!(e.for_field("phone").is_some());
        assert!(e.for_field("tags").is_some());
        let mut q = person();
        q.birth_date = Some(NaiveDate::from_ymd_opt(1950, 1, 1).unwrap());
        assert!(
            q.validate(today)
                .unwrap_err()
                .for_field("birth_date")
                .unwrap()
                .contains("differs")
        );
    }

    #[test]
    fn hazard_serialises_flat_and_validates() {
        let mut h = Hazard {
            common: Common::new(Domain::Hazard, new_id(), "worker-a", now()),
            category: HazardCategory::CorridorEbike,
            severity: Severity::Medium,
            description: "楼道内电动车充电".into(),
            place: "3号楼".into(),
            owner: None,
            due_date: None,
        };
        assert_eq!(h.common.status, Status::Reported);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["category"], "CORRIDOR_EBIKE");
        assert_eq!(json["status"], "REPORTED");
        assert!(json.get("common").is_none(), "header is flattened");
        let back: Hazard = serde_json::from_value(json).unwrap();
        assert_eq!(back, h);
        assert!(h.validate(now()).is_ok());
        h.description = " ".into();
        h.common.location = Some(GeoPoint {
            lon: 200.0,
            lat: 28.0,
            accuracy_m: None,
        });
        h.common.status = Status::Mediating;
        h.common.created_at = now() + chrono::Duration::days(1);
        let e = h.validate(now()).unwrap_err();
        assert!(e.for_field("description").is_some());
        assert!(e.for_field("location.lon").is_some());
        assert!(e.for_field("status").unwrap().contains("hazard"));
        assert!(e.for_field("created_at").unwrap().contains("future"));
    }

    #[test]
    fn dispute_needs_parties_with_valid_phones() {
        let d = Dispute {
            common: Common::new(Domain::Dispute, new_id(), "worker-a", now()),
            category: DisputeCategory::Neighbor,
            summary: "宅基地边界".into(),
            parties: vec![Party {
                name: "".into(),
                role: PartyRole::Applicant,
                phone: Some("12".into()),
                person_id: None,
            }],
            follow_up: None,
        };
        let e = d.validate(now()).unwrap_err();
        assert!(e.for_field("parties[0].name").is_some());
        assert!(e.for_field("parties[0].phone").is_some());
    }

    #[test]
    fn event_refuses_domains_that_have_their_own_type() {
        let ev = Event::new(
            Common::new(Domain::Hazard, new_id(), "w", now()),
            Domain::Hazard,
            "t".into(),
            "c".into(),
        );
        assert!(
            ev.validate(now())
                .unwrap_err()
                .for_field("domain")
                .is_some()
        );
    }

    fn other_event(domain: Domain) -> Event {
        Event::new(
            Common::new(domain, new_id(), "w", now()),
            domain,
            "t".into(),
            "c".into(),
        )
    }

    #[test]
    fn a_new_service_record_names_what_a_clerk_triages_by() {
        let e = other_event(Domain::SpecialPop)
            .validate_new(now())
            .unwrap_err();
        assert_eq!(
            e.problem("served_person_id"),
            Some(&Problem::NotChosen),
            "{e}"
        );
        assert_eq!(e.problem("service"), Some(&Problem::NotChosen));
        let e = other_event(Domain::Publicity)
            .validate_new(now())
            .unwrap_err();
        assert_eq!(e.problem("place"), Some(&Problem::Required));
        assert_eq!(e.problem("audience"), Some(&Problem::Required));
        let e = other_event(Domain::Livelihood)
            .validate_new(now())
            .unwrap_err();
        assert_eq!(e.problem("matter"), Some(&Problem::NotChosen));
        other_event(Domain::Other).validate_new(now()).unwrap();

        let mut sp = other_event(Domain::SpecialPop);
        sp.served_person_id = Some(new_id());
        sp.service = Some(ServiceKind::CareVisit);
        sp.validate_new(now()).unwrap();
        let mut pb = other_event(Domain::Publicity);
        pb.place = Some("村委会".into());
        pb.audience = Some(40);
        pb.validate_new(now()).unwrap();
        let mut lv = other_event(Domain::Livelihood);
        lv.matter = Some(LivelihoodMatter::Insurance);
        lv.validate_new(now()).unwrap();
        // A record filed before these fields existed still passes the plain check.
        other_event(Domain::SpecialPop).validate(now()).unwrap();
        // Title and content errors come with the domain's own.
        let mut blank = other_event(Domain::Livelihood);
        blank.title = " ".into();
        let e = blank.validate_new(now()).unwrap_err();
        assert!(e.problem("title").is_some() && e.problem("matter").is_some());
    }

    #[test]
    fn an_audience_is_a_positive_headcount() {
        let mut pb = other_event(Domain::Publicity);
        pb.place = Some("村委会".into());
        for (n, ok) in [
            (0, false),
            (1, true),
            (AUDIENCE_MAX, true),
            (AUDIENCE_MAX + 1, false),
        ] {
            pb.audience = Some(n);
            let r = pb.validate(now());
            assert_eq!(r.is_ok(), ok, "{n}: {r:?}");
            if !ok {
                let e = r.unwrap_err();
                assert_eq!(
                    e.problem("audience"),
                    Some(&Problem::Headcount {
                        value: n.into(),
                        max: AUDIENCE_MAX
                    })
                );
                assert!(
                    e.message(Lang::Zh).contains("受众人数"),
                    "{}",
                    e.message(Lang::Zh)
                );
            }
        }
        pb.place = Some("地".repeat(SHORT_MAX + 1));
        pb.audience = Some(3);
        assert!(matches!(
            pb.validate(now()).unwrap_err().problem("place"),
            Some(Problem::TooLong { .. })
        ));
    }

    #[test]
    fn a_field_of_another_domain_is_refused() {
        let mut ev = other_event(Domain::Other);
        ev.audience = Some(5);
        ev.matter = Some(LivelihoodMatter::Repair);
        ev.served_person_id = Some(new_id());
        let e = ev.validate(now()).unwrap_err();
        for f in ["audience", "matter", "served_person_id"] {
            assert_eq!(
                e.problem(f),
                Some(&Problem::NotForDomain {
                    domain: Domain::Other
                }),
                "{f}"
            );
        }
    }

    #[test]
    fn the_new_fields_leave_an_older_event_json_as_it_was() {
        let ev = other_event(Domain::Other);
        let json = serde_json::to_value(&ev).unwrap();
        for f in ["served_person_id", "service", "place", "audience", "matter"] {
            assert!(json.get(f).is_none(), "{f} written while empty: {json}");
        }
        let mut lv = other_event(Domain::Livelihood);
        lv.matter = Some(LivelihoodMatter::Documents);
        lv.common.household_id = Some(new_id());
        let json = serde_json::to_value(&lv).unwrap();
        assert_eq!(json["matter"], "DOCUMENTS");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, lv);
    }

    #[test]
    fn entity_kinds_map_to_domains() {
        for d in Domain::ALL {
            assert_eq!(EntityKind::of_domain(*d).domain(), Some(*d));
        }
        assert!(EntityKind::Visit.is_append_only());
        assert!(!EntityKind::Household.is_append_only());
    }
}
