//! The store's key vault (feature `vault`): a random 256-bit database key, kept wrapped in a
//! small sidecar file beside the store (`device.db.key`), never in the clear on disk.
//!
//! - **The PIN** releases the key: a key-encryption key is derived from the PIN with argon2id
//!   ([`Kdf`], a per-device random salt), and the database key is sealed under it with
//!   ChaCha20-Poly1305. On a phone the sealed key is sealed once more under a device secret
//!   the platform's keystore keeps ([`Keystore`]; [`super::keystore::DeviceKeystore`]), so a
//!   copied file cannot even check a PIN guess off the phone. Changing the PIN rewraps the
//!   key; the database is not re-encrypted.
//! - **The recovery secret** `R` (32 random bytes) seals the same key a second time. `R` is
//!   sent to the county for this device; the county never sees the database key, and the file
//!   alone never holds `R`.
//! - **Wrong PINs** are counted in the file ([`FREE_TRIES`] free, then growing waits,
//!   [`MAX_PIN_FAILURES`] locks the vault until recovery or a wipe), so a restart resets
//!   nothing.
//! - **What would be lost**: a count of unsent outbox entries by kind ([`Vault::unsent`]), kept
//!   readable so the wipe screen can name it while the database is locked (counts only).
//!
//! The database is opened with SQLCipher's raw key form (`x'…'`), so no key derivation runs
//! inside SQLCipher. A store made before the vault (the PIN as the SQLCipher passphrase) is
//! migrated on its first unlock: the vault is written first (marked `legacy_pending`), then
//! the database is rekeyed, then the mark is cleared; a crash between leaves a store the next
//! unlock finishes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::Lang;
use crate::domain::codes::Coded;
use crate::domain::model::EntityKind;

/// Wrong PINs allowed before the first wait.
pub const FREE_TRIES: u32 = 5;
/// Wrong PINs in a row after which the PIN no longer unlocks: the worker recovers online
/// (account password) or wipes the store.
pub const MAX_PIN_FAILURES: u32 = 10;
/// The wait after the 5th, 6th, … 9th wrong PIN in a row, in seconds.
pub const DELAYS_S: [i64; 5] = [30, 60, 5 * 60, 15 * 60, 60 * 60];

const VERSION: u32 = 1;
const AAD_PIN: &[u8] = b"gridwalk-vault-1:pin";
const AAD_RECOVERY: &[u8] = b"gridwalk-vault-1:recovery";

/// argon2id's cost for deriving the PIN's key. Stored in the vault file, so a store keeps
/// the parameters it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Kdf {
    /// What the app uses: 128 MiB, 3 passes, 1 lane (about 0.35 s per try on the
    /// development machine; README "The store key and the PIN" gives the command that
    /// measures it).
    pub const DEFAULT: Kdf = Kdf {
        m_kib: 128 * 1024,
        t: 3,
        p: 1,
    };
    /// Cheap, for tests that unlock many times; never used by the app.
    pub const TEST: Kdf = Kdf {
        m_kib: 64,
        t: 1,
        p: 1,
    };
}

