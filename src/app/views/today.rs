//! Today: visits due today and overdue, my open records waiting for the county (each with its
//! sync state), the county's unread feedback, what waits to upload, the last sync, the server's state, and one large
//! "上报隐患" button.

use dioxus::prelude::*;

use crate::app::Route;
use crate::app::autosync::use_autosync;
use crate::app::components::{ErrorNote, Pill, SyncState};
use crate::app::context::{use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::domain::codes::{Coded, Lang};
use crate::domain::lifecycle::Status;
use crate::store::feedback::Unsent;
use crate::store::people::HouseholdCard;
use crate::store::records::{RecordQuery, RecordSummary};

/// The meta key of the last successful sync (RFC 3339), written by the sync client.
pub const LAST_SYNC_KEY: &str = crate::store::remote::LAST_SYNC;

struct Day {
    due: Vec<HouseholdCard>,
    /// My open records, each with where what is still unsent of it stands.
    waiting: Vec<(Option<Unsent>, RecordSummary)>,
    /// The county's feedback not yet read.
    unread: u64,
    /// My points (时间银行 积分), as the ledger on this phone adds up.
    points: i64,
    /// My records with something only on this phone (not those held at the village office).
    outbox: u64,
    last_sync: Option<String>,
    server: Option<String>,
}

/// Words for how late a visit is.
pub fn due_words(l: Lang, c: &HouseholdCard, today: chrono::NaiveDate) -> String {
    let late = c.due.overdue_days(today);
    match (l, late) {
        (Lang::Zh, 0) => "今日到期".into(),
        (Lang::Zh, n) if n > 0 => format!("逾期 {n} 天"),
        (Lang::Zh, n) => format!("{} 天后到期", -n),
        (Lang::En, 0) => "due today".into(),
        (Lang::En, n) if n > 0 => format!("{n} days overdue"),
        (Lang::En, n) => format!("due in {} days", -n),
    }
}

#[component]
pub fn Today() -> Element {
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let l = *use_lang().read();
    let _rev = session.rev.read();
    let today = services.today();
    let day = store.read(|s| {
        let last_sync = s.meta(LAST_SYNC_KEY)?;
        let open = s.records(&RecordQuery {
            open_only: true,
            ..Default::default()
        })?;
        let me = s.worker().to_owned();
        let waiting: Vec<RecordSummary> = open
            .into_iter()
            .filter(|r| {
                r.author == me && r.status != Status::Draft && r.status != Status::Recording
            })
            .collect();
        let unsent = s.unsent_states()?;
        Ok(Day {
            due: s.due_visits(today)?,
            waiting: waiting
                .into_iter()
                .map(|r| (unsent.get(&r.id).copied(), r))
                .collect(),
            unread: s.unread_feedback()?,
            points: s.my_points()?.iter().map(|e| e.points).sum(),
            outbox: unsent.values().filter(|u| **u == Unsent::Waiting).count() as u64,
            last_sync,
            server: s.meta(crate::store::remote::SERVER_URL)?,
        })
    });
    let day = match day {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    rsx! {
        section { class: "today",
            h1 { {t(l, "今日工作", "Today")} " · {today}" }
            div { class: "status-row",
                OnlinePill { enrolled: day.server.is_some() }
                span { class: "pill", id: "pending", {t(l, "待上传 ", "To upload ")} "{day.outbox}" {t(l, " 条", "")} }
                span { class: "pill", id: "last-sync",
                    {t(l, "上次同步 ", "Last sync ")}
                    {crate::app::context::local_stamp(day.last_sync.as_deref(), t(l, "从未", "never"))}
                }
                Link { class: "pill", id: "points", to: Route::PointsPage {},
                    {t(l, "我的积分 ", "My points ")} "{day.points}"
                }
            }
            if day.unread > 0 {
                Link { class: "note ok feedback-link", id: "feedback-badge", to: Route::Feedback {},
                    {t(l, "县里新反馈 ", "New county feedback ")} span { class: "badge", "{day.unread}" } {t(l, " 条，点此查看 →", ": open →")} }
            }
            crate::app::views::tasks::TodayTasks {}
            Link { class: "big primary report-hazard", id: "report-hazard", to: Route::Report { kind: "hazard".into() }, {t(l, "上报隐患", "Report a hazard")} }
            h2 { {t(l, "待走访（今日及逾期）", "Visits due (today and overdue)")} " ({day.due.len()})" }
            if day.due.is_empty() { p { class: "hint", {t(l, "今天没有待走访的住户。", "No visits due today.")} } }
            ul { class: "cards due-list",
                for c in day.due.iter().take(30) {
                    li { key: "{c.id}",
                        Link { class: "card", to: Route::HouseholdPage { id: c.id },
                            div { class: "card-title", "{c.address}" }
                            div { class: "card-sub",
                                {t(l, "户主 ", "Head ")} {c.head_name.clone().unwrap_or_else(|| "-".into())}
                                " · {c.members}" {t(l, " 人", " people")}
                            }
                            div { class: "card-tags",
                                span { class: if c.due.overdue_days(today) > 0 { "pill late" } else { "pill due" }, {due_words(l, c, today)} }
                                for tag in c.care_tags.iter() { Pill { text: tag.label(l).to_string(), kind: "care" } }
                            }
                        }
                    }
                }
            }
            if day.due.len() > 30 {
                Link { class: "more", to: Route::Households {}, {t(l, "查看全部", "See all")} " ({day.due.len()})" }
            }
            h2 { {t(l, "等待县里反馈", "Waiting for the county")} " ({day.waiting.len()})" }
            ul { class: "cards",
                for (unsent, r) in day.waiting.iter().take(20) {
                    li { key: "{r.id}",
                        Link { class: "card", to: Route::RecordPage { id: r.id },
                            div { class: "card-title", {r.domain.label(l)} " · {r.summary}" }
                            div { class: "card-tags", SyncState { unsent: *unsent, status: r.status, domain: r.domain }
                                super::records::SupervisionPill { level: r.supervision } }
                        }
                    }
                }
            }
        }
    }
}

/// The truth about the county server, from the sync task: 在线 only after a success in the
/// last minute, 离线 at once after a failure. Its own component, so its countdown re-renders
/// only the pill. Opens the Sync screen.
#[component]
pub fn OnlinePill(enrolled: bool) -> Element {
    let l = *use_lang().read();
    let auto = use_autosync();
    let status = *auto.status.read();
    let (class, text) = match status {
        Some(s) => (
            if s.is_ok() { "pill ok" } else { "pill warn" },
            if l == Lang::Zh { s.zh() } else { s.en() },
        ),
        None if enrolled => (
            "pill",
            t(l, "自动同步未开启", "Syncing by itself is off").into(),
        ),
        None => (
            "pill",
            t(
                l,
                "未登记服务器，可离线工作",
                "No server enrolled; works offline",
            )
            .into(),
        ),
    };
    rsx! {
        Link { class: class, id: "online", to: Route::SyncPage {}, "{text}" }
    }
}
