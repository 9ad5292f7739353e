//! 同址分户 / 新立户: a new household with its head. From a household's page it is in the same
//! house (a son's family splitting off, a new tenant family), its address taken from the
//! household and editable (the room or unit); from the Households list it has no house yet
//! and belongs to one of the worker's grids. The head is entered as an added member is: an ID
//! number checked with its check digit (sex and birth date read from it and shown before
//! saving), or a floating person with where they are registered; and a phone. The draft is
//! kept as the worker types; a second tap files nothing twice.

use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::Route;
use crate::app::components::{Field, FieldCheck, err};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::views::households::{PersonDraft, person_of};
use crate::domain::codes::{Coded, Relation, Sex};
use crate::domain::labels::Explain;
use crate::domain::model::{Household, Registration};
use crate::domain::validate::{IdNumber, Problem, ValidationErrors};
use crate::store::StoreError;

/// What the new-household form holds while the worker types (its draft).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct HouseholdDraft {
    address: String,
    /// The grid of a household with no house (its id).
    grid: String,
    /// The head: MEMBER (with an ID card) or FLOATING.
    head: PersonDraft,
}

/// The draft name of the form: per household it splits from, or one for the list.
pub fn form_name(at: Option<Uuid>) -> String {
    match at {
        Some(h) => format!("household:{h}"),
        None => "household:new".into(),
    }
}