/// What can go wrong with the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the PIN is wrong ({failures} wrong in a row)")]
    WrongPin {
        failures: u32,
        /// Seconds to wait before the next try (0: try again now).
        wait_s: i64,
    },
    #[error("too many wrong PINs: try again in {remaining_s} s")]
    Wait { remaining_s: i64 },
    #[error("{MAX_PIN_FAILURES} wrong PINs: recover online or wipe")]
    LockedOut,
    #[error("the recovery secret does not open this vault")]
    WrongRecovery,
    #[error("the key file {0} is damaged: {1}")]
    Corrupt(String, String),
    #[error("the key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the device keystore: {0}")]
    Keystore(String),
    /// The key file's outer layer was sealed by another device's keystore (a copied file, data
    /// restored on a new phone, the app reinstalled): the PIN cannot open it here.
    #[error(
        "this key file was not sealed on this device, or the app was reinstalled ({0}): recover online with your account password"
    )]
    NotThisDevice(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::domain::labels::Explain for VaultError {
    fn explain(&self, lang: Lang) -> String {
        if lang == Lang::En {
            return match self {
                VaultError::Store(e) => e.explain(lang),
                VaultError::WrongPin { failures, wait_s } if *wait_s > 0 => format!(
                    "Wrong PIN ({failures} in a row). Try again in {}.",
                    wait_text(*wait_s, lang)
                ),
                VaultError::WrongPin { failures, .. } => {
                    let free = FREE_TRIES.saturating_sub(*failures);
                    format!("Wrong PIN ({failures} in a row). {free} more before you have to wait.")
                }
                VaultError::Wait { remaining_s } => format!(
                    "Too many wrong PINs. Try again in {}.",
                    wait_text(*remaining_s, lang)
                ),
                other => other.to_string(),
            };
        }
        match self {
            VaultError::WrongPin { failures, wait_s } if *wait_s > 0 => format!(
                "PIN 不正确（已连续错 {failures} 次），请 {}后再试；连续错 {MAX_PIN_FAILURES} 次后本机锁定",
                wait_text(*wait_s, lang)
            ),
            VaultError::WrongPin { failures, .. } => {
                let free = FREE_TRIES.saturating_sub(*failures);
                format!(
                    "PIN 不正确（已连续错 {failures} 次），请重新输入；再错 {free} 次后每次都要等待"
                )
            }
            VaultError::Wait { remaining_s } => format!(
                "PIN 错误次数过多，请 {}后再试",
                wait_text(*remaining_s, lang)
            ),
            VaultError::LockedOut => format!(
                "PIN 已连续错 {MAX_PIN_FAILURES} 次，本机已锁定：请联网用账号密码找回，或清除本机数据"
            ),
            VaultError::WrongRecovery => {
                "县里发回的找回密钥打不开本机数据：请联系县综治中心".into()
            }
            VaultError::Corrupt(_, e) => {
                format!("本机的密钥文件已损坏，无法解锁：请联系县综治中心（{e}）")
            }
            VaultError::Io(e) => {
                format!("读写本机密钥文件出错：请确认存储空间足够后再试（{e}）")
            }
            VaultError::Keystore(e) => {
                format!("手机的安全密钥库不可用，本机数据无法加密或解锁：请重启手机后再试（{e}）")
            }
            VaultError::NotThisDevice(e) => format!(
                "本机的密钥文件不是在这台设备上加密的（或应用重装过），PIN 无法解锁：请用“联网找回”，输入账号密码后设置新 PIN（{e}）"
            ),
            VaultError::Store(e) => e.explain(lang),
        }
    }
}

/// A wait as the worker reads it: "4 分 30 秒", "30 秒".
pub fn wait_text(seconds: i64, lang: Lang) -> String {
    let s = seconds.max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match lang {
        Lang::Zh => match (h, m, sec) {
            (0, 0, s) => format!("{s} 秒"),
            (0, m, 0) => format!("{m} 分钟"),
            (0, m, s) => format!("{m} 分 {s} 秒"),
            (h, m, _) => format!("{h} 小时 {m} 分"),
        },
        Lang::En => match (h, m, sec) {
            (0, 0, s) => format!("{s} s"),
            (0, m, s) => format!("{m} min {s} s"),
            (h, m, _) => format!("{h} h {m} min"),
        },
    }
}

/// Seals and opens the PIN-wrapped key once more with a key the device's hardware keeps
/// (Android Keystore, iOS Keychain). The outermost layer: without the device, a copied file
/// cannot check a PIN guess.
pub trait Keystore: Send + Sync {
    /// Written into the vault file; a vault is opened only by the keystore that sealed it.
    fn name(&self) -> &'static str;
    fn seal(&self, data: &[u8]) -> Result<Vec<u8>, VaultError>;
    /// Never makes a new device secret: a file sealed elsewhere is
    /// [`VaultError::NotThisDevice`].
    fn open(&self, data: &[u8]) -> Result<Vec<u8>, VaultError>;
    /// Deletes what the keystore keeps for this app (the wipe); nothing kept is no error.
    fn forget(&self) -> Result<(), VaultError> {
        Ok(())
    }
}

/// No hardware keystore (desktop, the browser harness, tests): the PIN's argon2id key alone.
pub struct NoKeystore;

impl Keystore for NoKeystore {
    fn name(&self) -> &'static str {
        "none"
    }
    fn seal(&self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        Ok(data.to_vec())
    }
    fn open(&self, data: &[u8]) -> Result<Vec<u8>, VaultError> {
        Ok(data.to_vec())
    }
}

