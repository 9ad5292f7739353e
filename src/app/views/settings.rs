//! Settings: the county server's address (checked with its `/healthz` before it is saved;
//! the store and its outbox stay), the village office's relay address (checked as an address;
//! blank for none; it need not answer where the worker types it), signing in again on this store when the session expired or
//! was revoked (only its own worker), how often the app fetches the county's feedback, the
//! minutes after which it locks itself, and changing the PIN (the store's key rewrapped, the
//! database untouched).

use dioxus::prelude::*;

use crate::app::autosync::{FEEDBACK_CHOICES, FEEDBACK_MINUTES, use_autosync};
use crate::app::components::ErrorNote;
use crate::app::context::{bump, use_services, use_session, use_store};
use crate::app::i18n::{t, use_lang};
use crate::app::lock;
use crate::app::views::unlock::{act, check_pin};
use crate::client::schedule::{Config, Event};
use crate::domain::codes::Lang;
use crate::domain::labels::Explain;
use crate::store::remote::SERVER_URL;
use crate::store::vault::{Vault, VaultError};

/// What a settings form is doing.
#[derive(Clone, PartialEq)]
enum Step {
    Idle,
    Busy,
    Done(String),
    Failed(String),
}

#[component]
pub fn Settings() -> Element {
    let l = *use_lang().read();
    rsx! {
        section { class: "settings",
            h1 { {t(l, "设置", "Settings")} }
            ServerAddress {}
            RelayAddress {}
            SignInAgain {}
            FeedbackInterval {}
            AutoLock {}
            ChangePin {}
        }
    }
}

/// A URL a worker may type: http(s), a host, nothing else.
fn check_address(url: &str) -> Result<String, &'static str> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("地址须以 http:// 或 https:// 开头，如 http://192.168.1.10:8080 (start with http:// or https://)")?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(
            "地址里缺少服务器名或含有空格，如 http://192.168.1.10:8080 (a host is needed, no spaces)",
        );
    }
    Ok(url.to_owned())
}

/// The village office's relay address as typed: `Ok(None)` when blank (there is none), the
/// address without a trailing `/`, or what is wrong with it, naming the field and saying what
/// to type.
fn check_relay_address(url: &str) -> Result<Option<String>, &'static str> {
    let url = url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Ok(None);
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("村办中转站地址须以 http:// 或 https:// 开头，如 http://192.168.1.10:8090；没有中转站请留空 (the relay address starts with http:// or https://; leave it blank if there is none)")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || rest.contains(char::is_whitespace) {
        return Err(
            "村办中转站地址里缺少地址或含有空格，请填写如 http://192.168.1.10:8090 (the relay address needs a host and no spaces)",
        );
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(
            "村办中转站地址的端口不对，冒号后须是 1–65535 的数字，如 http://192.168.1.10:8090 (the relay address's port must be a number from 1 to 65535)",
        );
    }
    Ok(Some(url.to_owned()))
}

