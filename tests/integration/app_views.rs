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
use gridwalk::app::platform::{FileCamera, FixedLocation};
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
        camera: Arc::new(FileCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(now),
        fix_interval_ms: 60_000,
        start: Some(start),
        lang: Lang::Zh,
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
