//! View tests of the field app: each screen rendered with dioxus-ssr from a store filled with
//! demo data, asserting what the worker sees (Chinese labels, due visits, masked IDs, no
//! managed-population tags on list cards), and clicks fired through the serialized event
//! converter (language switch, audited reveal, recording a visit).

use std::any::Any;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use dioxus::dioxus_core::{ElementId, Mutation};
use dioxus::html::{PlatformEventData, SerializedHtmlEventConverter, SerializedMouseData};
use dioxus::prelude::*;
use geo::Centroid;
use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::{App, AppProps, Route, Services};
use gridwalk::domain::codes::{Coded, Lang, Tag};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::validate::{mask_id, mask_phone};
use gridwalk::store::Store;
use gridwalk::store::people::HouseholdQuery;

use crate::util::{demo_store, now, today};

fn services(store: Arc<Mutex<Store>>, start: Route) -> Services {
    let here = {
        let s = store.lock().unwrap();
        let c = s.grids().unwrap()[0].boundary.centroid().unwrap();
        GeoPoint::new(c.x(), c.y(), Some(5.0)).unwrap()
    };
    Services {
        db_path: None,
        store: Some(store),
        location: Arc::new(FixedLocation::new(here, 0.0)),
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(now),
        fix_interval_ms: 60_000,
        start: Some(start),
        lang: Lang::Zh,
        autosync: None,
    }
}

fn dom(store: &Arc<Mutex<Store>>, start: Route) -> VirtualDom {
    VirtualDom::new_with_props(
        App,
        AppProps {
            services: services(store.clone(), start),
        },
    )
}

fn render(store: &Arc<Mutex<Store>>, start: Route) -> String {
    let mut dom = dom(store, start);
    dom.rebuild_in_place();
    dioxus_ssr::render(&dom)
}

fn shared(store: Store) -> Arc<Mutex<Store>> {
    Arc::new(Mutex::new(store))
}

/// The element that got the dynamic attribute `name="value"` in `edits`.
fn element_with(edits: &[Mutation], name: &str, value: &str) -> Option<ElementId> {
    edits.iter().find_map(|m| match m {
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

fn click(dom: &mut VirtualDom, id: ElementId) -> Vec<Mutation> {
    let event = Event::new(
        Rc::new(PlatformEventData::new(Box::<SerializedMouseData>::default())) as Rc<dyn Any>,
        true,
    );
    dom.runtime().handle_event("click", event, id);
    dom.render_immediate_to_vec().edits
}

#[test]
fn today_lists_due_visits_and_the_hazard_button_in_chinese() {
    let (_dir, store, _county, _scope) = demo_store();
    let due = store.due_visits(today()).unwrap();
    assert!(!due.is_empty(), "the demo grid has due visits");
    let store = shared(store);
    let html = render(&store, Route::Today {});
    assert!(html.contains("今日工作"), "{html}");
    assert!(html.contains("待走访（今日及逾期）"));
    assert!(html.contains(&format!("({})", due.len())));
    assert!(html.contains("上报隐患"));
    assert!(html.contains("待上传"));
    for c in due.iter().take(5) {
        assert!(
            html.contains(&c.address),
            "due household {} missing",
            c.address
        );
    }
    // The tab bar is there, in Chinese.
    for label in ["今日", "住户", "上报", "巡防", "地图", "记录", "同步"] {
        assert!(html.contains(label), "tab {label}");
    }
}

/// Every managed-population tag label, which must never appear on a list card.
fn managed_labels() -> Vec<&'static str> {
    Tag::ALL
        .iter()
        .filter(|t| t.is_managed())
        .map(|t| t.zh())
        .collect()
}

/// The first household with a member for whom `want` holds, and that member.
fn household_where(
    store: &Store,
    want: impl Fn(&gridwalk::domain::model::Person) -> bool,
) -> (uuid::Uuid, gridwalk::domain::model::Person) {
    let cards = store
        .households(
            &HouseholdQuery {
                limit: Some(10_000),
                ..Default::default()
            },
            today(),
        )
        .unwrap();
    for c in cards {
        let d = store.household_detail(c.id, today()).unwrap();
        if let Some(p) = d.members.iter().find(|p| want(p)) {
            return (c.id, p.clone());
        }
    }
    panic!("no such person in the demo grid");
}

/// A household with a member carrying a managed-population tag.
fn managed_household(store: &Store) -> (uuid::Uuid, gridwalk::domain::model::Person) {
    household_where(store, |p| p.tags.iter().any(|t| t.is_managed()))
}

/// A tokio context for the app's timers (the patrol recorder, the online check).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn household_cards_never_show_managed_tags_even_when_searched() {
    let (_dir, store, _county, _scope) = demo_store();
    let (hh, _) = managed_household(&store);
    let address = store
        .household_detail(hh, today())
        .unwrap()
        .household
        .address;
    let store = shared(store);
    // The whole first page, and a page narrowed to that household.
    let html = render(&store, Route::Households {});
    assert!(html.contains("搜索姓名、地址、证件号后几位"));
    assert!(html.contains("hh-card"));
    for l in managed_labels() {
        assert!(!html.contains(l), "managed tag {l} on the list");
    }
    let mut d = dom(&store, Route::Households {});
    d.rebuild_in_place();
    // The filter offers care tags only.
    let html = dioxus_ssr::render(&d);
    assert!(html.contains(Tag::ElderlyAlone.zh()));
    // The detail shows the tags (with the managed style), the list never does.
    let detail = render(&store, Route::HouseholdPage { id: hh });
    assert!(detail.contains(&address));
    assert!(
        detail.contains("pill managed"),
        "managed tags are shown on the detail only"
    );
}

#[test]
fn household_detail_masks_ids_and_phones_and_reveal_is_audited() {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let (_dir, store, _county, _scope) = demo_store();
    let rt = runtime();
    let _rt = rt.enter();
    let (hh, person) = household_where(&store, |p| p.id_number.is_some() && p.phone.is_some());
    let id_number = person.id_number.clone().unwrap();
    let phone = person.phone.clone().unwrap();
    let audits_before: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    let outbox_before = store.outbox_len().unwrap();
    let store = shared(store);

    let mut d = dom(&store, Route::HouseholdPage { id: hh });
    let edits = d.rebuild_to_vec().edits;
    let html = dioxus_ssr::render(&d);
    assert!(html.contains(&mask_id(&id_number)), "masked ID shown");
    assert!(html.contains(&mask_phone(&phone)), "masked phone shown");
    assert!(!html.contains(&id_number), "full ID never shown by default");
    assert!(!html.contains(&phone), "full phone never shown by default");
    assert!(html.contains("查看（留痕）"));
    assert!(html.contains("记录走访"));

    // Reveal this person's ID: each reveal button carries data-reveal="<person>:<field>".
    let id_button = element_with(&edits, "data-reveal", &format!("{}:id", person.id))
        .expect("ID reveal button");
    assert!(
        element_with(&edits, "data-reveal", &format!("{}:phone", person.id)).is_some(),
        "phone reveal button"
    );
    click(&mut d, id_button);
    let html = dioxus_ssr::render(&d);
    assert!(html.contains(&id_number), "revealed after the explicit act");
    assert!(!html.contains(&phone), "the phone stays masked");

    let s = store.lock().unwrap();
    let audits_after: i64 = s
        .conn()
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        audits_after,
        audits_before + 1,
        "the reveal is in the audit log"
    );
    assert!(
        s.outbox_len().unwrap() > outbox_before,
        "and goes up at the next sync"
    );
}

