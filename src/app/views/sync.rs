//! Sync: one button; a progress bar per phase (upload, download, photos); a summary of what
//! went up and came down; errors in plain words with a retry; conflicts with both values.

use dioxus::prelude::*;

use crate::app::components::ErrorNote;
use crate::app::i18n::{t, use_lang};
use crate::app::sync_port::{SyncFailure, SyncPhase, SyncProgress, SyncReport};
use crate::app::views::today::LAST_SYNC_KEY;
use crate::app::{bump, use_services, use_session, use_store};
use crate::domain::codes::Lang;

#[derive(Clone, PartialEq)]
enum State {
    Idle,
    Running,
    Done(SyncReport),
    Failed(SyncFailure),
}

fn phase_label(l: Lang, p: SyncPhase) -> &'static str {
    match p {
        SyncPhase::Upload => t(l, "上传", "Upload"),
        SyncPhase::Download => t(l, "下载", "Download"),
        SyncPhase::Photos => t(l, "照片", "Photos"),
    }
}

#[component]
pub fn SyncPage() -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let mut state = use_signal(|| State::Idle);
    let mut progress = use_signal(|| [None::<SyncProgress>; 3]);
    let _rev = session.rev.read();
    let info = store.read(|s| {
        Ok((
            s.outbox_len()?,
            s.meta(LAST_SYNC_KEY)?,
            s.meta(crate::store::sync::SERVER_URL)?,
        ))
    });
    let (pending, last, server) = match info {
        Ok(i) => i,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let run = move |_| {
        if *state.peek() == State::Running {
            return;
        }
        state.set(State::Running);
        progress.set([None; 3]);
        let sync = services.sync.clone();
        let store = store.clone();
        spawn(async move {
            let on_progress = Box::new(move |p: SyncProgress| {
                let i = match p.phase {
                    SyncPhase::Upload => 0,
                    SyncPhase::Download => 1,
                    SyncPhase::Photos => 2,
                };
                progress.write()[i] = Some(p);
            });
            let res = sync.sync(store.0.clone(), on_progress).await;
            match res {
                Ok(r) => state.set(State::Done(r)),
                Err(e) => state.set(State::Failed(e)),
            }
            bump(session);
        });
    };
    let retry = run.clone();
    let st = state();
    let running = st == State::Running;
    rsx! {
        section { class: "sync",
            h1 { {t(l, "同步", "Sync")} }
            p { class: "muted",
                {t(l, "服务器 ", "Server ")} {server.unwrap_or_else(|| t(l, "未登记", "not enrolled").into())}
                " · " {t(l, "上次同步 ", "Last sync ")}
                {last.map(|s| s.get(..16).unwrap_or(&s).replace('T', " ")).unwrap_or_else(|| t(l, "从未", "never").into())}
            }
            p { id: "sync-pending", class: "pending", {t(l, "待上传 ", "Waiting to upload ")} strong { "{pending}" } {t(l, " 项", " items")} }
            button { id: "sync-now", class: "big primary", disabled: running, onclick: run,
                if running { {t(l, "正在同步…", "Syncing…")} } else { {t(l, "立即同步", "Sync now")} } }
            div { class: "phases",
                for (i, ph) in [SyncPhase::Upload, SyncPhase::Download, SyncPhase::Photos].into_iter().enumerate() {
                    {
                        let p = progress.read()[i];
                        let pct = p.map(|p| (p.done * 100).checked_div(p.total).unwrap_or(100).min(100)).unwrap_or(0);
                        rsx! {
                            div { class: "phase", key: "{i}",
                                span { class: "k", {phase_label(l, ph)} }
                                div { class: "bar", div { class: "fill", style: "width: {pct}%" } }
                                span { class: "v", {p.map(|p| format!("{}/{}", p.done, p.total)).unwrap_or_default()} }
                            }
                        }
                    }
                }
            }
            match st {
                State::Done(r) => rsx! {
                    div { class: "note ok", id: "sync-summary",
                        {t(l, "同步完成：上传 ", "Done: sent ")} "{r.pushed}" {t(l, " 项，下载 ", ", received ")} "{r.pulled}"
                        {t(l, " 项，照片 ", ", photos ")} "{r.photos}"
                        {t(l, "，县里新反馈 ", ", new county feedback ")} "{r.feedback}"
                    }
                    if !r.conflicts.is_empty() {
                        h2 { {t(l, "冲突（双方都改了同一项）", "Conflicts (both sides changed the same field)")} }
                        table { class: "conflicts", id: "sync-conflicts",
                            tr { th { {t(l, "记录", "Record")} } th { {t(l, "字段", "Field")} } th { {t(l, "我的", "Mine")} } th { {t(l, "县里的", "County's")} } }
                            for c in r.conflicts { tr { td { "{c.record}" } td { "{c.field}" } td { "{c.mine}" } td { "{c.theirs}" } } }
                        }
                    }
                },
                State::Failed(e) => rsx! {
                    div { class: "note error", id: "sync-error", role: "alert", "{e.message}" }
                    if e.retryable { button { id: "sync-retry", class: "big", onclick: retry, {t(l, "重试", "Try again")} } }
                },
                _ => rsx! {},
            }
            p { class: "hint", {t(l, "在村委会等有网络的地方同步；其余时间可离线工作。", "Sync where there is a network (e.g. the village office); work offline otherwise.")} }
        }
    }
}
