//! 办理: the moves the record's lifecycle gives the grid worker from its status now, on the
//! record's page, each with what it needs (the county's note and an edit on a returned record,
//! the resident's satisfaction on a matter settled, a reason and a confirm step to void). A
//! move goes through `Store::transition`, which checks it again and queues it for sync.

use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::components::{Counter, ErrorNote, Field, code_options, err, parse_code};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::views::report::{PhotoPicker, UrgencyField};
use crate::domain::Lang;
use crate::domain::codes::{Coded, DeliberationStage, Domain, Satisfaction, Urgency};
use crate::domain::labels::Explain;
use crate::domain::lifecycle::{
    Actor, Status, check_deliberation, check_transition, next_deliberation, worker_moves,
};
use crate::domain::model::{
    AnyRecord, Dispute, Emergency, Event, FollowUp, Hazard, Opinion, Patrol, TEXT_MAX,
};
use crate::domain::validate::{Problem, ValidationErrors};
use crate::store::{Store, StoreError};

/// The moves the panel offers on a record of `domain` that is now `from`: the worker's moves
/// by the lifecycle, less an emergency's 续报 and 终报 (the reports form below makes those,
/// each with its report); none on a patrol (the patrol screen ends it, with its track).
pub fn panel_moves(domain: Domain, from: Status) -> Vec<Status> {
    if domain == Domain::Patrol {
        return Vec::new();
    }
    worker_moves(domain, from)
        .into_iter()
        .filter(|to| !(domain == Domain::Emergency && matches!(to, Status::Update | Status::Final)))
        .collect()
}

/// What a move asks of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// A note is required (what was done, where it was referred, why it is void).
    pub note: bool,
    /// The resident's satisfaction.
    pub satisfaction: bool,
    /// A second tap to confirm (voiding cannot be undone).
    pub confirm: bool,
    /// The record's main text may be edited first (a returned record, resubmitted).
    pub edit: bool,
}

/// What the move `from → to` asks of the worker.
pub fn needs(from: Status, to: Status) -> Needs {
    let edit = from == Status::Returned && to != Status::Void;
    Needs {
        note: !edit && !matches!(to, Status::Mediating | Status::InProgress),
        satisfaction: matches!(
            to,
            Status::Resolved | Status::Success | Status::Evaluated | Status::FollowUp
        ) || (from == Status::Reported && to == Status::Rectified),
        confirm: to == Status::Void,
        edit,
    }
}

/// Whether the move `to` takes a photo of the site: required to ask for a recheck (the
/// reviewer judges the rectification by it), optional when marking a hazard rectified.
pub fn photo_need(to: Status) -> Option<bool> {
    match to {
        Status::Recheck => Some(true),
        Status::Rectified => Some(false),
        _ => None,
    }
}

/// The staging form of the photos of a move on record `id`, as the picker takes it: one name
/// per record, kept for the app's life (a few bytes each).
pub fn photo_form(id: Uuid) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let name = format!("move-photo:{id}");
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let set = names.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    set.insert(leaked);
    leaked
}

/// The move's name on the button.
pub fn move_label(l: Lang, from: Status, to: Status) -> &'static str {
    use Status as S;
    match (from, to) {
        (_, S::Void) => t(l, "作废", "Void"),
        (S::Returned, _) => t(l, "修改后重新上报", "Edit and resubmit"),
        (S::Submitted, S::Resolved) | (S::Registered, S::Success) | (S::Reported, S::Rectified) => {
            t(l, "就地化解", "Settled on the spot")
        }
        (_, S::Rectified) => t(l, "已整改", "Rectified"),
        (_, S::Recheck) => t(l, "申请复查", "Ask for a recheck"),
        (S::Failed, S::Mediating) => t(l, "再次调解", "Mediate again"),
        (_, S::Mediating) => t(l, "开始调解", "Start mediation"),
        (_, S::Success) => t(l, "调解成功", "Mediated"),
        (_, S::Failed) => t(l, "调解失败", "Mediation failed"),
        (_, S::Referred) => t(l, "分流移交", "Refer elsewhere"),
        (_, S::FollowUp) => t(l, "回访", "Follow-up"),
        (_, S::Evaluated) => t(l, "群众评价", "Residents' evaluation"),
        (_, S::InProgress) => t(l, "开始办理", "Start handling"),
        (_, S::Resolved) => t(l, "办结", "Resolved"),
        (_, S::Handling) => t(l, "处置中", "Handling"),
        (_, S::Update) => t(l, "续报", "Update"),
        (_, S::Final) => t(l, "终报", "Final report"),
        _ => t(l, "提交", "Submit"),
    }
}

