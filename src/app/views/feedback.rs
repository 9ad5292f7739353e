//! 县里反馈: what the county did on my records since I last looked (replies, status moves),
//! unread first; each item opens its record, which reads it.

use dioxus::prelude::*;

use crate::app::Route;
use crate::app::components::ErrorNote;
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::domain::codes::{Coded, Lang};
use crate::store::feedback::{FeedbackItem, FeedbackKind};

fn what(l: Lang, f: &FeedbackItem) -> String {
    match (f.kind, f.status) {
        (FeedbackKind::Reply, _) => format!("{}{}", t(l, "回复：", "Reply: "), f.text),
        (FeedbackKind::Status, Some(s)) if f.text.is_empty() => {
            format!("{}{}", t(l, "状态改为 ", "Status now "), s.label(l))
        }
        (FeedbackKind::Status, Some(s)) => format!(
            "{}{}{}{}",
            t(l, "状态改为 ", "Status now "),
            s.label(l),
            t(l, "：", ": "),
            f.text
        ),
        (FeedbackKind::Status, None) => f.text.clone(),
        (FeedbackKind::Task, _) => format!("{}{}", t(l, "新任务：", "New task: "), f.text),
    }
}

#[component]
pub fn Feedback() -> Element {
    let l = *use_lang().read();
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let _rev = session.rev.read();
    let data = store.read(|s| {
        let items = s.feedback(200)?;
        let titles: Vec<Option<String>> = items
            .iter()
            .map(|f| {
                if f.kind == FeedbackKind::Task {
                    return s.task(f.record_id).ok().map(|t| t.about);
                }
                s.any_record(f.record_id).ok().map(|r| {
                    let sum = r.summary();
                    if sum.is_empty() {
                        r.domain().label(l).to_string()
                    } else {
                        format!("{} · {sum}", r.domain().label(l))
                    }
                })
            })
            .collect();
        Ok((items, titles, s.unread_feedback()?))
    });
    let (items, titles, unread) = match data {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let st = store.clone();
    let read_all = move |_| {
        if st.read(|s| s.read_all_feedback(services.now())).is_ok() {
            bump(session);
        }
    };
    rsx! {
        section { class: "feedback",
            h1 { {t(l, "县里反馈", "County feedback")} }
            p { class: "hint", {t(l, "县里对我的记录的回复和办理进展，同步后自动出现；打开记录即为已读。",
                "Replies and progress on my records from the county, brought by each sync; opening the record marks it read.")} }
            if unread > 0 {
                button { id: "feedback-read-all", class: "small", onclick: read_all, {t(l, "全部标为已读", "Mark all read")} " ({unread})" }
            }
            if items.is_empty() {
                p { class: "hint", id: "feedback-empty", {t(l, "还没有县里的反馈。", "No feedback from the county yet.")} }
            }
            ul { class: "cards", id: "feedback-list",
                for (f, title) in items.into_iter().zip(titles) {
                    li { key: "{f.id}",
                        Link { class: if f.read { "card feedback-item" } else { "card feedback-item unread" },
                            "data-feedback": "{f.id}",
                            to: if f.kind == FeedbackKind::Task { Route::TaskPage { id: f.record_id } } else { Route::RecordPage { id: f.record_id } },
                            div { class: "card-title",
                                if !f.read { span { class: "dot", title: t(l, "未读", "unread") } }
                                {title.unwrap_or_else(|| t(l, "（记录不在本机）", "(record not on this phone)").to_string())}
                            }
                            div { class: "card-sub", {what(l, &f)} }
                            div { class: "muted", "{f.actor} · " {crate::app::context::local_time(f.at, "%m-%d %H:%M")} }
                        }
                    }
                }
            }
        }
    }
}
