//! Households: my grid's households with search (name, address, last digits of an ID), tag
//! and due filters, nearest first when the location is known, paged 50 at a time so 2,000
//! households stay smooth. Detail: members with ID and phone masked (revealing one is an
//! explicit act written to the audit log), tags, visit history and "record visit".

use std::collections::HashMap;

use chrono::NaiveDate;
use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::Route;
use crate::app::components::{
    ErrorNote, Field, FieldCheck, Pill, code_options, err, metres, parse_code,
};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::views::today::due_words;
use crate::domain::codes::{
    Coded, IdType, PersonStatus, PersonType, Relation, ResidenceStatus, Sex, Tag, VisitPurpose,
};
use crate::domain::labels::Explain;
use crate::domain::model::{Person, Registration, Visit, new_id};
use crate::domain::validate::{IdNumber, Problem, ValidationErrors, mask_id, mask_phone};
use crate::store::StoreError;
use crate::store::people::{HouseholdQuery, RevealField};

const PAGE: usize = 50;

#[component]
pub fn Households() -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let mut text = use_signal(String::new);
    let mut tag = use_signal(|| None::<Tag>);
    let mut due_only = use_signal(|| false);
    let mut nearest = use_signal(|| false);
    let mut limit = use_signal(|| PAGE);
    let _rev = session.rev.read();
    let today = services.today();
    let near = if nearest() {
        services.location.fix().ok().map(|f| f.point)
    } else {
        None
    };
    let q = HouseholdQuery {
        text: Some(text()).filter(|s| !s.trim().is_empty()),
        tag: tag(),
        due_only: due_only(),
        near,
        limit: Some(limit() + 1),
        offset: 0,
    };
    let cards = match store.read(|s| s.households(&q, today)) {
        Ok(c) => c,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let more = cards.len() > limit();
    rsx! {
        section { class: "households",
            h1 { {t(l, "住户", "Households")} }
            crate::app::views::new_household::NewHousehold { at: None }
            input { id: "hh-search", class: "search", r#type: "search", value: "{text}",
                placeholder: t(l, "搜索姓名、地址、证件号后几位", "Search name, address, last ID digits"),
                oninput: move |e| { text.set(e.value()); limit.set(PAGE); } }
            div { class: "filters",
                select { id: "hh-tag", onchange: move |e| tag.set(Tag::from_code(&e.value()).ok()),
                    option { value: "", {t(l, "全部标签", "All tags")} }
                    for v in Tag::ALL.iter().copied().filter(|t| !t.is_managed()) {
                        option { value: v.code(), selected: tag() == Some(v), {v.label(l)} }
                    }
                }
                label { class: "check",
                    input { id: "hh-due", r#type: "checkbox", checked: due_only(), onchange: move |e| due_only.set(e.checked()) }
                    {t(l, "仅待走访", "Due only")}
                }
                label { class: "check",
                    input { id: "hh-near", r#type: "checkbox", checked: nearest(), onchange: move |e| nearest.set(e.checked()) }
                    {t(l, "由近到远", "Nearest first")}
                }
            }
            ul { class: "cards hh-list",
                for c in cards.iter().take(limit()) {
                    li { key: "{c.id}",
                        Link { class: "card hh-card", to: Route::HouseholdPage { id: c.id },
                            div { class: "card-title", "{c.address}" }
                            div { class: "card-sub",
                                {t(l, "户主 ", "Head ")} {c.head_name.clone().unwrap_or_else(|| "-".into())}
                                " · {c.members}" {t(l, " 人", " people")}
                                if let Some(d) = c.distance_m { " · " {metres(d)} }
                            }
                            div { class: "card-tags",
                                if c.due.is_due(today) {
                                    span { class: if c.due.overdue_days(today) > 0 { "pill late" } else { "pill due" }, {due_words(l, c, today)} }
                                }
                                for tg in c.care_tags.iter() { Pill { text: tg.label(l).to_string(), kind: "care" } }
                            }
                        }
                    }
                }
            }
            if cards.is_empty() { p { class: "hint", {t(l, "没有符合条件的住户。", "No households match.")} } }
            if more {
                button { class: "big", id: "hh-more", onclick: move |_| limit += PAGE, {t(l, "加载更多", "Load more")} }
            }
        }
    }
}

/// The pill style of a tag: managed-population tags stand out (detail screen only).
fn tag_kind(t: Tag) -> &'static str {
    if t.is_managed() { "managed" } else { "care" }
}

/// The reveal key of one person's field.
fn reveal_key(person: Uuid, field: RevealField) -> (Uuid, bool) {
    (person, matches!(field, RevealField::IdNumber))
}

#[component]
pub fn HouseholdPage(id: Uuid) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let mut revealed = use_signal(HashMap::<(Uuid, bool), String>::new);
    let mut reveal_error = use_signal(|| None::<String>);
    let _rev = session.rev.read();
    let today = services.today();
    // The worker's own visits read 我; a colleague's by their account.
    let me = store
        .read(|s| Ok(s.worker().to_owned()))
        .unwrap_or_default();
    let detail = match store.read(|s| s.household_detail(id, today)) {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let records = store.read(|s| s.household_records(id)).unwrap_or_default();
    let store2 = store.clone();
    let services2 = services.clone();
    let reveal = use_callback(move |(person, field): (Uuid, RevealField)| {
        let key = reveal_key(person, field);
        match store2.write(|s| s.reveal(person, field, services2.now())) {
            Ok(Some(v)) => {
                revealed.write().insert(key, v);
                reveal_error.set(None);
            }
            Ok(None) => reveal_error.set(Some(t(l, "没有此项信息", "Nothing recorded").into())),
            Err(e) => reveal_error.set(Some(e.explain(l))),
        }
    });
    let hh = &detail.household;
    rsx! {
        section { class: "household",
            Link { class: "back", to: Route::Households {}, {t(l, "‹ 住户", "‹ Households")} }
            h1 { "{hh.address}" }
            p { class: "card-sub",
                if let Some(house) = &detail.house {
                    {t(l, "房屋用途：", "House use: ")} {house.use_.label(l)} " · " {t(l, "门牌 ", "No. ")} "{house.number} · "
                }
                {t(l, "下次走访 ", "Next visit ")} "{detail.due.due_on}"
                if detail.due.is_due(today) { " · " span { class: "pill late", {t(l, "待走访", "due")} } }
            }
            if let Some(e) = reveal_error() { ErrorNote { text: e } }
            h2 { {t(l, "成员", "Members")} " ({detail.members.len()})" }
            ul { class: "members",
                for p in detail.members.iter() {
                    li { key: "{p.id}", class: if p.status == PersonStatus::Active { "member" } else { "member gone" }, "data-person": "{p.id}",
                        div { class: "card-title", "{p.name} " span { class: "muted", {p.relation.label(l)} " · " {p.sex.label(l)}
                            if let Some(a) = p.age(today) { " · {a}" {t(l, "岁", " y")} } }
                            if p.status != PersonStatus::Active {
                                " " span { class: "pill gone", {p.status.label(l)} if let Some(on) = p.status_on { " {on}" } }
                            }
                            if p.person_type == PersonType::Floating { " " Pill { text: p.person_type.label(l).to_string(), kind: "care" } }
                        }
                        if p.id_number.is_none() && p.status == PersonStatus::Active {
                            div { class: "muted", {t(l, "未办身份证", "No ID number yet")} }
                        }
                        if let Some(idn) = &p.id_number {
                            div { class: "masked-row",
                                span { class: "k", {t(l, "证件号 ", "ID ")} }
                                {
                                    let pid = p.id;
                                    match revealed.read().get(&reveal_key(pid, RevealField::IdNumber)) {
                                        Some(v) => rsx! { span { class: "v revealed", "{v}" } },
                                        None => rsx! {
                                            span { class: "v masked", {mask_id(idn)} }
                                            button { class: "reveal", "data-reveal": "{pid}:id",
                                                onclick: move |_| reveal((pid, RevealField::IdNumber)), {t(l, "查看（留痕）", "Show (audited)")} }
                                        },
                                    }
                                }
                            }
                        }
                        if let Some(ph) = &p.phone {
                            div { class: "masked-row",
                                span { class: "k", {t(l, "电话 ", "Phone ")} }
                                {
                                    let pid = p.id;
                                    match revealed.read().get(&reveal_key(pid, RevealField::Phone)) {
                                        Some(v) => rsx! { a { class: "v revealed", href: "tel:{v}", "{v}" } },
                                        None => rsx! {
                                            span { class: "v masked", {mask_phone(ph)} }
                                            button { class: "reveal", "data-reveal": "{pid}:phone",
                                                onclick: move |_| reveal((pid, RevealField::Phone)), {t(l, "查看（留痕）", "Show (audited)")} }
                                        },
                                    }
                                }
                            }
                        }
                        div { class: "card-tags",
                            for tg in p.tags.iter() {
                                Pill { text: tg.label(l).to_string(), kind: tag_kind(*tg) }
                            }
                        }
                        if p.status == PersonStatus::Active {
                            MemberActions { key: "{p.id}-{p.phone:?}-{p.tags:?}", person: p.clone() }
                        }
                    }
                }
            }
            // Keyed by the household, so going from one household's page to another's (the
            // new household's link) mounts fresh forms with that household's drafts.
            for hid in [id] {
                AddPerson { key: "{hid}", household: hid }
            }
            for hid in [id] {
                crate::app::views::new_household::NewHousehold { key: "{hid}", at: Some(hid) }
            }
            h2 { {t(l, "事项", "Records")} " ({records.len()})" }
            p { class: "card-sub", {t(l, "为此户上报：", "Report for this household:")} }
            nav { class: "segmented",
                for (k, zh, en) in [("hazard", "安全隐患", "Hazard"), ("opinion", "社情民意", "Opinion"), ("dispute", "矛盾纠纷", "Dispute")] {
                    Link { class: "seg", id: "report-for-{k}", to: Route::HouseholdReport { id, kind: k.to_string() }, {t(l, zh, en)} }
                }
            }
            ul { class: "cards hh-records",
                for r in records.iter() {
                    li { key: "{r.id}",
                        Link { class: "card", to: Route::RecordPage { id: r.id },
                            div { class: "card-title", {r.domain.label(l)} " · " "{r.summary}" }
                            div { class: "card-sub", {r.status.label(l)} " · " {crate::app::local_time(r.created_at, "%Y-%m-%d")} }
                        }
                    }
                }
            }
            RecordVisit { household: id, grid: hh.grid_id }
            h2 { {t(l, "走访记录", "Visit history")} " ({detail.visits.len()})" }
            ul { class: "visits",
                for v in detail.visits.iter() {
                    li { key: "{v.id}", class: "visit",
                        span { class: "date", "{v.visited_on}" } " · " {v.purpose.label(l)} " · " {if v.author == me { t(l, "我", "me").to_string() } else { v.author.clone() }}
                        if !v.notes.is_empty() { div { class: "muted", "{v.notes}" } }
                    }
                }
            }
        }
    }
}

/// The "record visit" form, with its draft kept per household.
#[component]
fn RecordVisit(household: Uuid, grid: Uuid) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let form = format!("visit:{household}");
    let store0 = store.clone();
    let form0 = form.clone();
    let mut draft = use_signal(move || {
        store0
            .read(|s| crate::app::drafts::load::<(String, String, String)>(s, &form0))
            .ok()
            .flatten()
            .unwrap_or_else(|| ("ROUTINE".into(), String::new(), String::new()))
    });
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut saved = use_signal(|| false);
    // The id the visit will have: one per draft, so a second tap records nothing twice.
    let (store_id, form_id) = (store.clone(), form.clone());
    let mut visit_id = use_signal(move || {
        store_id
            .read(|s| s.draft_id(&form_id))
            .unwrap_or_else(|_| new_id())
    });
    let store_s = store.clone();
    let form_s = form.clone();
    let mut save_draft = move || {
        let _ = store_s.read(|s| crate::app::drafts::save(s, &form_s, &*draft.peek()));
        saved.set(false);
    };
    let mut save2 = save_draft.clone();
    let mut save3 = save_draft.clone();
    let submit = move |_| {
        // Saved, and nothing changed since: a second tap has nothing new to record.
        if *saved.peek() {
            return;
        }
        let (purpose, notes, next) = draft.peek().clone();
        let now = services.now();
        let next_due = if next.trim().is_empty() {
            None
        } else {
            match NaiveDate::parse_from_str(next.trim(), "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.set(Some(ValidationErrors::single(
                        "next_due",
                        Problem::DateFormat {
                            typed: next.trim().to_owned(),
                        },
                    )));
                    return;
                }
            }
        };
        let res = store.write(|s| {
            let v = Visit {
                id: *visit_id.peek(),
                household_id: household,
                grid_id: grid,
                author: s.worker().to_owned(),
                visited_on: services.today(),
                purpose: parse_code(&purpose, VisitPurpose::Routine),
                notes: notes.trim().to_owned(),
                next_due,
                location: services.location.fix().ok().map(|f| f.point),
                created_at: now,
            };
            s.file_visit(&form, &v, now)?;
            s.draft_id(&form)
        });
        match res {
            Ok(next_id) => {
                errors.set(None);
                draft.set(("ROUTINE".into(), String::new(), String::new()));
                visit_id.set(next_id);
                saved.set(true);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => errors.set(Some(ValidationErrors::single(
                "notes",
                Problem::Other(e.explain(l)),
            ))),
        }
    };
    let (purpose, notes, next) = draft();
    // A dynamic attribute, so view tests can find the button's element.
    let act = "visit-save";
    rsx! {
        details { class: "record-visit", open: true,
            summary { h2 { {t(l, "记录走访", "Record a visit")} } }
            Field { label: t(l, "目的", "Purpose").to_string(), error: err(errors, "purpose"),
                select { id: "visit-purpose", onchange: move |e| { draft.write().0 = e.value(); save_draft(); },
                    {code_options(l, parse_code(&purpose, VisitPurpose::Routine))} }
            }
            Field { label: t(l, "情况记录", "Notes").to_string(), error: err(errors, "notes"),
                textarea { id: "visit-notes", rows: 3, value: "{notes}", oninput: move |e| { draft.write().1 = e.value(); save2(); } }
                crate::app::components::Counter { text: notes.clone(), max: crate::domain::model::TEXT_MAX }
            }
            Field { label: t(l, "下次走访日期（可空）", "Next visit (optional)").to_string(), error: err(errors, "next_due"),
                input { id: "visit-next", r#type: "date", value: "{next}", oninput: move |e| { draft.write().2 = e.value(); save3(); } }
            }
            button { id: "visit-save", "data-act": act, class: "big primary", disabled: saved(), onclick: submit, {t(l, "保存走访", "Save visit")} }
            if saved() { p { class: "note ok", id: "visit-saved", {t(l, "已保存，待同步上传", "Saved; will upload at next sync")} } }
        }
    }
}

