//! The app's side of the store's key vault (`crate::store::vault`): which keystore this
//! build seals with, what happens after every unlock (the recovery secret made and sent to the
//! county while the county does not have it), the unsent counts the vault keeps for the wipe
//! screen, and auto-lock after idle minutes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dioxus::prelude::*;

use super::context::{Services, Session};
use crate::store::Store;
#[cfg(any(target_os = "android", target_os = "ios"))]
use crate::store::keystore::{DeviceKeystore, UnavailableKeystore};
#[cfg(not(any(target_os = "android", target_os = "ios")))]
use crate::store::vault::NoKeystore;
use crate::store::vault::{self, DbKey, Keystore, Unlocked, Vault};

/// `meta`: minutes without a touch after which the app locks itself.
pub const AUTO_LOCK_MINUTES: &str = "auto_lock_minutes";
/// The default of [`AUTO_LOCK_MINUTES`].
pub const AUTO_LOCK_DEFAULT: i64 = 5;
/// The choices on the Settings screen.
pub const AUTO_LOCK_CHOICES: [i64; 6] = [1, 2, 5, 10, 15, 30];
/// `meta`: a recovery secret (base64) sealed into the vault but not yet kept by the county.
pub const RECOVERY_PENDING: &str = "recovery_pending";

/// The keystore this build seals the PIN-wrapped key with: on Android and iOS a
/// [`DeviceKeystore`] over the platform's credential store, opened once it opens; everywhere else
/// (desktop, the browser harness, tests) none. A phone whose store cannot be opened gets an
/// [`UnavailableKeystore`], which refuses to seal or open with the reason, shown by the
/// enrol and unlock screens: never a silent fall back to a vault without the phone's layer.
pub fn keystore() -> &'static dyn Keystore {
    #[cfg(any(target_os = "android", target_os = "ios"))]
    {
        static KEYSTORE: std::sync::OnceLock<DeviceKeystore> = std::sync::OnceLock::new();
        if let Some(ks) = KEYSTORE.get() {
            return ks;
        }
        match phone_keystore() {
            Ok(ks) => KEYSTORE.get_or_init(|| ks),
            // Not kept: the next unlock or enrolment tries again (a failure is rare, leaks
            // only this message).
            Err(e) => {
                tracing::error!(error = %e, "the phone's keystore cannot be opened");
                Box::leak(Box::new(UnavailableKeystore(e)))
            }
        }
    }
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    {
        &NoKeystore
    }
}

/// Android's: SharedPreferences encrypted by an Android Keystore key
/// (`android-native-keyring-store`). Needs the activity's context in ndk-context, which the
/// mobile launcher sets up; it panics without one, so any panic is caught into an error.
#[cfg(target_os = "android")]
fn phone_keystore() -> Result<DeviceKeystore, String> {
    Ok(DeviceKeystore::new(android_store()?))
}

/// iOS's: the Keychain (data protection keychain), the entry `WhenUnlockedThisDeviceOnly`
/// so it never leaves the phone, not even in a backup restored on another. Compiles only on
/// Apple targets: not compiled or run where this app is developed (see README).
#[cfg(target_os = "ios")]
fn phone_keystore() -> Result<DeviceKeystore, String> {
    let store = apple_native_keyring_store::protected::Store::new().map_err(|e| e.to_string())?;
    Ok(DeviceKeystore::with_modifiers(
        store,
        &[("access-policy", "when-unlocked-this-device-only")],
    ))
}

/// Opens Android's credential store. Compiled in every `mobile` build (the crate builds on
/// Linux) so it is checked here, but called on Android only: elsewhere ndk-context has no
/// context.
#[cfg(feature = "mobile")]
#[cfg_attr(not(target_os = "android"), allow(dead_code))]
fn android_store() -> Result<std::sync::Arc<keyring_core::CredentialStore>, String> {
    let opened = std::panic::catch_unwind(android_native_keyring_store::Store::new)
        .map_err(|_| "no Android context for the keystore".to_string())?;
    let store: std::sync::Arc<keyring_core::CredentialStore> = opened.map_err(|e| e.to_string())?;
    Ok(store)
}

/// The minutes of idleness after which the app locks (the store's setting, else 5).
pub fn auto_lock_minutes(store: &Store) -> i64 {
    store
        .meta(AUTO_LOCK_MINUTES)
        .ok()
        .flatten()
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| (1..=24 * 60).contains(m))
        .unwrap_or(AUTO_LOCK_DEFAULT)
}

/// Whether an app idle since `last_active` locks at `now`.
pub fn idle_for(last_active: DateTime<Utc>, now: DateTime<Utc>, minutes: i64) -> bool {
    now - last_active >= chrono::Duration::minutes(minutes)
}

