//! The village office's relay as the worker meets it (dioxus-ssr): a record everything unsent
//! of which the office holds reads 已交村办 beside its status, the Sync screen counts what waits
//! and what the office holds and says which way the last sync went, and the Settings field for
//! the relay's address refuses a bad address beside itself, saying what to type.

use std::any::Any;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use dioxus::dioxus_core::{ElementId, Mutation};
use dioxus::html::{
    PlatformEventData, SerializedFormData, SerializedHtmlEventConverter, SerializedMouseData,
};
use dioxus::prelude::*;
use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::{App, AppProps, Route, Services};
use gridwalk::domain::codes::{Domain, HazardCategory, Lang, Severity};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::model::{Common, Hazard};
use gridwalk::store::Store;
use gridwalk::store::remote::{LAST_SYNC_VIA, VIA_RELAY};
use gridwalk::wire::Lane;

use crate::util::{demo_store, now};

fn services(store: Arc<Mutex<Store>>, start: Route) -> Services {
    Services {
        db_path: None,
        store: Some(store),
        location: Arc::new(FixedLocation::new(
            GeoPoint::new(116.4, 28.05, Some(5.0)).unwrap(),
            0.0,
        )),
        camera: Arc::new(NoCamera),
        sync: Arc::new(NoSyncClient),
        clock: Arc::new(now),
        fix_interval_ms: 60_000,
        start: Some(start),
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

    fn id_of(&self, name: &str) -> ElementId {
        self.edits
            .iter()
            .rev()
            .find_map(|m| match m {
                Mutation::SetAttribute {
                    name: "data-act",
                    value: dioxus::dioxus_core::AttributeValue::Text(t),
                    id,
                    ..
                } if t == name => Some(*id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {name} on the screen:\n{}", self.html()))
    }

    fn fire(&mut self, name: &str, data: PlatformEventData, id: ElementId) {
        let _g = self.rt.enter();
        let event = Event::new(Rc::new(data) as Rc<dyn Any>, true);
        self.d.runtime().handle_event(name, event, id);
        let more = self.d.render_immediate_to_vec().edits;
        self.edits.extend(more);
    }

    fn tap(&mut self, name: &str) {
        let el = self.id_of(name);
        self.fire(
            "click",
            PlatformEventData::new(Box::<SerializedMouseData>::default()),
            el,
        );
    }

    fn type_into(&mut self, name: &str, text: &str) {
        let el = self.id_of(name);
        self.fire(
            "input",
            PlatformEventData::new(Box::new(SerializedFormData::new(text.into(), vec![]))),
            el,
        );
    }

    fn html(&self) -> String {
        dioxus_ssr::render(&self.d)
    }
}

fn render(store: &Arc<Mutex<Store>>, start: Route) -> String {
    let mut dom = VirtualDom::new_with_props(
        App,
        AppProps {
            services: services(store.clone(), start),
        },
    );
    dom.rebuild_in_place();
    dioxus_ssr::render(&dom)
}

fn hazard(store: &Store, description: &str) -> Hazard {
    let grid = store.grids().unwrap()[0].id;
    Hazard {
        common: Common::new(Domain::Hazard, grid, store.worker(), now()),
        category: HazardCategory::Fire,
        severity: Severity::Low,
        description: description.into(),
        place: "2号楼".into(),
        owner: None,
        due_date: None,
    }
}

/// The sync-state pill (`data-sync`) of the record card whose title holds `summary`.
fn pill_of(html: &str, summary: &str) -> String {
    let at = html
        .find(summary)
        .unwrap_or_else(|| panic!("no {summary}:\n{html}"));
    let rest = &html[at..];
    let p = rest.find("data-sync=\"").expect("a sync pill") + "data-sync=\"".len();
    rest[p..p + rest[p..].find('"').unwrap()].to_owned()
}

#[test]
fn app_relay_a_record_the_office_holds_reads_held_and_the_sync_screen_counts_it() {
    let (_dir, mut s, _county, _scope) = demo_store();
    let held = hazard(&s, "楼道堆放杂物");
    let waiting = hazard(&s, "电动车飞线充电");
    s.create_record(&held, now()).unwrap(); // 1
    s.create_record(&waiting, now()).unwrap(); // 2
    // The office's relay took entry 1; the last sync went through it.
    s.hold(Lane::Normal, 1, now()).unwrap();
    s.set_meta(LAST_SYNC_VIA, VIA_RELAY).unwrap();
    let store = Arc::new(Mutex::new(s));

    let html = render(&store, Route::Records {});
    assert_eq!(pill_of(&html, "楼道堆放杂物"), "held");
    assert_eq!(pill_of(&html, "电动车飞线充电"), "unsent");
    assert!(html.contains("已交村办"), "{html}");

    let html = render(&store, Route::SyncPage {});
    let count = |id: &str| {
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}:\n{html}"));
        let rest = &html[at..];
        let s = rest.find("<strong>").unwrap() + "<strong>".len();
        rest[s..s + rest[s..].find('<').unwrap()].to_owned()
    };
    assert_eq!(count("sync-pending"), "1", "待上传");
    assert_eq!(count("sync-held"), "1", "已交村办");
    assert!(html.contains("上次同步：经村办中转站"), "{html}");

    // The county acknowledges it: 已上传, and nothing is held any more.
    store
        .lock()
        .unwrap()
        .acknowledge(Lane::Normal, 1, now())
        .unwrap();
    let html = render(&store, Route::Records {});
    assert_eq!(pill_of(&html, "楼道堆放杂物"), "sent");
    assert!(!render(&store, Route::SyncPage {}).contains("id=\"sync-held\""));
}

#[test]
fn app_relay_the_settings_field_refuses_a_bad_address_beside_itself() {
    let (_dir, s, _county, _scope) = demo_store();
    let store = Arc::new(Mutex::new(s));
    let mut screen = Screen::open(services(store.clone(), Route::Settings {}));
    screen.type_into("settings-relay", "192.168.1.10:8090");
    screen.tap("settings-relay-save");
    let html = screen.html();
    let at = html
        .find(r#"<span class="field-label">村办中转站地址</span>"#)
        .expect("the field, by its label");
    let field = &html[at..at + html[at..].find("</label>").unwrap()];
    assert!(
        field.contains("field-error")
            && field.contains("村办中转站地址须以 http:// 或 https:// 开头")
            && field.contains("http://192.168.1.10:8090"),
        "{field}"
    );
    assert_eq!(store.lock().unwrap().relay_url().unwrap(), None);

    // A good one is kept; blank clears it.
    screen.type_into("settings-relay", " http://192.168.1.10:8090/ ");
    screen.tap("settings-relay-save");
    assert!(screen.html().contains("已保存：http://192.168.1.10:8090"));
    assert_eq!(
        store.lock().unwrap().relay_url().unwrap().as_deref(),
        Some("http://192.168.1.10:8090")
    );
    screen.type_into("settings-relay", "");
    screen.tap("settings-relay-save");
    assert_eq!(store.lock().unwrap().relay_url().unwrap(), None);
}