#[test]
fn recording_a_visit_from_the_detail_writes_it_and_clears_the_due_flag() {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let due = store.due_visits(today()).unwrap();
    let hh = due[0].id;
    let visits_before = store.household_detail(hh, today()).unwrap().visits.len();
    let store = shared(store);
    let mut d = dom(&store, Route::HouseholdPage { id: hh });
    let edits = d.rebuild_to_vec().edits;
    let save = element_with(&edits, "data-act", "visit-save").expect("the save button");
    click(&mut d, save);
    let s = store.lock().unwrap();
    let after = s.household_detail(hh, today()).unwrap();
    assert_eq!(
        after.visits.len(),
        visits_before + 1,
        "the visit was recorded"
    );
    assert_eq!(after.visits[0].author, "worker-a");
    assert!(!after.due.is_due(today()), "no longer due today");
}

#[test]
fn the_language_switch_turns_labels_english() {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let store = shared(store);
    let mut d = dom(&store, Route::Today {});
    let edits = d.rebuild_to_vec().edits;
    let first_click = edits
        .iter()
        .find_map(|m| match m {
            Mutation::NewEventListener { name, id } if name == "click" => Some(*id),
            _ => None,
        })
        .expect("the language switch listens for clicks");
    click(&mut d, first_click);
    let html = dioxus_ssr::render(&d);
    assert!(html.contains("Visits due (today and overdue)"), "{html}");
    assert!(html.contains("Report a hazard"));
}

#[test]
fn every_screen_renders_from_the_demo_store() {
    let (_dir, store, _county, _scope) = demo_store();
    let hh = store.due_visits(today()).unwrap()[0].id;
    let store = shared(store);
    let cases: Vec<(Route, &[&str])> = vec![
        (
            Route::Report {
                kind: "hazard".into(),
            },
            &["安全隐患", "隐患描述", "所在网格", "提交隐患", "照片"],
        ),
        (
            Route::Report {
                kind: "opinion".into(),
            },
            &["社情民意", "三议四步"],
        ),
        (
            Route::Report {
                kind: "dispute".into(),
            },
            &["矛盾纠纷", "当事人", "申请人", "被申请人"],
        ),
        (
            Route::Report {
                kind: "emergency".into(),
            },
            &["突发事件", "初报内容", "立即初报"],
        ),
        (
            Route::PatrolPage {},
            &["治安巡防", "开始巡防", "将记录您的行走轨迹"],
        ),
        (Route::MapPage {}, &["网格地图", "<polygon", "<circle"]),
        (Route::Records {}, &["我的记录", "全部类型"]),
        (
            Route::SyncPage {},
            &["同步", "立即同步", "上传", "下载", "照片"],
        ),
        (
            Route::HouseholdPage { id: hh },
            &["成员", "走访记录", "保存走访"],
        ),
        (
            Route::Settings {},
            &[
                "县级服务器地址",
                "检查并保存",
                "重新登录",
                "获取县里反馈的间隔",
            ],
        ),
    ];
    for (route, expect) in cases {
        let html = render(&store, route.clone());
        for e in expect {
            assert!(html.contains(e), "{route:?} lacks {e}:\n{html}");
        }
    }
}

