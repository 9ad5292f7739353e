//! The store's key vault on real SQLCipher files: the PIN releases a random key and nothing
//! else opens the database; a changed PIN opens the same data with the database untouched; a
//! store made with the PIN as its passphrase migrates on its first unlock; wrong PINs are
//! counted in the key file (a restart resets nothing), wait after 5 and lock out after 10.
//! With a phone's keystore layer (`DeviceKeystore` over keyring's in-memory sample store, one
//! per phone) a copied key file opens on no other phone, and recovery moves it to one.

use std::path::Path;

use chrono::{Duration, Utc};
use gridwalk::demo::seed_device;
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::labels::Explain;
use gridwalk::domain::model::*;
use gridwalk::store::keystore::{self, DeviceKeystore};
use gridwalk::store::vault::{
    self, Gate, Kdf, Keystore, MAX_PIN_FAILURES, NoKeystore, Vault, VaultError, sidecar,
};
use gridwalk::store::{Store, StoreError};
use keyring_core::CredentialStore;

use crate::util::{now, small_county};

pub fn hazard(grid: uuid::Uuid) -> Hazard {
    let mut c = Common::new(Domain::Hazard, grid, "worker-a", Utc::now());
    c.location = Some(GeoPoint::new(116.40, 28.05, Some(8.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::Water,
        severity: Severity::High,
        description: "村头池塘无护栏，暑期有儿童玩水".into(),
        place: "村头池塘".into(),
        owner: None,
        due_date: None,
    }
}

/// A vaulted store at `db` (cheap argon2id for tests) with worker-a's grid and `hazards`
/// unsent hazards; returns the number of households.
pub fn vaulted_store(db: &Path, pin: &str, hazards: usize) -> usize {
    let mut u = vault::create(db, pin, Kdf::TEST, &NoKeystore).unwrap();
    seed_device(&mut u.store, &small_county(), &[0], "worker-a").unwrap();
    let grid = u.store.grids().unwrap()[0].id;
    for _ in 0..hazards {
        u.store.create_record(&hazard(grid), Utc::now()).unwrap();
    }
    u.vault.note(&u.store, now()).unwrap();
    households(&u.store)
}

fn households(s: &Store) -> usize {
    s.conn()
        .query_row("SELECT count(*) FROM households", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
}

fn unlock(db: &Path, pin: &str, at: chrono::DateTime<Utc>) -> Result<Store, VaultError> {
    vault::unlock(db, pin, at, Kdf::TEST, &NoKeystore).map(|u| u.store)
}

#[test]
fn the_pin_releases_a_random_key_and_nothing_else_opens_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let n = vaulted_store(&db, "123456", 0);
    assert!(n > 0);
    let raw = std::fs::read(&db).unwrap();
    assert!(!raw.starts_with(b"SQLite format 3"), "encrypted at rest");
    let key_file = std::fs::read_to_string(sidecar(&db)).unwrap();
    assert!(
        !key_file.contains("123456"),
        "the PIN is not in the key file"
    );

    // A wrong PIN never opens it, nor does the PIN as a passphrase, nor no key.
    match unlock(&db, "654321", now()) {
        Err(VaultError::WrongPin {
            failures: 1,
            wait_s: 0,
        }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a wrong PIN opened the store"),
    }
    assert!(matches!(
        Store::open_encrypted(&db, "123456"),
        Err(StoreError::WrongKey)
    ));
    assert!(Store::open(&db).is_err());

    let s = unlock(&db, "123456", now()).unwrap();
    assert_eq!(households(&s), n);
    assert_eq!(s.worker(), "worker-a");
    drop(s);
    assert_eq!(
        Vault::load(&db).unwrap().unwrap().failures(),
        0,
        "a right PIN clears the count"
    );
}

#[test]
fn a_changed_pin_opens_the_same_data_without_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let n = vaulted_store(&db, "123456", 2);
    let before = std::fs::read(&db).unwrap();
    let mut v = Vault::load(&db).unwrap().unwrap();
    // A wrong old PIN changes nothing (and counts).
    assert!(matches!(
        v.change_pin("111111", "246810", now(), &NoKeystore),
        Err(VaultError::WrongPin { failures: 1, .. })
    ));
    v.change_pin("123456", "246810", now(), &NoKeystore)
        .unwrap();
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database was not re-encrypted"
    );
    assert!(matches!(
        unlock(&db, "123456", now()),
        Err(VaultError::WrongPin { .. })
    ));
    let s = unlock(&db, "246810", now()).unwrap();
    assert_eq!(households(&s), n);
    assert_eq!(s.outbox_len().unwrap(), 2);
}

#[test]
fn a_store_made_with_the_pin_as_its_passphrase_migrates_on_its_first_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let n = {
        // As the app made stores before the vault.
        let mut s = Store::open_encrypted(&db, "123456").unwrap();
        seed_device(&mut s, &small_county(), &[0], "worker-a").unwrap();
        let grid = s.grids().unwrap()[0].id;
        s.create_record(&hazard(grid), Utc::now()).unwrap();
        households(&s)
    };
    assert!(!sidecar(&db).exists());
    // A wrong PIN opens nothing and writes no vault.
    assert!(matches!(
        unlock(&db, "999999", now()),
        Err(VaultError::Store(StoreError::WrongKey))
    ));
    assert!(!sidecar(&db).exists());

    let s = unlock(&db, "123456", now()).unwrap();
    assert_eq!(households(&s), n);
    assert_eq!(s.outbox_len().unwrap(), 1);
    drop(s);
    let v = Vault::load(&db).unwrap().expect("the vault was written");
    assert_eq!(v.kdf(), Kdf::TEST);
    assert_eq!(
        v.unsent(),
        vec![(EntityKind::Hazard, 1)],
        "the unsent entries were noted"
    );
    // The database now has the random key: the PIN alone no longer opens it.
    assert!(matches!(
        Store::open_encrypted(&db, "123456"),
        Err(StoreError::WrongKey)
    ));
    let s = unlock(&db, "123456", now()).unwrap();
    assert_eq!(households(&s), n);
}

