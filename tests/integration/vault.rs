//! The store's key vault on real SQLCipher files: the PIN releases a random key and nothing
//! else opens the database; a changed PIN opens the same data with the database untouched; a
//! store made with the PIN as its passphrase migrates on its first unlock; wrong PINs are
//! counted in the key file (a restart resets nothing), wait after 5 and lock out after 10.

use std::path::Path;

use chrono::{Duration, Utc};
use gridwalk::demo::seed_device;
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::*;
use gridwalk::store::vault::{
    self, Gate, Kdf, MAX_PIN_FAILURES, NoKeystore, Vault, VaultError, sidecar,
};
use gridwalk::store::{Store, StoreError};

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