#[test]
fn an_encrypted_store_opens_only_with_its_pin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    {
        let mut s = Store::open_encrypted(&path, "123456").unwrap();
        s.set_worker("worker-a").unwrap();
    }
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.starts_with(b"SQLite format 3"),
        "the file is not plain SQLite"
    );
    match Store::open_encrypted(&path, "654321") {
        Err(gridwalk::store::StoreError::WrongKey) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a wrong PIN opened the store"),
    }
    assert!(Store::open(&path).is_err(), "no key, no data");
    let s = Store::open_encrypted(&path, "123456").unwrap();
    assert_eq!(s.worker(), "worker-a");
}

/// A pulled page as the county server sends it after a push that collided: the records as the
/// server now holds them and the CONFLICT entities naming the values that lost.
fn pull_conflicts(
    store: &mut Store,
    changes: Vec<gridwalk::wire::Change>,
) -> gridwalk::store::remote::Applied {
    let page = gridwalk::wire::PullResponse {
        cursor: changes.iter().map(|c| c.seq).max().unwrap_or(0),
        changes,
        base: 0,
        more: false,
        cadence: None,
        rejected: Vec::new(),
    };
    store.apply_pull(&page, now()).unwrap()
}

#[test]
fn the_sync_screen_shows_every_unsettled_conflict_with_both_values() {
    use chrono::Duration;
    use gridwalk::domain::codes::{Domain, HazardCategory, Severity};
    use gridwalk::domain::lifecycle::Status;
    use gridwalk::domain::model::{Common, Conflict, EntityKind, Hazard, StatusChange};
    use gridwalk::wire::{Change, Lane};
    use serde_json::json;

    let (_dir, mut store, _county, _scope) = demo_store();
    let grid = store.grids().unwrap()[0].id;
    let hh = store.due_visits(today()).unwrap()[0].id;
    let address = store.household(hh).unwrap().address;
    // Offline, worker-a reports a hazard, then marks it rectified on the spot and corrects a
    // household's address; the push reaches the server (the outbox is acknowledged).
    let t0 = now() - Duration::hours(3);
    let h = Hazard {
        common: Common::new(Domain::Hazard, grid, "worker-a", t0),
        category: HazardCategory::Fire,
        severity: Severity::High,
        description: "楼道堆放杂物堵塞消防通道".into(),
        place: "3号楼一单元".into(),
        owner: None,
        due_date: None,
    };
    store.create_record(&h, t0).unwrap();
    let t1 = now() - Duration::hours(1);
    store
        .transition(h.common.id, Status::Rectified, None, t1)
        .unwrap();
    let mine = format!("{address}（东侧）");
    store
        .update_household(hh, |x| x.address = mine.clone(), t1)
        .unwrap();
    let acked = store.outbox(Lane::Normal, 100).unwrap().last().unwrap().seq;
    store.ack_outbox(Lane::Normal, acked).unwrap();
    // Meanwhile the secretary confirmed the hazard and also changed that address, later.
    let t_sec = now() - Duration::minutes(30);
    let theirs = format!("{address}（西侧）");
    let mut on_server = serde_json::to_value(&h).unwrap();
    on_server["status"] = json!("CONFIRMED");
    let mut household = serde_json::to_value(store.household(hh).unwrap()).unwrap();
    household["address"] = json!(theirs);
    let conflict = |field: &str, kept, kept_by: &str, kept_at, lost, lost_at| Conflict {
        id: gridwalk::domain::model::new_id(),
        entity_kind: EntityKind::Hazard,
        entity_id: h.common.id,
        grid_id: grid,
        field: field.into(),
        kept,
        lost,
        kept_by: kept_by.into(),
        lost_by: "worker-a".into(),
        kept_at,
        lost_at,
        created_at: now(),
        settled_by: None,
        settled_at: None,
    };
    let status = conflict(
        "status",
        json!("CONFIRMED"),
        "secretary",
        now() - Duration::hours(2),
        json!("RECTIFIED"),
        t1,
    );
    let addr = Conflict {
        entity_kind: EntityKind::Household,
        entity_id: hh,
        ..conflict(
            "address",
            json!(theirs),
            "secretary",
            t_sec,
            json!(mine),
            t1,
        )
    };
    // One settled long ago: it must not be listed.
    let settled = Conflict {
        settled_by: Some("admin".into()),
        settled_at: Some(now() - Duration::days(1)),
        ..conflict(
            "place",
            json!("旧地点甲"),
            "worker-b",
            t0,
            json!("旧地点乙"),
            t0,
        )
    };
    let change = Change::whole;
    let applied = pull_conflicts(
        &mut store,
        vec![
            Change {
                history: Some(vec![StatusChange {
                    record_id: h.common.id,
                    from: Status::Reported,
                    to: Status::Confirmed,
                    at: now() - Duration::hours(2),
                    actor: "secretary".into(),
                    note: None,
                }]),
                ..change(101, EntityKind::Hazard, h.common.id, on_server)
            },
            change(102, EntityKind::Household, hh, household),
            change(
                103,
                EntityKind::Conflict,
                status.id,
                serde_json::to_value(&status).unwrap(),
            ),
            change(
                104,
                EntityKind::Conflict,
                addr.id,
                serde_json::to_value(&addr).unwrap(),
            ),
            change(
                105,
                EntityKind::Conflict,
                settled.id,
                serde_json::to_value(&settled).unwrap(),
            ),
        ],
    );
    assert_eq!(applied.conflicts.len(), 3, "three new conflicts came down");
    assert_eq!(store.conflicts(true).unwrap().len(), 2);
    let store = shared(store);
    let html = render(&store, Route::SyncPage {});
    assert!(html.contains("待裁定的冲突"), "{html}");
    assert_eq!(
        html.matches("data-conflict=").count(),
        2,
        "one card per unsettled conflict"
    );
    // Which record, which field (Chinese label), the value that stands and the one that lost,
    // who made each and when.
    for want in [
        "安全隐患 · 楼道堆放杂物堵塞消防通道",
        "办理状态",
        Status::Confirmed.zh(),
        Status::Rectified.zh(),
        "户 · ",
        "地址",
        theirs.as_str(),
        mine.as_str(),
        "现用值",
        "未采用",
        "secretary · ",
        "worker-a（我）",
        // Times in China Standard Time, as the worker reads them.
        &gridwalk::app::local_time(t1, "%m-%d %H:%M"),
        &gridwalk::app::local_time(t_sec, "%m-%d %H:%M"),
    ] {
        assert!(html.contains(want), "the Sync screen lacks {want}:\n{html}");
    }
    // The value that stands is listed before the one that lost, in each card.
    let stands = html.find(theirs.as_str()).unwrap();
    let lost = html.find(mine.as_str()).unwrap();
    assert!(stands < lost, "kept before lost");
    assert!(!html.contains("旧地点"), "a settled conflict is not listed");
}