/// The database key: 32 random bytes.
#[derive(Clone)]
pub struct DbKey([u8; 32]);

impl DbKey {
    fn random() -> DbKey {
        DbKey(random32())
    }
    /// SQLCipher's raw key form (`x'…'`: the key itself, no key derivation on open).
    pub fn sqlcipher(&self) -> String {
        format!("x'{}'", hex::encode_upper(self.0))
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(…)")
    }
}

/// The recovery secret: 32 random bytes, held by the county for this device.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoverySecret(pub [u8; 32]);

impl RecoverySecret {
    pub fn random() -> RecoverySecret {
        RecoverySecret(random32())
    }
    /// As it travels and is stored at the county (base64).
    pub fn encode(&self) -> String {
        B64.encode(self.0)
    }
    pub fn decode(s: &str) -> Option<RecoverySecret> {
        let v = B64.decode(s.trim()).ok()?;
        Some(RecoverySecret(v.try_into().ok()?))
    }
}

impl std::fmt::Debug for RecoverySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoverySecret(…)")
    }
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rng().fill(&mut b);
    b
}

/// Where the vault of the store at `db` lives: `<db>.key`.
pub fn sidecar(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

/// The vault file (JSON). Everything but the wrapped keys is readable without the PIN: the
/// device id, server and worker (for recovery while locked), the wrong-PIN count, and the
/// unsent entries' counts by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct VaultFile {
    version: u32,
    keystore: String,
    kdf: Kdf,
    /// base64, 16 bytes.
    salt: String,
    /// The database key sealed under the PIN's key (then by the keystore), base64 of
    /// nonce ‖ ciphertext.
    pin: String,
    /// The database key sealed under the recovery secret, base64 of nonce ‖ ciphertext.
    #[serde(default)]
    recovery: Option<String>,
    /// The database still has the PIN as its SQLCipher passphrase (a migration not finished).
    #[serde(default)]
    legacy_pending: bool,
    #[serde(default)]
    device_id: Option<Uuid>,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    worker: Option<String>,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    last_failure_at: Option<DateTime<Utc>>,
    /// Unsent outbox entries by kind code, as of `unsent_at`.
    #[serde(default)]
    unsent: BTreeMap<String, u64>,
    #[serde(default)]
    unsent_at: Option<DateTime<Utc>>,
}

/// Whether the PIN may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Yes; `failures` wrong so far.
    Open { failures: u32 },
    /// Not for `remaining_s` seconds.
    Wait { failures: u32, remaining_s: i64 },
    /// Never again: recover online or wipe.
    LockedOut,
}

/// The wait owed after `failures` wrong PINs in a row (0 while free).
pub fn delay_after(failures: u32) -> i64 {
    if failures < FREE_TRIES {
        0
    } else {
        let i = (failures - FREE_TRIES) as usize;
        DELAYS_S[i.min(DELAYS_S.len() - 1)]
    }
}

/// The vault of one store.
#[derive(Debug, Clone, PartialEq)]
pub struct Vault {
    path: PathBuf,
    file: VaultFile,
}

/// An unlocked store, its vault and the key (for adding a recovery wrap).
pub struct Unlocked {
    pub store: Store,
    pub vault: Vault,
    pub key: DbKey,
}