/// The report forms for one household ("为此户上报"): whatever they file is linked to it.
#[component]
pub fn HouseholdReport(id: Uuid, kind: String) -> Element {
    // Keyed by the household, so another household's report never keeps this one's link.
    rsx! { ReportForHousehold { key: "{id}", id, kind } }
}

/// The report forms inside the household link they file with.
#[component]
fn ReportForHousehold(id: Uuid, kind: String) -> Element {
    let store = use_store();
    let l = *use_lang().read();
    use_context_provider(|| crate::app::views::report::ReportFor(id));
    let address = store
        .read(|s| s.household(id))
        .map(|h| h.address)
        .unwrap_or_default();
    rsx! {
        Link { class: "back", to: Route::HouseholdPage { id }, {t(l, "‹ 返回该户", "‹ Back to the household")} }
        p { class: "note", id: "report-for", {t(l, "为此户上报：", "Reporting for: ")} "{address}" }
        crate::app::views::report::Report { kind: kind.clone() }
    }
}

/// What the "add a person" form holds while the worker types (its draft).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(super) struct PersonDraft {
    /// MEMBER, NEWBORN or FLOATING.
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) relation: String,
    pub(super) id_number: String,
    pub(super) sex: String,
    pub(super) birth: String,
    pub(super) phone: String,
    pub(super) origin: String,
}

