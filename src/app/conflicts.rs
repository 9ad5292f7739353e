//! Sync conflicts as the worker reads them: which record, the field's label, the value that
//! stands and the one that lost (codes as labels, ID numbers and phones masked), who made
//! each and when. Built from the store's conflicts table, which pulls keep current. Also the
//! entries the county refused after taking them (`rejections`), named the same way.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::Route;
use super::i18n::t;
use crate::domain::codes::{
    Coded, DeliberationStage, DisputeCategory, Domain, EmergencyCategory, EmergencyLevel,
    HazardCategory, HouseUse, IdType, Lang, OpinionCategory, PartyRole, PersonStatus, PersonType,
    Relation, ResidenceStatus, Satisfaction, Severity, Sex, Tag, Urgency,
};
use crate::domain::lifecycle::Status;
use crate::domain::model::{Conflict, EntityKind};
use crate::domain::validate::{mask_id, mask_phone};
use crate::store::Store;
use crate::store::remote::StoredRejection;

/// One side of a conflict: the value as shown, who made it and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub value: String,
    pub by: String,
    pub at: DateTime<Utc>,
    /// This worker made it.
    pub mine: bool,
}

/// One unsettled conflict, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    pub id: Uuid,
    /// What it is about, e.g. "安全隐患 · 村头池塘无护栏" or "户 · 山下村1组1号".
    pub record: String,
    /// Where the record opens, when this device holds it.
    pub link: Option<Route>,
    /// The field's label, e.g. "状态".
    pub field: String,
    /// The value that stands.
    pub kept: Side,
    /// The value that lost, waiting for the secretary or county to settle.
    pub lost: Side,
}

/// The label of a field of an entity of `kind`; the field's own name when it has none.
pub fn field_label(l: Lang, kind: EntityKind, field: &str) -> String {
    let person = kind == EntityKind::Person;
    let label = match field {
        "status" if person => Some(t(l, "人员状态", "Person status")),
        "status" => Some(t(l, "办理状态", "Status")),
        "address" => Some(t(l, "地址", "Address")),
        "location" => Some(t(l, "位置", "Location")),
        "number" => Some(t(l, "门牌号", "House number")),
        "use" => Some(t(l, "房屋用途", "House use")),
        "head_id" => Some(t(l, "户主", "Head of household")),
        "house_id" => Some(t(l, "所属房屋", "House")),
        "household_id" => Some(t(l, "所属户", "Household")),
        "name" => Some(t(l, "姓名", "Name")),
        "sex" => Some(t(l, "性别", "Sex")),
        "birth_date" => Some(t(l, "出生日期", "Date of birth")),
        "id_type" => Some(t(l, "证件类型", "ID type")),
        "id_number" => Some(t(l, "证件号码", "ID number")),
        "phone" => Some(t(l, "联系电话", "Phone")),
        "person_type" => Some(t(l, "人员类型", "Person type")),
        "residence" => Some(t(l, "居住情况", "Residence")),
        "relation" => Some(t(l, "与户主关系", "Relation to head")),
        "tags" => Some(t(l, "人群标签", "Tags")),
        "category" => Some(t(l, "类别", "Category")),
        "severity" => Some(t(l, "隐患等级", "Severity")),
        "level" => Some(t(l, "事件等级", "Level")),
        "urgency" => Some(t(l, "紧急程度", "Urgency")),
        "description" => Some(t(l, "隐患描述", "Description")),
        "place" => Some(t(l, "具体地点", "Place")),
        "owner" => Some(t(l, "整改责任人", "Who rectifies")),
        "due_date" => Some(t(l, "整改期限", "Due date")),
        "content" => Some(t(l, "内容", "Content")),
        "raised_by" => Some(t(l, "反映人", "Raised by")),
        "deliberation" => Some(t(l, "议事阶段", "Deliberation stage")),
        "deliberation_notes" => Some(t(l, "议事记录", "Deliberation notes")),
        "summary" => Some(t(l, "纠纷简述", "Summary")),
        "parties" => Some(t(l, "当事人", "Parties")),
        "follow_up" => Some(t(l, "回访", "Follow-up")),
        "title" => Some(t(l, "标题", "Title")),
        "occurred_at" => Some(t(l, "发生时间", "Occurred at")),
        "notes" => Some(t(l, "备注", "Notes")),
        "ended_at" => Some(t(l, "结束时间", "Ended at")),
        "satisfaction" => Some(t(l, "满意度", "Satisfaction")),
        "served_person_id" => Some(t(l, "服务对象", "Person served")),
        "service" => Some(t(l, "服务内容", "Service")),
        "audience" => Some(t(l, "受众人数", "Audience")),
        "matter" => Some(t(l, "事项", "Matter")),
        "grid_id" => Some(t(l, "所属网格", "Grid")),
        "photos" => Some(t(l, "照片", "Photos")),
        _ => None,
    };
    label.map(str::to_owned).unwrap_or_else(|| field.to_owned())
}

