//! The PIN that guards, as the worker meets it (dioxus-ssr, a fake clock, real SQLCipher files
//! with their key file): the wait after wrong PINs shown with the time left and kept across a
//! restart; after 10 wrong PINs the choice of recovering online or wiping, the wipe naming the
//! unsent entries first; auto-lock after the idle minutes; changing the PIN with its errors
//! beside each field. And recovery end to end against a real county server.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use dioxus::dioxus_core::{ElementId, Mutation};
use dioxus::html::{
    PlatformEventData, SerializedFormData, SerializedHtmlEventConverter, SerializedMouseData,
};
use dioxus::prelude::*;
use gridwalk::app::lock;
use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::{App, AppProps, Route, Services};
use gridwalk::domain::codes::Lang;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::store::Store;
use gridwalk::store::vault::{self, Kdf, MAX_PIN_FAILURES, NoKeystore, Vault, VaultError};

use crate::util::now;
use crate::vault::vaulted_store;

/// A clock the test moves.
#[derive(Clone)]
struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    fn new() -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(0)))
    }
    fn now(&self) -> DateTime<Utc> {
        now() + Duration::seconds(self.0.load(Ordering::SeqCst))
    }
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.num_seconds(), Ordering::SeqCst);
    }
}

fn services(db: &Path, store: Option<Arc<Mutex<Store>>>, clock: &FakeClock) -> Services {
    let c = clock.clone();
    Services {
        db_path: Some(db.to_path_buf()),
        store,
        location: Arc::new(FixedLocation::new(
            GeoPoint::new(116.4, 28.05, Some(5.0)).unwrap(),
            0.0,
        )),
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(move || c.now()),
        fix_interval_ms: 60_000,
        start: Some(Route::Today {}),
        lang: Lang::Zh,
        autosync: None,
    }
}

/// The app in a virtual DOM, tapped and typed into as the worker does.
struct Screen {
    d: VirtualDom,
    edits: Vec<Mutation>,
    rt: tokio::runtime::Runtime,
}

impl Screen {
    fn open(services: Services) -> Screen {
        dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut d = {
            let _g = rt.enter();
            VirtualDom::new_with_props(App, AppProps { services })
        };
        let edits = {
            let _g = rt.enter();
            d.rebuild_to_vec().edits
        };
        Screen { d, edits, rt }
    }

    fn find(&self, name: &str, value: &str) -> Option<ElementId> {
        self.edits.iter().rev().find_map(|m| match m {
            Mutation::SetAttribute {
                name: n,
                value: v,
                id,
                ..
            } if *n == name
                && matches!(v, dioxus::dioxus_core::AttributeValue::Text(t) if t == value) =>
            {
                Some(*id)
            }
            _ => None,
        })
    }

    fn id_of(&self, id: &str) -> ElementId {
        self.find("data-act", id)
            .or_else(|| self.find("id", id))
            .unwrap_or_else(|| panic!("no #{id} on the screen:\n{}", self.html()))
    }

    fn fire(&mut self, name: &str, data: PlatformEventData, id: ElementId) {
        let _g = self.rt.enter();
        let event = Event::new(Rc::new(data) as Rc<dyn Any>, true);
        self.d.runtime().handle_event(name, event, id);
        let more = self.d.render_immediate_to_vec().edits;
        self.edits.extend(more);
    }

    fn tap(&mut self, id: &str) {
        let el = self.id_of(id);
        self.fire(
            "click",
            PlatformEventData::new(Box::<SerializedMouseData>::default()),
            el,
        );
    }

    /// A finger on `id` (what the app counts as use).
    fn touch(&mut self, id: &str) {
        let el = self.id_of(id);
        self.fire(
            "mousedown",
            PlatformEventData::new(Box::<SerializedMouseData>::default()),
            el,
        );
    }

    fn type_into(&mut self, id: &str, text: &str) {
        let el = self.id_of(id);
        self.fire(
            "input",
            PlatformEventData::new(Box::new(SerializedFormData::new(text.into(), vec![]))),
            el,
        );
    }