#[test]
fn wrong_pins_wait_after_five_and_lock_out_after_ten_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    vaulted_store(&db, "123456", 0);
    let t0 = now();
    for i in 1..=4 {
        assert!(matches!(
            unlock(&db, "000000", t0),
            Err(VaultError::WrongPin { failures, wait_s: 0 }) if failures == i
        ));
    }
    assert!(matches!(
        unlock(&db, "000000", t0),
        Err(VaultError::WrongPin {
            failures: 5,
            wait_s: 30
        })
    ));
    // A restart: the count and the wait are read back from the key file.
    let v = Vault::load(&db).unwrap().unwrap();
    assert_eq!(
        v.gate(t0 + Duration::seconds(10)),
        Gate::Wait {
            failures: 5,
            remaining_s: 20
        }
    );
    // Even the right PIN waits.
    assert!(matches!(
        unlock(&db, "123456", t0 + Duration::seconds(10)),
        Err(VaultError::Wait { remaining_s: 20 })
    ));
    // The waits grow: 30 s, 1 min, 5 min, 15 min, 1 h.
    let mut t = t0;
    for (failures, wait) in [(6, 60), (7, 300), (8, 900), (9, 3600)] {
        t += Duration::seconds(vault::delay_after(failures - 1) + 1);
        match unlock(&db, "000000", t) {
            Err(VaultError::WrongPin {
                failures: f,
                wait_s,
            }) => {
                assert_eq!((f, wait_s), (failures, wait));
            }
            other => panic!("try {failures}: {:?}", other.map(|_| ())),
        }
    }
    t += Duration::seconds(3601);
    assert!(matches!(
        unlock(&db, "000000", t),
        Err(VaultError::LockedOut)
    ));
    assert_eq!(
        Vault::load(&db).unwrap().unwrap().failures(),
        MAX_PIN_FAILURES
    );
    // Locked out for good: the right PIN, a day later, after a restart.
    assert!(matches!(
        unlock(&db, "123456", t + Duration::days(1)),
        Err(VaultError::LockedOut)
    ));
    assert_eq!(
        Vault::load(&db)
            .unwrap()
            .unwrap()
            .gate(t + Duration::days(1)),
        Gate::LockedOut
    );
}

