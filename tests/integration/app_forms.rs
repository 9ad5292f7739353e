//! View tests of the report forms of 特殊人群服务, 政策宣传, 民生服务 and 其他: each renders in
//! Chinese with its kind link, refuses a bad value beside its field (nothing filed, the draft
//! kept), and files an `Event` with its fields from the draft; the person chooser lists the
//! register without a managed tag.

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
use gridwalk::domain::codes::{Coded, Domain, Lang, LivelihoodMatter, ServiceKind, Tag, Urgency};
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::Event as Record;
use gridwalk::store::Store;
use gridwalk::store::records::RecordQuery;
use serde_json::json;

use crate::util::{demo_store, now};

fn services(store: Arc<Mutex<Store>>, kind: &str) -> Services {
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
        start: Some(Route::Report {
            kind: kind.to_owned(),
        }),
        lang: Lang::Zh,
        autosync: None,
    }
}

/// The form of `kind` opened on a store whose draft of it is `draft`; its first render's
/// mutations.
fn open(
    store: &Arc<Mutex<Store>>,
    kind: &str,
    draft: serde_json::Value,
) -> (VirtualDom, Vec<Mutation>) {
    dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
    gridwalk::app::drafts::save(&store.lock().unwrap(), kind, &draft).unwrap();
    let mut d = VirtualDom::new_with_props(
        App,
        AppProps {
            services: services(store.clone(), kind),
        },
    );
    let edits = d.rebuild_to_vec().edits;
    (d, edits)
}

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

fn click(dom: &mut VirtualDom, id: ElementId) {
    let event = Event::new(
        Rc::new(PlatformEventData::new(Box::<SerializedMouseData>::default())) as Rc<dyn Any>,
        true,
    );
    dom.runtime().handle_event("click", event, id);
    dom.render_immediate_to_vec();
}

/// Taps the form's submit button twice (a double tap) and returns the page as it then reads.
fn submit_twice(d: &mut VirtualDom, edits: &[Mutation], kind: &str) -> String {
    let submit = element_with(edits, "data-submit", kind).expect("the submit button");
    click(d, submit);
    click(d, submit);
    dioxus_ssr::render(d)
}

/// The records of `domain` filed by the form under test (the demo store holds older ones).
fn events(store: &Arc<Mutex<Store>>, domain: Domain) -> Vec<Record> {
    let s = store.lock().unwrap();
    s.records(&RecordQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.domain == domain && r.created_at == now())
        .map(|r| s.record::<Record>(r.id).unwrap())
        .collect()
}

/// The message shown beside the field labelled `label` (the `span.field-error` after it).
fn beside(html: &str, label: &str) -> Option<String> {
    let at = html.find(&format!(">{label}</span>"))?;
    let rest = &html[at..];
    let end = rest[1..].find("field-label").unwrap_or(rest.len() - 1);
    let part = &rest[..end];
    let e = part.find("field-error")?;
    let text = &part[e..];
    let from = text.find('>')? + 1;
    let to = text[from..].find('<')? + from;
    Some(text[from..to].to_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_duty_has_its_kind_link_and_renders_in_chinese() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let store = Arc::new(Mutex::new(store));
    for (kind, heading, submit) in [
        ("special-pop", "特殊人群服务", "提交服务记录"),
        ("publicity", "政策宣传", "提交宣传记录"),
        ("livelihood", "民生服务", "提交民生服务"),
        ("other", "其他", "提交"),
    ] {
        let (d, _) = open(&store, kind, json!({}));
        let html = dioxus_ssr::render(&d);
        assert!(
            html.contains(&format!("id=\"kind-{kind}\"")) && html.contains(heading),
            "{kind}: the kind chooser links it:\n{html}"
        );
        for shared in [
            "紧急程度",
            "拍照或选择照片",
            "位置（自动获取）",
            "草稿随输入自动保存",
            submit,
        ] {
            assert!(html.contains(shared), "{kind} lacks {shared}");
        }
        assert!(!html.contains("unknown report type"), "{kind}");
    }
}

#[test]
fn the_person_chooser_lists_the_register_without_managed_tags() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let managed: Vec<Tag> = Tag::ALL
        .iter()
        .copied()
        .filter(|t| t.is_managed())
        .collect();
    // Someone with a managed tag is in the register the chooser reads, without the tag.
    let all = store.people_served(None, 10_000).unwrap();
    assert!(!all.is_empty());
    let with_managed = {
        let ids: Vec<String> = all.iter().map(|p| p.id.to_string()).collect();
        ids.into_iter()
            .find(|id| {
                let p = store.person(id.parse().unwrap()).unwrap();
                p.tags.iter().any(|t| t.is_managed())
            })
            .expect("the demo grid has a person with a managed tag")
    };
    let p = all
        .iter()
        .find(|p| p.id.to_string() == with_managed)
        .unwrap();
    assert!(p.care_tags.iter().all(|t| !t.is_managed()));
    // Search by name narrows the list.
    let name = all[0].name.clone();
    let found = store.people_served(Some(&name), 8).unwrap();
    assert!(!found.is_empty() && found.iter().all(|p| p.name.contains(&name)));
    assert!(
        store
            .people_served(Some("不存在的名字"), 8)
            .unwrap()
            .is_empty()
    );

    let store = Arc::new(Mutex::new(store));
    let (d, _) = open(&store, "special-pop", json!({}));
    let html = dioxus_ssr::render(&d);
    assert!(
        html.contains("data-person="),
        "the chooser lists people:\n{html}"
    );
    for t in &managed {
        assert!(
            !html.contains(t.zh()),
            "managed tag {} shown:\n{html}",
            t.zh()
        );
    }
}