/// The label of the note for the move `from → to`.
fn note_label(l: Lang, from: Status, to: Status) -> &'static str {
    let n = needs(from, to);
    match to {
        Status::Void => t(l, "作废原因", "Why it is void"),
        Status::Referred => t(l, "分流去向", "Referred to"),
        Status::Rectified | Status::Recheck => t(l, "整改情况", "What was rectified"),
        _ if n.note => t(l, "办理情况", "What was done"),
        _ => t(l, "说明（可空）", "Note (optional)"),
    }
}

/// The record's main text, the field the validator names it by, and its label.
pub fn main_text(rec: &AnyRecord) -> (&'static str, String) {
    match rec {
        AnyRecord::Hazard(h) => ("description", h.description.clone()),
        AnyRecord::Opinion(o) => ("content", o.content.clone()),
        AnyRecord::Dispute(d) => ("summary", d.summary.clone()),
        AnyRecord::Event(e) => ("content", e.content.clone()),
        AnyRecord::Emergency(e) => ("title", e.title.clone()),
        AnyRecord::Patrol(p) => ("notes", p.notes.clone()),
    }
}

/// Sets the record's main text (an edit, checked and queued like any other).
fn set_main_text(
    s: &mut Store,
    rec: &AnyRecord,
    text: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let id = rec.common().id;
    match rec {
        AnyRecord::Hazard(_) => {
            s.update_record::<Hazard>(id, |r| r.description = text, now)?;
        }
        AnyRecord::Opinion(_) => {
            s.update_record::<Opinion>(id, |r| r.content = text, now)?;
        }
        AnyRecord::Dispute(_) => {
            s.update_record::<Dispute>(id, |r| r.summary = text, now)?;
        }
        AnyRecord::Event(_) => {
            s.update_record::<Event>(id, |r| r.content = text, now)?;
        }
        AnyRecord::Emergency(_) => {
            s.update_record::<Emergency>(id, |r| r.title = text, now)?;
        }
        AnyRecord::Patrol(_) => {
            s.update_record::<Patrol>(id, |r| r.notes = text, now)?;
        }
    }
    Ok(())
}

/// A move as the worker filled it in.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub to: Status,
    pub note: String,
    pub satisfaction: Satisfaction,
    /// The edited main text (a resubmitted record).
    pub text: Option<String>,
    /// The urgency chosen on a resubmitted record (never below what its facts make it).
    pub urgency: Option<Urgency>,
    /// The edited place of a resubmitted hazard.
    pub place: Option<String>,
}

/// The least urgency record `rec`'s own facts allow (a 重大 hazard is at least 紧急).
pub fn urgency_floor(rec: &AnyRecord) -> Urgency {
    match rec {
        AnyRecord::Hazard(h) => h.severity.urgency(),
        _ => Urgency::Normal,
    }
}

/// Sets the record's urgency (an edit, checked and queued like any other).
fn set_urgency(
    s: &mut Store,
    rec: &AnyRecord,
    u: Urgency,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let id = rec.common().id;
    match rec {
        AnyRecord::Hazard(_) => {
            s.update_record::<Hazard>(id, |r| r.common.urgency = u, now)?;
        }
        AnyRecord::Opinion(_) => {
            s.update_record::<Opinion>(id, |r| r.common.urgency = u, now)?;
        }
        AnyRecord::Dispute(_) => {
            s.update_record::<Dispute>(id, |r| r.common.urgency = u, now)?;
        }
        AnyRecord::Event(_) => {
            s.update_record::<Event>(id, |r| r.common.urgency = u, now)?;
        }
        AnyRecord::Emergency(_) => {
            s.update_record::<Emergency>(id, |r| r.common.urgency = u, now)?;
        }
        AnyRecord::Patrol(_) => {
            s.update_record::<Patrol>(id, |r| r.common.urgency = u, now)?;
        }
    }
    Ok(())
}

/// Makes the worker's move on record `id`: refused with the lifecycle's own message when the
/// record is no longer where the move starts (the county moved it meanwhile), and with a field
/// message when the note is missing or too long; nothing is written then. The satisfaction is
/// kept where the record has a place for it (an event's `satisfaction`, which the points ledger
/// reads; a dispute's follow-up), otherwise it opens the move's note.
pub fn make_move(
    s: &mut Store,
    id: Uuid,
    m: &Move,
    today: chrono::NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    make_move_with_photos(s, id, m, None, today, now)
}