/// The new-household form: in the house of household `at`, or (none) with no house.
#[component]
pub fn NewHousehold(at: Option<Uuid>) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let form = form_name(at);
    let from = at.and_then(|h| store.read(|s| s.household(h)).ok());
    let grids = store.read(|s| s.grids()).unwrap_or_default();
    let (store0, form0, from0) = (store.clone(), form.clone(), from.clone());
    let first_grid = grids.first().map(|g| g.id.to_string()).unwrap_or_default();
    let fresh = move || HouseholdDraft {
        address: from0
            .as_ref()
            .map(|h| h.address.clone())
            .unwrap_or_default(),
        grid: first_grid.clone(),
        head: PersonDraft {
            kind: "MEMBER".into(),
            relation: Relation::Head.code().into(),
            sex: Sex::Male.code().into(),
            ..Default::default()
        },
    };
    let fresh0 = fresh.clone();
    let mut draft = use_signal(move || {
        store0
            .read(|s| crate::app::drafts::load::<HouseholdDraft>(s, &form0))
            .ok()
            .flatten()
            .unwrap_or_else(fresh0)
    });
    let mut errors = use_signal(|| None::<ValidationErrors>);
    // The household filed by the last save (its page is linked until the next edit).
    let mut saved = use_signal(|| None::<Uuid>);
    let (store_id, form_id) = (store.clone(), form.clone());
    let ids = move || {
        store_id
            .read(|s| {
                Ok((
                    s.draft_id(&form_id)?,
                    s.draft_id(&format!("{form_id}:head"))?,
                ))
            })
            .unwrap_or_else(|_| {
                (
                    crate::domain::model::new_id(),
                    crate::domain::model::new_id(),
                )
            })
    };
    let ids0 = ids.clone();
    let mut ids_now = use_signal(ids0);
    let (store_s, form_s) = (store.clone(), form.clone());
    // One field typed: the draft is saved at once, so leaving the form loses nothing.
    let edit = use_callback(move |(field, v): (&'static str, String)| {
        {
            let mut d = draft.write();
            match field {
                "address" => d.address = v,
                "grid" => d.grid = v,
                "kind" => d.head.kind = v,
                "name" => d.head.name = v,
                "id_number" => d.head.id_number = v,
                "phone" => d.head.phone = v,
                _ => d.head.origin = v,
            }
        }
        let _ = store_s.read(|s| crate::app::drafts::save(s, &form_s, &*draft.peek()));
        saved.set(None);
    });
    let today = services.today();
    let services_s = services.clone();
    let from_s = from.clone();
    let submit = move |_| {
        // Filed, and nothing typed since: a second tap has nothing new to file.
        if saved.peek().is_some() {
            return;
        }
        let d = draft.peek().clone();
        let now = services_s.now();
        let (hid, pid) = *ids_now.peek();
        let head = match person_of(&d.head, pid, hid, services_s.today()) {
            Ok(p) => p,
            Err(e) => {
                errors.set(Some(e));
                return;
            }
        };
        let h = Household {
            id: hid,
            grid_id: match &from_s {
                Some(f) => f.grid_id,
                None => Uuid::parse_str(&d.grid).unwrap_or_default(),
            },
            house_id: from_s.as_ref().and_then(|f| f.house_id),
            head_id: None,
            address: d.address.trim().to_owned(),
            location: match &from_s {
                Some(f) => f.location,
                None => services_s.location.fix().ok().map(|f| f.point),
            },
        };
        match store.write(|s| s.register_household(Some(&form), &h, &head, now)) {
            Ok(_) => {
                errors.set(None);
                draft.set(fresh());
                ids_now.set(ids());
                saved.set(Some(hid));
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => errors.set(Some(ValidationErrors::single(
                "address",
                Problem::Other(e.explain(l)),
            ))),
        }
    };
    let d = draft();
    let floating = d.head.how() == Registration::Floating;
    // What the ID number says, shown before saving.
    let read_id = IdNumber::parse(d.head.id_number.trim(), today).ok();
    let act = "household-save";
    let (title, address_label) = if at.is_some() {
        (
            t(l, "同址分户 / 新立户", "New household at this address"),
            t(
                l,
                "住址（可加室号、单元）",
                "Address (add the room or unit)",
            ),
        )
    } else {
        (
            t(l, "新立户（本网格）", "New household in my grid"),
            t(l, "住址", "Address"),
        )
    };
    rsx! {
        details { class: "new-household", open: saved().is_some() || !d.head.name.is_empty() || errors.read().is_some(),
            summary { h2 { {title} } }
            if at.is_some() {
                p { class: "hint", {t(l, "在同一房屋登记另一户（如子女分户、新租户），户主为新户第一人。", "Another household in the same house (a child's family splitting off, a new tenant family); its head is its first member.")} }
            }
            Field { label: address_label.to_string(), error: err(errors, "address"),
                input { id: "hh-new-address", value: "{d.address}", oninput: move |e| edit(("address", e.value())) }
            }
            if at.is_none() {
                Field { label: t(l, "所属网格", "Grid").to_string(), error: err(errors, "grid_id"),
                    select { id: "hh-new-grid", onchange: move |e| edit(("grid", e.value())),
                        for g in grids.iter() {
                            option { value: "{g.id}", selected: d.grid == g.id.to_string(), "{g.name}" }
                        }
                    }
                }
            }
            Field { label: t(l, "户主类型", "Head is").to_string(), error: FieldCheck::none(),
                select { id: "hh-new-kind", onchange: move |e| edit(("kind", e.value())),
                    option { value: "MEMBER", selected: !floating, {t(l, "本地居民（有身份证）", "Resident (with ID card)")} }
                    option { value: "FLOATING", selected: floating, {t(l, "流动人口", "Floating resident")} }
                }
            }
            Field { label: t(l, "户主姓名", "Head's name").to_string(), error: err(errors, "name"),
                input { id: "hh-new-name", value: "{d.head.name}", oninput: move |e| edit(("name", e.value())) }
            }
            Field { label: t(l, "证件号码", "ID number").to_string(), error: err(errors, "id_number"),
                input { id: "hh-new-id", value: "{d.head.id_number}", inputmode: "text", maxlength: 18,
                    oninput: move |e| edit(("id_number", e.value())) }
            }
            if let Some(n) = &read_id {
                p { class: "hint", id: "hh-new-from-id",
                    {t(l, "由证件号码得出：", "From the ID number: ")} {n.sex().label(l)} " · " "{n.birth_date()}" }
            }
            if floating {
                Field { label: t(l, "户籍地", "Registered at").to_string(), error: err(errors, "origin"),
                    input { id: "hh-new-origin", value: "{d.head.origin}", placeholder: t(l, "从哪里来，如 湖南省长沙市", "Where from"),
                        oninput: move |e| edit(("origin", e.value())) }
                }
            }
            Field { label: t(l, "联系电话", "Phone").to_string(), error: err(errors, "phone"),
                input { id: "hh-new-phone", r#type: "tel", value: "{d.head.phone}", oninput: move |e| edit(("phone", e.value())) }
            }
            if let Some(e) = errors.read().as_ref().and_then(|e| e.problem("birth_date")).map(|p| p.text(l, t(l, "出生日期", "Birth date"))) {
                p { class: "field-error", role: "alert", "{e}" }
            }
            button { id: "household-save", "data-act": act, class: "big primary", disabled: saved().is_some(), onclick: submit, {t(l, "保存新户", "Save household")} }
            if let Some(id) = saved() {
                p { class: "note ok", id: "household-saved", {t(l, "已立户，待同步上传。", "Household added; will upload at next sync. ")}
                    Link { id: "household-saved-open", to: Route::HouseholdPage { id }, {t(l, "查看新户", "Open it")} }
                }
            }
        }
    }
}
