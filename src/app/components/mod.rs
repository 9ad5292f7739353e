//! Shared pieces of the screens: the layout with the bottom tab bar, labelled form fields
//! with their validation message beside them, code pickers and small display helpers.

use dioxus::prelude::*;

use super::i18n::{t, use_lang};
use super::{Route, use_session};
use crate::domain::codes::{Coded, Lang};
use crate::domain::validate::{Problem, ValidationErrors};

/// The layout of every unlocked screen: a header (with the language switch), the screen, and
/// the bottom tab bar.
#[component]
pub fn Shell() -> Element {
    let mut lang = use_lang();
    let l = *lang.read();
    let session = use_session();
    let patrol_running = session.patrol.read().is_some();
    // A screen opens at its top, not scrolled to where the previous one was left (the window
    // keeps its scroll position across routes).
    let route: Route = use_route();
    use_effect(use_reactive((&route,), |(_route,)| {
        let _ = document::eval("window.scrollTo(0, 0)");
    }));
    rsx! {
        header { class: "top",
            span { class: "brand", {t(l, "网格通", "gridwalk")} }
            if patrol_running {
                Link { class: "rec-dot", to: Route::PatrolPage {}, {t(l, "● 巡防记录中", "● Patrol recording")} }
            }
            Link { class: "settings-link", id: "open-settings", to: Route::Settings {}, {t(l, "设置", "Settings")} }
            button {
                class: "lang",
                id: "lang-switch",
                onclick: move |_| {
                    let next = if *lang.peek() == Lang::Zh { Lang::En } else { Lang::Zh };
                    lang.set(next);
                },
                {t(l, "EN", "中文")}
            }
        }
        crate::app::recorder::PatrolRecorder {}
        main { class: "screen", Outlet::<Route> {} }
        TabBar {}
    }
}

/// The bottom tab bar: big targets, the five places a worker goes.
#[component]
fn TabBar() -> Element {
    let l = *use_lang().read();
    let current: Route = use_route();
    // The county's unread feedback, on the Records tab (it is about my records).
    let session = use_session();
    let _rev = session.rev.read();
    let unread = session
        .store
        .read()
        .as_ref()
        .and_then(|s| s.lock().ok().and_then(|s| s.unread_feedback().ok()))
        .unwrap_or(0);
    let tab =
        |to: Route, icon: &'static str, zh: &'static str, en: &'static str, id: &'static str| {
            let active = same_tab(&current, &to);
            rsx! {
                Link { class: if active { "tab active" } else { "tab" }, id: id, to: to,
                    span { class: "icon", {icon} }
                    span { class: "label", {t(l, zh, en)} }
                }
            }
        };
    rsx! {
        nav { class: "tabbar",
            {tab(Route::Today {}, "◎", "今日", "Today", "tab-today")}
            {tab(Route::Households {}, "⌂", "住户", "Homes", "tab-households")}
            {tab(Route::Report { kind: "hazard".into() }, "＋", "上报", "Report", "tab-report")}
            {tab(Route::PatrolPage {}, "⇢", "巡防", "Patrol", "tab-patrol")}
            {tab(Route::MapPage {}, "▦", "地图", "Map", "tab-map")}
            div { class: "tab-wrap",
                {tab(Route::Records {}, "≡", "记录", "Records", "tab-records")}
                if unread > 0 {
                    span { class: "badge tab-badge", id: "tab-feedback-badge", title: t(l, "县里新反馈", "New county feedback"), "{unread}" }
                }
            }
            {tab(Route::SyncPage {}, "⇅", "同步", "Sync", "tab-sync")}
        }
    }
}

fn same_tab(a: &Route, b: &Route) -> bool {
    use Route::*;
    matches!(
        (a, b),
        (Today {} | PointsPage {}, Today {})
            | (Households {} | HouseholdPage { .. }, Households {})
            | (Report { .. }, Report { .. })
            | (PatrolPage {}, PatrolPage {})
            | (MapPage {}, MapPage {})
            | (Records {} | RecordPage { .. } | Feedback {}, Records {})
            | (SyncPage {}, SyncPage {})
    )
}

/// A record's sync state beside its status: 待上传 while anything of it is still on this
/// phone only (its status then says only what the phone did: a just-filed record shows no
/// 已上报 until the county has it), 已交村办 when all that the county lacks of it is held at
/// the village office's relay (its entries, and its photos the office has whole), 已上传 once
/// it is all on the server.
#[component]
pub fn SyncState(
    unsent: Option<crate::store::feedback::Unsent>,
    status: crate::domain::lifecycle::Status,
    domain: crate::domain::codes::Domain,
) -> Element {
    use crate::store::feedback::Unsent;
    let l = *use_lang().read();
    let initial = crate::domain::lifecycle::lifecycle(domain).initial;
    rsx! {
        if let Some(state) = unsent {
            if state == Unsent::Held {
                span { class: "pill held sync-state", "data-sync": "held", {t(l, "已交村办", "At the village office")} }
            } else {
                span { class: "pill warn sync-state", "data-sync": "unsent", {t(l, "待上传", "Not sent")} }
            }
            if status != initial { Pill { text: status.label(l).to_string(), kind: "status" } }
        } else {
            span { class: "pill ok sync-state", "data-sync": "sent", {t(l, "已上传", "Sent")} }
            Pill { text: status.label(l).to_string(), kind: "status" }
        }
    }
}