/// The village office's relay: where the county named one at sign-in, or typed here. A sync
/// goes there when it answers, to the county otherwise.
#[component]
fn RelayAddress() -> Element {
    let l = *use_lang().read();
    let session = use_session();
    let store = use_store();
    let auto = use_autosync();
    let _rev = session.rev.read();
    let current = store.read(|s| s.relay_url()).ok().flatten();
    let mut typed = use_signal(|| current.clone().unwrap_or_default());
    let mut step = use_signal(|| Step::Idle);
    let save = move |_| {
        let url = match check_relay_address(&typed.peek()) {
            Ok(u) => u,
            Err(e) => {
                step.set(Step::Failed(e.into()));
                return;
            }
        };
        match store.write(|s| s.set_relay_url(url.as_deref())) {
            Ok(()) => {
                auto.send(Event::ServerChanged);
                typed.set(url.clone().unwrap_or_default());
                step.set(Step::Done(match (l, url) {
                    (Lang::Zh, Some(u)) => format!(
                        "已保存：{u}。在村办附近同步时先连中转站，连不上时直连县里"
                    ),
                    (Lang::En, Some(u)) => format!(
                        "Saved: {u}. Syncs go there near the village office, straight to the county otherwise"
                    ),
                    (Lang::Zh, None) => "已清除：同步都直连县里".into(),
                    (Lang::En, None) => "Cleared: every sync goes straight to the county".into(),
                }));
                bump(session);
            }
            Err(e) => step.set(Step::Failed(format!("保存失败：{e}"))),
        }
    };
    let st = step();
    rsx! {
        h2 { {t(l, "村办中转站", "Village office relay")} }
        p { class: "muted", id: "settings-relay-now",
            {t(l, "当前：", "Now: ")} {current.unwrap_or_else(|| t(l, "无", "none").into())}
        }
        label { class: "field",
            span { class: "field-label", {t(l, "村办中转站地址", "Relay address")} }
            input { id: "settings-relay", "data-act": act("settings-relay"), value: "{typed}", inputmode: "url", autocomplete: "off",
                placeholder: "http://192.168.1.10:8090",
                oninput: move |e| { typed.set(e.value()); step.set(Step::Idle); } }
            if let Step::Failed(e) = &st { span { class: "field-error", role: "alert", id: "settings-relay-error", "{e}" } }
        }
        p { class: "hint", {t(l, "村委会的中转站在村里网络上转交县里：在村办附近同步时先连中转站（交给它的记录显示“已交村办”），连不上时直连县里。留空表示没有中转站。",
            "The village office's relay passes records on to the county: near the office the app syncs there first (records it took read “At the village office”), straight to the county otherwise. Leave blank if there is none.")} }
        button { id: "settings-relay-save", "data-act": act("settings-relay-save"), class: "big", onclick: save, {t(l, "保存", "Save")} }
        if let Step::Done(m) = &st { p { class: "note ok", id: "settings-relay-saved", "{m}" } }
    }
}

#[component]
fn ServerAddress() -> Element {
    let l = *use_lang().read();
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let auto = use_autosync();
    let _rev = session.rev.read();
    let current = store.read(|s| s.meta(SERVER_URL)).ok().flatten();
    let mut typed = use_signal(|| current.clone().unwrap_or_default());
    let mut step = use_signal(|| Step::Idle);
    let save = move |_| {
        if *step.peek() == Step::Busy {
            return;
        }
        let url = match check_address(&typed.peek()) {
            Ok(u) => u,
            Err(e) => {
                step.set(Step::Failed(e.into()));
                return;
            }
        };
        step.set(Step::Busy);
        let sync = services.sync.clone();
        let store = store.clone();
        spawn(async move {
            match sync.check_server(&url).await {
                Ok(()) => match store.write(|s| s.set_meta(SERVER_URL, &url)) {
                    Ok(()) => {
                        auto.send(Event::ServerChanged);
                        typed.set(url.clone());
                        step.set(Step::Done(match l {
                            Lang::Zh => format!("已保存：{url}。待上传的记录会自动发往新地址"),
                            Lang::En => {
                                format!("Saved: {url}. Waiting records go to the new address")
                            }
                        }));
                        bump(session);
                    }
                    Err(e) => step.set(Step::Failed(format!("保存失败：{e}"))),
                },
                Err(f) => step.set(Step::Failed(f.message)),
            }
        });
    };
    let st = step();
    rsx! {
        h2 { {t(l, "县级服务器地址", "County server address")} }
        p { class: "muted", id: "settings-server-now",
            {t(l, "当前：", "Now: ")} {current.unwrap_or_else(|| t(l, "未登记", "not enrolled").into())}
        }
        label { class: "field",
            span { class: "field-label", {t(l, "服务器地址", "Server address")} }
            input { id: "settings-server", value: "{typed}", inputmode: "url", autocomplete: "off",
                oninput: move |e| { typed.set(e.value()); step.set(Step::Idle); } }
            if let Step::Failed(e) = &st { span { class: "field-error", role: "alert", id: "settings-server-error", "{e}" } }
        }
        p { class: "hint", {t(l, "保存前会先检查该地址能否连上县级服务器；本机数据和待上传记录都会保留。",
            "The address is checked before it is saved; this phone's data and waiting records stay.")} }
        button { id: "settings-server-save", class: "big", disabled: st == Step::Busy, onclick: save,
            if st == Step::Busy { {t(l, "正在检查…", "Checking…")} } else { {t(l, "检查并保存", "Check and save")} } }
        if let Step::Done(m) = &st { p { class: "note ok", id: "settings-server-saved", "{m}" } }
    }
}

