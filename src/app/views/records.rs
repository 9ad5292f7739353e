//! Records: mine, by type and status, each with the county's replies and its status history;
//! disputes take mediation sessions and the follow-up (satisfaction) here, emergencies take
//! their 续报 and 终报.

use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::Route;
use crate::app::components::{
    Counter, ErrorNote, Field, Pill, SyncState, base64, code_options, err, metres, parse_code,
};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::domain::codes::{Coded, Domain, MediationMethod, ReportStage, Satisfaction};
use crate::domain::labels::Explain;
use crate::domain::lifecycle::Status;
use crate::domain::model::{
    AnyRecord, Dispute, EmergencyReport, FollowUp, MediationSession, TEXT_MAX, new_id,
};
use crate::domain::validate::ValidationErrors;
use crate::store::StoreError;
use crate::store::records::RecordQuery;

#[component]
pub fn Records() -> Element {
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let mut domain = use_signal(|| None::<Domain>);
    let mut status = use_signal(|| None::<Status>);
    let _rev = session.rev.read();
    let q = RecordQuery {
        domain: domain(),
        statuses: status().into_iter().collect(),
        limit: Some(200),
        ..Default::default()
    };
    let list = store.read(|s| {
        let me = s.worker().to_owned();
        let unsent = s.unsent_states()?;
        Ok(s.records(&q)?
            .into_iter()
            .filter(|r| r.author == me)
            .map(|r| (unsent.get(&r.id).copied(), r))
            .collect::<Vec<_>>())
    });
    let unread = store.read(|s| s.unread_feedback()).unwrap_or(0);
    rsx! {
        section { class: "records",
            h1 { {t(l, "我的记录", "My records")} }
            Link { class: if unread > 0 { "more unread" } else { "more" }, id: "records-feedback", to: Route::Feedback {},
                {t(l, "县里反馈", "County feedback")}
                if unread > 0 { " " span { class: "badge", "{unread}" } }
                " →"
            }
            div { class: "filters",
                select { id: "rec-domain", onchange: move |e| domain.set(Domain::from_code(&e.value()).ok()),
                    option { value: "", {t(l, "全部类型", "All types")} }
                    for v in Domain::ALL.iter().copied() { option { value: v.code(), selected: domain() == Some(v), {v.label(l)} } }
                }
                select { id: "rec-status", onchange: move |e| status.set(Status::from_code(&e.value()).ok()),
                    option { value: "", {t(l, "全部状态", "All statuses")} }
                    for v in Status::ALL.iter().copied() { option { value: v.code(), selected: status() == Some(v), {v.label(l)} } }
                }
            }
            match list {
                Ok(list) => rsx! {
                    if list.is_empty() { p { class: "hint", {t(l, "没有记录。", "No records.")} } }
                    ul { class: "cards rec-list",
                        for (unsent, r) in list {
                            li { key: "{r.id}",
                                Link { class: "card", to: Route::RecordPage { id: r.id },
                                    div { class: "card-title", {r.domain.label(l)} if !r.summary.is_empty() { " · {r.summary}" } }
                                    div { class: "card-tags",
                                        SyncState { unsent, status: r.status, domain: r.domain }
                                        SupervisionPill { level: r.supervision }
                                        span { class: "muted", " " {crate::app::context::local_time(r.created_at, "%Y-%m-%d %H:%M")} }
                                    }
                                }
                            }
                        }
                    }
                },
                Err(e) => rsx! { ErrorNote { text: e } },
            }
        }
    }
}