fn kek(pin: &str, salt: &[u8], kdf: Kdf) -> Result<[u8; 32], VaultError> {
    let params = Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
        .map_err(|e| VaultError::Corrupt("kdf".into(), e.to_string()))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pin.as_bytes(), salt, &mut out)
        .map_err(|e| VaultError::Corrupt("kdf".into(), e.to_string()))?;
    Ok(out)
}

fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = {
        let mut n = [0u8; 12];
        rand::rng().fill(&mut n);
        n
    };
    let ct = ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
        .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// `None` when the tag does not verify (the wrong key).
fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<DbKey> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let plain = ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .ok()?;
    Some(DbKey(plain.try_into().ok()?))
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, synced, renamed
/// over it, and the directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Vault {
    /// The vault of the store at `db`, if it has one.
    pub fn load(db: &Path) -> Result<Option<Vault>, VaultError> {
        let path = sidecar(db);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let file: VaultFile = serde_json::from_slice(&bytes)
            .map_err(|e| VaultError::Corrupt(path.display().to_string(), e.to_string()))?;
        if file.version > VERSION {
            return Err(VaultError::Corrupt(
                path.display().to_string(),
                format!("version {} is newer than this app", file.version),
            ));
        }
        Ok(Some(Vault { path, file }))
    }

    fn save(&self) -> Result<(), VaultError> {
        let json = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| VaultError::Corrupt(self.path.display().to_string(), e.to_string()))?;
        write_atomically(&self.path, &json)?;
        Ok(())
    }

    fn new(
        db: &Path,
        key: &DbKey,
        pin: &str,
        kdf: Kdf,
        ks: &dyn Keystore,
    ) -> Result<Vault, VaultError> {
        let mut v = Vault {
            path: sidecar(db),
            file: VaultFile {
                version: VERSION,
                keystore: ks.name().to_owned(),
                kdf,
                salt: String::new(),
                pin: String::new(),
                recovery: None,
                legacy_pending: false,
                device_id: None,
                server: None,
                worker: None,
                failures: 0,
                last_failure_at: None,
                unsent: BTreeMap::new(),
                unsent_at: None,
            },
        };
        v.wrap_pin(key, pin, ks)?;
        Ok(v)
    }

    /// Seals `key` under `pin` with a fresh salt (and the keystore's layer).
    fn wrap_pin(&mut self, key: &DbKey, pin: &str, ks: &dyn Keystore) -> Result<(), VaultError> {
        let salt: [u8; 16] = {
            let mut s = [0u8; 16];
            rand::rng().fill(&mut s);
            s
        };
        let k = kek(pin, &salt, self.file.kdf)?;
        let sealed = ks.seal(&seal(&k, AAD_PIN, &key.0))?;
        self.file.salt = B64.encode(salt);
        self.file.pin = B64.encode(sealed);
        self.file.keystore = ks.name().to_owned();
        Ok(())
    }

    fn corrupt(&self, what: &str) -> VaultError {
        VaultError::Corrupt(self.path.display().to_string(), what.to_owned())
    }

    /// The key, if `pin` is right (no counting).
    fn try_pin(&self, pin: &str, ks: &dyn Keystore) -> Result<Option<DbKey>, VaultError> {
        if self.file.keystore != ks.name() {
            return Err(VaultError::NotThisDevice(format!(
                "the key file was sealed by the keystore {:?}, this build has {:?}",
                self.file.keystore,
                ks.name()
            )));
        }
        let salt = B64
            .decode(&self.file.salt)
            .map_err(|_| self.corrupt("salt"))?;
        let sealed = B64
            .decode(&self.file.pin)
            .map_err(|_| self.corrupt("pin"))?;
        let inner = ks.open(&sealed)?;
        Ok(open(&kek(pin, &salt, self.file.kdf)?, AAD_PIN, &inner))
    }

    /// Whether the PIN may be tried at `now`.
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        let failures = self.file.failures;
        if failures >= MAX_PIN_FAILURES {
            return Gate::LockedOut;
        }
        let delay = delay_after(failures);
        let remaining = match self.file.last_failure_at {
            // A clock set back waits no longer than the delay itself.
            Some(at) if delay > 0 => ((at - now).num_seconds() + delay).clamp(0, delay),
            _ => 0,
        };
        if remaining > 0 {
            Gate::Wait {
                failures,
                remaining_s: remaining,
            }
        } else {
            Gate::Open { failures }
        }
    }

    pub fn failures(&self) -> u32 {
        self.file.failures
    }
    pub fn kdf(&self) -> Kdf {
        self.file.kdf
    }
    pub fn device_id(&self) -> Option<Uuid> {
        self.file.device_id
    }
    pub fn server(&self) -> Option<&str> {
        self.file.server.as_deref()
    }
    pub fn worker(&self) -> Option<&str> {
        self.file.worker.as_deref()
    }
    /// Whether the key is also sealed under a recovery secret.
    pub fn has_recovery(&self) -> bool {
        self.file.recovery.is_some()
    }
    /// Unsent outbox entries by kind, as last noted (counts only).
    pub fn unsent(&self) -> Vec<(EntityKind, u64)> {
        self.file
            .unsent
            .iter()
            .filter_map(|(k, n)| Some((EntityKind::from_code(k).ok()?, *n)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
    pub fn unsent_at(&self) -> Option<DateTime<Utc>> {
        self.file.unsent_at
    }

    /// Notes the store's unsent entries by kind and who the device is (written only when
    /// something changed).
    pub fn note(&mut self, store: &Store, now: DateTime<Utc>) -> Result<(), VaultError> {
        let unsent = store.unsent_by_kind()?;
        let server = store.meta(super::remote::SERVER_URL)?;
        let worker = Some(store.worker().to_owned()).filter(|w| !w.is_empty());
        let device = Some(store.device_id());
        if unsent == self.file.unsent
            && server == self.file.server
            && worker == self.file.worker
            && device == self.file.device_id
            && self.file.unsent_at.is_some()
        {
            return Ok(());
        }
        self.file.unsent = unsent;
        self.file.unsent_at = Some(now);
        self.file.server = server;
        self.file.worker = worker;
        self.file.device_id = device;
        self.save()
    }

    /// Seals `key` under a new recovery secret, saves, and returns the secret (to be sent to
    /// the county).
    pub fn add_recovery(&mut self, key: &DbKey) -> Result<RecoverySecret, VaultError> {
        let r = RecoverySecret::random();
        self.file.recovery = Some(B64.encode(seal(&r.0, AAD_RECOVERY, &key.0)));
        self.save()?;
        Ok(r)
    }

    /// Rewraps the key under `new` if `old` is right (the database is not touched). A wrong
    /// `old` counts as a wrong PIN.
    pub fn change_pin(
        &mut self,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
        ks: &dyn Keystore,
    ) -> Result<(), VaultError> {
        let key = self.check_pin(old, now, ks)?;
        self.wrap_pin(&key, new, ks)?;
        self.save()
    }

    /// The key, counting a wrong PIN (and refusing while a wait runs or after the last try).
    fn check_pin(
        &mut self,
        pin: &str,
        now: DateTime<Utc>,
        ks: &dyn Keystore,
    ) -> Result<DbKey, VaultError> {
        match self.gate(now) {
            Gate::LockedOut => return Err(VaultError::LockedOut),
            Gate::Wait { remaining_s, .. } => return Err(VaultError::Wait { remaining_s }),
            Gate::Open { .. } => {}
        }
        match self.try_pin(pin, ks)? {
            Some(key) => {
                if self.file.failures > 0 {
                    self.file.failures = 0;
                    self.file.last_failure_at = None;
                    self.save()?;
                }
                Ok(key)
            }
            None => {
                self.file.failures += 1;
                self.file.last_failure_at = Some(now);
                self.save()?;
                if self.file.failures >= MAX_PIN_FAILURES {
                    return Err(VaultError::LockedOut);
                }
                Err(VaultError::WrongPin {
                    failures: self.file.failures,
                    wait_s: delay_after(self.file.failures),
                })
            }
        }
    }
}

/// Makes a new encrypted store at `db` with a random key and its vault, released by `pin`.
/// Refuses to overwrite a store or vault that exists.
pub fn create(db: &Path, pin: &str, kdf: Kdf, ks: &dyn Keystore) -> Result<Unlocked, VaultError> {
    if db.exists() || sidecar(db).exists() {
        return Err(VaultError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", db.display()),
        )));
    }
    let key = DbKey::random();
    let vault = Vault::new(db, &key, pin, kdf, ks)?;
    // The vault first: a store without its vault could never be opened.
    vault.save()?;
    let store = Store::open_encrypted(db, &key.sqlcipher())?;
    let mut unlocked = Unlocked { store, vault, key };
    unlocked.vault.note(&unlocked.store, Utc::now())?;
    Ok(unlocked)
}