    /// Lets the app's tasks run for `ms` of real time.
    fn run_for(&mut self, ms: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            self.rt.block_on(async {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(50),
                    self.d.wait_for_work(),
                )
                .await;
            });
            let more = self.d.render_immediate_to_vec().edits;
            self.edits.extend(more);
        }
    }

    fn html(&self) -> String {
        dioxus_ssr::render(&self.d)
    }
}

fn store_at(dir: &Path, hazards: usize) -> PathBuf {
    let db = dir.join("device.db");
    vaulted_store(&db, "123456", hazards);
    db
}

fn wrong_pins(db: &Path, n: u32, clock: &FakeClock) {
    for _ in 0..n {
        let _ = vault::unlock(db, "000000", clock.now(), Kdf::TEST, &NoKeystore);
        // Every wait runs out before the next try.
        clock.advance(Duration::hours(2));
    }
}

#[test]
fn app_lock_the_wait_after_wrong_pins_shows_the_time_left_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_at(dir.path(), 0);
    let clock = FakeClock::new();
    let mut s = Screen::open(services(&db, None, &clock));
    for i in 1..=4 {
        s.type_into("pin", "000000");
        s.tap("unlock");
        let html = s.html();
        assert!(
            html.contains(&format!("PIN 不正确（已连续错 {i} 次）")),
            "{html}"
        );
    }
    s.type_into("pin", "000000");
    s.tap("unlock");
    let html = s.html();
    assert!(html.contains("请 30 秒后再试"), "{html}");

    // A restart (a new app on the same files), 10 s later: 20 s left, the PIN field off.
    clock.advance(Duration::seconds(10));
    let mut s = Screen::open(services(&db, None, &clock));
    let html = s.html();
    assert!(html.contains("PIN 已连续错 5 次，请 20 秒后再试"), "{html}");
    assert!(html.contains("id=\"pin-wait\""));
    // The right PIN typed meanwhile does not open it.
    assert!(matches!(
        lock::unlock(&db, "123456", clock.now()),
        Err(VaultError::Wait { remaining_s: 20 })
    ));
    // The screen counts down by itself, then lets the PIN be tried.
    clock.advance(Duration::seconds(21));
    s.run_for(1300);
    let html = s.html();
    assert!(!html.contains("pin-wait"), "{html}");
    s.type_into("pin", "123456");
    s.tap("unlock");
    assert!(s.html().contains("今日工作"), "{}", s.html());
}

#[test]
fn app_lock_after_ten_wrong_pins_the_wipe_names_the_unsent_entries_then_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_at(dir.path(), 2);
    let clock = FakeClock::new();
    wrong_pins(&db, MAX_PIN_FAILURES, &clock);
    let mut s = Screen::open(services(&db, None, &clock));
    let html = s.html();
    assert!(html.contains("本机已锁定"), "{html}");
    assert!(html.contains("联网找回（用账号密码）") && html.contains("清除本机数据"));
    assert!(
        !html.contains("id=\"pin\""),
        "the PIN is not offered any more"
    );

    s.tap("choose-wipe");
    let html = s.html();
    assert!(
        html.contains("本机还有以下内容没有上传到县里，清除后将永久丢失"),
        "{html}"
    );
    assert!(html.contains("安全隐患 2 条"), "{html}");
    assert!(db.exists(), "nothing removed before the confirm");
    s.tap("wipe");
    assert!(db.exists(), "nothing removed before the second tap");
    s.tap("wipe-confirm");
    assert!(
        !db.exists() && !vault::sidecar(&db).exists(),
        "store and key file removed"
    );
    assert!(s.html().contains("首次登记"), "{}", s.html());
}

#[test]
fn app_lock_a_key_file_sealed_on_another_phone_offers_recovery_or_the_wipe() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    // Sealed by a phone's keystore; this build (desktop) has none, as another phone has
    // another secret.
    let phone =
        gridwalk::store::keystore::DeviceKeystore::new(keyring_core::sample::Store::new().unwrap());
    drop(vault::create(&db, "123456", Kdf::TEST, &phone).unwrap());
    let clock = FakeClock::new();
    let mut s = Screen::open(services(&db, None, &clock));
    s.type_into("pin", "123456");
    s.tap("unlock");
    let html = s.html();
    assert!(
        html.contains("本机的密钥文件不是在这台设备上加密的（或应用重装过）"),
        "{html}"
    );
    assert!(html.contains("id=\"not-this-device\""), "{html}");
    assert!(html.contains("联网找回（用账号密码）") && html.contains("清除本机数据"));
    assert!(!html.contains("id=\"pin\""), "no PIN to try again");
    assert_eq!(
        Vault::load(&db).unwrap().unwrap().failures(),
        0,
        "not counted"
    );
    s.tap("choose-recover");
    assert!(s.html().contains("找回并设置新 PIN"), "{}", s.html());
}

