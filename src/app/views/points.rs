//! 我的积分: the worker's own points ledger (时间银行), newest first, each line with its reason
//! and what it is for; the rules are the county's, so the dashboard's ledger says the same
//! once the phone has synced.

use dioxus::prelude::*;

use crate::app::Route;
use crate::app::components::ErrorNote;
use crate::app::context::{use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::domain::codes::Lang;

/// A ledger reason in the reader's language.
fn reason(l: Lang, r: &str) -> &'static str {
    match r {
        "上报" => t(l, "上报", "Filed"),
        "退回" => t(l, "退回", "Sent back"),
        "办结质量" => t(l, "办结质量", "Handled without a return"),
        "居民满意度" => t(l, "居民满意度", "Resident's satisfaction"),
        "入户走访" => t(l, "入户走访", "Household visit"),
        _ => t(l, "其他", "Other"),
    }
}

#[component]
pub fn PointsPage() -> Element {
    let l = *use_lang().read();
    let session = use_session();
    let store = use_store();
    let _rev = session.rev.read();
    let data = store.read(|s| {
        let ledger = s.my_points()?;
        let subjects: Vec<Option<String>> = ledger
            .iter()
            .map(|e| e.subject.and_then(|id| s.points_subject(id).ok().flatten()))
            .collect();
        Ok((ledger, subjects))
    });
    let (ledger, subjects) = match data {
        Ok(d) => d,
        Err(e) => return rsx! { ErrorNote { text: e } },
    };
    let total: i64 = ledger.iter().map(|e| e.points).sum();
    rsx! {
        section { class: "points",
            Link { class: "back", to: Route::Today {}, {t(l, "‹ 今日工作", "‹ Today")} }
            h1 { {t(l, "我的积分", "My points")} }
            p { class: "big-figure", id: "points-total", "{total}" span { class: "muted", {t(l, " 分", " points")} } }
            p { class: "hint", {t(l,
                "按县里的规则从本机的记录和走访算出：上报 +1，办结且未退回 +2，退回 −1，居民满意 +2、基本满意 +1，入户走访 +1。县里办理的进展同步后才计入。",
                "Worked out from the records and visits on this phone by the county's rules: filed +1, handled without a return +2, sent back −1, resident satisfied +2 or fairly satisfied +1, a household visit +1. The county's progress counts once synced.")} }
            if ledger.is_empty() {
                p { class: "hint", id: "points-empty", {t(l, "还没有积分：上报一件事或走访一户就有了。", "No points yet: file a matter or visit a household.")} }
            }
            ul { class: "cards", id: "points-ledger",
                for (i, (e, subject)) in ledger.into_iter().zip(subjects).enumerate() {
                    li { key: "{i}", class: "card points-line",
                        div { class: "card-title",
                            span { class: if e.points < 0 { "pill late" } else { "pill ok" },
                                if e.points > 0 { "+" } "{e.points}"
                            }
                            " " {reason(l, e.reason)}
                        }
                        if let Some(s) = subject { div { class: "card-sub", "{s}" } }
                        // A visit is kept by its date only.
                        div { class: "muted", {crate::app::context::local_time(e.at, if e.reason == "入户走访" { "%Y-%m-%d" } else { "%Y-%m-%d %H:%M" })} }
                    }
                }
            }
        }
    }
}