#[test]
fn the_sync_screen_lists_what_the_county_refused_until_the_worker_dismisses_it() {
    use chrono::Duration;
    use gridwalk::domain::codes::{Domain, HazardCategory, Severity};
    use gridwalk::domain::model::{Common, EntityKind, Hazard, new_id};
    use gridwalk::wire::{Lane, Op, Rejection};

    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, mut store, _county, _scope) = demo_store();
    let grid = store.grids().unwrap()[0].id;
    // Offline, worker-a reports a hazard; the push is acknowledged (the outbox entry goes),
    // but the county refuses the entry when it applies it: she was moved to another grid.
    let t0 = now() - Duration::hours(3);
    let h = Hazard {
        common: Common::new(Domain::Hazard, grid, "worker-a", t0),
        category: HazardCategory::Fire,
        severity: Severity::High,
        description: "村口变压器旁堆放柴草".into(),
        place: "村口".into(),
        owner: None,
        due_date: None,
    };
    store.create_record(&h, t0).unwrap();
    let entry = store.outbox(Lane::Normal, 100).unwrap().last().unwrap().seq;
    store.ack_outbox(Lane::Normal, entry).unwrap();
    let refused_at = now() - Duration::minutes(40);
    // Each refusal is of its own pushed entry (a device keeps one refusal per entry).
    let refusal = |seq, kind, record_id, message: &str, field: Option<&str>| Rejection {
        seq,
        lane: Lane::Normal,
        entry_seq: entry + seq as u64,
        kind,
        record_id,
        op: Op::Create,
        error: "invalid".into(),
        message: message.into(),
        field: field.map(str::to_owned),
        at: refused_at,
    };
    let scope = refusal(
        201,
        EntityKind::Hazard,
        h.common.id,
        "该网格已不在你的负责范围内",
        Some("fields.grid_id"),
    );
    // About a visit this device no longer holds: listed without a link.
    let gone = refusal(
        202,
        EntityKind::Visit,
        new_id(),
        "走访日期晚于今天 (Visit date is after today)",
        Some("fields.visited_on"),
    );
    // Already dismissed: not listed.
    let old = refusal(150, EntityKind::Hazard, h.common.id, "旧的退回说明", None);
    let page = gridwalk::wire::PullResponse {
        changes: Vec::new(),
        cursor: 202,
        base: 0,
        more: false,
        cadence: None,
        rejected: vec![old, scope, gone],
    };
    assert_eq!(store.apply_pull(&page, now()).unwrap().rejected, 3);
    assert_eq!(store.apply_pull(&page, now()).unwrap().rejected, 0);
    store.dismiss_rejection(150, now()).unwrap();

    let store = shared(store);
    let html = render(&store, Route::SyncPage {});
    assert!(html.contains("县里未接收的记录"), "{html}");
    assert_eq!(
        html.matches("data-rejection=").count(),
        2,
        "one card per refusal not yet dismissed:\n{html}"
    );
    for want in [
        "安全隐患 · 村口变压器旁堆放柴草",
        &format!("href=\"/records/{}\"", h.common.id),
        "该网格已不在你的负责范围内",
        "所属网格",
        "走访日期晚于今天",
        "走访日期",
        "新建",
        "知道了",
        // When, in China Standard Time.
        &gridwalk::app::local_time(refused_at, "%m-%d %H:%M"),
    ] {
        assert!(html.contains(want), "the Sync screen lacks {want}:\n{html}");
    }
    // Chinese only under zh: no English half of the server's message, no field path.
    assert!(
        !html.contains("Visit date is after today") && !html.contains("fields."),
        "{html}"
    );
    assert!(
        !html.contains("旧的退回说明"),
        "a dismissed refusal is not listed"
    );
    assert_eq!(
        html.matches("href=\"/records/").count(),
        1,
        "only the record the device holds is a link"
    );

    // "知道了" puts the refusal away: in the store and on the screen.
    let mut d = dom(&store, Route::SyncPage {});
    let edits = d.rebuild_to_vec().edits;
    let dismiss = element_with(&edits, "data-dismiss", "201").expect("the dismiss button");
    click(&mut d, dismiss);
    let open: Vec<i64> = store
        .lock()
        .unwrap()
        .rejections(true)
        .unwrap()
        .iter()
        .map(|r| r.rejection.seq)
        .collect();
    assert_eq!(open, vec![202]);
    let html = dioxus_ssr::render(&d);
    assert_eq!(html.matches("data-rejection=").count(), 1, "{html}");
    assert!(!html.contains("该网格已不在你的负责范围内"), "{html}");
}