/// [`make_move`] with the photos staged under `photos` (see [`photo_form`]) kept with the
/// record in the move's own transaction, where the move takes a photo ([`photo_need`]):
/// refused with a field message on `photo` when the move needs one and none is staged.
pub fn make_move_with_photos(
    s: &mut Store,
    id: Uuid,
    m: &Move,
    photos: Option<&str>,
    today: chrono::NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let rec = s.any_record(id)?;
    let from = rec.common().status;
    check_transition(id, rec.domain(), from, m.to, Actor::Worker)?;
    let n = needs(from, m.to);
    let note = m.note.trim();
    let photos = photos.filter(|_| photo_need(m.to).is_some());
    let staged = match photos {
        Some(f) => s.staged_photos(f)?.len(),
        None => 0,
    };
    let mut v = crate::domain::validate::Validator::new();
    if n.note && note.is_empty() {
        v.error("note", Problem::Required);
    }
    if photo_need(m.to) == Some(true) && staged == 0 {
        v.error("photo", Problem::Required);
    }
    v.finish()?;
    let len = note.chars().count();
    if len > TEXT_MAX {
        return Err(
            ValidationErrors::single("note", Problem::TooLong { len, max: TEXT_MAX }).into(),
        );
    }
    if n.edit
        && let Some(text) = &m.text
        && text.trim() != main_text(&rec).1
    {
        set_main_text(s, &rec, text.trim().to_owned(), now)?;
    }
    if n.edit
        && let Some(u) = m.urgency
    {
        let u = u.at_least(urgency_floor(&rec));
        if u != rec.common().urgency {
            set_urgency(s, &rec, u, now)?;
        }
    }
    if n.edit
        && let (AnyRecord::Hazard(h), Some(place)) = (&rec, &m.place)
        && place.trim() != h.place
    {
        let place = place.trim().to_owned();
        s.update_record::<Hazard>(id, |r| r.place = place, now)?;
    }
    let mut note = note.to_owned();
    if n.satisfaction {
        match &rec {
            AnyRecord::Event(_) => {
                let sat = m.satisfaction;
                s.update_record::<Event>(id, |e| e.satisfaction = Some(sat), now)?;
            }
            AnyRecord::Dispute(_) if m.to == Status::FollowUp => {
                let fu = FollowUp {
                    on: today,
                    satisfaction: m.satisfaction,
                    notes: note.clone(),
                };
                s.update_record::<Dispute>(id, |d| d.follow_up = Some(fu), now)?;
            }
            _ => note = format!("满意度：{}。{note}", m.satisfaction.zh()),
        }
    }
    let note = Some(note).filter(|n| !n.is_empty());
    match photos {
        Some(f) => s
            .transition_with_photos(id, m.to, note.as_deref(), f, now)
            .map(|_| ()),
        None => s.transition(id, m.to, note.as_deref(), now),
    }
}

