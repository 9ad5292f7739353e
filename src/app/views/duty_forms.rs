//! Report forms of the duties without a record type of their own (the `Event` record):
//! 特殊人群服务 (the person served, chosen from the worker's register, and the service given),
//! 政策宣传 (topic, place, audience), 民生服务 (the matter, for which household, optionally
//! resolved on the spot) and 其他. Each is built on the report forms' skeleton
//! ([`super::report::frame`]).

use dioxus::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::{FormDraft, Frame, Kit, form_draft, frame, use_kit};
use crate::app::components::{Counter, Field, FieldCheck, err};
use crate::app::context::{use_services, use_store};
use crate::app::i18n::{t, use_lang};
use crate::domain::codes::{Coded, Domain, Lang, LivelihoodMatter, ServiceKind};
use crate::domain::lifecycle::Status;
use crate::domain::model::{AUDIENCE_MAX, Common, Event, SHORT_MAX, TEXT_MAX};
use crate::domain::validate::{FieldError, Problem, ValidationErrors};
use crate::store::StoreError;
use crate::store::people::HouseholdQuery;

/// How many people or households a chooser lists at once.
const CHOICES: usize = 8;

/// A select of `T`'s codes that starts on "请选择" (nothing chosen).
fn choice_options<T: Coded + PartialEq>(l: Lang, current: Option<T>) -> Element {
    rsx! {
        option { value: "", selected: current.is_none(), {t(l, "请选择", "Choose")} }
        for v in T::ALL.iter().copied() {
            option { value: v.code(), selected: Some(v) == current, {v.label(l)} }
        }
    }
}

/// A code the worker chose, if any.
fn chosen<T: Coded>(value: &str) -> Option<T> {
    T::from_code(value).ok()
}

/// An id the worker chose, if any.
fn chosen_id(value: &str) -> Option<Uuid> {
    Uuid::parse_str(value.trim()).ok()
}

/// Checks a record of the other duties as filed (the domain's rules for a new record), adding
/// `extra` (a value the form could not read, beside its field, in place of the domain's word
/// on the same field).
fn checked(ev: Event, extra: Option<FieldError>) -> Result<Event, StoreError> {
    let mut errors = ev
        .validate_new(ev.common.created_at)
        .err()
        .map(|e| e.errors)
        .unwrap_or_default();
    // The title of a service or livelihood record is its service's or matter's name: with
    // nothing chosen, the message is the choice's, beside it.
    let title_of = |f: &str| {
        matches!(
            (ev.domain, f),
            (Domain::SpecialPop, "service") | (Domain::Livelihood, "matter")
        )
    };
    if errors.iter().any(|e| title_of(&e.field)) {
        errors.retain(|e| e.field != "title");
    }
    if let Some(x) = extra {
        errors.retain(|e| e.field != x.field);
        errors.push(x);
    }
    if errors.is_empty() {
        Ok(ev)
    } else {
        Err(ValidationErrors { errors }.into())
    }
}

/// A field whose control holds buttons (a chooser): a `div`, not a `label`, so a tap on a
/// choice is only that choice's.
#[component]
fn ChoiceField(label: String, error: FieldCheck, children: Element) -> Element {
    let l = use_lang()();
    let message = error.problem.as_ref().map(|p| p.text(l, &label));
    let class = if message.is_some() {
        "field invalid"
    } else {
        "field"
    };
    rsx! {
        div { class,
            span { class: "field-label", "{label}" }
            {children}
            if let Some(e) = message { span { class: "field-error", role: "alert", "{e}" } }
        }
    }
}