/// Signing in again on this store: the same worker, a new token; queued entries stay and go
/// up with the next sync. Also on the Sync screen when the session has run out.
#[component]
pub fn SignInAgain() -> Element {
    let l = *use_lang().read();
    let services = use_services();
    let session = use_session();
    let store = use_store();
    let auto = use_autosync();
    let _rev = session.rev.read();
    let (worker, pending, times) = store
        .read(|s| {
            Ok((
                s.worker().to_owned(),
                s.unsent_records()?.len(),
                s.session_times()?,
            ))
        })
        .unwrap_or_default();
    let mut username = use_signal(|| worker.clone());
    let mut password = use_signal(String::new);
    let mut step = use_signal(|| Step::Idle);
    let submit = move |_| {
        if *step.peek() == Step::Busy {
            return;
        }
        if username.peek().trim().is_empty() || password.peek().is_empty() {
            step.set(Step::Failed(
                t(l, "请填写用户名和密码", "Enter your username and password").into(),
            ));
            return;
        }
        step.set(Step::Busy);
        let sync = services.sync.clone();
        let store = store.clone();
        let (u, p) = (username.peek().clone(), password.peek().clone());
        spawn(async move {
            match sync.sign_in_again(&u, &p, store.0.clone()).await {
                Ok(()) => {
                    password.set(String::new());
                    auto.send(Event::SignedIn);
                    step.set(Step::Done(
                        t(
                            l,
                            "已重新登录，待上传的记录会自动上传",
                            "Signed in; waiting records go up by themselves",
                        )
                        .into(),
                    ));
                    bump(session);
                }
                Err(f) => step.set(Step::Failed(f.message)),
            }
        });
    };
    let st = step();
    rsx! {
        h2 { id: "signin-title", {t(l, "重新登录", "Sign in again")} }
        if let Some(times) = times {
            p { class: "muted", id: "session-times",
                {t(l, "本次登录不用也有效至 ", "This sign-in lasts unused until ")}
                {crate::app::context::local_time(times.expires_at, "%Y-%m-%d")}
                {t(l, "（每次同步自动顺延）", " (each sync extends it)")}
                if let Some(end) = times.ends_at {
                    {t(l, "；最迟 ", "; at the latest until ")}
                    {crate::app::context::local_time(end, "%Y-%m-%d")}
                    {t(l, "，届时需在此重新登录", ", then sign in again here")}
                }
            }
        }
        p { class: "hint",
            {t(l, "登录过期或被撤销时在此重新登录。本机的 ", "When the sign-in has expired or was revoked, sign in again here. This phone's ")}
            strong { "{pending}" }
            {t(l, " 条待上传记录会保留，登录后自动上传。只有本机的网格员「", " waiting records stay and go up after signing in. Only this phone's worker (")}
            "{worker}"
            {t(l, "」本人可以登录。", ") may sign in.")}
        }
        label { class: "field",
            span { class: "field-label", {t(l, "用户名", "Username")} }
            input { id: "signin-username", value: "{username}", autocomplete: "username",
                oninput: move |e| { username.set(e.value()); step.set(Step::Idle); } }
        }
        label { class: "field",
            span { class: "field-label", {t(l, "密码", "Password")} }
            input { id: "signin-password", r#type: "password", value: "{password}",
                oninput: move |e| { password.set(e.value()); step.set(Step::Idle); } }
        }
        if let Step::Failed(e) = &st { ErrorNote { text: e.clone() } }
        button { id: "signin-again", class: "big primary", disabled: st == Step::Busy, onclick: submit,
            if st == Step::Busy { {t(l, "正在登录…", "Signing in…")} } else { {t(l, "登录", "Sign in")} } }
        if let Step::Done(m) = &st { p { class: "note ok", id: "signin-done", "{m}" } }
    }
}