/// After an unlock (or enrolment, or recovery): makes sure the key is also sealed under a
/// recovery secret, and keeps that secret in the store until the county has it. Returns the
/// store, shared.
pub fn after_unlock(mut unlocked: Unlocked) -> Arc<Mutex<Store>> {
    seal_recovery(&mut unlocked.vault, &unlocked.key, &unlocked.store);
    Arc::new(Mutex::new(unlocked.store))
}

/// Seals the key under a new recovery secret if the vault has none, and keeps the secret in
/// the store until the county has it ([`send_recovery`]).
pub fn seal_recovery(vault: &mut Vault, key: &DbKey, store: &Store) {
    if !vault.has_recovery() {
        match vault.add_recovery(key) {
            Ok(r) => {
                if let Err(e) = store.set_meta(RECOVERY_PENDING, &r.encode()) {
                    tracing::warn!(error = %e, "could not keep the recovery secret to send");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not seal a recovery secret"),
        }
    }
}

/// Sends a recovery secret waiting in the store to the county (a no-op for a store without a
/// server or a secret waiting); forgets it once the county has it. A failure leaves it for
/// the next unlock.
pub async fn send_recovery(store: Arc<Mutex<Store>>) {
    let Some((client, secret)) = ({
        let Ok(s) = store.lock() else { return };
        let secret = s
            .meta(RECOVERY_PENDING)
            .ok()
            .flatten()
            .filter(|r| !r.is_empty());
        match (crate::client::SyncClient::from_store(&s), secret) {
            (Ok(c), Some(r)) => Some((c, r)),
            _ => None,
        }
    }) else {
        return;
    };
    match client.store_recovery(&secret).await {
        Ok(()) => {
            if let Ok(s) = store.lock() {
                let _ = s.set_meta(RECOVERY_PENDING, "");
            }
        }
        Err(e) => tracing::info!(error = %e, "the recovery secret waits for the next unlock"),
    }
}

/// Notes the unsent entries by kind in the vault (for the wipe screen while locked).
pub fn note_unsent(db: &Path, store: &Store, now: DateTime<Utc>) {
    if let Ok(Some(mut v)) = Vault::load(db)
        && let Err(e) = v.note(store, now)
    {
        tracing::warn!(error = %e, "could not note the unsent entries in the key file");
    }
}

/// Locks the app: notes what is unsent, drops the open store, back to the unlock screen.
pub fn lock_now(services: &Services, mut session: Session) {
    let store = session.store.peek().clone();
    if let (Some(db), Some(store)) = (&services.db_path, store)
        && let Ok(s) = store.lock()
    {
        note_unsent(db, &s, services.now());
    }
    session.store.set(None);
}

/// Keeps the vault's unsent counts current after every save, and locks the app after the
/// store's idle minutes without a touch (never while a patrol records its track, which runs
/// with the screen off). `last_active` is moved by every touch or click (`mousedown`, which a tap also fires), key
/// and input in the app.
/// Only an app with a store file locks (view tests handed a store do not).
pub fn use_auto_lock(
    services: &Services,
    session: Session,
    mut last_active: Signal<DateTime<Utc>>,
) {
    let s = services.clone();
    use_effect(move || {
        let _ = (session.rev)();
        let Some(db) = s.db_path.clone() else { return };
        if let Some(store) = session.store.peek().clone()
            && let Ok(st) = store.lock()
        {
            note_unsent(&db, &st, s.now());
        }
    });
    let s = services.clone();
    use_future(move || {
        let s = s.clone();
        async move {
            let mut was_open = false;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let open = session.store.peek().clone();
                if open.is_some() && !was_open {
                    // Just unlocked: idleness counts from now.
                    last_active.set(s.now());
                }
                was_open = open.is_some();
                if s.db_path.is_none() || session.patrol.peek().is_some() {
                    continue;
                }
                let Some(store) = open else {
                    continue;
                };
                let minutes = match store.lock() {
                    Ok(st) => auto_lock_minutes(&st),
                    Err(_) => continue,
                };
                if idle_for(*last_active.peek(), s.now(), minutes) {
                    lock_now(&s, session);
                }
            }
        }
    });
}

/// Removes the store at `db`, its key file and this build's device secret (清除本机数据).
pub fn wipe(db: &Path) -> std::io::Result<()> {
    vault::wipe(db, keystore())
}

/// Unlocks the store at `db` with the app's keystore (the vault's own argon2id cost).
pub fn unlock(db: &Path, pin: &str, now: DateTime<Utc>) -> Result<Unlocked, vault::VaultError> {
    vault::unlock(db, pin, now, vault::Kdf::DEFAULT, keystore())
}