impl<D: FormDraft> Kit<D> {
    /// Forgets the message beside `field` (the worker changed it).
    fn fixed(mut self, field: &str) {
        let left = self.errors.peek().clone().and_then(|e| e.without(field));
        self.errors.set(left);
    }
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct SpecialPopDraft {
    person_id: String,
    service: String,
    content: String,
    urgency: String,
}
form_draft!(SpecialPopDraft);

/// 服务对象: a person of the worker's register with a special-population tag, found by name.
/// The list shows names, addresses and care tags; a managed tag is never shown.
#[component]
fn PersonChooser(value: String, error: FieldCheck, onchange: EventHandler<String>) -> Element {
    let l = *use_lang().read();
    let store = use_store();
    let mut query = use_signal(String::new);
    let chosen = chosen_id(&value).and_then(|id| {
        store
            .read(|s| {
                let p = s.person(id)?;
                let h = s.household(p.household_id)?;
                Ok((p.name, h.address))
            })
            .ok()
    });
    let q = query();
    let list = match &chosen {
        Some(_) => Ok(Vec::new()),
        None => store.read(|s| s.people_served(Some(&q), CHOICES)),
    };
    rsx! {
        ChoiceField { label: t(l, "服务对象", "Person served").to_string(), error,
            match chosen {
                Some((name, address)) => rsx! {
                    div { class: "row chosen",
                        span { id: "sp-person-chosen", class: "grow", "{name} · {address}" }
                        button { id: "sp-person-change", class: "small", onclick: move |_| onchange.call(String::new()),
                            {t(l, "更换", "Change")} }
                    }
                },
                None => rsx! {
                    input { id: "sp-person-search", r#type: "search", value: "{q}",
                        placeholder: t(l, "按姓名查找", "Search by name"), oninput: move |e| query.set(e.value()) }
                    match list {
                        Ok(people) if people.is_empty() => rsx! {
                            p { class: "muted", id: "sp-person-none", {t(l, "没有找到：服务对象须是本网格登记的特殊人群", "No one found: the person must be on this grid's register of special populations")} }
                        },
                        Ok(people) => rsx! {
                            ul { class: "choices", id: "sp-person-list",
                                for p in people {
                                    li { key: "{p.id}",
                                        button { class: "choice", "data-person": "{p.id}", onclick: {
                                            let id = p.id.to_string();
                                            move |_| onchange.call(id.clone())
                                        },
                                            strong { "{p.name}" }
                                            span { class: "muted", " {p.address}" }
                                            for tag in p.care_tags.iter() { span { class: "pill care", {tag.label(l)} } }
                                        }
                                    }
                                }
                            }
                        },
                        Err(e) => rsx! { p { class: "note error", role: "alert", "{e}" } },
                    }
                },
            }
        }
    }
}

#[component]
pub fn SpecialPopForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<SpecialPopDraft>("special-pop");
    let (d, errors) = (kit.draft, kit.errors);
    let submit = move |_| {
        kit.file(
            Domain::SpecialPop,
            |common: Common, dr: &SpecialPopDraft| {
                let service = chosen::<ServiceKind>(&dr.service);
                let mut ev = Event::new(
                    common,
                    Domain::SpecialPop,
                    service.map(|s| s.zh().to_owned()).unwrap_or_default(),
                    dr.content.trim().to_owned(),
                );
                ev.served_person_id = chosen_id(&dr.person_id);
                ev.service = service;
                checked(ev, None)
            },
            |_, _, _, _| Ok(()),
        )
    };
    let dr = d();
    let fields = rsx! {
        PersonChooser { value: dr.person_id.clone(), error: err(errors, "served_person_id"),
            onchange: move |v: String| { kit.edit(|d| d.person_id = v); kit.fixed("served_person_id"); } }
        Field { label: t(l, "服务内容", "Service").to_string(), error: err(errors, "service"),
            select { id: "sp-service", onchange: move |e| kit.edit(|d| d.service = e.value()),
                {choice_options(l, chosen::<ServiceKind>(&dr.service))} } }
        Field { label: t(l, "服务情况", "What was done").to_string(), error: err(errors, "content"),
            textarea { id: "sp-content", rows: 4, value: "{dr.content}",
                placeholder: t(l, "做了什么、对象的近况、还需要什么帮助", "What was done, how the person is, what help is still needed"),
                oninput: move |e| kit.edit(|d| d.content = e.value()) }
            Counter { text: dr.content.clone(), max: TEXT_MAX } }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "sp-urgency",
            submit_id: "sp-submit",
            submit: ("提交服务记录", "Submit service record"),
            danger: false,
            after: None,
            labels: &[("content", "服务情况", "What was done")],
        },
        fields,
        submit,
    )
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct PublicityDraft {
    topic: String,
    place: String,
    audience: String,
    content: String,
    urgency: String,
}
form_draft!(PublicityDraft);