#[component]
fn FeedbackInterval() -> Element {
    let l = *use_lang().read();
    let session = use_session();
    let store = use_store();
    let _rev = session.rev.read();
    let minutes = store
        .read(|s| s.meta(FEEDBACK_MINUTES))
        .ok()
        .flatten()
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(Config::default().feedback_every.as_secs() / 60);
    let mut error = use_signal(|| None::<String>);
    let change = move |e: FormEvent| {
        let v = e.value();
        match store.write(|s| s.set_meta(FEEDBACK_MINUTES, &v)) {
            Ok(()) => {
                error.set(None);
                bump(session);
            }
            Err(e) => error.set(Some(format!("保存失败：{e}"))),
        }
    };
    rsx! {
        h2 { {t(l, "自动同步", "Syncing by itself")} }
        p { class: "hint", {t(l,
            "有网络时，保存记录几秒后自动上传，紧急事件立即上传；并按下面的间隔获取县里的反馈。",
            "With a network, records go up a few seconds after saving (emergencies at once), and the county's feedback comes down at this interval.")} }
        label { class: "field",
            span { class: "field-label", {t(l, "获取县里反馈的间隔", "Fetch county feedback every")} }
            select { id: "settings-feedback", onchange: change,
                for m in FEEDBACK_CHOICES {
                    option { value: "{m}", selected: m == minutes, "{m} " {t(l, "分钟", "min")} }
                }
            }
        }
        if let Some(e) = error() { ErrorNote { text: e } }
    }
}

#[component]
fn AutoLock() -> Element {
    let l = *use_lang().read();
    let session = use_session();
    let store = use_store();
    let _rev = session.rev.read();
    let minutes = store
        .read(|s| Ok(lock::auto_lock_minutes(s)))
        .unwrap_or(lock::AUTO_LOCK_DEFAULT);
    let mut error = use_signal(|| None::<String>);
    let change = move |e: FormEvent| {
        let v = e.value();
        match store.write(|s| s.set_meta(lock::AUTO_LOCK_MINUTES, &v)) {
            Ok(()) => {
                error.set(None);
                bump(session);
            }
            Err(e) => error.set(Some(format!("保存失败：{e}"))),
        }
    };
    rsx! {
        h2 { {t(l, "自动锁定", "Lock by itself")} }
        label { class: "field",
            span { class: "field-label", {t(l, "无操作多久后锁定", "Lock after no use for")} }
            select { id: "settings-autolock", onchange: change,
                for m in lock::AUTO_LOCK_CHOICES {
                    option { value: "{m}", selected: m == minutes, "{m} " {t(l, "分钟", "min")} }
                }
            }
        }
        p { class: "hint", {t(l, "锁定后需输入 PIN 才能继续；正在填写的表单会保留。巡防记录轨迹时不会自动锁定。",
            "Then the PIN is needed again; a form being filled in is kept. It does not lock while a patrol records its track.")} }
        if let Some(e) = error() { ErrorNote { text: e } }
    }
}