/// A length counter under a long text: the characters typed of the most allowed, amber near
/// the limit and red past it (the save then names the field).
#[component]
pub fn Counter(text: String, max: usize) -> Element {
    let n = text.chars().count();
    let class = if n > max {
        "counter over"
    } else if n * 10 >= max * 9 {
        "counter near"
    } else {
        "counter"
    };
    rsx! { span { class: class, "{n}/{max}" } }
}

/// A field's place in its form's validation errors: the problem found with it at the last
/// save, if any, and where to clear it from once the worker edits the field.
#[derive(Clone, PartialEq)]
pub struct FieldCheck {
    pub problem: Option<Problem>,
    errors: Option<Signal<Option<ValidationErrors>>>,
    field: &'static str,
}

impl FieldCheck {
    /// A field no save has checked (a form with nothing to say beside it).
    pub fn none() -> FieldCheck {
        FieldCheck {
            problem: None,
            errors: None,
            field: "",
        }
    }
}

/// A labelled field with its validation message (if any) right beside it, worded in the
/// worker's language and naming the field as this label does. Typing in the field clears its
/// message: a message stays only as long as what it speaks of.
#[component]
pub fn Field(label: String, error: FieldCheck, children: Element) -> Element {
    let l = use_lang()();
    let message = error
        .problem
        .as_ref()
        .map(|p| p.text(l, short_label(&label)));
    let class = if message.is_some() {
        "field invalid"
    } else {
        "field"
    };
    let (errors, field, shown) = (error.errors, error.field, message.is_some());
    let edited = move |_| {
        if let (true, Some(mut errors)) = (shown, errors) {
            let left = errors.peek().clone().and_then(|e| e.without(field));
            errors.set(left);
        }
    };
    rsx! {
        label { class, oninput: edited, onchange: edited,
            span { class: "field-label", "{label}" }
            {children}
            if let Some(e) = message {
                span { class: "field-error", role: "alert", "{e}" }
            }
        }
    }
}

/// A field's label without its hint: "下次走访日期（可空）" names the field "下次走访日期".
pub fn short_label(label: &str) -> &str {
    let cut = [label.find('（'), label.find(" (")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(label.len());
    label[..cut].trim()
}

/// The problem with `field` in `errors`, if any, for a [`Field`].
pub fn err(errors: Signal<Option<ValidationErrors>>, field: &'static str) -> FieldCheck {
    FieldCheck {
        problem: errors
            .read()
            .as_ref()
            .and_then(|e| e.problem(field))
            .cloned(),
        errors: Some(errors),
        field,
    }
}

/// Every message whose field starts with `prefix` (e.g. `parties`), each naming its field
/// ("当事人 2 联系电话…"), joined.
pub fn err_prefix(lang: Lang, errors: &Option<ValidationErrors>, prefix: &str) -> Option<String> {
    let e = errors.as_ref()?;
    let msgs: Vec<String> = e
        .errors
        .iter()
        .filter(|f| f.field.starts_with(prefix))
        .map(|f| f.message(lang))
        .collect();
    if msgs.is_empty() {
        None
    } else {
        Some(msgs.join(if lang == Lang::Zh { "；" } else { "; " }))
    }
}

/// Options of a coded enum for a `select`, with the current one selected.
pub fn code_options<T: Coded + PartialEq>(lang: Lang, current: T) -> Element {
    rsx! {
        for v in T::ALL.iter().copied() {
            option { value: v.code(), selected: v == current, {v.label(lang)} }
        }
    }
}

/// Parses a `select`'s value back into its code, keeping `fallback` on a bad value.
pub fn parse_code<T: Coded>(value: &str, fallback: T) -> T {
    T::from_code(value).unwrap_or(fallback)
}

/// A pill for a tag or status.
#[component]
pub fn Pill(text: String, kind: &'static str) -> Element {
    rsx! { span { class: "pill {kind}", "{text}" } }
}

/// A banner for an error the worker should read.
#[component]
pub fn ErrorNote(text: String) -> Element {
    rsx! { p { class: "note error", role: "alert", "{text}" } }
}

/// Metres in words: "850 m" or "1.2 km".
pub fn metres(m: f64) -> String {
    if m < 1000.0 {
        format!("{m:.0} m")
    } else {
        format!("{:.2} km", m / 1000.0)
    }
}

/// How long ago a location fix was taken, as the worker reads it ("刚刚", "12 秒前", "3 分钟前").
pub fn fix_age(l: crate::domain::codes::Lang, age: chrono::Duration) -> String {
    use crate::app::i18n::t;
    let s = age.num_seconds().max(0);
    match s {
        0..5 => t(l, "刚刚", "just now").into(),
        5..60 => format!("{s} {}", t(l, "秒前", "s ago")),
        60..3600 => format!("{} {}", s / 60, t(l, "分钟前", "min ago")),
        _ => format!("{} {}", s / 3600, t(l, "小时前", "h ago")),
    }
}

/// A location fix's accuracy and age, as a form shows them ("± 8 m · 12 秒前"; "精度未知"
/// where the source gives none).
pub fn fix_quality(
    l: crate::domain::codes::Lang,
    fix: &crate::app::platform::Fix,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    use crate::app::i18n::t;
    let acc = match fix.accuracy_m() {
        Some(a) => format!("± {a:.0} m"),
        None => t(l, "精度未知", "accuracy unknown").into(),
    };
    format!("{acc} · {}", fix_age(l, fix.age(now)))
}

/// A duration in seconds as h:mm:ss.
pub fn hms(secs: i64) -> String {
    let s = secs.max(0);
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Standard base64 (for photo thumbnails as data URLs).
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