/// A camera that hands out a new small JPEG (a real one: it is decoded and re-encoded) on
/// every shot.
struct TestCamera(Mutex<u32>);

impl gridwalk::app::platform::Camera for TestCamera {
    fn available(&self) -> bool {
        true
    }
    fn take(
        &self,
    ) -> Result<gridwalk::app::platform::Photo, gridwalk::app::platform::PlatformError> {
        let mut n = self.0.lock().unwrap();
        *n += 1;
        let shade = (*n * 60) as u8;
        let img = image::RgbImage::from_pixel(32, 24, image::Rgb([shade, 120, 200]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&img)
            .unwrap();
        Ok(gridwalk::app::platform::Photo {
            bytes,
            mime: "image/jpeg".into(),
            name: format!("现场{n}.jpg"),
        })
    }
}

/// Runs the app's tasks (photos are prepared off the UI thread) until `done` or 10 s.
fn pump(rt: &tokio::runtime::Runtime, d: &mut VirtualDom, done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "the app's tasks did not finish"
        );
        rt.block_on(async {
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(50), d.wait_for_work()).await;
        });
        d.render_immediate_to_vec();
    }
}

#[test]
fn a_hazard_draft_keeps_its_photos_when_the_worker_leaves_and_comes_back() {
    use gridwalk::domain::model::Hazard;
    use gridwalk::store::records::RecordQuery;

    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    gridwalk::app::drafts::save(
        &store,
        "hazard",
        &serde_json::json!({"category": "FIRE", "severity": "MEDIUM",
            "description": "电动车楼道充电", "place": "2号楼"}),
    )
    .unwrap();
    let store = shared(store);
    let camera = Arc::new(TestCamera(Mutex::new(0)));
    let open = || {
        let mut s = services(
            store.clone(),
            Route::Report {
                kind: "hazard".into(),
            },
        );
        s.camera = camera.clone() as Arc<dyn gridwalk::app::platform::Camera>;
        VirtualDom::new_with_props(App, AppProps { services: s })
    };

    // Two photos taken on the form, then the worker leaves the screen (the dom is dropped).
    {
        let mut d = open();
        let edits = d.rebuild_to_vec().edits;
        let add = element_with(&edits, "data-add-photo", "hazard").expect("the camera button");
        click(&mut d, add);
        pump(&rt, &mut d, || {
            store.lock().unwrap().staged_photos("hazard").unwrap().len() == 1
        });
        click(&mut d, add);
        pump(&rt, &mut d, || {
            store.lock().unwrap().staged_photos("hazard").unwrap().len() == 2
        });
        let html = dioxus_ssr::render(&d);
        assert!(
            html.contains("现场1.jpg") && html.contains("现场2.jpg"),
            "{html}"
        );
    }
    let staged = store.lock().unwrap().staged_photos("hazard").unwrap();
    assert_eq!(
        staged.len(),
        2,
        "kept in the store the moment they were added"
    );

    // Coming back: the text and both photos are there; one is taken out, the hazard sent.
    let mut d = open();
    let edits = d.rebuild_to_vec().edits;
    let html = dioxus_ssr::render(&d);
    assert!(html.contains("电动车楼道充电"), "the draft's text");
    assert!(
        html.contains("现场1.jpg") && html.contains("现场2.jpg"),
        "the draft's photos after coming back:\n{html}"
    );
    let remove = element_with(&edits, "data-unstage", "现场2.jpg").expect("remove button");
    let submit = element_with(&edits, "data-submit", "hazard").expect("submit button");
    click(&mut d, remove);
    click(&mut d, submit);

    let s = store.lock().unwrap();
    let rec = s
        .records(&RecordQuery::default())
        .unwrap()
        .into_iter()
        .find(|r| r.summary.contains("电动车楼道充电"))
        .expect("the hazard was recorded");
    let h: Hazard = s.record(rec.id).unwrap();
    assert_eq!(
        h.common.photos,
        vec![staged[0].sha256.clone()],
        "the record holds the photo that stayed"
    );
    assert!(
        s.staged_photos("hazard").unwrap().is_empty(),
        "draft emptied"
    );
    assert!(
        s.photo(&staged[1].sha256).is_err(),
        "the removed photo is gone"
    );
    let pending: Vec<String> = s
        .pending_photos()
        .unwrap()
        .into_iter()
        .map(|p| p.sha256)
        .collect();
    assert!(pending.contains(&staged[0].sha256), "and waits for upload");
}