/// Unlocks the store at `db` with `pin` at `now`: through its vault, counting a wrong PIN;
/// or, for a store made before the vault (the PIN as its passphrase), by migrating it to a
/// random key and a new vault (the vault made with `kdf`).
pub fn unlock(
    db: &Path,
    pin: &str,
    now: DateTime<Utc>,
    kdf: Kdf,
    ks: &dyn Keystore,
) -> Result<Unlocked, VaultError> {
    let Some(mut vault) = Vault::load(db)? else {
        return migrate_legacy(db, pin, kdf, ks);
    };
    let key = vault.check_pin(pin, now, ks)?;
    let store = if vault.file.legacy_pending {
        finish_legacy(db, pin, &key, &mut vault)?
    } else {
        Store::open_encrypted(db, &key.sqlcipher())?
    };
    vault.note(&store, now)?;
    Ok(Unlocked { store, vault, key })
}

/// Opens the store with the key a recovery secret releases, sets `new_pin` (fresh salt) and
/// clears the wrong-PIN count. The keystore's layer is not needed to open (R seals the key
/// directly), so this works where the PIN cannot: another phone, the app reinstalled; the new
/// PIN is sealed under `ks`, this phone's.
pub fn recover(
    db: &Path,
    secret: &RecoverySecret,
    new_pin: &str,
    now: DateTime<Utc>,
    ks: &dyn Keystore,
) -> Result<Unlocked, VaultError> {
    let mut vault = Vault::load(db)?.ok_or(VaultError::WrongRecovery)?;
    let sealed = vault
        .file
        .recovery
        .as_deref()
        .ok_or(VaultError::WrongRecovery)?;
    let sealed = B64.decode(sealed).map_err(|_| vault.corrupt("recovery"))?;
    let key = open(&secret.0, AAD_RECOVERY, &sealed).ok_or(VaultError::WrongRecovery)?;
    let store = Store::open_encrypted(db, &key.sqlcipher())?;
    vault.wrap_pin(&key, new_pin, ks)?;
    vault.file.failures = 0;
    vault.file.last_failure_at = None;
    vault.save()?;
    vault.note(&store, now)?;
    Ok(Unlocked { store, vault, key })
}