#[test]
fn a_recovery_secret_opens_the_store_and_sets_a_new_pin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let n = vaulted_store(&db, "123456", 1);
    let secret = {
        let mut u = vault::unlock(&db, "123456", now(), Kdf::TEST, &NoKeystore).unwrap();
        u.vault.add_recovery(&u.key).unwrap()
    };
    for i in 0..MAX_PIN_FAILURES {
        // Two hours apart: every wait has run out.
        let _ = unlock(&db, "000000", now() + Duration::hours(2 * i as i64));
    }
    assert!(matches!(
        unlock(&db, "123456", now() + Duration::days(2)),
        Err(VaultError::LockedOut)
    ));
    assert!(matches!(
        vault::recover(
            &db,
            &vault::RecoverySecret::random(),
            "777777",
            now(),
            &NoKeystore
        ),
        Err(VaultError::WrongRecovery)
    ));
    let s = vault::recover(&db, &secret, "777777", now(), &NoKeystore)
        .unwrap()
        .store;
    assert_eq!(households(&s), n);
    drop(s);
    let s = unlock(&db, "777777", now() + Duration::days(3)).unwrap();
    assert_eq!(s.outbox_len().unwrap(), 1);
}

/// A phone's credential store (in memory) and the vault's layer over it.
fn phone() -> (std::sync::Arc<CredentialStore>, DeviceKeystore) {
    let store: std::sync::Arc<CredentialStore> = keyring_core::sample::Store::new().unwrap();
    (store.clone(), DeviceKeystore::new(store))
}

/// Whether the phone's store holds the device secret.
fn has_secret(store: &std::sync::Arc<CredentialStore>) -> bool {
    match keyring_core::Entry::new_in_store(store, keystore::SERVICE, keystore::USER)
        .unwrap()
        .get_secret()
    {
        Ok(_) => true,
        Err(keyring_core::Error::NoEntry) => false,
        Err(e) => panic!("{e}"),
    }
}

/// `db` and its key file copied into `to` (what someone with the phone's files has).
fn copy_store(db: &Path, to: &Path) -> std::path::PathBuf {
    let copy = to.join("device.db");
    std::fs::copy(db, &copy).unwrap();
    std::fs::copy(sidecar(db), sidecar(&copy)).unwrap();
    copy
}

