//! Enrol and unlock: the first run asks for the server, username and password (online once)
//! and sets the app PIN, which releases the store's key from its vault
//! (`crate::store::vault`); afterwards the PIN alone unlocks the app, offline. Wrong PINs are
//! counted in the vault: after 5, each try waits (the time left shown); after 10 the PIN no
//! longer unlocks, and the worker either recovers online (the account's password releases the
//! device's recovery secret from the county, then a new PIN) or wipes the store, after being
//! told what unsent work it holds.

use dioxus::prelude::*;

use crate::app::context::{use_services, use_session};
use crate::app::i18n::{t, use_lang};
use crate::app::lock;
use crate::domain::codes::{Coded, Lang};
use crate::domain::labels::Explain;
use crate::store::remote::{SessionTimes, TOKEN};
use crate::store::vault::{self, Gate as PinGate, Kdf, RecoverySecret, Vault, wait_text};

/// The name view tests find an element by (`data-act`: a dynamic attribute, so the element
/// gets an id they can send events to).
pub(crate) fn act(name: &'static str) -> &'static str {
    name
}

/// A PIN is 6 to 12 digits.
pub fn check_pin(pin: &str) -> Result<(), &'static str> {
    if (6..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("PIN 须为 6-12 位数字，请重新输入")
    }
}

/// Bumped when the store is wiped, so the gate looks at the disk again.
#[derive(Clone, Copy)]
struct GateRev(Signal<u64>);

/// Shows the unlock screen when a store exists, else the enrolment screen.
#[component]
pub fn Gate() -> Element {
    let services = use_services();
    let l = *use_lang().read();
    let rev = use_context_provider(|| GateRev(Signal::new(0)));
    let _ = (rev.0)();
    match &services.db_path {
        Some(p) if p.exists() => rsx! { Unlock {} },
        Some(_) => rsx! { Enrol {} },
        None => {
            rsx! { p { class: "note error", {t(l, "没有设备数据库路径", "No device database path")} } }
        }
    }
}

/// What the unlock screen is showing.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Pin,
    Recover,
    Wipe,
}

#[component]
fn Unlock() -> Element {
    let services = use_services();
    let mut session = use_session();
    let l = *use_lang().read();
    let mut pin = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let mut tick = use_signal(|| 0u64);
    let mode = use_signal(|| Mode::Pin);
    // The PIN cannot open this key file here (sealed on another phone, or before the app was
    // reinstalled): only recovery or the wipe go on.
    let mut not_here = use_signal(|| false);
    let path = services.db_path.clone();
    // The wait counts down on screen.
    use_future(move || async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let next = *tick.peek() + 1;
            tick.set(next);
        }
    });
    let _ = tick();
    let vault = path.as_deref().map(Vault::load);
    let gate = match &vault {
        Some(Ok(Some(v))) => v.gate(services.now()),
        // A store from before the vault: migrated on its first unlock.
        _ => PinGate::Open { failures: 0 },
    };
    let vault_error = match &vault {
        Some(Err(e)) => Some(e.explain(l)),
        _ => None,
    };
    if gate == PinGate::LockedOut || not_here() {
        let v = match vault {
            Some(Ok(Some(v))) => v,
            _ => return rsx! {},
        };
        let why = (gate != PinGate::LockedOut).then(|| error().unwrap_or_default());
        return rsx! { LockedOut { vault: v, mode, not_here: why } };
    }
    let waiting = match gate {
        PinGate::Wait { remaining_s, .. } => Some(remaining_s),
        _ => None,
    };
    let failures = match gate {
        PinGate::Open { failures } | PinGate::Wait { failures, .. } => failures,
        PinGate::LockedOut => vault::MAX_PIN_FAILURES,
    };
    let now_fn = services.clone();
    let mut submit = move || {
        let Some(path) = path.clone() else { return };
        if pin.peek().is_empty() {
            error.set(Some(t(l, "请输入 PIN", "Enter your PIN").into()));
            return;
        }
        busy.set(true);
        match lock::unlock(&path, &pin.peek(), now_fn.now()) {
            Ok(unlocked) => {
                error.set(None);
                let store = lock::after_unlock(unlocked);
                spawn(lock::send_recovery(store.clone()));
                session.store.set(Some(store));
            }
            Err(e) => {
                if matches!(e, vault::VaultError::NotThisDevice(_)) {
                    not_here.set(true);
                }
                error.set(Some(e.explain(l)));
            }
        }
        pin.set(String::new());
        busy.set(false);
    };
    let mut submit2 = submit.clone();
    rsx! {
        div { class: "gate",
            h1 { {t(l, "网格通", "gridwalk")} }
            p { class: "hint", {t(l, "输入 PIN 解锁（无需网络）", "Enter your PIN to unlock (works offline)")} }
            input {
                id: "pin", "data-act": act("pin"), class: "pin", r#type: "password", inputmode: "numeric", autocomplete: "off",
                value: "{pin}", placeholder: "PIN", disabled: waiting.is_some(),
                oninput: move |e| pin.set(e.value()),
                onkeydown: move |e| if e.key() == Key::Enter { submit2() },
            }
            if let Some(s) = waiting {
                p { class: "note error", role: "alert", id: "pin-wait",
                    {match l {
                        Lang::Zh => format!("PIN 已连续错 {failures} 次，请 {}后再试（连续错 {} 次后本机锁定）", wait_text(s, l), vault::MAX_PIN_FAILURES),
                        Lang::En => format!("{failures} wrong PINs in a row. Try again in {} (after {} the phone locks).", wait_text(s, l), vault::MAX_PIN_FAILURES),
                    }}
                }
            } else if let Some(e) = error() {
                p { class: "note error", role: "alert", id: "pin-error", "{e}" }
            }
            if let Some(e) = vault_error { p { class: "note error", role: "alert", "{e}" } }
            button { id: "unlock", "data-act": act("unlock"), class: "big primary", disabled: busy() || waiting.is_some(), onclick: move |_| submit(), {t(l, "解锁", "Unlock")} }
        }
    }
}