fn migrate_legacy(
    db: &Path,
    pin: &str,
    kdf: Kdf,
    ks: &dyn Keystore,
) -> Result<Unlocked, VaultError> {
    // A wrong PIN here is not counted: there is no vault yet to count it in.
    let store = Store::open_encrypted(db, pin)?;
    drop(store);
    let key = DbKey::random();
    let mut vault = Vault::new(db, &key, pin, kdf, ks)?;
    vault.file.legacy_pending = true;
    vault.save()?;
    let store = finish_legacy(db, pin, &key, &mut vault)?;
    vault.note(&store, Utc::now())?;
    Ok(Unlocked { store, vault, key })
}

/// Rekeys a store still keyed by the PIN to `key`, then clears the vault's mark. Idempotent:
/// a store already rekeyed (a crash after the rekey) opens with `key`.
fn finish_legacy(
    db: &Path,
    pin: &str,
    key: &DbKey,
    vault: &mut Vault,
) -> Result<Store, VaultError> {
    match Store::open_encrypted(db, &key.sqlcipher()) {
        Ok(store) => {
            vault.file.legacy_pending = false;
            vault.save()?;
            return Ok(store);
        }
        Err(StoreError::WrongKey) => {}
        Err(e) => return Err(e.into()),
    }
    let store = Store::open_encrypted(db, pin)?;
    store.rekey(&key.sqlcipher())?;
    drop(store);
    let store = Store::open_encrypted(db, &key.sqlcipher())?;
    vault.file.legacy_pending = false;
    vault.save()?;
    Ok(store)
}