#[test]
fn my_points_add_up_on_today_and_a_visit_earns_one() {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let total = |s: &Store| -> i64 { s.my_points().unwrap().iter().map(|e| e.points).sum() };
    let before = total(&store);
    assert!(
        !store.my_points().unwrap().is_empty(),
        "worker-a's demo records and visits earn points"
    );
    let hh = store.due_visits(today()).unwrap()[0].id;
    let store = shared(store);
    // Today shows the sum, linking to the ledger.
    let html = render(&store, Route::Today {});
    let at = html.find("id=\"points\"").expect("the points pill");
    let pill = &html[at..at + 200.min(html.len() - at)];
    assert!(
        pill.contains("我的积分") && pill.contains(&before.to_string()),
        "{pill}"
    );
    // Recording a visit earns one point.
    let mut d = dom(&store, Route::HouseholdPage { id: hh });
    let edits = d.rebuild_to_vec().edits;
    let save = element_with(&edits, "data-act", "visit-save").expect("the save button");
    click(&mut d, save);
    assert_eq!(total(&store.lock().unwrap()), before + 1);
    // The ledger: the visit is a line with its reason and the household's address.
    let html = render(&store, Route::PointsPage {});
    assert!(html.contains("我的积分"), "{html}");
    let at = html.find("id=\"points-total\"").expect("the total");
    assert!(html[at..].contains(&(before + 1).to_string()));
    let address = store
        .lock()
        .unwrap()
        .household_detail(hh, today())
        .unwrap()
        .household
        .address;
    let lines: Vec<&str> = html.split("points-line").skip(1).collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().any(|l| {
            let l = &l[..l.find("</li>").unwrap_or(l.len())];
            l.contains("+1") && l.contains("入户走访") && l.contains(&address)
        }),
        "no line for the visit to {address}"
    );
}

/// The household page with the "add a person" draft `draft` (as the form saves it while the
/// worker types), after a tap on 保存人员: the page's HTML.
fn save_person_draft(
    store: &Arc<Mutex<Store>>,
    hh: uuid::Uuid,
    draft: serde_json::Value,
) -> (VirtualDom, String) {
    gridwalk::app::drafts::save(&store.lock().unwrap(), &format!("person:{hh}"), &draft).unwrap();
    let mut d = dom(store, Route::HouseholdPage { id: hh });
    let edits = d.rebuild_to_vec().edits;
    let save = element_with(&edits, "data-act", "person-save").expect("the save button");
    click(&mut d, save);
    let html = dioxus_ssr::render(&d);
    (d, html)
}

fn person_draft(
    kind: &str,
    name: &str,
    id_number: &str,
    birth: &str,
    relation: &str,
) -> serde_json::Value {
    serde_json::json!({
        "kind": kind, "name": name, "relation": relation, "id_number": id_number,
        "sex": "2", "birth": birth, "phone": "", "origin": "",
    })
}