/// After [`vault::MAX_PIN_FAILURES`] wrong PINs, or a key file the PIN cannot open on this
/// phone (`not_here`: why, as the unlock said it): recover online, or wipe.
#[component]
fn LockedOut(vault: Vault, mode: Signal<Mode>, not_here: Option<String>) -> Element {
    let l = *use_lang().read();
    let m = mode();
    rsx! {
        div { class: "gate", id: "locked-out",
            h1 { {t(l, "本机已锁定", "This phone is locked")} }
            if let Some(why) = not_here {
                p { class: "note error", role: "alert", id: "not-this-device", "{why}" }
                p { class: "hint", {t(l, "请选择：", "Choose:")} }
            } else {
                p { class: "note error", role: "alert",
                    {match l {
                        Lang::Zh => format!("PIN 已连续错 {} 次，不能再用 PIN 解锁。请选择：", vault::MAX_PIN_FAILURES),
                        Lang::En => format!("{} wrong PINs in a row: the PIN no longer unlocks. Choose:", vault::MAX_PIN_FAILURES),
                    }}
                }
            }
            {match m {
                Mode::Recover => rsx! { Recover { vault: vault.clone(), mode } },
                Mode::Wipe => rsx! { Wipe { vault: vault.clone(), mode } },
                Mode::Pin => rsx! {
                    button { id: "choose-recover", "data-act": act("choose-recover"), class: "big primary", onclick: move |_| mode.set(Mode::Recover),
                        {t(l, "联网找回（用账号密码）", "Recover online (account password)")} }
                    p { class: "hint", {t(l, "需要联网：用本机登记的账号和密码登录县级服务器，取回本机的找回密钥，然后设置新 PIN。本机数据和未上传的记录都保留。",
                        "Online: sign in to the county server with this phone's account and password to get this phone's recovery secret back, then set a new PIN. Data and unsent records stay.")} }
                    button { id: "choose-wipe", "data-act": act("choose-wipe"), class: "big danger", onclick: move |_| mode.set(Mode::Wipe),
                        {t(l, "清除本机数据", "Wipe this phone's data")} }
                    p { class: "hint", {t(l, "清除后需要重新登记；未上传的记录会丢失。", "Then enrol again; unsent records are lost.")} }
                },
            }}
        }
    }
}