#[component]
pub fn PublicityForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<PublicityDraft>("publicity");
    let (d, errors) = (kit.draft, kit.errors);
    let submit = move |_| {
        kit.file(
            Domain::Publicity,
            |common: Common, dr: &PublicityDraft| {
                let typed = dr.audience.trim();
                // A count that is not a whole number of people is the worker's to fix, not
                // to drop.
                let (audience, unread) = match typed.parse::<i64>() {
                    _ if typed.is_empty() => (None, None),
                    Ok(n) => match u32::try_from(n) {
                        Ok(n) => (Some(n), None),
                        Err(_) => (
                            None,
                            Some(FieldError::new(
                                "audience",
                                Problem::Headcount {
                                    value: n,
                                    max: AUDIENCE_MAX,
                                },
                            )),
                        ),
                    },
                    Err(_) => (
                        None,
                        Some(FieldError::new(
                            "audience",
                            Problem::NotWholeNumber {
                                typed: typed.to_owned(),
                            },
                        )),
                    ),
                };
                let mut ev = Event::new(
                    common,
                    Domain::Publicity,
                    dr.topic.trim().to_owned(),
                    dr.content.trim().to_owned(),
                );
                ev.place = Some(dr.place.trim().to_owned()).filter(|p| !p.is_empty());
                ev.audience = audience;
                checked(ev, unread)
            },
            |_, _, _, _| Ok(()),
        )
    };
    let dr = d();
    let fields = rsx! {
        Field { label: t(l, "宣传主题", "Topic").to_string(), error: err(errors, "title"),
            input { id: "pb-topic", value: "{dr.topic}", maxlength: SHORT_MAX as i64,
                placeholder: t(l, "如：防范电信诈骗、医保缴费", "e.g. phone fraud, medical insurance"),
                oninput: move |e| kit.edit(|d| d.topic = e.value()) } }
        Field { label: t(l, "宣传地点", "Place").to_string(), error: err(errors, "place"),
            input { id: "pb-place", value: "{dr.place}", oninput: move |e| kit.edit(|d| d.place = e.value()) } }
        Field { label: t(l, "受众人数", "Audience").to_string(), error: err(errors, "audience"),
            input { id: "pb-audience", inputmode: "numeric", value: "{dr.audience}", oninput: move |e| kit.edit(|d| d.audience = e.value()) } }
        Field { label: t(l, "宣传内容", "What was said").to_string(), error: err(errors, "content"),
            textarea { id: "pb-content", rows: 4, value: "{dr.content}", oninput: move |e| kit.edit(|d| d.content = e.value()) }
            Counter { text: dr.content.clone(), max: TEXT_MAX } }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "pb-urgency",
            submit_id: "pb-submit",
            submit: ("提交宣传记录", "Submit publicity record"),
            danger: false,
            after: None,
            labels: &[
                ("title", "宣传主题", "Topic"),
                ("place", "宣传地点", "Place"),
                ("content", "宣传内容", "What was said"),
            ],
        },
        fields,
        submit,
    )
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct LivelihoodDraft {
    matter: String,
    household_id: String,
    content: String,
    resolved: bool,
    urgency: String,
}
form_draft!(LivelihoodDraft);

/// 服务户（可空）: a household of the worker's grids, found by name or address.
#[component]
fn HouseholdChooser(value: String, onchange: EventHandler<String>) -> Element {
    let l = *use_lang().read();
    let store = use_store();
    let services = use_services();
    let mut query = use_signal(String::new);
    let chosen = chosen_id(&value).and_then(|id| store.read(|s| s.household(id)).ok());
    let q = query();
    let list = match (&chosen, q.trim().is_empty()) {
        (None, false) => store.read(|s| {
            s.households(
                &HouseholdQuery {
                    text: Some(q.clone()),
                    limit: Some(CHOICES),
                    ..Default::default()
                },
                services.today(),
            )
        }),
        _ => Ok(Vec::new()),
    };
    rsx! {
        ChoiceField { label: t(l, "服务户（可空）", "Household (optional)").to_string(), error: FieldCheck::none(),
            match chosen {
                Some(h) => rsx! {
                    div { class: "row chosen",
                        span { id: "lv-household-chosen", class: "grow", "{h.address}" }
                        button { id: "lv-household-change", class: "small", onclick: move |_| onchange.call(String::new()),
                            {t(l, "更换", "Change")} }
                    }
                },
                None => rsx! {
                    input { id: "lv-household-search", r#type: "search", value: "{q}",
                        placeholder: t(l, "按户主姓名或地址查找", "Search by head's name or address"), oninput: move |e| query.set(e.value()) }
                    match list {
                        Ok(cards) => rsx! {
                            ul { class: "choices",
                                for c in cards {
                                    li { key: "{c.id}",
                                        button { class: "choice", "data-household": "{c.id}", onclick: {
                                            let id = c.id.to_string();
                                            move |_| onchange.call(id.clone())
                                        },
                                            strong { {c.head_name.clone().unwrap_or_default()} }
                                            span { class: "muted", " {c.address}" }
                                        }
                                    }
                                }
                            }
                        },
                        Err(e) => rsx! { p { class: "note error", role: "alert", "{e}" } },
                    }
                },
            }
        }
    }
}