#[component]
pub fn RecordPage(id: Uuid) -> Element {
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let data = store.read(|s| {
        let r = s.any_record(id)?;
        let photos: Vec<(String, String)> = r
            .common()
            .photos
            .iter()
            .filter_map(|h| {
                s.photo(h)
                    .ok()
                    .map(|(b, m)| (h.clone(), format!("data:{m};base64,{}", base64(&b))))
            })
            .collect();
        Ok((
            r,
            s.status_history(id)?,
            s.replies(id)?,
            photos,
            (s.unsent_state(id)?, s.worker().to_owned()),
        ))
    });
    // Opening a record reads the county's feedback on it.
    let services = use_services();
    let st_read = store.clone();
    use_effect(move || {
        if let Ok(n) = st_read.read(|s| s.read_record_feedback(id, services.now()))
            && n > 0
        {
            bump(session);
        }
    });
    let (rec, history, replies, photos, (unsent, me)) = match data {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let c = rec.common().clone();
    rsx! {
        section { class: "record",
            Link { class: "back", to: Route::Records {}, {t(l, "‹ 我的记录", "‹ My records")} }
            h1 { {rec.domain().label(l)} }
            div { class: "card-tags", id: "record-status",
                SyncState { unsent, status: c.status, domain: rec.domain() }
                Pill { text: c.urgency.label(l).to_string(), kind: "" }
                SupervisionPill { level: c.supervision }
            }
            p { class: "summary", id: "record-summary", {rec.summary().to_string()} }
            p { class: "muted",
                {crate::app::context::local_time(c.created_at, "%Y-%m-%d %H:%M")} " · "
                {if c.author == me { t(l, "我", "me").to_string() } else { c.author.clone() }}
                if let Some(p) = c.location { " · {p.lon:.5}, {p.lat:.5}" if let Some(a) = p.accuracy_m { " ± {a:.0} m" } }
            }
            match &rec {
                AnyRecord::Hazard(h) => rsx! { p { {h.category.label(l)} " · " {h.severity.label(l)} if !h.place.is_empty() { " · {h.place}" } } },
                AnyRecord::Opinion(o) => rsx! { p { {o.category.label(l)} if let Some(d) = o.deliberation { " · " {t(l, "议事：", "Deliberation: ")} {d.label(l)} } } },
                AnyRecord::Patrol(p) => rsx! { p { id: "patrol-summary", {t(l, "距离 ", "Distance ")} {metres(p.distance_m)} " · " {crate::app::context::local_time(p.started_at, "%H:%M")}
                    if let Some(e) = p.ended_at { "–" {crate::app::context::local_time(e, "%H:%M")} } if !p.notes.is_empty() { " · {p.notes}" } } },
                AnyRecord::Dispute(d) => rsx! { DisputeExtras { dispute: d.clone() } },
                AnyRecord::Emergency(e) => rsx! { p { {e.category.label(l)} " · " {e.level.label(l)} } EmergencyExtras { id: e.common.id } },
                AnyRecord::Event(e) => rsx! { super::duty_forms::EventExtras { event: e.clone() } },
            }
            super::moves::MovesPanel { id }
            if !photos.is_empty() {
                div { class: "thumbs",
                    for (h, src) in photos { img { key: "{h}", class: "thumb", src: "{src}", alt: "{&h[..8]}" } }
                }
            }
            h2 { {t(l, "县里反馈", "County replies")} " ({replies.len()})" }
            ul { class: "replies",
                for r in replies { li { key: "{r.id}", class: "reply", span { class: "muted", {crate::app::context::local_time(r.created_at, "%m-%d %H:%M")} " {r.author}: " } "{r.text}" } }
            }
            h2 { {t(l, "办理进程", "Status history")} }
            if history.is_empty() { p { class: "hint", {t(l, "尚无状态变更", "No status changes yet")} } }
            ol { class: "history",
                for h in history {
                    li { {crate::app::context::local_time(h.at, "%m-%d %H:%M")} " " {h.from.label(l)} " → " {h.to.label(l)} " · {h.actor}"
                        if let Some(n) = h.note { " · {n}" } }
                }
            }
        }
    }
}

#[component]
fn DisputeExtras(dispute: Dispute) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let id = dispute.common.id;
    let sessions = store.read(|s| s.mediation_sessions(id));
    // The session being typed is a draft (method, participants, notes, agreement): a tab
    // switch or a restart loses none of it.
    let ms_form = format!("mediation:{id}");
    let (st0, f0) = (store.clone(), ms_form.clone());
    let ms_draft: (String, String, String, String) = use_hook(move || {
        st0.read(|s| crate::app::drafts::load(s, &f0))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                (
                    "ON_SITE".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                )
            })
    });
    let mut method = use_signal(|| ms_draft.0.clone());
    let mut participants = use_signal(|| ms_draft.1.clone());
    let mut notes = use_signal(|| ms_draft.2.clone());
    let mut agreement = use_signal(|| ms_draft.3.clone());
    let mut ms_saved = use_signal(|| false);
    let (st_d, f_d) = (store.clone(), ms_form.clone());
    let save_ms = move || {
        let d = (
            method.peek().clone(),
            participants.peek().clone(),
            notes.peek().clone(),
            agreement.peek().clone(),
        );
        let _ = st_d.read(|s| crate::app::drafts::save(s, &f_d, &d));
        ms_saved.set(false);
    };
    let (mut sm1, mut sm2, mut sm3, mut sm4) =
        (save_ms.clone(), save_ms.clone(), save_ms.clone(), save_ms);
    let mut sat = use_signal(|| "SATISFIED".to_string());
    let mut fu_notes = use_signal(String::new);
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut general = use_signal(|| None::<String>);
    let (st, sv) = (store.clone(), services.clone());
    let add_session = move |_| {
        // Saved, and nothing typed since: a second tap has nothing to add.
        if *ms_saved.peek() {
            return;
        }
        let now = sv.now();
        let form = ms_form.clone();
        let res = st.write(|s| {
            let m = MediationSession {
                id: new_id(),
                dispute_id: id,
                held_on: sv.today(),
                method: parse_code(&method.peek(), MediationMethod::OnSite),
                participants: participants
                    .peek()
                    .split([',', '，', '、'])
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
                notes: notes.peek().trim().to_owned(),
                agreement: Some(agreement.peek().trim().to_owned()).filter(|a| !a.is_empty()),
                author: s.worker().to_owned(),
                created_at: now,
            };
            s.add_mediation_session(&m, now)?;
            crate::app::drafts::save(s, &form, &serde_json::Value::Null)
        });
        match res {
            Ok(()) => {
                errors.set(None);
                general.set(None);
                notes.set(String::new());
                agreement.set(String::new());
                participants.set(String::new());
                ms_saved.set(true);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => general.set(Some(e.explain(l))),
        }
    };
    let (st2, sv2) = (store.clone(), services.clone());
    let follow_up = move |_| {
        let now = sv2.now();
        let fu = FollowUp {
            on: sv2.today(),
            satisfaction: parse_code(&sat.peek(), Satisfaction::Satisfied),
            notes: fu_notes.peek().trim().to_owned(),
        };
        // The follow-up of a settled or referred dispute is also its move to 回访.
        let res = st2.write(|s| {
            let d = s.update_record::<Dispute>(id, |d| d.follow_up = Some(fu), now)?;
            if matches!(d.common.status, Status::Success | Status::Referred) {
                let notes = d.follow_up.map(|f| f.notes).filter(|n| !n.is_empty());
                s.transition(id, Status::FollowUp, notes.as_deref(), now)?;
            }
            Ok(())
        });
        match res {
            Ok(_) => {
                general.set(None);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => general.set(Some(e.explain(l))),
        }
    };
    rsx! {
        p { {dispute.category.label(l)} }
        h2 { {t(l, "当事人", "Parties")} }
        ul { for (i, p) in dispute.parties.iter().enumerate() { li { key: "{i}", {p.role.label(l)} " · {p.name}" if let Some(ph) = &p.phone { " · " {crate::domain::validate::mask_phone(ph)} } } } }
        h2 { {t(l, "调解记录", "Mediation sessions")} }
        match sessions {
            Ok(list) => rsx! { ul { id: "sessions", for m in list { li { key: "{m.id}", "{m.held_on} · " {m.method.label(l)} " · {m.notes}" if let Some(a) = m.agreement { " · " {t(l, "协议：", "Agreement: ")} "{a}" } } } } },
            Err(e) => rsx! { ErrorNote { text: e } },
        }
        details { class: "form", open: true,
            summary { {t(l, "添加调解记录", "Add a mediation session")} }
            Field { label: t(l, "方式", "Method").to_string(), error: err(errors, "method"),
                select { id: "ms-method", onchange: move |e| { method.set(e.value()); sm1(); }, {code_options(l, parse_code(&method(), MediationMethod::OnSite))} } }
            Field { label: t(l, "参加人（逗号分隔）", "Participants (comma-separated)").to_string(), error: err(errors, "participants"),
                input { id: "ms-participants", value: "{participants}", oninput: move |e| { participants.set(e.value()); sm2(); } } }
            Field { label: t(l, "调解经过", "Notes").to_string(), error: err(errors, "notes"),
                textarea { id: "ms-notes", rows: 3, value: "{notes}", oninput: move |e| { notes.set(e.value()); sm3(); } }
                Counter { text: notes(), max: TEXT_MAX } }
            Field { label: t(l, "达成协议（可空）", "Agreement (optional)").to_string(), error: err(errors, "agreement"),
                input { id: "ms-agreement", value: "{agreement}", oninput: move |e| { agreement.set(e.value()); sm4(); } } }
            button { id: "ms-add", class: "big", disabled: ms_saved(), onclick: add_session, {t(l, "保存调解记录", "Save session")} }
        }
        h2 { {t(l, "回访", "Follow-up")} }
        if let Some(f) = &dispute.follow_up { p { id: "follow-up", "{f.on} · " {f.satisfaction.label(l)} " · {f.notes}" } }
        details { class: "form",
            summary { {t(l, "记录回访与满意度", "Record follow-up and satisfaction")} }
            Field { label: t(l, "满意度", "Satisfaction").to_string(), error: err(errors, "follow_up.satisfaction"),
                select { id: "fu-sat", onchange: move |e| sat.set(e.value()), {code_options(l, parse_code(&sat(), Satisfaction::Satisfied))} } }
            Field { label: t(l, "回访情况", "Notes").to_string(), error: err(errors, "follow_up.notes"),
                textarea { id: "fu-notes", rows: 2, value: "{fu_notes}", oninput: move |e| fu_notes.set(e.value()) } }
            button { id: "fu-save", class: "big", onclick: follow_up, {t(l, "保存回访", "Save follow-up")} }
        }
        if let Some(g) = general() { ErrorNote { text: g } }
    }
}

#[component]
fn EmergencyExtras(id: Uuid) -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let reports = store.read(|s| s.emergency_reports(id));
    let em_form = format!("emergency-report:{id}");
    let (st0, f0) = (store.clone(), em_form.clone());
    let mut stage = use_signal(|| "UPDATE".to_string());
    // The report being typed is a draft.
    let mut text = use_signal(move || {
        st0.read(|s| crate::app::drafts::load::<String>(s, &f0))
            .ok()
            .flatten()
            .unwrap_or_default()
    });
    let mut errors = use_signal(|| None::<ValidationErrors>);
    let mut general = use_signal(|| None::<String>);
    let mut sent = use_signal(|| false);
    let (st_d, f_d) = (store.clone(), em_form.clone());
    let add = move |_| {
        if *sent.peek() {
            return;
        }
        let now = services.now();
        let form = em_form.clone();
        let res = store.write(|s| {
            let rep = EmergencyReport {
                id: new_id(),
                emergency_id: id,
                stage: parse_code(&stage.peek(), ReportStage::Update),
                text: text.peek().trim().to_owned(),
                casualties: None,
                author: s.worker().to_owned(),
                created_at: now,
            };
            s.add_emergency_report(&rep, now)?;
            crate::app::drafts::save(s, &form, &serde_json::Value::Null)
        });
        match res {
            Ok(()) => {
                sent.set(true);
                text.set(String::new());
                errors.set(None);
                general.set(None);
                bump(session);
            }
            Err(StoreError::Invalid(e)) => errors.set(Some(e)),
            Err(e) => general.set(Some(e.explain(l))),
        }
    };
    rsx! {
        h2 { {t(l, "报告", "Reports")} }
        match reports {
            Ok(list) => rsx! { ol { id: "em-reports", for r in list { li { key: "{r.id}", {r.stage.label(l)} " · " {crate::app::context::local_time(r.created_at, "%m-%d %H:%M")} " · {r.text}" } } } },
            Err(e) => rsx! { ErrorNote { text: e } },
        }
        Field { label: t(l, "续报 / 终报", "Update / final").to_string(), error: err(errors, "stage"),
            select { id: "em-stage", onchange: move |e| stage.set(e.value()),
                for v in [ReportStage::Update, ReportStage::Final] { option { value: v.code(), selected: stage() == v.code(), {v.label(l)} } } } }
        Field { label: t(l, "内容", "Text").to_string(), error: err(errors, "text"),
            textarea { id: "em-more", rows: 3, value: "{text}", oninput: move |e| {
                text.set(e.value());
                sent.set(false);
                let _ = st_d.read(|s| crate::app::drafts::save(s, &f_d, &*text.peek()));
            } }
            Counter { text: text(), max: TEXT_MAX } }
        button { id: "em-add", class: "big", disabled: sent(), onclick: add, {t(l, "提交", "Send")} }
        if let Some(g) = general() { ErrorNote { text: g } }
    }
}

/// The mark of a matter under supervision (督办): "区县督办" and the like; nothing when none.
#[component]
pub fn SupervisionPill(level: crate::domain::codes::Supervision) -> Element {
    let l = *use_lang().read();
    if level == crate::domain::codes::Supervision::None {
        return rsx! {};
    }
    let text = match l {
        crate::domain::codes::Lang::Zh => level.label(l).to_string(),
        _ => format!("Supervised: {}", level.label(l)),
    };
    rsx! { Pill { text, kind: "late supervised" } }
}