/// The text of the field error beside the field labelled `label` (the first after it).
fn error_beside(html: &str, label: &str) -> Option<String> {
    let at = html.find(&format!(r#"<span class="field-label">{label}</span>"#))?;
    let rest = &html[at..];
    let end = rest.find("</label>")?;
    let field = &rest[..end];
    let e = field.find(r#"class="field-error""#)?;
    let text = &field[e..];
    let start = text.find('>')? + 1;
    let stop = text.find("</span>")?;
    Some(text[start..stop].to_owned())
}

#[test]
fn adding_a_person_shows_each_error_beside_its_field_and_keeps_what_was_typed() {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let hh = store
        .households(&HouseholdQuery::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.members >= 2)
        .unwrap()
        .id;
    let member = store.household_detail(hh, today()).unwrap().members[0].clone();
    let store = shared(store);
    let outbox = || store.lock().unwrap().outbox_len().unwrap();
    let n0 = outbox();
    let birth = chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
    let good = crate::register::id_number(birth, 24);
    // A wrong check digit: beside 证件号码, in Chinese, naming it; the typed name stays.
    let bad = format!(
        "{}{}",
        &good[..17],
        if good.ends_with('0') { '1' } else { '0' }
    );
    let (_d, html) = save_person_draft(
        &store,
        hh,
        person_draft("MEMBER", "刘晓燕", &bad, "", "DAUGHTER"),
    );
    let e = error_beside(&html, "证件号码").expect(&html);
    assert!(e.contains("证件号码校验码不对"), "{e}");
    assert!(html.contains(r#"value="刘晓燕""#), "the typed name is kept");
    // A newborn born tomorrow: beside 出生日期.
    let tomorrow = (today() + chrono::Duration::days(1)).to_string();
    let (_d, html) = save_person_draft(
        &store,
        hh,
        person_draft("NEWBORN", "刘小宝", "", &tomorrow, "GRANDCHILD"),
    );
    let e = error_beside(&html, "出生日期").expect(&html);
    assert!(e.starts_with("出生日期") && e.contains("晚于今天"), "{e}");
    // Someone already in the household (their ID number): beside 证件号码.
    let (_d, html) = save_person_draft(
        &store,
        hh,
        person_draft(
            "MEMBER",
            "另一人",
            member.id_number.as_deref().unwrap(),
            "",
            "SON",
        ),
    );
    let e = error_beside(&html, "证件号码").expect(&html);
    assert!(e.contains(&format!("本户已登记「{}」", member.name)), "{e}");
    // A floating person without where from: beside 户籍地.
    let (_d, html) = save_person_draft(
        &store,
        hh,
        person_draft("FLOATING", "外来工", &good, "", "OTHER"),
    );
    let e = error_beside(&html, "户籍地").expect(&html);
    assert!(e.contains("请填写户籍地"), "{e}");
    assert_eq!(outbox(), n0, "nothing refused was written");
    // A good member: sex and birth date read from the ID number are shown before saving.
    gridwalk::app::drafts::save(
        &store.lock().unwrap(),
        &format!("person:{hh}"),
        &person_draft("MEMBER", "刘晓燕", &good, "", "DAUGHTER"),
    )
    .unwrap();
    let html = render(&store, Route::HouseholdPage { id: hh });
    assert!(html.contains("由证件号码得出：女 · 1990-05-17"), "{html}");
    let (_d, html) = save_person_draft(
        &store,
        hh,
        person_draft("MEMBER", "刘晓燕", &good, "", "DAUGHTER"),
    );
    assert!(html.contains("已添加，待同步上传"), "{html}");
    assert_eq!(outbox(), n0 + 1);
    let s = store.lock().unwrap();
    let added = s.household_detail(hh, today()).unwrap().members;
    let p = added.iter().find(|m| m.name == "刘晓燕").expect("added");
    assert_eq!(
        (p.birth_date, p.sex),
        (Some(birth), gridwalk::domain::codes::Sex::Female)
    );
    // The draft is gone with the save.
    assert_eq!(
        gridwalk::app::drafts::load::<serde_json::Value>(&s, &format!("person:{hh}"))
            .unwrap()
            .filter(|v| !v.is_null()),
        None
    );
}

#[test]
fn marking_a_member_deceased_greys_them_with_the_date() {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let hh = store
        .households(&HouseholdQuery::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.members >= 2)
        .unwrap()
        .id;
    let member = store.household_detail(hh, today()).unwrap().members[1].clone();
    let store = shared(store);
    let mut d = dom(&store, Route::HouseholdPage { id: hh });
    let edits = d.rebuild_to_vec().edits;
    let dead = element_with(&edits, "data-mark", &format!("{}:dead", member.id)).expect("死亡");
    let edits = click(&mut d, dead);
    let save = element_with(&edits, "data-act", "member-save").expect("保存");
    click(&mut d, save);
    let p = store.lock().unwrap().person(member.id).unwrap();
    assert_eq!(
        (p.status, p.status_on),
        (
            gridwalk::domain::codes::PersonStatus::Deceased,
            Some(today())
        )
    );
    let html = dioxus_ssr::render(&d);
    assert!(
        html.contains(&format!(
            r#"class="member gone" data-person="{}""#,
            member.id
        )),
        "{html}"
    );
    assert!(html.contains(&format!("死亡 {}", today())), "{html}");
}

/// The page at `start` with the new-household draft `draft` (as the form saves it while the
/// worker types), after `taps` taps on 保存新户: the page's HTML.
/// The new-household form's part of a household page (the page's add-a-person form has
/// fields of the same names above it).
fn new_household(html: &str) -> &str {
    &html[html
        .find(r#"class="new-household""#)
        .expect("the new-household form")..]
}

fn save_household_draft(
    store: &Arc<Mutex<Store>>,
    start: Route,
    form: &str,
    draft: serde_json::Value,
    taps: usize,
) -> String {
    gridwalk::app::drafts::save(&store.lock().unwrap(), form, &draft).unwrap();
    let mut d = dom(store, start);
    let edits = d.rebuild_to_vec().edits;
    let save = element_with(&edits, "data-act", "household-save").expect("the save button");
    for _ in 0..taps {
        click(&mut d, save);
    }
    dioxus_ssr::render(&d)
}

fn household_draft(
    address: &str,
    kind: &str,
    name: &str,
    id: &str,
    phone: &str,
) -> serde_json::Value {
    serde_json::json!({
        "address": address,
        "head": { "kind": kind, "name": name, "relation": "HEAD", "id_number": id,
                  "sex": "1", "birth": "", "phone": phone, "origin": "" },
    })
}

#[test]
fn a_new_household_at_the_same_address_shows_errors_beside_fields_and_a_double_tap_files_one() {
    use gridwalk::app::views::new_household::form_name;
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let (hh, house) = store
        .households(&HouseholdQuery::default(), today())
        .unwrap()
        .into_iter()
        .find_map(|c| {
            let d = store.household_detail(c.id, today()).unwrap();
            d.house.map(|h| (d.household, h))
        })
        .expect("a household in a house");
    let store = shared(store);
    let outbox = || store.lock().unwrap().outbox_len().unwrap();
    let count = || {
        store
            .lock()
            .unwrap()
            .households(&HouseholdQuery::default(), today())
            .unwrap()
            .len()
    };
    let (n0, c0) = (outbox(), count());
    let page = || Route::HouseholdPage { id: hh.id };
    let form = form_name(Some(hh.id));
    let birth = chrono::NaiveDate::from_ymd_opt(1986, 4, 12).unwrap();
    let good = crate::register::id_number(birth, 41);
    let bad = format!(
        "{}{}",
        &good[..17],
        if good.ends_with('0') { '1' } else { '0' }
    );
    // The form opens with the household's address.
    let html = render(&store, page());
    assert!(html.contains("同址分户 / 新立户"), "{html}");
    assert!(
        html.contains(&format!(r#"value="{}""#, hh.address)),
        "{html}"
    );
    // A wrong check digit, no phone, no address: each beside its field, in Chinese.
    let html = save_household_draft(
        &store,
        page(),
        &form,
        household_draft("", "MEMBER", "陈分户", &bad, ""),
        1,
    );
    let e = error_beside(new_household(&html), "证件号码").expect(&html);
    assert!(e.contains("证件号码校验码不对"), "{e}");
    let e = error_beside(new_household(&html), "联系电话").expect(&html);
    assert!(e.contains("联系电话"), "{e}");
    assert!(
        error_beside(new_household(&html), "住址（可加室号、单元）").is_some(),
        "{html}"
    );
    assert!(html.contains(r#"value="陈分户""#), "the typed name is kept");
    // A bad phone, and a floating head without where they are registered.
    let mut floating = household_draft(&hh.address, "FLOATING", "外来户", &good, "12");
    floating["head"]["origin"] = "".into();
    let html = save_household_draft(&store, page(), &form, floating, 1);
    assert!(
        error_beside(new_household(&html), "联系电话").is_some(),
        "{html}"
    );
    let e = error_beside(new_household(&html), "户籍地").expect(&html);
    assert!(e.contains("户籍地"), "{e}");
    assert_eq!(outbox(), n0, "nothing refused was written");
    // Sex and birth date read from the ID number are shown before saving.
    gridwalk::app::drafts::save(
        &store.lock().unwrap(),
        &form,
        &household_draft("x", "MEMBER", "陈分户", &good, ""),
    )
    .unwrap();
    let html = render(&store, page());
    assert!(html.contains("由证件号码得出：男 · 1986-04-12"), "{html}");
    // A good one, tapped twice: one household, two creates (the household and its head).
    let address = format!("{}（东厢房）", hh.address);
    let html = save_household_draft(
        &store,
        page(),
        &form,
        household_draft(&address, "MEMBER", "陈分户", &good, "13907941234"),
        2,
    );
    assert!(html.contains("已立户，待同步上传"), "{html}");
    assert_eq!(outbox(), n0 + 2);
    assert_eq!(count(), c0 + 1, "one household, at once in the list");
    let s = store.lock().unwrap();
    let card = s
        .households(&HouseholdQuery::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.address == address)
        .expect("listed");
    assert_eq!(card.head_name.as_deref(), Some("陈分户"));
    let d = s.household_detail(card.id, today()).unwrap();
    assert_eq!(d.household.house_id, Some(house.id), "the same house");
    assert_eq!(d.household.grid_id, hh.grid_id);
    assert_eq!(
        (d.members[0].birth_date, d.members[0].sex),
        (Some(birth), gridwalk::domain::codes::Sex::Male)
    );
}

#[test]
fn the_households_list_starts_a_household_with_no_house_in_the_workers_grid() {
    use gridwalk::app::views::new_household::form_name;
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let grid = store.grids().unwrap()[0].id;
    let store = shared(store);
    let good = crate::register::id_number(chrono::NaiveDate::from_ymd_opt(1992, 1, 5).unwrap(), 42);
    let html = render(&store, Route::Households {});
    assert!(html.contains("新立户（本网格）"), "{html}");
    // No grid chosen (a grid not this phone's): beside 所属网格.
    let mut draft = household_draft("新村路 8 号", "MEMBER", "王新户", &good, "13807945678");
    draft["grid"] = uuid::Uuid::nil().to_string().into();
    let html = save_household_draft(
        &store,
        Route::Households {},
        &form_name(None),
        draft.clone(),
        1,
    );
    assert!(error_beside(&html, "所属网格").is_some(), "{html}");
    draft["grid"] = grid.to_string().into();
    let html = save_household_draft(&store, Route::Households {}, &form_name(None), draft, 2);
    assert!(html.contains("已立户，待同步上传"), "{html}");
    assert!(
        html.contains("新村路 8 号"),
        "the new household is listed at once:\n{html}"
    );
    let s = store.lock().unwrap();
    let found: Vec<_> = s
        .households(&HouseholdQuery::default(), today())
        .unwrap()
        .into_iter()
        .filter(|c| c.address == "新村路 8 号")
        .collect();
    assert_eq!(found.len(), 1);
    let h = s.household(found[0].id).unwrap();
    assert_eq!((h.grid_id, h.house_id), (grid, None));
}

#[test]
fn a_report_for_a_household_keeps_its_link_on_every_kind() {
    let (_dir, store, _county, _scope) = demo_store();
    let hh = store
        .households(&HouseholdQuery::default(), today())
        .unwrap()[0]
        .clone();
    let store = shared(store);
    for kind in ["hazard", "opinion", "dispute", "livelihood", "other"] {
        let html = render(
            &store,
            Route::HouseholdReport {
                id: hh.id,
                kind: kind.into(),
            },
        );
        assert!(
            html.contains("为此户上报：") && html.contains(&hh.address),
            "{kind}: which household it is for:\n{html}"
        );
        // The kind chooser stays on the household's report routes.
        for other in ["hazard", "opinion", "emergency", "other"] {
            assert!(
                html.contains(&format!(r#"href="/households/{}/report/{other}""#, hh.id)),
                "{kind} → {other}:\n{html}"
            );
        }
        // Only the tab bar's 上报 starts a plain report; no chooser link drops the household.
        assert_eq!(
            html.matches(r#"href="/report/"#).count(),
            1,
            "{kind}: a link drops the household"
        );
    }
    // Started from Report, the chooser is the plain one.
    let html = render(
        &store,
        Route::Report {
            kind: "hazard".into(),
        },
    );
    assert!(html.contains(r#"href="/report/opinion""#), "{html}");
}
