//! Enrol and unlock: the first run asks for the server, username and password (online once)
//! and sets the app PIN, which becomes the key of the encrypted device store; afterwards the
//! PIN alone unlocks the app, offline.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dioxus::prelude::*;

use crate::app::context::{use_services, use_session};
use crate::app::i18n::{t, use_lang};
use crate::domain::labels::Explain;
use crate::store::Store;

/// A PIN is 6 to 12 digits.
pub fn check_pin(pin: &str) -> Result<(), &'static str> {
    if (6..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("PIN 须为 6-12 位数字，请重新输入")
    }
}

/// Removes a store file and its WAL companions (after a failed enrolment).
fn remove_store(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Shows the unlock screen when a store exists, else the enrolment screen.
#[component]
pub fn Gate() -> Element {
    let services = use_services();
    let l = *use_lang().read();
    match &services.db_path {
        Some(p) if p.exists() => rsx! { Unlock {} },
        Some(_) => rsx! { Enrol {} },
        None => {
            rsx! { p { class: "note error", {t(l, "没有设备数据库路径", "No device database path")} } }
        }
    }
}

#[component]
fn Unlock() -> Element {
    let services = use_services();
    let mut session = use_session();
    let l = *use_lang().read();
    let mut pin = use_signal(String::new);
    let mut error = use_signal(|| None::<String>);
    let mut busy = use_signal(|| false);
    let path = services.db_path.clone();
    let mut submit = move || {
        let Some(path) = path.clone() else { return };
        if pin.peek().is_empty() {
            error.set(Some(t(l, "请输入 PIN", "Enter your PIN").into()));
            return;
        }
        busy.set(true);
        match Store::open_encrypted(&path, &pin.peek()) {
            Ok(store) => {
                error.set(None);
                session.store.set(Some(Arc::new(Mutex::new(store))));
            }
            Err(e) => error.set(Some(e.explain(l))),
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
                id: "pin", class: "pin", r#type: "password", inputmode: "numeric", autocomplete: "off",
                value: "{pin}", placeholder: "PIN",
                oninput: move |e| pin.set(e.value()),
                onkeydown: move |e| if e.key() == Key::Enter { submit2() },
            }
            if let Some(e) = error() { p { class: "note error", role: "alert", "{e}" } }
            button { id: "unlock", class: "big primary", disabled: busy(), onclick: move |_| submit(), {t(l, "解锁", "Unlock")} }
        }
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
        let store = match Store::open_encrypted(&path, &pin.peek()) {
            Ok(s) => Arc::new(Mutex::new(s)),
            Err(e) => {
                error.set(Some(e.explain(l)));
                return;
            }
        };
        busy.set(true);
        error.set(None);
        let sync = services.sync.clone();
        let (srv, user, pass) = (
            server.peek().clone(),
            username.peek().clone(),
            password.peek().clone(),
        );
        spawn(async move {
            let res = sync.enrol(&srv, user.trim(), &pass, store.clone()).await;
            busy.set(false);
            match res {
                Ok(_) => session.store.set(Some(store)),
                Err(e) => {
                    drop(store);
                    remove_store(&path);
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