impl PersonDraft {
    pub(super) fn how(&self) -> Registration {
        match self.kind.as_str() {
            "NEWBORN" => Registration::Newborn,
            "FLOATING" => Registration::Floating,
            _ => Registration::Member,
        }
    }
}

/// A date typed in a form: empty is `None`, anything else a date or a message for `field`.
fn typed_date(field: &'static str, s: &str) -> Result<Option<NaiveDate>, ValidationErrors> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            ValidationErrors::single(
                field,
                Problem::DateFormat {
                    typed: s.to_owned(),
                },
            )
        })
}

/// The person the form describes: sex and birth date from the ID number when it reads, else
/// as typed (a newborn's).
pub(super) fn person_of(
    d: &PersonDraft,
    id: Uuid,
    household: Uuid,
    today: NaiveDate,
) -> Result<Person, ValidationErrors> {
    let how = d.how();
    let id_number = Some(d.id_number.trim().to_uppercase())
        .filter(|n| !n.is_empty() && how != Registration::Newborn);
    let parsed = id_number
        .as_deref()
        .and_then(|n| IdNumber::parse(n, today).ok());
    let birth = match &parsed {
        Some(n) => Some(n.birth_date()),
        None if how == Registration::Newborn => typed_date("birth_date", &d.birth)?,
        None => None,
    };
    let floating = how == Registration::Floating;
    Ok(Person {
        id,
        household_id: household,
        name: d.name.trim().to_owned(),
        sex: parsed
            .as_ref()
            .map(|n| n.sex())
            .unwrap_or_else(|| parse_code(&d.sex, Sex::Male)),
        birth_date: birth,
        id_type: IdType::ResidentCard,
        id_number,
        phone: Some(d.phone.trim().to_owned()).filter(|p| !p.is_empty()),
        person_type: if floating {
            PersonType::Floating
        } else {
            PersonType::Household
        },
        residence: if floating {
            ResidenceStatus::PersonOnly
        } else {
            ResidenceStatus::Both
        },
        status: PersonStatus::Active,
        relation: parse_code(
            &d.relation,
            if how == Registration::Newborn {
                Relation::Son
            } else {
                Relation::Other
            },
        ),
        tags: Vec::new(),
        status_on: None,
        origin: Some(d.origin.trim().to_owned()).filter(|o| floating && !o.is_empty()),
    })
}

