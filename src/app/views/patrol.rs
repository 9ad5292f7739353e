//! Patrol: start and stop. While a patrol runs, the worker's track is recorded (and the screen
//! says so, every time); live distance and duration; events reported on the way link to it.
//! The recorder itself is [`crate::app::recorder::PatrolRecorder`], mounted in the layout, so
//! the track keeps growing while the worker is on another screen reporting what they found.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dioxus::prelude::*;
use uuid::Uuid;

use crate::app::Route;
use crate::app::components::{ErrorNote, fix_quality, hms, metres};
use crate::app::context::{
    Services, Session, StoreHandle, bump, use_services, use_session, use_store,
};
use crate::app::i18n::{t, use_lang};
use crate::app::platform::Locating;
use crate::app::recorder::record_current;
use crate::domain::codes::{Coded, Domain, Lang};
use crate::domain::labels::Explain;
use crate::domain::model::{Common, Patrol};
use crate::store::StoreError;
use crate::store::records::{RecordQuery, RecordSummary};

#[component]
pub fn PatrolPage() -> Element {
    let services = use_services();
    let mut session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    // A running patrol's notes are its draft: kept as typed, so a tab switch or a restart
    // loses none of them.
    let st_n = store.clone();
    let mut notes = use_signal(move || {
        session
            .patrol
            .peek()
            .and_then(|id| {
                st_n.read(|s| crate::app::drafts::load::<String>(s, &notes_form(id)))
                    .ok()
                    .flatten()
            })
            .unwrap_or_default()
    });
    let mut error = use_signal(|| None::<String>);
    let now = use_clock(&services);
    let _track = session.track.read();
    let _rev = session.rev.read();
    let running = *session.patrol.read();
    let current = running.map(|id| (id, store.read(|s| s.record::<Patrol>(id))));
    let (st, sv2) = (store.clone(), services.clone());
    let start = move |_| {
        // A second tap while one runs starts nothing.
        if session.patrol.peek().is_some() {
            return;
        }
        match start_patrol(&st, &sv2) {
            Ok(id) => {
                record_current(&st, &sv2, id);
                session.patrol.set(Some(id));
                error.set(None);
                bump(session);
            }
            Err(e) => error.set(Some(e.explain(l))),
        }
    };
    let (st2, sv3) = (store.clone(), services.clone());
    let stop = move |_| {
        let Some(id) = *session.patrol.peek() else {
            return;
        };
        record_current(&st2, &sv3, id);
        let t1 = sv3.now();
        match st2.write(|s| {
            s.finish_patrol(id, t1, notes.peek().trim(), t1)?;
            crate::app::drafts::clear(s, &notes_form(id))
        }) {
            Ok(_) => {
                session.patrol.set(None);
                notes.set(String::new());
                error.set(None);
                bump(session);
            }
            Err(e) => error.set(Some(e.explain(l))),
        }
    };
    let past = store.read(|s| {
        s.records(&RecordQuery {
            domain: Some(Domain::Patrol),
            limit: Some(10),
            ..Default::default()
        })
    });
    rsx! {
        section { class: "patrol",
            h1 { {t(l, "治安巡防", "Patrol")} }
            if let Some(e) = error() { ErrorNote { text: e } }
            match current {
                Some((id, Ok(p))) => running_patrol(l, id, &p, now(), notes, session, store.clone(), stop),
                Some((_, Err(e))) => rsx! { ErrorNote { text: e } },
                None => rsx! {
                    p { class: "hint", {t(l, "开始巡防后，将记录您的行走轨迹，直到您结束巡防。", "When you start, your track is recorded until you end the patrol.")} }
                    button { class: "big primary", id: "patrol-start", onclick: start, {t(l, "开始巡防", "Start patrol")} }
                },
            }
            h2 { {t(l, "巡防日志", "Patrol log")} }
            {patrol_log(l, past)}
        }
    }
}

/// The draft a running patrol's notes are kept in.
fn notes_form(id: Uuid) -> String {
    format!("patrol-notes:{id}")
}

/// The time now, ticking every second (for a running patrol's duration).
fn use_clock(services: &Services) -> Signal<DateTime<Utc>> {
    let mut now = use_signal(|| services.now());
    let sv = services.clone();
    use_future(move || {
        let sv = sv.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                now.set(sv.now());
            }
        }
    });
    now
}

/// Files a new patrol, started now where the worker stands (in the grid there, or without a
/// fix in the device's first grid); its id.
fn start_patrol(store: &StoreHandle, services: &Services) -> Result<Uuid, StoreError> {
    let t0 = services.now();
    let fix = services.location.fix().ok().map(|f| f.point);
    store.write(|s| {
        let grid = match &fix {
            Some(p) => s.locate(p)?.grid(),
            None => None,
        };
        let grid = match grid {
            Some(g) => g,
            None => s
                .grids()?
                .first()
                .map(|g| g.id)
                .ok_or_else(|| {
                    StoreError::Conflict(
                        "本机还没有网格：请先登录并同步一次 (no grid on this device yet: sign in and sync first)"
                            .into(),
                    )
                })?,
        };
        let mut p = Patrol {
            common: Common::new(Domain::Patrol, grid, s.worker(), t0),
            started_at: t0,
            ended_at: None,
            notes: String::new(),
            distance_m: 0.0,
        };
        p.common.location = fix;
        s.create_record(&p, t0)?;
        Ok(p.common.id)
    })
}