/// Removes the store at `db`, its WAL companions and its vault, then (best effort: the files
/// are gone either way) what `ks` keeps for this app, the phone's device secret.
pub fn wipe(db: &Path, ks: &dyn Keystore) -> std::io::Result<()> {
    let mut paths = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        paths.push(PathBuf::from(p));
    }
    paths.push(sidecar(db));
    for p in paths {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if let Err(e) = ks.forget() {
        tracing::warn!(error = %e, "could not delete the device secret from the keystore");
    }
    Ok(())
}

/// Opens the store at `db` with `pin` for tools and tests: creates it (and its vault, at
/// [`Kdf::DEFAULT`]) when missing, else unlocks it (migrating a store made before the vault).
pub fn open_with_pin(db: impl AsRef<Path>, pin: &str) -> Result<Store, VaultError> {
    let db = db.as_ref();
    if db.exists() {
        Ok(unlock(db, pin, Utc::now(), Kdf::DEFAULT, &NoKeystore)?.store)
    } else {
        Ok(create(db, pin, Kdf::DEFAULT, &NoKeystore)?.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one PIN guess costs with [`Kdf::DEFAULT`] on this machine, and so 10^6 of them
    /// (every 6-digit PIN) on one core: `cargo test --no-default-features --features vault --lib pin_cost --
    /// --ignored --nocapture` (argon2 is optimised in the dev profile too).
    #[test]
    #[ignore]
    fn pin_cost() {
        let salt = [7u8; 16];
        let n = 10;
        let start = std::time::Instant::now();
        for i in 0..n {
            kek(&format!("{i:06}"), &salt, Kdf::DEFAULT).unwrap();
        }
        let per = start.elapsed().as_secs_f64() / n as f64;
        println!(
            "argon2id m={} KiB t={} p={}: {:.0} ms per PIN guess; 10^6 guesses on one core: {:.1} days",
            Kdf::DEFAULT.m_kib,
            Kdf::DEFAULT.t,
            Kdf::DEFAULT.p,
            per * 1e3,
            per * 1e6 / 86_400.0
        );
    }

    #[test]
    fn delays_grow_after_five_free_tries() {
        let d: Vec<i64> = (0..=10).map(delay_after).collect();
        assert_eq!(d, [0, 0, 0, 0, 0, 30, 60, 300, 900, 3600, 3600]);
        assert_eq!(wait_text(270, Lang::Zh), "4 分 30 秒");
        assert_eq!(wait_text(30, Lang::Zh), "30 秒");
        assert_eq!(wait_text(900, Lang::Zh), "15 分钟");
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_and_label() {
        let k = [7u8; 32];
        let key = DbKey::random();
        let sealed = seal(&k, AAD_PIN, &key.0);
        assert_eq!(open(&k, AAD_PIN, &sealed).unwrap().0, key.0);
        assert!(open(&[8u8; 32], AAD_PIN, &sealed).is_none());
        assert!(open(&k, AAD_RECOVERY, &sealed).is_none());
        assert!(key.sqlcipher().starts_with("x'") && key.sqlcipher().len() == 67);
    }
}