#[test]
fn a_key_file_sealed_by_a_phones_keystore_opens_on_no_other_phone_until_recovered() {
    let (store1, phone1) = phone();
    let (store2, phone2) = phone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let (n, secret) = {
        let mut u = vault::create(&db, "123456", Kdf::TEST, &phone1).unwrap();
        seed_device(&mut u.store, &small_county(), &[0], "worker-a").unwrap();
        let grid = u.store.grids().unwrap()[0].id;
        u.store.create_record(&hazard(grid), Utc::now()).unwrap();
        (households(&u.store), u.vault.add_recovery(&u.key).unwrap())
    };
    assert!(has_secret(&store1) && !has_secret(&store2));
    let key_file = std::fs::read_to_string(sidecar(&db)).unwrap();
    assert!(key_file.contains("\"keystore\": \"device\""), "{key_file}");
    let s = vault::unlock(&db, "123456", now(), Kdf::TEST, &phone1)
        .unwrap()
        .store;
    assert_eq!(households(&s), n);
    drop(s);

    // Another phone with a copy: the right PIN and a wrong one meet the same refusal, so no
    // guess can be checked, and none is counted.
    let other = tempfile::tempdir().unwrap();
    let copy = copy_store(&db, other.path());
    for pin in ["123456", "000000"] {
        match vault::unlock(&copy, pin, now(), Kdf::TEST, &phone2) {
            Err(e @ VaultError::NotThisDevice(_)) => {
                let zh = e.explain(Lang::Zh);
                assert!(
                    zh.starts_with("本机的密钥文件不是在这台设备上加密的（或应用重装过）")
                        && zh.contains("联网找回"),
                    "{zh}"
                );
            }
            Err(e) => panic!("{pin}: {e}"),
            Ok(_) => panic!("{pin} opened a copy on another phone"),
        }
    }
    assert!(!has_secret(&store2), "an open never makes a device secret");
    assert_eq!(Vault::load(&copy).unwrap().unwrap().failures(), 0);
    // Nor without a keystore (desktop): the key file names the one that sealed it.
    assert!(matches!(
        vault::unlock(&copy, "123456", now(), Kdf::TEST, &NoKeystore),
        Err(VaultError::NotThisDevice(_))
    ));
    // Nor by changing the PIN there.
    let mut v = Vault::load(&copy).unwrap().unwrap();
    assert!(matches!(
        v.change_pin("123456", "246810", now(), &phone2),
        Err(VaultError::NotThisDevice(_))
    ));

    // On its own phone the PIN still counts wrong ones, and changes.
    assert!(matches!(
        vault::unlock(&db, "000000", now(), Kdf::TEST, &phone1),
        Err(VaultError::WrongPin { failures: 1, .. })
    ));
    let mut v = Vault::load(&db).unwrap().unwrap();
    v.change_pin("123456", "246810", now(), &phone1).unwrap();
    assert!(matches!(
        vault::unlock(&db, "123456", now(), Kdf::TEST, &phone1),
        Err(VaultError::WrongPin { .. })
    ));
    let s = vault::unlock(&db, "246810", now(), Kdf::TEST, &phone1)
        .unwrap()
        .store;
    assert_eq!(households(&s), n);
    drop(s);

    // Recovery with the county's R moves the copy to the other phone: the new PIN is sealed
    // under a new device secret there, which the first phone's does not open.
    let s = vault::recover(&copy, &secret, "777777", now(), &phone2)
        .unwrap()
        .store;
    assert_eq!(households(&s), n);
    assert_eq!(s.outbox_len().unwrap(), 1);
    drop(s);
    assert!(has_secret(&store2));
    let s = vault::unlock(&copy, "777777", now(), Kdf::TEST, &phone2)
        .unwrap()
        .store;
    assert_eq!(households(&s), n);
    drop(s);
    assert!(matches!(
        vault::unlock(&copy, "777777", now(), Kdf::TEST, &phone1),
        Err(VaultError::NotThisDevice(_))
    ));

    // The wipe removes the files and the phone's device secret.
    vault::wipe(&copy, &phone2).unwrap();
    assert!(!copy.exists() && !sidecar(&copy).exists());
    assert!(!has_secret(&store2));
    assert!(has_secret(&store1), "the other phone's is its own");
}

#[test]
fn after_a_reinstall_the_pin_cannot_open_the_key_file_and_recovery_does() {
    let (store1, phone1) = phone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let secret = {
        let mut u = vault::create(&db, "123456", Kdf::TEST, &phone1).unwrap();
        u.vault.add_recovery(&u.key).unwrap()
    };
    // A reinstall (or data restored on a new phone) keeps the files, not the device secret.
    phone1.forget().unwrap();
    assert!(!has_secret(&store1));
    assert!(matches!(
        vault::unlock(&db, "123456", now(), Kdf::TEST, &phone1),
        Err(VaultError::NotThisDevice(_))
    ));
    assert!(!has_secret(&store1));
    vault::recover(&db, &secret, "654321", now(), &phone1).unwrap();
    assert!(has_secret(&store1));
    vault::unlock(&db, "654321", now(), Kdf::TEST, &phone1).unwrap();
}
