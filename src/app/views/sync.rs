//! Sync: one button; a progress bar per phase (upload, download, photos); a summary of what
//! went up and came down; errors in plain words with a retry; every unsettled conflict with
//! both values (the one that stands and the one that lost, who made each and when); every
//! pushed record the county refused after taking it, until the worker dismisses it.

use dioxus::prelude::*;

use crate::app::Route;
use crate::app::autosync::use_autosync;
use crate::app::components::ErrorNote;
use crate::app::conflicts::{ConflictRow, RejectionRow, Side, describe, describe_rejection};
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::sync_port::SyncPhase;
use crate::app::views::settings::SignInAgain;
use crate::app::views::today::LAST_SYNC_KEY;
use crate::client::schedule::{Event, Reason, Status};
use crate::domain::codes::Lang;
use crate::domain::labels::Explain;
use crate::store::feedback::Unsent;

fn reason_label(l: Lang, r: Reason) -> &'static str {
    match r {
        Reason::Tapped => t(l, "手动同步", "tapped"),
        Reason::Urgent => t(l, "紧急事件立即上传", "urgent record"),
        Reason::Saved => t(l, "保存后自动上传", "after a save"),
        Reason::Reachable => t(l, "网络恢复后自动同步", "server reachable again"),
        Reason::Feedback => t(l, "定时获取县里反馈", "fetching county feedback"),
    }
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
    let auto = use_autosync();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let info = store.read(|s| {
        let unsent = s.unsent_states()?;
        let held = unsent.values().filter(|u| **u == Unsent::Held).count();
        Ok((
            (unsent.len() - held, held, s.last_sync_via_relay()?),
            s.meta(LAST_SYNC_KEY)?,
            s.session_times()?,
            s.meta(crate::store::remote::SERVER_URL)?,
            s.conflicts(true)?
                .iter()
                .map(|c| describe(l, s, c))
                .collect::<Vec<_>>(),
            s.rejections(true)?
                .iter()
                .map(|r| describe_rejection(l, s, r))
                .collect::<Vec<_>>(),
        ))
    });
    let ((pending, held, via_relay), last, times, server, conflicts, rejections) = match info {
        Ok(i) => i,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let run = move |_| {
        if !auto.syncing() {
            auto.send(Event::Tapped);
        }
    };
    let retry = run;
    let status = auto.status.read().to_owned();
    let running = status == Some(Status::Syncing);
    let signed_out = status == Some(Status::NeedsSignIn);
    let last_run = auto.last.read().clone();
    rsx! {
        section { class: "sync",
            h1 { {t(l, "同步", "Sync")} }
            p { class: "muted",
                {t(l, "服务器 ", "Server ")} {server.unwrap_or_else(|| t(l, "未登记", "not enrolled").into())}
                " · " {t(l, "上次同步 ", "Last sync ")}
                {crate::app::context::local_stamp(last.as_deref(), t(l, "从未", "never"))}
            }
            if let Some(relay) = via_relay {
                p { class: "muted", id: "sync-via",
                    {t(l, "上次同步：", "Last sync: ")}
                    if relay { {t(l, "经村办中转站", "through the village office's relay")} } else { {t(l, "直连县里", "straight to the county")} }
                }
            }
            p { id: "sync-pending", class: "pending", {t(l, "待上传 ", "Waiting to upload ")} strong { "{pending}" } {t(l, " 条记录", " records")} }
            if held > 0 {
                p { id: "sync-held", class: "pending",
                    {t(l, "已交村办 ", "Left at the village office ")} strong { "{held}" } {t(l, " 条记录", " records")}
                    span { class: "hint", {t(l, "（村办中转站会转交县里，县里收到后显示“已上传”）", " (the office's relay passes them on; they read “Sent” once the county has them)")} }
                }
            }
            if let Some(st) = status {
                p { id: "sync-state", class: if st.is_ok() { "pill ok" } else { "pill warn" },
                    {if l == Lang::Zh { st.zh() } else { st.en() }} }
                p { class: "hint", {t(l, "有网络时会自动同步：保存几秒后上传，紧急事件立即上传，并定时获取县里反馈。",
                    "With a network the app syncs by itself: records go up a few seconds after saving, emergencies at once, and county feedback comes down regularly.")} }
            }
            // The sign-in's last fortnight: say so before it runs out.
            if let Some(end) = times.and_then(|t| t.ends_at).filter(|end| *end - services.now() < chrono::Duration::days(14)) {
                if !signed_out {
                    p { class: "note warn", id: "session-ending",
                        {t(l, "登录将于 ", "Your sign-in ends on ")} {crate::app::context::local_time(end, "%Y-%m-%d")}
                        {t(l, " 到期，请在到期前于“设置”中重新登录（待上传的记录不受影响）。", "; sign in again in Settings before then (waiting records are kept).")}
                        Link { to: Route::Settings {}, {t(l, " 去设置", " Settings")} }
                    }
                }
            }
            if signed_out {
                div { class: "note warn", id: "sync-signin",
                    SignInAgain {}
                }
            }
            button { id: "sync-now", class: "big primary", disabled: running, onclick: run,
                if running { {t(l, "正在同步…", "Syncing…")} } else { {t(l, "立即同步", "Sync now")} } }
            div { class: "phases",
                for (i, ph) in [SyncPhase::Upload, SyncPhase::Download, SyncPhase::Photos].into_iter().enumerate() {
                    {
                        let p = auto.progress.read()[i];
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
            if let Some(run) = &last_run {
                p { class: "muted", id: "sync-last-run", "data-at": "{run.at.timestamp_micros()}",
                    {t(l, "最近一次", "Last run")} " " {crate::app::context::local_time(run.at, "%H:%M:%S")} " · " {reason_label(l, run.reason)}
                }
            }
            match last_run.map(|r| r.result) {
                Some(Ok(r)) => rsx! {
                    div { class: "note ok", id: "sync-summary",
                        {t(l, "同步完成：上传记录 ", "Done: records sent ")} "{r.pushed}" {t(l, " 条，县里更新 ", ", county updates ")} "{r.pulled}"
                        {t(l, " 项，照片 ", ", photos ")} "{r.photos}"
                        {t(l, "，县里新反馈 ", ", new county feedback ")} "{r.feedback}"
                        if r.held > 0 { {t(l, "，已交村办 ", ", left at the village office ")} "{r.held}" {t(l, " 条", "")} }
                    }
                    if r.conflicts > 0 {
                        p { class: "note warn", {t(l, "本次同步带来新冲突 ", "New conflicts from this sync: ")} "{r.conflicts}" }
                    }
                    if r.rejected > 0 {
                        p { class: "note warn", id: "sync-rejected",
                            {t(l, "本次同步有 ", "Records the county refused in this sync: ")} "{r.rejected}"
                            {t(l, " 条记录被县里退回", "")}
                        }
                    }
                },
                Some(Err(e)) => rsx! {
                    div { class: "note error", id: "sync-error", role: "alert", "{e.message}" }
                    if e.retryable { button { id: "sync-retry", class: "big", onclick: retry, {t(l, "重试", "Try again")} } }
                },
                None => rsx! {},
            }
            Link { class: "more", id: "sync-settings", to: Route::Settings {}, {t(l, "服务器地址、重新登录、同步间隔 →", "Server address, sign in again, sync interval →")} }
            if !conflicts.is_empty() {
                h2 { id: "conflicts-title", {t(l, "待裁定的冲突", "Conflicts waiting to be settled")} " ({conflicts.len()})" }
                p { class: "hint", {t(l, "同一项被两处修改：先采用较晚的修改，另一值保留在此，由网格长或县里裁定。",
                    "The same field was changed in two places: the later change stands, the other is kept here until the grid chief or the county settles it.")} }
                ul { class: "cards conflicts", id: "sync-conflicts",
                    for c in conflicts { ConflictCard { key: "{c.id}", c: c.clone() } }
                }
            }
            if !rejections.is_empty() {
                h2 { id: "rejections-title", {t(l, "县里未接收的记录", "Records the county server refused")} " ({rejections.len()})" }
                p { class: "hint", {t(l, "这些记录已上传，但县里检查时未接收。手机上的记录仍保留：请按原因核对，必要时联系网格长或县里。",
                    "These were uploaded, but the county refused them when it checked them. Your copy stays on this phone: check the reason, and ask the grid chief or the county if needed.")} }
                ul { class: "cards rejections", id: "sync-rejections",
                    for r in rejections { RejectionCard { key: "{r.seq}", r: r.clone() } }
                }
            }
            p { class: "hint", {t(l, "在村委会等有网络的地方同步；其余时间可离线工作。", "Sync where there is a network (e.g. the village office); work offline otherwise.")} }
        }
    }
}

fn side_line(l: Lang, s: &Side) -> String {
    let who = if s.mine {
        format!("{}{}", s.by, t(l, "（我）", " (me)"))
    } else {
        s.by.clone()
    };
    format!(
        "{who} · {}",
        crate::app::context::local_time(s.at, "%m-%d %H:%M")
    )
}

/// One conflict: the record (opens it when this device holds it), the field, both values.
#[component]
fn ConflictCard(c: ConflictRow) -> Element {
    let l = *use_lang().read();
    let title = rsx! { div { class: "card-title", "{c.record}" } };
    rsx! {
        li { class: "card conflict", "data-conflict": "{c.id}",
            match c.link.clone() {
                Some(to) => rsx! { Link { class: "conflict-record", to, {title} } },
                None => title,
            }
            div { class: "conflict-field", {t(l, "字段：", "Field: ")} strong { "{c.field}" } }
            div { class: "conflict-side kept",
                span { class: "k", {t(l, "现用值", "Stands")} }
                span { class: "v", "{c.kept.value}" }
                span { class: "muted by", {side_line(l, &c.kept)} }
            }
            div { class: "conflict-side lost",
                span { class: "k", {t(l, "未采用", "Lost")} }
                span { class: "v", "{c.lost.value}" }
                span { class: "muted by", {side_line(l, &c.lost)} }
            }
        }
    }
}

/// One refusal: the record (opens it when this device holds it), why and where, when, and a
/// button that puts it away.
#[component]
fn RejectionCard(r: RejectionRow) -> Element {
    let l = *use_lang().read();
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let mut error = use_signal(|| None::<String>);
    let seq = r.seq;
    let dismiss = move |_| match store.write(|s| s.dismiss_rejection(seq, services.now())) {
        Ok(()) => {
            error.set(None);
            bump(session);
        }
        Err(e) => error.set(Some(e.explain(l))),
    };
    let title = rsx! { div { class: "card-title", "{r.record}" } };
    rsx! {
        li { class: "card rejection", "data-rejection": "{r.seq}",
            match r.link.clone() {
                Some(to) => rsx! { Link { class: "rejection-record", to, {title} } },
                None => title,
            }
            div { class: "rejection-message", role: "note", "{r.message}" }
            if let Some(f) = &r.field {
                div { class: "rejection-field", {t(l, "字段：", "Field: ")} strong { "{f}" } }
            }
            div { class: "muted rejection-at",
                "{r.op} · " {t(l, "县里退回于 ", "refused ")} {crate::app::context::local_time(r.at, "%m-%d %H:%M")}
            }
            if let Some(e) = error() { ErrorNote { text: e } }
            button { class: "dismiss", "data-dismiss": "{r.seq}", onclick: dismiss,
                {t(l, "知道了", "Dismiss")} }
        }
    }
}