/// Takes an opinion one stage along 三议四步, with what the stage decided: refused when it is
/// not the next stage.
pub fn advance_deliberation(
    s: &mut Store,
    id: Uuid,
    to: DeliberationStage,
    decided: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<(), crate::domain::lifecycle::DeliberationError>, StoreError> {
    let o: Opinion = s.record(id)?;
    if let Err(e) = check_deliberation(o.deliberation, to) {
        return Ok(Err(e));
    }
    let decided = decided.trim();
    if decided.is_empty() {
        return Err(ValidationErrors::single("deliberation_notes", Problem::Required).into());
    }
    let line = format!("{}：{decided}", to.zh());
    s.update_record::<Opinion>(
        id,
        |o| {
            o.deliberation = Some(to);
            o.deliberation_notes = Some(match o.deliberation_notes.take() {
                Some(before) if !before.is_empty() => format!("{before}\n{line}"),
                _ => line,
            });
        },
        now,
    )?;
    Ok(Ok(()))
}

/// The 办理 panel of record `id`.
#[component]
pub fn MovesPanel(id: Uuid) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let data = store.read(|s| Ok((s.any_record(id)?, s.status_history(id)?)));
    let form = format!("move:{id}");
    // What is typed is a draft (the move, its note, satisfaction and edited text).
    let (st0, f0) = (store.clone(), form.clone());
    let draft: (String, String, String, Option<String>) = use_hook(move || {
        st0.read(|s| crate::app::drafts::load(s, &f0))
            .ok()
            .flatten()
            .unwrap_or_else(|| (String::new(), String::new(), "SATISFIED".into(), None))
    });
    let mut chosen = use_signal(|| draft.0.clone());
    let mut note = use_signal(|| draft.1.clone());
    let mut sat = use_signal(|| draft.2.clone());
    let mut text = use_signal(|| draft.3.clone());
    let mut confirming = use_signal(|| false);
    let mut sent = use_signal(|| false);
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut general = use_signal(|| None::<String>);
    // The urgency and place chosen on a resubmit, a draft of their own.
    let xform = format!("move-extra:{id}");
    let (st1, x1) = (store.clone(), xform.clone());
    let extra: (Option<String>, Option<String>) = use_hook(move || {
        st1.read(|s| crate::app::drafts::load(s, &x1))
            .ok()
            .flatten()
            .unwrap_or_default()
    });
    let mut urgency = use_signal(|| extra.0.clone());
    let mut place = use_signal(|| extra.1.clone());
    let st_x = store.clone();
    let save_extra = move || {
        let d = (urgency.peek().clone(), place.peek().clone());
        let _ = st_x.read(|s| crate::app::drafts::save(s, &xform, &d));
    };
    let (sx1, sx2) = (save_extra.clone(), save_extra);
    let pform = photo_form(id);
    let st_photos = store.clone();
    let mut photos = use_signal(move || {
        st_photos
            .read(|s| s.staged_photos(pform))
            .unwrap_or_default()
    });
    let (rec, history) = match data {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let domain = rec.domain();
    if domain == Domain::Patrol {
        return rsx! {};
    }
    let from = rec.common().status;
    let moves = panel_moves(domain, from);
    let return_note = (from == Status::Returned)
        .then(|| history.iter().rev().find(|h| h.to == Status::Returned))
        .flatten()
        .and_then(|h| h.note.clone());
    let picked = Status::from_code(&chosen())
        .ok()
        .filter(|s| moves.contains(s));
    let (text_field, original) = main_text(&rec);
    let (st_d, f_d) = (store.clone(), form.clone());
    let save_draft = move || {
        let d = (
            chosen.peek().clone(),
            note.peek().clone(),
            sat.peek().clone(),
            text.peek().clone(),
        );
        let _ = st_d.read(|s| crate::app::drafts::save(s, &f_d, &d));
        sent.set(false);
        confirming.set(false);
    };
    let (sd1, mut sd2, mut sd3, mut sd4) = (
        save_draft.clone(),
        save_draft.clone(),
        save_draft.clone(),
        save_draft,
    );
    let (st, sv, orig) = (store.clone(), services.clone(), original.clone());
    let submit = move |_| {
        // Done, and nothing changed since: a second tap has nothing to add.
        if *sent.peek() {
            return;
        }
        let Ok(to) = Status::from_code(&chosen.peek()) else {
            return;
        };
        if needs(from, to).confirm && !*confirming.peek() {
            confirming.set(true);
            return;
        }
        let m = Move {
            to,
            note: note.peek().clone(),
            satisfaction: parse_code(&sat.peek(), Satisfaction::Satisfied),
            text: Some(text.peek().clone().unwrap_or_else(|| orig.clone())),
            urgency: urgency
                .peek()
                .as_deref()
                .and_then(|c| Urgency::from_code(c).ok()),
            place: place.peek().clone(),
        };
        let form = form.clone();
        let res = st.write(|s| {
            make_move_with_photos(s, id, &m, Some(pform), sv.today(), sv.now())?;
            crate::app::drafts::clear(s, &form)?;
            crate::app::drafts::clear(s, &format!("move-extra:{id}"))
        });
        match res {
            Ok(()) => {
                sent.set(true);
                confirming.set(false);
                chosen.set(String::new());
                note.set(String::new());
                text.set(None);
                urgency.set(None);
                place.set(None);
                photos.set(Vec::new());
                errors.set(None);
                general.set(None);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => {
                confirming.set(false);
                errors.set(Some(e));
            }
            Err(e) => {
                confirming.set(false);
                general.set(Some(e.explain(l)));
            }
        }
    };
    rsx! {
        section { class: "moves", id: "moves",
            h2 { {t(l, "办理", "Handle")} }
            if let Some(n) = return_note {
                p { class: "note warn", id: "return-note", {t(l, "退回意见：", "Returned because: ")} "{n}" }
            }
            if moves.is_empty() {
                p { class: "hint", id: "moves-none", {t(l, "现在没有需要您办理的步骤，请等县、镇审核。", "Nothing for you to do now; the county's reviewers have it.")} }
            }
            div { class: "move-list",
                for m in moves.iter().copied() {
                    button { key: "{m.code()}", class: if picked == Some(m) { "small on" } else { "small" }, "data-move": m.code(),
                        onclick: { let mut sd = sd1.clone(); move |_| { chosen.set(m.code().to_owned()); errors.set(None); general.set(None); sd(); } },
                        {move_label(l, from, m)} }
                }
            }
            if let Some(to) = picked {
                div { class: "form", id: "move-form",
                    if needs(from, to).edit {
                        Field { label: t(l, "内容（按退回意见修改）", "Text (as the county asked)").to_string(), error: err(errors, text_field),
                            textarea { id: "move-text", rows: 4, value: text().unwrap_or(original.clone()),
                                oninput: move |e| { text.set(Some(e.value())); sd2(); } }
                            Counter { text: text().unwrap_or(original.clone()), max: TEXT_MAX } }
                        UrgencyField { id: "move-urgency", value: urgency().unwrap_or(rec.common().urgency.code().to_owned()),
                            floor: urgency_floor(&rec), error: err(errors, "urgency"),
                            onchange: move |v: String| { urgency.set(Some(v)); sx1(); } }
                        if let AnyRecord::Hazard(h) = &rec {
                            Field { label: t(l, "具体地点", "Place").to_string(), error: err(errors, "place"),
                                input { id: "move-place", value: place().unwrap_or(h.place.clone()),
                                    oninput: move |e| { place.set(Some(e.value())); sx2(); } } }
                        }
                    }
                    if needs(from, to).satisfaction {
                        Field { label: t(l, "群众满意度", "Resident's satisfaction").to_string(), error: err(errors, "satisfaction"),
                            select { id: "move-sat", onchange: move |e| { sat.set(e.value()); sd3(); },
                                {code_options(l, parse_code(&sat(), Satisfaction::Satisfied))} } }
                    }
                    if let Some(required) = photo_need(to) {
                        Field { label: if required { t(l, "现场照片（必须）", "Photo of the site (required)").to_string() } else { t(l, "现场照片（可选）", "Photo of the site (optional)").to_string() },
                            error: err(errors, "photo"),
                            PhotoPicker { form: pform, photos } }
                    }
                    Field { label: note_label(l, from, to).to_string(), error: err(errors, "note"),
                        textarea { id: "move-note", rows: 3, value: "{note}", oninput: move |e| { note.set(e.value()); sd4(); } }
                        Counter { text: note(), max: TEXT_MAX } }
                    if confirming() {
                        p { class: "note warn", id: "move-confirm-note", {t(l, "作废后这条记录不再办理，也不能恢复。确定作废吗？", "A void record is not handled and cannot be restored. Void it?")} }
                    }
                    button { id: "move-submit", "data-act": if confirming() { "move-confirm" } else { "move-submit" }, class: "big", disabled: sent(), onclick: submit,
                        if confirming() { {t(l, "确认作废", "Yes, void it")} } else { {move_label(l, from, to)} } }
                    if confirming() {
                        button { id: "move-cancel", class: "small", onclick: move |_| confirming.set(false), {t(l, "不作废", "Keep it")} }
                    }
                }
            }
            if let Some(g) = general() { ErrorNote { text: g } }
            if let AnyRecord::Opinion(o) = &rec {
                Deliberation { id, stage: o.deliberation }
            }
        }
    }
}

/// 三议四步 on an opinion: the next stage and what it decided.
#[component]
fn Deliberation(id: Uuid, stage: Option<DeliberationStage>) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let next = next_deliberation(stage);
    let mut to = use_signal(String::new);
    let mut decided = use_signal(String::new);
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut general = use_signal(|| None::<String>);
    if next.is_empty() {
        return rsx! {};
    }
    let first = next[0];
    let save = move |_| {
        let stage_to = DeliberationStage::from_code(&to.peek()).unwrap_or(first);
        let res =
            store.write(|s| advance_deliberation(s, id, stage_to, &decided.peek(), services.now()));
        match res {
            Ok(Ok(())) => {
                decided.set(String::new());
                to.set(String::new());
                errors.set(None);
                general.set(None);
                bump(session);
            }
            Ok(Err(e)) => general.set(Some(e.text(l))),
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => general.set(Some(e.explain(l))),
        }
    };
    rsx! {
        details { class: "form", id: "deliberation",
            summary { {t(l, "三议四步：下一步", "Deliberation: next stage")} }
            Field { label: t(l, "议事阶段", "Stage").to_string(), error: err(errors, "deliberation"),
                select { id: "delib-stage", onchange: move |e| to.set(e.value()),
                    for v in next.iter().copied() { option { value: v.code(), selected: to() == v.code(), {v.label(l)} } } } }
            Field { label: t(l, "议定内容", "What was decided").to_string(), error: err(errors, "deliberation_notes"),
                textarea { id: "delib-notes", rows: 3, value: "{decided}", oninput: move |e| decided.set(e.value()) } }
            button { id: "delib-save", class: "big", onclick: save, {t(l, "保存议事进程", "Save the stage")} }
            if let Some(g) = general() { ErrorNote { text: g } }
        }
    }
}