#[test]
fn a_special_population_record_names_the_person_and_the_service() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let person = store.people_served(None, 1).unwrap().remove(0);
    let store = Arc::new(Mutex::new(store));

    // Nothing chosen: refused beside each field, nothing filed, the typed text kept.
    let (mut d, edits) = open(&store, "special-pop", json!({"content": "上门看望"}));
    let html = submit_twice(&mut d, &edits, "special-pop");
    assert_eq!(
        beside(&html, "服务对象").as_deref(),
        Some("请选择服务对象"),
        "{html}"
    );
    assert_eq!(
        beside(&html, "服务内容").as_deref(),
        Some("请选择服务内容"),
        "{html}"
    );
    assert!(
        !html.contains("请填写标题"),
        "the title comes from the service:\n{html}"
    );
    assert!(html.contains("上门看望"));
    assert!(events(&store, Domain::SpecialPop).is_empty());

    let (mut d, edits) = open(
        &store,
        "special-pop",
        json!({"person_id": person.id.to_string(), "service": "COUNSELLING",
            "content": "与老人谈心，情绪稳定", "urgency": "URGENT"}),
    );
    let html = dioxus_ssr::render(&d);
    assert!(
        html.contains(&person.name),
        "the chosen person is shown:\n{html}"
    );
    submit_twice(&mut d, &edits, "special-pop");
    let filed = events(&store, Domain::SpecialPop);
    assert_eq!(filed.len(), 1, "a double tap files once");
    let e = &filed[0];
    assert_eq!(e.served_person_id, Some(person.id));
    assert_eq!(e.service, Some(ServiceKind::Counselling));
    assert_eq!(e.title, "心理疏导");
    assert_eq!(e.content, "与老人谈心，情绪稳定");
    assert_eq!(e.common.urgency, Urgency::Urgent);
    assert!(e.common.location.is_some());
}