/// "Add a person": a member by ID number (sex and birth date read from it and shown before
/// saving), a newborn (name, sex, birth date) or a floating person (where from). The draft is
/// kept per household as the worker types.
#[component]
fn AddPerson(household: Uuid) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let form = format!("person:{household}");
    let (store0, form0) = (store.clone(), form.clone());
    let mut draft = use_signal(move || {
        store0
            .read(|s| crate::app::drafts::load::<PersonDraft>(s, &form0))
            .ok()
            .flatten()
            .unwrap_or_else(|| PersonDraft {
                kind: "MEMBER".into(),
                relation: Relation::Son.code().into(),
                sex: Sex::Male.code().into(),
                ..Default::default()
            })
    });
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut saved = use_signal(|| false);
    let (store_id, form_id) = (store.clone(), form.clone());
    let mut person_id = use_signal(move || {
        store_id
            .read(|s| s.draft_id(&form_id))
            .unwrap_or_else(|_| new_id())
    });
    let (store_s, form_s) = (store.clone(), form.clone());
    // One field typed: the draft is saved at once, so leaving the form loses nothing.
    let edit = use_callback(move |(field, v): (&'static str, String)| {
        {
            let mut d = draft.write();
            match field {
                "kind" => {
                    if v == "NEWBORN" {
                        d.relation = Relation::Son.code().into();
                    }
                    d.kind = v;
                }
                "name" => d.name = v,
                "relation" => d.relation = v,
                "id_number" => d.id_number = v,
                "sex" => d.sex = v,
                "birth" => d.birth = v,
                "phone" => d.phone = v,
                _ => d.origin = v,
            }
        }
        let _ = store_s.read(|s| crate::app::drafts::save(s, &form_s, &*draft.peek()));
        saved.set(false);
    });
    let today = services.today();
    let submit = move |_| {
        if *saved.peek() {
            return;
        }
        let d = draft.peek().clone();
        let now = services.now();
        let p = match person_of(&d, *person_id.peek(), household, services.today()) {
            Ok(p) => p,
            Err(e) => {
                errors.set(Some(e));
                return;
            }
        };
        match store.write(|s| {
            s.register_person(Some(&form), &p, d.how(), now)?;
            s.draft_id(&form)
        }) {
            Ok(next) => {
                errors.set(None);
                draft.set(PersonDraft {
                    kind: d.kind.clone(),
                    relation: d.relation.clone(),
                    sex: d.sex.clone(),
                    ..Default::default()
                });
                person_id.set(next);
                saved.set(true);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => errors.set(Some(ValidationErrors::single(
                "name",
                Problem::Other(e.explain(l)),
            ))),
        }
    };
    let d = draft();
    let how = d.how();
    // What the ID number says, shown before saving.
    let read_id = IdNumber::parse(d.id_number.trim(), today).ok();
    let act = "person-save";
    rsx! {
        details { class: "add-person", open: saved() || !d.name.is_empty() || errors.read().is_some(),
            summary { h2 { {t(l, "添加人员", "Add a person")} } }
            Field { label: t(l, "登记类型", "Kind").to_string(), error: FieldCheck::none(),
                select { id: "person-kind", onchange: move |e| edit(("kind", e.value())),
                    option { value: "MEMBER", selected: how == Registration::Member, {t(l, "成员（有身份证）", "Member (with ID card)")} }
                    option { value: "NEWBORN", selected: how == Registration::Newborn, {t(l, "新生儿（未办身份证）", "Newborn (no ID yet)")} }
                    option { value: "FLOATING", selected: how == Registration::Floating, {t(l, "流动人口", "Floating resident")} }
                }
            }
            Field { label: t(l, "姓名", "Name").to_string(), error: err(errors, "name"),
                input { id: "person-name", value: "{d.name}", oninput: move |e| edit(("name", e.value())) }
            }
            Field { label: t(l, "与户主关系", "Relation to head").to_string(), error: err(errors, "relation"),
                select { id: "person-relation", onchange: move |e| edit(("relation", e.value())),
                    {code_options(l, parse_code(&d.relation, Relation::Other))} }
            }
            if how != Registration::Newborn {
                Field { label: t(l, "证件号码", "ID number").to_string(), error: err(errors, "id_number"),
                    input { id: "person-id", value: "{d.id_number}", inputmode: "text", maxlength: 18,
                        oninput: move |e| edit(("id_number", e.value())) }
                }
                if let Some(n) = &read_id {
                    p { class: "hint", id: "person-from-id",
                        {t(l, "由证件号码得出：", "From the ID number: ")} {n.sex().label(l)} " · " "{n.birth_date()}" }
                }
            } else {
                Field { label: t(l, "性别", "Sex").to_string(), error: err(errors, "sex"),
                    select { id: "person-sex", onchange: move |e| edit(("sex", e.value())),
                        {code_options(l, parse_code(&d.sex, Sex::Male))} }
                }
                Field { label: t(l, "出生日期", "Birth date").to_string(), error: err(errors, "birth_date"),
                    input { id: "person-birth", r#type: "date", value: "{d.birth}", max: "{today}",
                        oninput: move |e| edit(("birth", e.value())) }
                }
            }
            if how == Registration::Floating {
                Field { label: t(l, "户籍地", "Registered at").to_string(), error: err(errors, "origin"),
                    input { id: "person-origin", value: "{d.origin}", placeholder: t(l, "从哪里来，如 湖南省长沙市", "Where from"),
                        oninput: move |e| edit(("origin", e.value())) }
                }
            }
            Field { label: t(l, "联系电话（可空）", "Phone (optional)").to_string(), error: err(errors, "phone"),
                input { id: "person-phone", r#type: "tel", value: "{d.phone}", oninput: move |e| edit(("phone", e.value())) }
            }
            if let Some(e) = errors.read().as_ref().and_then(|e| e.problem("birth_date").filter(|_| how != Registration::Newborn).map(|p| p.text(l, t(l, "出生日期", "Birth date")))) {
                p { class: "field-error", role: "alert", "{e}" }
            }
            button { id: "person-save", "data-act": act, class: "big primary", disabled: saved(), onclick: submit, {t(l, "保存人员", "Save person")} }
            if saved() { p { class: "note ok", id: "person-saved", {t(l, "已添加，待同步上传", "Added; will upload at next sync")} } }
        }
    }
}

/// What a member's row is changing, if anything.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MemberEdit {
    MovedOut,
    Deceased,
    Phone,
    Tags,
}

