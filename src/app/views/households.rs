//! Households: my grid's households with search (name, address, last digits of an ID), tag
//! and due filters, nearest first when the location is known, paged 50 at a time so 2,000
//! households stay smooth. Detail: members with ID and phone masked (revealing one is an
//! explicit act written to the audit log), tags, visit history and "record visit".

use std::collections::HashMap;

use chrono::NaiveDate;
use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::Route;
use crate::app::components::{ErrorNote, Field, Pill, code_options, err, metres, parse_code};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::views::today::due_words;
use crate::domain::codes::{Coded, Tag, VisitPurpose};
use crate::domain::labels::Explain;
use crate::domain::model::{Visit, new_id};
use crate::domain::validate::{Problem, ValidationErrors, mask_id, mask_phone};
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
        services.location.fix().ok()
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
                    li { key: "{p.id}", class: "member",
                        div { class: "card-title", "{p.name} " span { class: "muted", {p.relation.label(l)} " · " {p.sex.label(l)}
                            if let Some(a) = p.age(today) { " · {a}" {t(l, "岁", " y")} } } }
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
                location: services.location.fix().ok(),
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