#[test]
fn app_lock_the_app_locks_itself_after_the_idle_minutes_and_a_draft_survives() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_at(dir.path(), 0);
    let clock = FakeClock::new();
    let store = lock::unlock(&db, "123456", clock.now()).unwrap().store;
    store.set_meta(lock::AUTO_LOCK_MINUTES, "2").unwrap();
    let store = Arc::new(Mutex::new(store));
    gridwalk::app::drafts::save(
        &store.lock().unwrap(),
        "hazard",
        &serde_json::json!({"description": "桥栏杆松动"}),
    )
    .unwrap();
    let mut s = Screen::open(services(&db, Some(store), &clock));
    s.run_for(700);
    assert!(s.html().contains("今日工作"));
    // A touch a minute in keeps it open.
    clock.advance(Duration::seconds(90));
    s.run_for(700);
    assert!(s.html().contains("今日工作"), "not yet: 1.5 of 2 minutes");
    s.touch("tab-records");
    clock.advance(Duration::seconds(90));
    s.run_for(700);
    assert!(!s.html().contains("id=\"pin\""), "the tap counted as use");
    clock.advance(Duration::seconds(31));
    s.run_for(1200);
    let html = s.html();
    assert!(
        html.contains("id=\"pin\"") && html.contains("输入 PIN 解锁"),
        "{html}"
    );
    // Unlocked again, the draft is there.
    s.type_into("pin", "123456");
    s.tap("unlock");
    let again = lock::unlock(&db, "123456", clock.now()).unwrap().store;
    let draft: Option<serde_json::Value> = gridwalk::app::drafts::load(&again, "hazard").unwrap();
    assert_eq!(draft.unwrap()["description"], "桥栏杆松动");
}

#[test]
fn app_lock_changing_the_pin_says_what_is_wrong_beside_each_field_and_rewraps() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_at(dir.path(), 1);
    let clock = FakeClock::new();
    let store = lock::unlock(&db, "123456", clock.now()).unwrap().store;
    let store = Arc::new(Mutex::new(store));
    let mut sv = services(&db, Some(store), &clock);
    sv.start = Some(Route::Settings {});
    let mut s = Screen::open(sv);
    assert!(s.html().contains("修改 PIN") && s.html().contains("无操作多久后锁定"));

    s.type_into("pin-old", "123456");
    s.type_into("pin-new", "12ab");
    s.tap("change-pin");
    assert!(s.html().contains("id=\"pin-new-error\""), "{}", s.html());
    assert!(s.html().contains("PIN 须为 6-12 位数字"));

    s.type_into("pin-new", "246810");
    s.type_into("pin-new2", "246811");
    s.tap("change-pin");
    assert!(s.html().contains("id=\"pin-new2-error\""));
    assert!(s.html().contains("两次输入的新 PIN 不一致"));

    s.type_into("pin-old", "999999");
    s.type_into("pin-new2", "246810");
    s.tap("change-pin");
    assert!(s.html().contains("id=\"pin-old-error\""));
    assert!(
        s.html().contains("PIN 不正确（已连续错 1 次）"),
        "{}",
        s.html()
    );

    s.type_into("pin-old", "123456");
    s.tap("change-pin");
    assert!(s.html().contains("PIN 已修改"), "{}", s.html());
    assert!(lock::unlock(&db, "123456", clock.now()).is_err());
    let again = lock::unlock(&db, "246810", clock.now()).unwrap().store;
    assert_eq!(again.outbox_len().unwrap(), 1, "the same data");
}