/// The changes of an active member: moved out or deceased on a date, a new phone, tags.
#[component]
fn MemberActions(person: Person) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let mut editing = use_signal(|| None::<MemberEdit>);
    let mut value = use_signal(String::new);
    let mut tags = use_signal(|| person.tags.clone());
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let pid = person.id;
    let today = services.today();
    let mut open = move |m: MemberEdit, v: String| {
        editing.set(Some(m));
        value.set(v);
        errors.set(None);
    };
    let phone0 = person.phone.clone().unwrap_or_default();
    let save = move |_| {
        let Some(m) = *editing.peek() else { return };
        let now = services.now();
        let v = value.peek().clone();
        let res = match m {
            MemberEdit::MovedOut | MemberEdit::Deceased => {
                let status = if m == MemberEdit::Deceased {
                    PersonStatus::Deceased
                } else {
                    PersonStatus::MovedOut
                };
                match typed_date("status_on", &v) {
                    Ok(Some(on)) => store
                        .write(|s| s.mark_person(pid, status, on, now))
                        .map(|_| ()),
                    Ok(None) => {
                        Err(ValidationErrors::single("status_on", Problem::Required).into())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            MemberEdit::Phone => store.write(|s| s.set_phone(pid, Some(v), now)).map(|_| ()),
            MemberEdit::Tags => {
                let tg = tags.peek().clone();
                store.write(|s| s.set_tags(pid, tg, now)).map(|_| ())
            }
        };
        match res {
            Ok(()) => {
                editing.set(None);
                errors.set(None);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => errors.set(Some(ValidationErrors::single(
                "status_on",
                Problem::Other(e.explain(l)),
            ))),
        }
    };
    let key = format!("{pid}");
    // A dynamic attribute, so view tests can find the button's element.
    let act = "member-save";
    rsx! {
        div { class: "member-actions",
            button { class: "small", "data-mark": "{key}:moved", onclick: move |_| open(MemberEdit::MovedOut, today.to_string()), {t(l, "迁出", "Moved out")} }
            button { class: "small", "data-mark": "{key}:dead", onclick: move |_| open(MemberEdit::Deceased, today.to_string()), {t(l, "死亡", "Deceased")} }
            button { class: "small", "data-mark": "{key}:phone", onclick: move |_| open(MemberEdit::Phone, phone0.clone()), {t(l, "改电话", "Phone")} }
            button { class: "small", "data-mark": "{key}:tags", onclick: move |_| open(MemberEdit::Tags, String::new()), {t(l, "改标签", "Tags")} }
        }
        if let Some(m) = editing() {
            div { class: "member-edit",
                match m {
                    MemberEdit::MovedOut | MemberEdit::Deceased => rsx! {
                        Field { label: if m == MemberEdit::Deceased { t(l, "死亡日期", "Date of death").to_string() } else { t(l, "迁出日期", "Date moved out").to_string() },
                            error: err(errors, "status_on"),
                            input { class: "status-on", r#type: "date", value: "{value}", max: "{today}", oninput: move |e| value.set(e.value()) }
                        }
                        if let Some(e) = errors.read().as_ref().and_then(|e| e.problem("status")).map(|p| p.text(l, t(l, "状态", "Status"))) {
                            p { class: "field-error", role: "alert", "{e}" }
                        }
                    },
                    MemberEdit::Phone => rsx! {
                        Field { label: t(l, "联系电话", "Phone").to_string(), error: err(errors, "phone"),
                            input { class: "phone-edit", r#type: "tel", value: "{value}", oninput: move |e| value.set(e.value()) }
                        }
                    },
                    MemberEdit::Tags => rsx! {
                        Field { label: t(l, "标签", "Tags").to_string(), error: err(errors, "tags"),
                            div { class: "tag-checks",
                                for tg in Tag::ALL.iter().copied() {
                                    label { class: "check", key: "{tg.code()}",
                                        input { r#type: "checkbox", "data-tag": tg.code(), checked: tags.read().contains(&tg),
                                            onchange: move |e| { let mut v = tags.write(); v.retain(|x| *x != tg); if e.checked() { v.push(tg); } } }
                                        {tg.label(l)}
                                        if tg.is_managed() { span { class: "muted", {t(l, "（管控，不上列表）", " (managed, never on lists)")} } }
                                    }
                                }
                            }
                        }
                    },
                }
                div { class: "member-actions",
                    button { class: "primary", "data-act": act, onclick: save, {t(l, "保存", "Save")} }
                    button { onclick: move |_| editing.set(None), {t(l, "取消", "Cancel")} }
                }
            }
        }
    }
}