#[test]
fn a_publicity_record_needs_a_place_and_a_positive_audience() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let store = Arc::new(Mutex::new(store));
    for (typed, said) in [
        ("0", "受众人数须为 1 到 100000 之间的人数（现为 0），请核对"),
        (
            "-5",
            "受众人数须为 1 到 100000 之间的人数（现为 -5），请核对",
        ),
        ("四十", "受众人数须为整数，如 0 或 3（现为「四十」）"),
    ] {
        let (mut d, edits) = open(
            &store,
            "publicity",
            json!({"topic": "防范电信诈骗", "place": "", "audience": typed, "content": "讲解诈骗手法"}),
        );
        let html = submit_twice(&mut d, &edits, "publicity");
        assert_eq!(
            beside(&html, "受众人数").as_deref(),
            Some(said),
            "{typed}:\n{html}"
        );
        assert_eq!(beside(&html, "宣传地点").as_deref(), Some("请填写宣传地点"));
        assert!(
            html.contains("请填写宣传地点"),
            "the note names the field as the form does"
        );
        assert!(html.contains("防范电信诈骗"), "the typed topic stays");
        assert!(events(&store, Domain::Publicity).is_empty());
    }
    let (mut d, edits) = open(
        &store,
        "publicity",
        json!({"topic": "防范电信诈骗", "place": "村委会", "audience": " 45 ", "content": "讲解诈骗手法"}),
    );
    submit_twice(&mut d, &edits, "publicity");
    let filed = events(&store, Domain::Publicity);
    assert_eq!(filed.len(), 1);
    let e = &filed[0];
    assert_eq!(
        (
            e.title.as_str(),
            e.place.as_deref(),
            e.audience,
            e.content.as_str()
        ),
        ("防范电信诈骗", Some("村委会"), Some(45), "讲解诈骗手法")
    );
}

#[test]
fn a_livelihood_record_names_the_matter_and_may_be_resolved_on_the_spot() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let household = store
        .households(&Default::default(), crate::util::today())
        .unwrap()
        .remove(0);
    let store = Arc::new(Mutex::new(store));

    let (mut d, edits) = open(&store, "livelihood", json!({"content": ""}));
    let html = submit_twice(&mut d, &edits, "livelihood");
    assert_eq!(
        beside(&html, "事项").as_deref(),
        Some("请选择事项"),
        "{html}"
    );
    assert_eq!(
        beside(&html, "办理情况").as_deref(),
        Some("请填写办理情况"),
        "{html}"
    );
    assert!(events(&store, Domain::Livelihood).is_empty());

    let (mut d, edits) = open(
        &store,
        "livelihood",
        json!({"matter": "INSURANCE", "household_id": household.id.to_string(),
            "content": "代办医保缴费", "resolved": true}),
    );
    let html = dioxus_ssr::render(&d);
    assert!(
        html.contains(&household.address),
        "the chosen household:\n{html}"
    );
    submit_twice(&mut d, &edits, "livelihood");
    let filed = events(&store, Domain::Livelihood);
    assert_eq!(filed.len(), 1);
    let e = &filed[0];
    assert_eq!(e.matter, Some(LivelihoodMatter::Insurance));
    assert_eq!(e.common.household_id, Some(household.id));
    assert_eq!(e.title, "医保社保");
    assert_eq!(e.common.status, Status::Resolved, "就地办结");
    let history = store.lock().unwrap().status_history(e.common.id).unwrap();
    assert!(
        history
            .iter()
            .any(|c| c.from == Status::Submitted && c.to == Status::Resolved),
        "{history:?}"
    );
}

#[test]
fn an_other_record_needs_a_title_and_content() {
    let rt = runtime();
    let _rt = rt.enter();
    let (_dir, store, _county, _scope) = demo_store();
    let store = Arc::new(Mutex::new(store));
    let (mut d, edits) = open(
        &store,
        "other",
        json!({"title": " ", "content": "村口路灯不亮"}),
    );
    let html = submit_twice(&mut d, &edits, "other");
    assert_eq!(
        beside(&html, "标题").as_deref(),
        Some("请填写标题"),
        "{html}"
    );
    assert!(beside(&html, "内容").is_none());
    assert!(events(&store, Domain::Other).is_empty());

    let (mut d, edits) = open(
        &store,
        "other",
        json!({"title": "路灯不亮", "content": "村口路灯三天不亮", "urgency": "MAJOR"}),
    );
    submit_twice(&mut d, &edits, "other");
    let filed = events(&store, Domain::Other);
    assert_eq!(filed.len(), 1);
    assert_eq!(filed[0].title, "路灯不亮");
    assert_eq!(filed[0].common.urgency, Urgency::Major);
    assert!(
        gridwalk::app::drafts::load::<serde_json::Value>(&store.lock().unwrap(), "other")
            .unwrap()
            .is_none_or(|v| v.is_null()),
        "the draft is gone once filed"
    );
}