/// Enrolment with a real county server, ten wrong PINs, then the account's password from the
/// same phone releases its recovery secret, a new PIN is set and the same data opens; another
/// account gets nothing, nor does the phone once the county released its enrolment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_lock_recovery_online_releases_the_secret_only_to_the_phones_own_account() {
    use crate::sync::util::{Backend, TestServer};
    use gridwalk::client::SyncError;

    let server = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("device.db");
    let u = vault::create(&db, "123456", Kdf::TEST, &NoKeystore).unwrap();
    let (mut v, key) = (u.vault, u.key);
    let store = Arc::new(Mutex::new(u.store));
    gridwalk::client::enrol(&server.url, "worker-a", "gridwalk-demo", &store)
        .await
        .unwrap();
    let grid = server.county.grids[0].grid.id;
    let (device, households) = {
        let mut s = store.lock().unwrap();
        lock::seal_recovery(&mut v, &key, &s);
        s.create_record(&crate::vault::hazard(grid), Utc::now())
            .unwrap();
        v.note(&s, Utc::now()).unwrap();
        let n: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM households", [], |r| r.get(0))
            .unwrap();
        (s.device_id(), n)
    };
    assert!(v.has_recovery());
    lock::send_recovery(store.clone()).await;
    assert_eq!(
        store
            .lock()
            .unwrap()
            .meta(lock::RECOVERY_PENDING)
            .unwrap()
            .as_deref(),
        Some(""),
        "the county has the secret"
    );
    let kept: String = server
        .read(move |db| {
            db.query_one(
                "SELECT secret FROM device_recovery WHERE device_id = $1",
                &[device.to_string().into()],
            )?[0]
                .string()
        })
        .await;
    assert_eq!(vault::RecoverySecret::decode(&kept).unwrap().0.len(), 32);
    let key_file = std::fs::read_to_string(vault::sidecar(&db)).unwrap();
    assert!(
        !key_file.contains(&kept),
        "the key file never holds the secret"
    );
    assert_eq!(v.device_id(), Some(device));
    assert_eq!(v.server(), Some(server.url.as_str()));
    drop(store);

    let clock = FakeClock::new();
    wrong_pins(&db, MAX_PIN_FAILURES, &clock);
    assert!(matches!(
        lock::unlock(&db, "123456", clock.now()),
        Err(VaultError::LockedOut)
    ));

    // A wrong password, another account (on this phone, or on its own): nothing.
    assert!(matches!(
        gridwalk::client::release_recovery(&server.url, "worker-a", "wrong", device).await,
        Err(SyncError::Unauthorized)
    ));
    assert!(matches!(
        gridwalk::client::release_recovery(&server.url, "worker-b", "gridwalk-demo", device).await,
        Err(SyncError::Forbidden(_))
    ));
    let elsewhere = uuid::Uuid::now_v7();
    assert!(
        gridwalk::client::release_recovery(&server.url, "worker-b", "gridwalk-demo", elsewhere)
            .await
            .is_err()
    );

    // The phone's own account, with its password, from the phone.
    let rel = gridwalk::client::release_recovery(&server.url, "worker-a", "gridwalk-demo", device)
        .await
        .unwrap();
    assert_eq!(rel.secret, kept);
    let secret = vault::RecoverySecret::decode(&rel.secret).unwrap();
    let s = vault::recover(&db, &secret, "864200", clock.now(), &NoKeystore)
        .unwrap()
        .store;
    let n: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM households", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, households);
    assert_eq!(
        s.outbox_len().unwrap(),
        1,
        "the unsent hazard is still there"
    );
    drop(s);
    let s = lock::unlock(&db, "864200", clock.now()).unwrap().store;
    assert_eq!(s.worker(), "worker-a");
    drop(s);
    let audited: i64 = server
        .read(|db| {
            db.query_one(
                "SELECT count(*) FROM audit WHERE action = 'RECOVERY_RELEASE'",
                &[],
            )?[0]
                .i64()
        })
        .await;
    assert!(audited >= 1);

    // Once the county ends the phone's enrolment, its secret is gone.
    server
        .db
        .tx(|db| gridwalk::server::repo::release_device(db, device))
        .unwrap();
    assert!(
        gridwalk::client::release_recovery(&server.url, "worker-a", "gridwalk-demo", device)
            .await
            .is_err()
    );
    let _ = Vault::load(&db);
}