/// What the screen shows while patrol `id` runs: the recording notice, distance and duration,
/// the notes (kept as a draft as typed), reporting a hazard or ending the patrol, and what was
/// found on the way.
#[allow(clippy::too_many_arguments)] // the screen's state the view reads and writes
fn running_patrol(
    l: Lang,
    id: Uuid,
    p: &Patrol,
    now: DateTime<Utc>,
    mut notes: Signal<String>,
    session: Session,
    store: StoreHandle,
    stop: impl FnMut(MouseEvent) + 'static,
) -> Element {
    let linked = store.read(|s| {
        s.records(&RecordQuery {
            patrol_id: Some(id),
            ..Default::default()
        })
    });
    rsx! {
        div { class: "note rec", id: "recording-notice", role: "status",
            {t(l, "● 正在记录您的行走轨迹（仅在巡防期间记录，结束后停止）", "● Recording your track (only while this patrol runs; it stops when you end it)")} }
        div { class: "stats",
            div { class: "stat", span { class: "k", {t(l, "距离", "Distance")} } span { class: "v", id: "patrol-distance", {metres(p.distance_m)} } }
            div { class: "stat", span { class: "k", {t(l, "时长", "Duration")} } span { class: "v", id: "patrol-duration", {hms((now - p.started_at).num_seconds())} } }
        }
        {located_note(l, session.located.read().clone(), now)}
        label { class: "field", span { class: "field-label", {t(l, "巡防记录", "Notes")} }
            textarea { id: "patrol-notes", rows: 3, value: "{notes}", oninput: move |e| {
                notes.set(e.value());
                if let Some(id) = *session.patrol.peek() {
                    let _ = store.read(|s| crate::app::drafts::save(s, &notes_form(id), &*notes.peek()));
                }
            } } }
        div { class: "row",
            Link { class: "big", id: "patrol-report", to: Route::Report { kind: "hazard".into() }, {t(l, "发现隐患", "Found a hazard")} }
            button { class: "big danger", id: "patrol-stop", onclick: stop, {t(l, "结束巡防", "End patrol")} }
        }
        h2 { {t(l, "本次发现", "Found on this patrol")} }
        match linked {
            Ok(list) => rsx! {
                ul { class: "cards", id: "patrol-linked",
                    for r in list { li { key: "{r.id}", Link { class: "card", to: Route::RecordPage { id: r.id }, {r.domain.label(l)} if !r.summary.is_empty() { " · {r.summary}" } } } }
                }
            },
            Err(e) => rsx! { ErrorNote { text: e } },
        }
    }
}

/// What the recorder last heard from the location source: the fix's accuracy and age, a poor
/// fix the track leaves out, a refusal, or no fix yet (nothing is recorded until one comes).
fn located_note(l: Lang, located: Option<Locating>, now: DateTime<Utc>) -> Element {
    match located {
        None => rsx! {
            p { id: "patrol-fix", class: "hint", {t(l, "正在等待定位…", "Waiting for a location fix…")} }
        },
        Some(Locating::Good(f)) => rsx! {
            p { id: "patrol-fix", class: "hint", {t(l, "最近定位：", "Last fix: ")} {fix_quality(l, &f, now)} }
        },
        Some(Locating::Poor(f)) => rsx! {
            p { id: "patrol-fix", class: "note warn", role: "status",
                {t(l, "⚠ 定位精度较差（", "⚠ Poor location accuracy (")} {fix_quality(l, &f, now)}
                {t(l, "），这些点不计入轨迹；到开阔处会好转。", "): these points are left out of the track; it improves in the open.")} }
        },
        Some(Locating::Refused) => rsx! {
            p { id: "patrol-fix", class: "note error", role: "alert",
                {t(l, "定位权限被拒绝，轨迹无法记录：请在手机“设置 → 应用 → 网格通 → 权限”中允许使用位置。巡防记录和发现的问题照常保存。",
                   "Location permission refused, so no track is recorded: allow it in the phone's settings (Apps → gridwalk → Permissions). Notes and findings are still saved.")} }
        },
        Some(Locating::NoFix(_)) => rsx! {
            p { id: "patrol-fix", class: "note warn", role: "status",
                {t(l, "还没有定位：请打开手机定位并到开阔处，定位到后自动记录轨迹。", "No location fix yet: switch location on and go into the open; the track starts once a fix comes.")} }
        },
    }
}

/// The last ten patrols: when, their status, what they found.
fn patrol_log(l: Lang, past: Result<Vec<RecordSummary>, String>) -> Element {
    match past {
        Ok(list) => rsx! {
            ul { class: "cards", id: "patrol-past",
                for r in list {
                    li { key: "{r.id}", Link { class: "card", to: Route::RecordPage { id: r.id },
                        {crate::app::context::local_time(r.created_at, "%m-%d %H:%M")} " · " {r.status.label(l)} if !r.summary.is_empty() { " · {r.summary}" } } }
                }
            }
        },
        Err(e) => rsx! { ErrorNote { text: e } },
    }
}