fn coded<T: Coded>(l: Lang, v: &Value) -> Option<String> {
    T::from_code(v.as_str()?)
        .ok()
        .map(|c| c.label(l).to_owned())
}

/// A value of `field` of an entity of `kind` as the worker should read it.
pub fn value_text(l: Lang, kind: EntityKind, field: &str, v: &Value) -> String {
    if v.is_null() {
        return t(l, "（空）", "(empty)").into();
    }
    let domain = kind.domain();
    let shown = match (kind, field) {
        (EntityKind::Person, "status") => coded::<PersonStatus>(l, v),
        (_, "status") => coded::<Status>(l, v),
        (_, "id_number") => v.as_str().map(mask_id),
        (_, "phone") => v.as_str().map(mask_phone),
        (_, "sex") => coded::<Sex>(l, v),
        (_, "id_type") => coded::<IdType>(l, v),
        (_, "person_type") => coded::<PersonType>(l, v),
        (_, "residence") => coded::<ResidenceStatus>(l, v),
        (_, "relation") => coded::<Relation>(l, v),
        (_, "use") => coded::<HouseUse>(l, v),
        (_, "severity") => coded::<Severity>(l, v),
        (_, "level") => coded::<EmergencyLevel>(l, v),
        (_, "urgency") => coded::<Urgency>(l, v),
        (_, "deliberation") => coded::<DeliberationStage>(l, v),
        (_, "satisfaction") => coded::<Satisfaction>(l, v),
        (_, "service") => coded::<crate::domain::codes::ServiceKind>(l, v),
        (_, "matter") => coded::<crate::domain::codes::LivelihoodMatter>(l, v),
        (_, "category") => match domain {
            Some(Domain::Hazard) => coded::<HazardCategory>(l, v),
            Some(Domain::Opinion) => coded::<OpinionCategory>(l, v),
            Some(Domain::Dispute) => coded::<DisputeCategory>(l, v),
            Some(Domain::Emergency) => coded::<EmergencyCategory>(l, v),
            _ => None,
        },
        (_, "tags") => v.as_array().map(|tags| {
            tags.iter()
                .map(|x| coded::<Tag>(l, x).unwrap_or_else(|| plain(x)))
                .collect::<Vec<_>>()
                .join("、")
        }),
        (_, "location") => match (v.get("lon"), v.get("lat")) {
            (Some(lon), Some(lat)) => Some(format!(
                "{:.5}, {:.5}",
                lon.as_f64().unwrap_or_default(),
                lat.as_f64().unwrap_or_default()
            )),
            _ => None,
        },
        (_, "parties") => v.as_array().map(|ps| {
            ps.iter()
                .map(|p| {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                    let role = p.get("role").and_then(|r| coded::<PartyRole>(l, r));
                    let phone = p.get("phone").and_then(Value::as_str).map(mask_phone);
                    let mut s = name.to_owned();
                    if let Some(r) = role {
                        s.push_str(&format!("（{r}）"));
                    }
                    if let Some(ph) = phone {
                        s.push_str(&format!(" {ph}"));
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join("、")
        }),
        _ => None,
    };
    shown.unwrap_or_else(|| plain(v))
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a conflict is about, and where it opens, from what this device holds.
fn subject(l: Lang, s: &Store, kind: EntityKind, id: Uuid) -> (String, Option<Route>) {
    let short = || {
        let id = id.to_string();
        format!("{} …{}", kind.label(l), &id[id.len().saturating_sub(6)..])
    };
    match kind {
        k if k.is_record() => match s.any_record(id) {
            Ok(r) => (
                format!("{} · {}", r.domain().label(l), r.summary()),
                Some(Route::RecordPage { id }),
            ),
            Err(_) => (short(), None),
        },
        EntityKind::Household => match s.household(id) {
            Ok(h) => (
                format!("{} · {}", kind.label(l), h.address),
                Some(Route::HouseholdPage { id }),
            ),
            Err(_) => (short(), None),
        },
        EntityKind::Person => match s.person(id) {
            Ok(p) => (
                format!("{} · {}", kind.label(l), p.name),
                Some(Route::HouseholdPage { id: p.household_id }),
            ),
            Err(_) => (short(), None),
        },
        _ => (short(), None),
    }
}

/// Whether `by` (a username, possibly with a device after `@`) is this worker.
fn is_me(by: &str, me: &str) -> bool {
    !me.is_empty() && by.split('@').next() == Some(me)
}

/// A conflict as the worker reads it.
pub fn describe(l: Lang, s: &Store, c: &Conflict) -> ConflictRow {
    let me = s.worker();
    let (record, link) = subject(l, s, c.entity_kind, c.entity_id);
    let side = |v: &Value, by: &str, at: DateTime<Utc>| Side {
        value: value_text(l, c.entity_kind, &c.field, v),
        by: by.to_owned(),
        at,
        mine: is_me(by, me),
    };
    ConflictRow {
        id: c.id,
        record,
        link,
        field: field_label(l, c.entity_kind, &c.field),
        kept: side(&c.kept, &c.kept_by, c.kept_at),
        lost: side(&c.lost, &c.lost_by, c.lost_at),
    }
}

/// One refusal not yet dismissed, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectionRow {
    /// The server's sequence number: what dismissing it names.
    pub seq: i64,
    /// What it is about, as for a conflict ("安全隐患 · 村头池塘无护栏").
    pub record: String,
    /// Where the record opens, when this device holds it.
    pub link: Option<Route>,
    /// What the refused entry did ("新建", "修改", ...).
    pub op: String,
    /// What was wrong, in the server's words.
    pub message: String,
    /// Where, as the server named it: the field's label and the path into the entry
    /// ("位置（fields.location.lon）"), or the bare path when it names no known field.
    pub field: Option<String>,
    pub at: DateTime<Utc>,
}

/// The label of the field a refusal's path (`fields.location.lon`) names, with the path.
fn path_text(l: Lang, kind: EntityKind, path: &str) -> String {
    let mut parts = path.split(['.', '[']);
    let first = parts.next().unwrap_or_default();
    let name = if first == "fields" {
        parts.next().unwrap_or_default()
    } else {
        first
    };
    // The field as the worker's forms name it; the machine path stays in the API.
    let label = field_label(l, kind, name);
    if !name.is_empty() && label != name {
        return label;
    }
    let tail = path.strip_prefix("fields.").unwrap_or(path);
    if crate::domain::labels::has_label(tail) {
        crate::domain::labels::field_label(tail, l)
    } else {
        path.to_owned()
    }
}

/// A refusal as the worker reads it.
pub fn describe_rejection(l: Lang, s: &Store, r: &StoredRejection) -> RejectionRow {
    let r = &r.rejection;
    let (record, link) = subject(l, s, r.kind, r.record_id);
    RejectionRow {
        seq: r.seq,
        record,
        link,
        op: r.op.label(l).to_owned(),
        // The server words it in Chinese with the English after it: the reader's part.
        message: match crate::wire::message_parts(&r.message) {
            (_, Some(en)) if l == Lang::En => en.to_owned(),
            (zh, _) => zh.to_owned(),
        },
        field: r.field.as_deref().map(|p| path_text(l, r.kind, p)),
        at: r.at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_read_as_labels_and_personal_data_stays_masked() {
        let zh = Lang::Zh;
        assert_eq!(
            value_text(zh, EntityKind::Hazard, "status", &json!("CONFIRMED")),
            Status::Confirmed.zh()
        );
        assert_eq!(
            value_text(zh, EntityKind::Hazard, "severity", &json!("HIGH")),
            Severity::High.zh()
        );
        assert_eq!(
            value_text(zh, EntityKind::Person, "phone", &json!("13812345678")),
            mask_phone("13812345678")
        );
        assert!(
            !value_text(
                zh,
                EntityKind::Person,
                "id_number",
                &json!("11010519491231002X")
            )
            .contains("19491231")
        );
        assert_eq!(
            value_text(zh, EntityKind::Household, "address", &json!("山下村1组")),
            "山下村1组"
        );
        assert_eq!(
            value_text(zh, EntityKind::Household, "address", &Value::Null),
            "（空）"
        );
        assert_eq!(field_label(zh, EntityKind::Hazard, "status"), "办理状态");
        assert_eq!(field_label(zh, EntityKind::Person, "status"), "人员状态");
        assert_eq!(
            field_label(Lang::En, EntityKind::Household, "address"),
            "Address"
        );
        assert_eq!(field_label(zh, EntityKind::Household, "mystery"), "mystery");
        assert!(is_me("worker-a", "worker-a"));
        assert!(is_me("worker-a@phone", "worker-a"));
        assert!(!is_me("worker-ab", "worker-a"));
        assert_eq!(
            path_text(zh, EntityKind::Hazard, "fields.location.lon"),
            "位置（fields.location.lon）"
        );
        assert_eq!(
            path_text(zh, EntityKind::Hazard, "grid_id"),
            "所属网格（grid_id）"
        );
        assert_eq!(
            path_text(zh, EntityKind::Hazard, "base_version"),
            "base_version"
        );
    }
}