#[component]
fn Recover(vault: Vault, mode: Signal<Mode>) -> Element {
    let services = use_services();
    let mut session = use_session();
    let l = *use_lang().read();
    let mut server = use_signal(|| vault.server().unwrap_or_default().to_owned());
    let mut username = use_signal(|| vault.worker().unwrap_or_default().to_owned());
    let mut password = use_signal(String::new);
    let mut pin = use_signal(String::new);
    let mut pin2 = use_signal(String::new);
    // Errors beside their fields: (field, message).
    let mut error = use_signal(|| None::<(&'static str, String)>);
    let mut busy = use_signal(|| false);
    let device = vault.device_id();
    let submit = move |_| {
        let Some(path) = services.db_path.clone() else {
            return;
        };
        if username.peek().trim().is_empty() {
            error.set(Some((
                "username",
                t(l, "请填写用户名", "Enter your username").into(),
            )));
            return;
        }
        if password.peek().is_empty() {
            error.set(Some((
                "password",
                t(l, "请填写密码", "Enter your password").into(),
            )));
            return;
        }
        if let Err(e) = check_pin(&pin.peek()) {
            error.set(Some(("pin", t(l, e, "The PIN is 6 to 12 digits").into())));
            return;
        }
        if *pin.peek() != *pin2.peek() {
            error.set(Some((
                "pin2",
                t(
                    l,
                    "两次输入的 PIN 不一致，请重新输入",
                    "The two PINs differ",
                )
                .into(),
            )));
            return;
        }
        let Some(device) = device else {
            error.set(Some((
                "form",
                t(
                    l,
                    "本机的密钥文件里没有设备编号，无法联网找回：只能清除本机数据",
                    "The key file names no device: wipe instead",
                )
                .into(),
            )));
            return;
        };
        busy.set(true);
        error.set(None);
        let (srv, user, pass, new_pin) = (
            server.peek().trim().to_owned(),
            username.peek().trim().to_owned(),
            password.peek().clone(),
            pin.peek().clone(),
        );
        let now = services.now();
        spawn(async move {
            let res = crate::client::release_recovery(&srv, &user, &pass, device).await;
            busy.set(false);
            let rel = match res {
                Ok(rel) => rel,
                Err(e) => {
                    let field = match &e {
                        crate::client::SyncError::Unauthorized => "password",
                        crate::client::SyncError::Offline(_) => "server",
                        _ => "form",
                    };
                    error.set(Some((field, format!("{} ({e})", e.zh()))));
                    return;
                }
            };
            let Some(secret) = RecoverySecret::decode(&rel.secret) else {
                error.set(Some(("form", vault::VaultError::WrongRecovery.explain(l))));
                return;
            };
            match vault::recover(&path, &secret, &new_pin, now, lock::keystore()) {
                Ok(unlocked) => {
                    let _ = unlocked.store.set_meta(TOKEN, &rel.session.token);
                    let _ = unlocked.store.keep_session_times(&SessionTimes {
                        expires_at: rel.session.expires_at,
                        ends_at: rel.session.ends_at,
                    });
                    password.set(String::new());
                    let store = lock::after_unlock(unlocked);
                    session.store.set(Some(store));
                }
                Err(e) => error.set(Some(("form", e.explain(l)))),
            }
        });
    };
    let err = error();
    let beside = move |f: &str| {
        err.as_ref()
            .filter(|(k, _)| *k == f)
            .map(|(_, m)| m.clone())
    };
    rsx! {
        h2 { {t(l, "联网找回", "Recover online")} }
        label { class: "field", span { class: "field-label", {t(l, "服务器地址", "Server address")} }
            input { id: "recover-server", value: "{server}", oninput: move |e| server.set(e.value()) }
            if let Some(e) = beside("server") { span { class: "field-error", role: "alert", "{e}" } } }
        label { class: "field", span { class: "field-label", {t(l, "用户名", "Username")} }
            input { id: "recover-username", value: "{username}", autocomplete: "username", oninput: move |e| username.set(e.value()) }
            if let Some(e) = beside("username") { span { class: "field-error", role: "alert", "{e}" } } }
        label { class: "field", span { class: "field-label", {t(l, "密码", "Password")} }
            input { id: "recover-password", "data-act": act("recover-password"), r#type: "password", value: "{password}", oninput: move |e| password.set(e.value()) }
            if let Some(e) = beside("password") { span { class: "field-error", role: "alert", "{e}" } } }
        label { class: "field", span { class: "field-label", {t(l, "新 PIN（6-12 位数字）", "New PIN (6-12 digits)")} }
            input { id: "recover-pin", "data-act": act("recover-pin"), r#type: "password", inputmode: "numeric", value: "{pin}", oninput: move |e| pin.set(e.value()) }
            if let Some(e) = beside("pin") { span { class: "field-error", role: "alert", "{e}" } } }
        label { class: "field", span { class: "field-label", {t(l, "再次输入新 PIN", "New PIN again")} }
            input { id: "recover-pin2", "data-act": act("recover-pin2"), r#type: "password", inputmode: "numeric", value: "{pin2}", oninput: move |e| pin2.set(e.value()) }
            if let Some(e) = beside("pin2") { span { class: "field-error", role: "alert", "{e}" } } }
        if let Some(e) = beside("form") { p { class: "note error", role: "alert", "{e}" } }
        button { id: "recover", "data-act": act("recover"), class: "big primary", disabled: busy(), onclick: submit,
            if busy() { {t(l, "正在找回…", "Recovering…")} } else { {t(l, "找回并设置新 PIN", "Recover and set the new PIN")} } }
        button { class: "big", onclick: move |_| mode.set(Mode::Pin), {t(l, "返回", "Back")} }
    }
}

#[component]
fn Wipe(vault: Vault, mode: Signal<Mode>) -> Element {
    let services = use_services();
    let l = *use_lang().read();
    let gate = use_context::<GateRev>();
    let mut confirm = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let unsent = vault.unsent();
    let total: u64 = unsent.iter().map(|(_, n)| n).sum();
    let at = vault
        .unsent_at()
        .map(|t| crate::app::context::local_time(t, "%Y-%m-%d %H:%M"));
    let wipe = move |_| {
        let Some(path) = services.db_path.clone() else {
            return;
        };
        match lock::wipe(&path) {
            Ok(()) => {
                let mut rev = gate.0;
                let next = *rev.peek() + 1;
                rev.set(next);
            }
            Err(e) => error.set(Some(format!("清除失败：{e}（请重启应用后再试）"))),
        }
    };
    rsx! {
        h2 { {t(l, "清除本机数据", "Wipe this phone's data")} }
        if total > 0 {
            p { class: "note error", id: "wipe-loses",
                {t(l, "本机还有以下内容没有上传到县里，清除后将永久丢失：", "Not yet sent to the county, and lost for good if you wipe:")}
            }
            ul { id: "wipe-unsent",
                for (kind, n) in unsent.iter() {
                    li { {format!("{} {n} {}", kind.label(l), t(l, "条", ""))} }
                }
            }
        } else {
            p { class: "note ok", id: "wipe-loses", {t(l, "本机没有未上传的内容。", "Nothing unsent on this phone.")} }
        }
        if let Some(at) = at {
            p { class: "muted", {t(l, "（统计于 ", "(as of ")} "{at}" {t(l, "，本机最后一次保存或锁定时）", ", the last save or lock)")} }
        }
        p { class: "hint", {t(l, "清除后本机的住户、记录和照片都会删除，需要联网重新登记。", "The households, records and photos on this phone are deleted; enrol again online.")} }
        if confirm() {
            button { id: "wipe-confirm", "data-act": act("wipe-confirm"), class: "big danger", onclick: wipe,
                {t(l, "确认清除（不可恢复）", "Wipe now (cannot be undone)")} }
        } else {
            button { id: "wipe", "data-act": act("wipe"), class: "big danger", onclick: move |_| confirm.set(true),
                {t(l, "清除本机数据…", "Wipe…")} }
        }
        if let Some(e) = error() { p { class: "note error", role: "alert", "{e}" } }
        button { class: "big", onclick: move |_| mode.set(Mode::Pin), {t(l, "返回", "Back")} }
    }
}

#[component]
fn Enrol() -> Element {
    let services = use_services();
    let mut session = use_session();
    let l = *use_lang().read();
    let mut server = use_signal(|| "http://127.0.0.1:8080".to_string());
    let mut username = use_signal(String::new);
    let mut password = use_signal(String::new);
    let mut pin = use_signal(String::new);
    let mut pin2 = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let submit = move |_| {
        let Some(path) = services.db_path.clone() else {
            return;
        };
        if let Err(e) = check_pin(&pin.peek()) {
            error.set(Some(t(l, e, "The PIN is 6 to 12 digits").into()));
            return;
        }
        if *pin.peek() != *pin2.peek() {
            error.set(Some(
                t(
                    l,
                    "两次输入的 PIN 不一致，请重新输入",
                    "The two PINs differ",
                )
                .into(),
            ));
            return;
        }
        if username.peek().trim().is_empty() || password.peek().is_empty() {
            error.set(Some(
                t(l, "请填写用户名和密码", "Enter your username and password").into(),
            ));
            return;
        }
        // A half-made store of an earlier try goes first.
        let _ = lock::wipe(&path);
        let unlocked = match vault::create(&path, &pin.peek(), Kdf::DEFAULT, lock::keystore()) {
            Ok(u) => u,
            Err(e) => {
                error.set(Some(e.explain(l)));
                return;
            }
        };
        let (mut vlt, key) = (unlocked.vault, unlocked.key);
        let store = std::sync::Arc::new(std::sync::Mutex::new(unlocked.store));
        busy.set(true);
        error.set(None);
        let sync = services.sync.clone();
        let (srv, user, pass) = (
            server.peek().clone(),
            username.peek().clone(),
            password.peek().clone(),
        );
        let now = services.now();
        spawn(async move {
            let res = sync.enrol(&srv, user.trim(), &pass, store.clone()).await;
            busy.set(false);
            match res {
                Ok(_) => {
                    if let Ok(s) = store.lock() {
                        lock::seal_recovery(&mut vlt, &key, &s);
                        let _ = vlt.note(&s, now);
                    }
                    spawn(lock::send_recovery(store.clone()));
                    session.store.set(Some(store));
                }
                Err(e) => {
                    drop(store);
                    let _ = lock::wipe(&path);
                    error.set(Some(e.message));
                }
            }
        });
    };
    rsx! {
        div { class: "gate",
            h1 { {t(l, "首次登记", "Enrol this device")} }
            p { class: "hint", {t(l, "仅此一次需要联网：登录县级服务器，然后设置本机 PIN。", "Online once: sign in to the county server, then set this device's PIN.")} }
            label { class: "field", span { class: "field-label", {t(l, "服务器地址", "Server address")} }
                input { id: "server", value: "{server}", oninput: move |e| server.set(e.value()) } }
            label { class: "field", span { class: "field-label", {t(l, "用户名", "Username")} }
                input { id: "username", value: "{username}", autocomplete: "username", oninput: move |e| username.set(e.value()) } }
            label { class: "field", span { class: "field-label", {t(l, "密码", "Password")} }
                input { id: "password", r#type: "password", value: "{password}", oninput: move |e| password.set(e.value()) } }
            label { class: "field", span { class: "field-label", {t(l, "设置 PIN（6-12 位数字）", "Set a PIN (6-12 digits)")} }
                input { id: "new-pin", r#type: "password", inputmode: "numeric", value: "{pin}", oninput: move |e| pin.set(e.value()) } }
            label { class: "field", span { class: "field-label", {t(l, "再次输入 PIN", "PIN again")} }
                input { id: "new-pin2", r#type: "password", inputmode: "numeric", value: "{pin2}", oninput: move |e| pin2.set(e.value()) } }
            if let Some(e) = error() { p { class: "note error", role: "alert", "{e}" } }
            button { id: "enrol", class: "big primary", disabled: busy(), onclick: submit,
                if busy() { {t(l, "正在登记…", "Enrolling…")} } else { {t(l, "登记并同步", "Enrol and sync")} }
            }
        }
    }
}