#[component]
pub fn LivelihoodForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<LivelihoodDraft>("livelihood");
    let d = kit.draft;
    let errors = kit.errors;
    let submit = move |_| {
        let resolved = d.peek().resolved;
        kit.file(
            Domain::Livelihood,
            |common: Common, dr: &LivelihoodDraft| {
                let matter = chosen::<LivelihoodMatter>(&dr.matter);
                let mut ev = Event::new(
                    common,
                    Domain::Livelihood,
                    matter.map(|m| m.zh().to_owned()).unwrap_or_default(),
                    dr.content.trim().to_owned(),
                );
                ev.matter = matter;
                if let Some(h) = chosen_id(&dr.household_id) {
                    ev.common.household_id = Some(h);
                }
                checked(ev, None)
            },
            move |tx, ev: &Event, actor, now| {
                if !resolved {
                    return Ok(());
                }
                crate::store::records::transition_in(
                    tx,
                    ev.common.id,
                    Status::Resolved,
                    Some("就地办结"),
                    actor,
                    now,
                )
            },
        )
    };
    let dr = d();
    let fields = rsx! {
        Field { label: t(l, "事项", "Matter").to_string(), error: err(errors, "matter"),
            select { id: "lv-matter", onchange: move |e| kit.edit(|d| d.matter = e.value()),
                {choice_options(l, chosen::<LivelihoodMatter>(&dr.matter))} } }
        HouseholdChooser { value: dr.household_id.clone(), onchange: move |v: String| kit.edit(|d| d.household_id = v) }
        Field { label: t(l, "办理情况", "What was done").to_string(), error: err(errors, "content"),
            textarea { id: "lv-content", rows: 4, value: "{dr.content}", oninput: move |e| kit.edit(|d| d.content = e.value()) }
            Counter { text: dr.content.clone(), max: TEXT_MAX } }
        label { class: "check",
            input { id: "lv-resolved", r#type: "checkbox", checked: dr.resolved, onchange: move |e| kit.edit(|d| d.resolved = e.checked()) }
            {t(l, "已当场办结（就地办结，直接记为已办结）", "Resolved on the spot (filed as resolved)")}
        }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "lv-urgency",
            submit_id: "lv-submit",
            submit: ("提交民生服务", "Submit livelihood service"),
            danger: false,
            after: None,
            labels: &[("content", "办理情况", "What was done")],
        },
        fields,
        submit,
    )
}

#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
#[serde(default)]
struct OtherDraft {
    title: String,
    content: String,
    urgency: String,
}
form_draft!(OtherDraft);

#[component]
pub fn OtherForm() -> Element {
    let l = *use_lang().read();
    let kit = use_kit::<OtherDraft>("other");
    let (d, errors) = (kit.draft, kit.errors);
    let submit = move |_| {
        kit.file(
            Domain::Other,
            |common: Common, dr: &OtherDraft| {
                checked(
                    Event::new(
                        common,
                        Domain::Other,
                        dr.title.trim().to_owned(),
                        dr.content.trim().to_owned(),
                    ),
                    None,
                )
            },
            |_, _, _, _| Ok(()),
        )
    };
    let dr = d();
    let fields = rsx! {
        Field { label: t(l, "标题", "Title").to_string(), error: err(errors, "title"),
            input { id: "ot-title", value: "{dr.title}", oninput: move |e| kit.edit(|d| d.title = e.value()) } }
        Field { label: t(l, "内容", "Content").to_string(), error: err(errors, "content"),
            textarea { id: "ot-content", rows: 4, value: "{dr.content}", oninput: move |e| kit.edit(|d| d.content = e.value()) }
            Counter { text: dr.content.clone(), max: TEXT_MAX } }
    };
    frame(
        kit,
        l,
        Frame {
            urgency_id: "ot-urgency",
            submit_id: "ot-submit",
            submit: ("提交", "Submit"),
            danger: false,
            after: None,
            labels: &[],
        },
        fields,
        submit,
    )
}

/// What a record of the other duties says beyond its title, on its record page: the person
/// served (by name, from the register) and the service, the place and audience, the matter
/// and the household, then what was done.
#[component]
pub fn EventExtras(event: Event) -> Element {
    let l = *use_lang().read();
    let store = use_store();
    let e = event;
    let person = e.served_person_id.map(|id| {
        store
            .read(|s| s.person(id))
            .map(|p| p.name)
            .unwrap_or_else(|_| id.to_string())
    });
    let household = e.common.household_id.map(|id| {
        store
            .read(|s| s.household(id))
            .map(|h| h.address)
            .unwrap_or_else(|_| id.to_string())
    });
    rsx! {
        dl { class: "fields", id: "event-fields",
            if let Some(p) = person { dt { {t(l, "服务对象", "Person served")} } dd { "{p}" } }
            if let Some(s) = e.service { dt { {t(l, "服务内容", "Service")} } dd { {s.label(l)} } }
            if let Some(p) = &e.place { dt { {t(l, "宣传地点", "Place")} } dd { "{p}" } }
            if let Some(n) = e.audience { dt { {t(l, "受众人数", "Audience")} } dd { "{n}" {t(l, " 人", "")} } }
            if let Some(m) = e.matter { dt { {t(l, "事项", "Matter")} } dd { {m.label(l)} } }
            if let Some(h) = household { dt { {t(l, "服务户", "Household")} } dd { "{h}" } }
        }
        p { "{e.content}" }
    }
}