/// Changing the PIN: the old one, the new one twice; the vault's key is rewrapped.
#[component]
fn ChangePin() -> Element {
    let l = *use_lang().read();
    let services = use_services();
    let mut old = use_signal(String::new);
    let mut new = use_signal(String::new);
    let mut new2 = use_signal(String::new);
    // (field, message) beside that field; ("done", message) once changed.
    let mut note = use_signal(|| None::<(&'static str, String)>);
    let Some(db) = services.db_path.clone() else {
        return rsx! {};
    };
    let submit = move |_| {
        if old.peek().is_empty() {
            note.set(Some((
                "old",
                t(l, "请输入现在的 PIN", "Enter the current PIN").into(),
            )));
            return;
        }
        if let Err(e) = check_pin(&new.peek()) {
            note.set(Some(("new", t(l, e, "The PIN is 6 to 12 digits").into())));
            return;
        }
        if *new.peek() == *old.peek() {
            note.set(Some((
                "new",
                t(
                    l,
                    "新 PIN 与现在的 PIN 相同，请换一个",
                    "The new PIN is the current one",
                )
                .into(),
            )));
            return;
        }
        if *new.peek() != *new2.peek() {
            note.set(Some((
                "new2",
                t(
                    l,
                    "两次输入的新 PIN 不一致，请重新输入",
                    "The two new PINs differ",
                )
                .into(),
            )));
            return;
        }
        let res = match Vault::load(&db) {
            Ok(Some(mut v)) => {
                v.change_pin(&old.peek(), &new.peek(), services.now(), lock::keystore())
            }
            Ok(None) => Err(VaultError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no key file",
            ))),
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {
                old.set(String::new());
                new.set(String::new());
                new2.set(String::new());
                note.set(Some((
                    "done",
                    t(
                        l,
                        "PIN 已修改，下次解锁请用新 PIN",
                        "PIN changed: unlock with the new one from now on",
                    )
                    .into(),
                )));
            }
            Err(
                e @ (VaultError::WrongPin { .. } | VaultError::Wait { .. } | VaultError::LockedOut),
            ) => {
                old.set(String::new());
                note.set(Some(("old", e.explain(l))));
            }
            Err(e) => note.set(Some(("form", e.explain(l)))),
        }
    };
    let n = note();
    let beside = move |f: &str| n.as_ref().filter(|(k, _)| *k == f).map(|(_, m)| m.clone());
    rsx! {
        h2 { id: "change-pin-title", {t(l, "修改 PIN", "Change the PIN")} }
        label { class: "field",
            span { class: "field-label", {t(l, "现在的 PIN", "Current PIN")} }
            input { id: "pin-old", "data-act": act("pin-old"), r#type: "password", inputmode: "numeric", autocomplete: "off", value: "{old}",
                oninput: move |e| old.set(e.value()) }
            if let Some(e) = beside("old") { span { class: "field-error", role: "alert", id: "pin-old-error", "{e}" } }
        }
        label { class: "field",
            span { class: "field-label", {t(l, "新 PIN（6-12 位数字）", "New PIN (6-12 digits)")} }
            input { id: "pin-new", "data-act": act("pin-new"), r#type: "password", inputmode: "numeric", autocomplete: "off", value: "{new}",
                oninput: move |e| new.set(e.value()) }
            if let Some(e) = beside("new") { span { class: "field-error", role: "alert", id: "pin-new-error", "{e}" } }
        }
        label { class: "field",
            span { class: "field-label", {t(l, "再次输入新 PIN", "New PIN again")} }
            input { id: "pin-new2", "data-act": act("pin-new2"), r#type: "password", inputmode: "numeric", autocomplete: "off", value: "{new2}",
                oninput: move |e| new2.set(e.value()) }
            if let Some(e) = beside("new2") { span { class: "field-error", role: "alert", id: "pin-new2-error", "{e}" } }
        }
        if let Some(e) = beside("form") { ErrorNote { text: e } }
        button { id: "change-pin", "data-act": act("change-pin"), class: "big", onclick: submit, {t(l, "修改 PIN", "Change the PIN")} }
        if let Some(m) = beside("done") { p { class: "note ok", id: "change-pin-done", "{m}" } }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_address, check_relay_address};

    #[test]
    fn a_relay_address_is_blank_or_an_address_with_a_host_and_a_port_that_is_one() {
        assert_eq!(check_relay_address("  ").unwrap(), None);
        assert_eq!(
            check_relay_address(" http://192.168.1.10:8090/ ").unwrap(),
            Some("http://192.168.1.10:8090".into())
        );
        assert_eq!(
            check_relay_address("https://cun.example").unwrap(),
            Some("https://cun.example".into())
        );
        for bad in [
            "192.168.1.10:8090",
            "http://",
            "http://:8090",
            "http://a b",
            "http://h:99999",
            "http://h:x",
        ] {
            let e = check_relay_address(bad).unwrap_err();
            assert!(
                e.starts_with("村办中转站地址") && e.contains("http://192.168.1.10:8090"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn an_address_needs_a_scheme_and_a_host() {
        assert_eq!(
            check_address(" http://127.0.0.1:8080/ ").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(check_address("127.0.0.1:8080").is_err());
        assert!(check_address("http://").is_err());
        assert!(check_address("http://a b").is_err());
    }
}
