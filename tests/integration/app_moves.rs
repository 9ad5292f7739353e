//! The 办理 panel on a record's page (dioxus-ssr): it offers exactly the worker's moves of the
//! record's lifecycle for its status now, and each move does what the worker depends on (the
//! county's note and the edit on a returned record, satisfaction where the points read it, a
//! confirm step to void, a refusal when the county moved the record meanwhile).

use std::any::Any;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use dioxus::dioxus_core::{ElementId, Mutation};
use dioxus::html::{PlatformEventData, SerializedHtmlEventConverter, SerializedMouseData};
use dioxus::prelude::*;
use gridwalk::app::platform::{FixedLocation, NoCamera};
use gridwalk::app::sync_port::NoSyncClient;
use gridwalk::app::views::moves::{Move, make_move, make_move_with_photos, panel_moves};
use gridwalk::app::{App, AppProps, Route, Services};
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::GeoPoint;
use gridwalk::domain::lifecycle::{Status, lifecycle, worker_moves};
use gridwalk::domain::model::{
    Common, Dispute, EntityKind, Event as Matter, Hazard, Party, StatusChange,
};
use gridwalk::store::{Store, StoreError};
use gridwalk::wire::{Change, Lane, Op, PullResponse};

use crate::util::{demo_store, now, today};

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

fn render(store: &Arc<Mutex<Store>>, id: uuid::Uuid) -> String {
    Screen::open(store, id).html()
}

/// The moves the rendered panel offers, by status code.
fn offered(html: &str) -> Vec<String> {
    html.match_indices("data-move=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// A record's page in a virtual DOM, tapped as the worker taps it.
struct Screen {
    d: VirtualDom,
    edits: Vec<Mutation>,
    _rt: tokio::runtime::Runtime,
}

impl Screen {
    fn open(store: &Arc<Mutex<Store>>, id: uuid::Uuid) -> Screen {
        dioxus::html::set_event_converter(Box::new(SerializedHtmlEventConverter));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut d = {
            let _g = rt.enter();
            VirtualDom::new_with_props(
                App,
                AppProps {
                    services: services(store.clone(), Route::RecordPage { id }),
                },
            )
        };
        let edits = {
            let _g = rt.enter();
            d.rebuild_to_vec().edits
        };
        Screen { d, edits, _rt: rt }
    }

    /// The element that last got the dynamic attribute `name="value"`.
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

    fn tap(&mut self, name: &str, value: &str) {
        let id = self
            .find(name, value)
            .unwrap_or_else(|| panic!("no {name}={value} on the page:\n{}", self.html()));
        self.tap_id(id);
    }

    fn tap_id(&mut self, id: ElementId) {
        let _g = self._rt.enter();
        let event = Event::new(
            Rc::new(PlatformEventData::new(Box::<SerializedMouseData>::default())) as Rc<dyn Any>,
            true,
        );
        self.d.runtime().handle_event("click", event, id);
        let more = self.d.render_immediate_to_vec().edits;
        self.edits.extend(more);
    }

    fn html(&self) -> String {
        dioxus_ssr::render(&self.d)
    }
}

/// The county moves record `id` to `to` (as a pull brings it), with a note in its history.
fn county_moves(store: &mut Store, id: uuid::Uuid, kind: EntityKind, to: Status, note: &str) {
    let any = store.any_record(id).unwrap();
    let from = any.common().status;
    let mut data = any.to_json();
    data["status"] = serde_json::json!(to.code());
    let mut history = store.status_history(id).unwrap();
    history.push(StatusChange {
        record_id: id,
        from,
        to,
        at: now(),
        actor: "county".into(),
        note: Some(note.to_owned()).filter(|n| !n.is_empty()),
    });
    let seq = store
        .meta("test-seq")
        .unwrap()
        .map_or(1000, |s| s.parse::<i64>().unwrap())
        + 1;
    store.set_meta("test-seq", &seq.to_string()).unwrap();
    let page = PullResponse {
        cursor: seq,
        changes: vec![Change {
            history: Some(history),
            ..Change::whole(seq, kind, id, data)
        }],
        base: 0,
        more: false,
        cadence: None,
        rejected: Vec::new(),
    };
    store.apply_pull(&page, now()).unwrap();
    // The device's own moves went up with the push before this pull.
    if let Some(last) = store.outbox(Lane::Normal, 1000).unwrap().last() {
        store.ack_outbox(Lane::Normal, last.seq).unwrap();
    }
}

fn hazard(store: &Store) -> Hazard {
    let grid = store.grids().unwrap()[0].id;
    Hazard {
        common: Common::new(Domain::Hazard, grid, "worker-a", now() - Duration::hours(2)),
        category: HazardCategory::Fire,
        severity: Severity::High,
        description: "楼道堆放杂物堵塞消防通道".into(),
        place: "3号楼一单元".into(),
        owner: None,
        due_date: None,
    }
}

fn dispute(store: &Store) -> Dispute {
    let grid = store.grids().unwrap()[0].id;
    Dispute {
        common: Common::new(
            Domain::Dispute,
            grid,
            "worker-a",
            now() - Duration::hours(2),
        ),
        category: DisputeCategory::Neighbor,
        summary: "两户因排水沟堵塞发生争执".into(),
        parties: vec![
            Party {
                name: "张三".into(),
                role: PartyRole::Applicant,
                phone: None,
                person_id: None,
            },
            Party {
                name: "李四".into(),
                role: PartyRole::Respondent,
                phone: None,
                person_id: None,
            },
        ],
        follow_up: None,
    }
}

fn event(store: &Store) -> Matter {
    let grid = store.grids().unwrap()[0].id;
    Matter::new(
        Common::new(
            Domain::Livelihood,
            grid,
            "worker-a",
            now() - Duration::hours(2),
        ),
        Domain::Livelihood,
        "路灯不亮".into(),
        "村口两盏路灯不亮，夜间行人不便".into(),
    )
}

#[test]
fn the_panel_offers_exactly_the_workers_moves_in_every_status() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    let d = dispute(&store);
    store.create_record(&d, now() - Duration::hours(2)).unwrap();
    let store = Arc::new(Mutex::new(store));
    for (id, kind, domain) in [
        (h.common.id, EntityKind::Hazard, Domain::Hazard),
        (d.common.id, EntityKind::Dispute, Domain::Dispute),
    ] {
        for status in lifecycle(domain).statuses() {
            if status == Status::Draft {
                continue;
            }
            county_moves(&mut store.lock().unwrap(), id, kind, status, "");
            let html = render(&store, id);
            let want: Vec<String> = panel_moves(domain, status)
                .iter()
                .map(|s| s.code().to_owned())
                .collect();
            assert_eq!(offered(&html), want, "{domain:?} in {status}:\n{html}");
            assert_eq!(
                panel_moves(domain, status),
                worker_moves(domain, status),
                "hazards and disputes are offered every move of the worker"
            );
            if want.is_empty() {
                assert!(html.contains("现在没有需要您办理的步骤"), "{status}");
            }
        }
    }
    // The labels the worker reads, for a freshly reported hazard.
    county_moves(
        &mut store.lock().unwrap(),
        h.common.id,
        EntityKind::Hazard,
        Status::Reported,
        "",
    );
    let html = render(&store, h.common.id);
    assert!(html.contains("办理") && html.contains("就地化解") && html.contains("作废"));
    assert!(
        !html.contains("申请复查"),
        "no recheck before it is rectified"
    );
}

#[test]
fn a_returned_hazard_shows_the_county_note_and_resubmits_once_however_often_tapped() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    let id = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    county_moves(
        &mut store,
        id,
        EntityKind::Hazard,
        Status::Returned,
        "请写明堆放的是什么杂物",
    );
    let store = Arc::new(Mutex::new(store));
    let html = render(&store, id);
    assert!(
        html.contains("退回意见：") && html.contains("请写明堆放的是什么杂物"),
        "{html}"
    );
    assert_eq!(offered(&html), vec!["REPORTED", "VOID"]);
    assert!(html.contains("修改后重新上报"));

    let mut screen = Screen::open(&store, id);
    screen.tap("data-move", "REPORTED");
    let html = screen.html();
    assert!(
        html.contains("id=\"move-text\""),
        "the text is offered for editing"
    );
    assert!(
        html.contains("楼道堆放杂物堵塞消防通道"),
        "starting from what was filed"
    );
    let submit = screen
        .find("data-act", "move-submit")
        .expect("the submit button");
    screen.tap_id(submit);
    screen.tap_id(submit);
    let s = store.lock().unwrap();
    assert_eq!(s.any_record(id).unwrap().common().status, Status::Reported);
    let moves: Vec<_> = s
        .outbox(Lane::Normal, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.record_id == id && e.op == Op::Transition)
        .collect();
    assert_eq!(moves.len(), 1, "a double tap resubmits once");
    assert_eq!(moves[0].fields["status"], "REPORTED");
    assert_eq!(moves[0].fields["from"], "RETURNED");
}

#[test]
fn voiding_takes_a_reason_and_a_confirm_tap() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    let id = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    let store = Arc::new(Mutex::new(store));
    let mut screen = Screen::open(&store, id);
    screen.tap("data-move", "VOID");
    // First tap: asks to confirm, nothing written.
    screen.tap("data-act", "move-submit");
    let html = screen.html();
    assert!(html.contains("确定作废吗"), "{html}");
    assert!(html.contains("确认作废"));
    let status = |s: &Arc<Mutex<Store>>| s.lock().unwrap().any_record(id).unwrap().common().status;
    assert_eq!(status(&store), Status::Reported);
    // Confirmed without a reason: refused beside the reason, still not void.
    screen.tap("data-act", "move-confirm");
    let html = screen.html();
    assert!(html.contains("作废原因"), "{html}");
    assert!(html.contains("field-error"), "{html}");
    assert_eq!(status(&store), Status::Reported);
    drop(screen);
    // With a reason (the draft, as typed), two taps void it.
    {
        let s = store.lock().unwrap();
        gridwalk::app::drafts::save(
            &s,
            &format!("move:{id}"),
            &("VOID", "与昨天那条重复", "SATISFIED", None::<String>),
        )
        .unwrap();
    }
    let mut screen = Screen::open(&store, id);
    let html = screen.html();
    assert!(html.contains("与昨天那条重复"), "the draft is back: {html}");
    screen.tap("data-act", "move-submit");
    screen.tap("data-act", "move-confirm");
    assert_eq!(status(&store), Status::Void);
    let h = store.lock().unwrap().status_history(id).unwrap();
    assert_eq!(h.last().unwrap().note.as_deref(), Some("与昨天那条重复"));
}

#[test]
fn a_move_the_county_overtook_is_refused_in_chinese_before_it_is_queued() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    let id = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    gridwalk::app::drafts::save(
        &store,
        &format!("move:{id}"),
        &("RECTIFIED", "已清理杂物", "SATISFIED", None::<String>),
    )
    .unwrap();
    let store = Arc::new(Mutex::new(store));
    let mut screen = Screen::open(&store, id);
    // The county confirms it (a sync) while the form is open.
    county_moves(
        &mut store.lock().unwrap(),
        id,
        EntityKind::Hazard,
        Status::Confirmed,
        "",
    );
    let queued = store.lock().unwrap().outbox_len().unwrap();
    screen.tap("data-act", "move-submit");
    let html = screen.html();
    assert!(
        html.contains("现为「已确认」，不能直接改为「已整改」"),
        "{html}"
    );
    let s = store.lock().unwrap();
    assert_eq!(s.any_record(id).unwrap().common().status, Status::Confirmed);
    assert_eq!(s.outbox_len().unwrap(), queued, "nothing queued");
}

#[test]
fn settling_an_event_on_the_spot_keeps_satisfaction_where_the_points_read_it() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let e = event(&store);
    let id = e.common.id;
    store.create_record(&e, now() - Duration::hours(2)).unwrap();
    let m = Move {
        urgency: None,
        place: None,
        to: Status::Resolved,
        note: "  ".into(),
        satisfaction: Satisfaction::Basic,
        text: None,
    };
    match make_move(&mut store, id, &m, today(), now()) {
        Err(StoreError::Invalid(v)) => assert!(v.for_field("note").is_some(), "{v:?}"),
        other => panic!("a note is required: {other:?}"),
    }
    let m = Move {
        urgency: None,
        place: None,
        note: "已联系电工修好".into(),
        ..m
    };
    make_move(&mut store, id, &m, today(), now()).unwrap();
    let e: Matter = store.record(id).unwrap();
    assert_eq!(e.common.status, Status::Resolved);
    assert_eq!(e.satisfaction, Some(Satisfaction::Basic));
    let points = store.my_points().unwrap();
    assert!(
        points
            .iter()
            .any(|p| p.subject == Some(id) && p.reason == "居民满意度" && p.points == 1),
        "{points:?}"
    );
    // Resubmitting a returned hazard with an edit: the edit and the move, both queued.
    let h = hazard(&store);
    let hid = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    county_moves(
        &mut store,
        hid,
        EntityKind::Hazard,
        Status::Returned,
        "写明杂物",
    );
    let m = Move {
        urgency: None,
        place: None,
        to: Status::Reported,
        note: String::new(),
        satisfaction: Satisfaction::Satisfied,
        text: Some("楼道堆放纸箱和旧家具，堵塞消防通道".into()),
    };
    make_move(&mut store, hid, &m, today(), now()).unwrap();
    let h: Hazard = store.record(hid).unwrap();
    assert_eq!(h.common.status, Status::Reported);
    assert_eq!(h.description, "楼道堆放纸箱和旧家具，堵塞消防通道");
    let ops: Vec<Op> = store
        .outbox(Lane::Normal, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.record_id == hid)
        .map(|e| e.op)
        .collect();
    assert_eq!(ops, vec![Op::Update, Op::Transition]);
    // A dispute's follow-up keeps its satisfaction in the follow-up and moves to 回访.
    let dsp = dispute(&store);
    let did = dsp.common.id;
    store
        .create_record(&dsp, now() - Duration::hours(2))
        .unwrap();
    for to in [Status::Mediating, Status::Success, Status::FollowUp] {
        let m = Move {
            urgency: None,
            place: None,
            to,
            note: "双方同意疏通水沟".into(),
            satisfaction: Satisfaction::Satisfied,
            text: None,
        };
        make_move(&mut store, did, &m, today(), now()).unwrap();
    }
    let dsp: Dispute = store.record(did).unwrap();
    assert_eq!(dsp.common.status, Status::FollowUp);
    assert_eq!(
        dsp.follow_up.map(|f| f.satisfaction),
        Some(Satisfaction::Satisfied)
    );
}

#[test]
fn asking_for_a_recheck_needs_a_photo_kept_with_the_record_in_the_move() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    let id = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    for to in [Status::Confirmed, Status::Rectifying, Status::Rectified] {
        county_moves(&mut store, id, EntityKind::Hazard, to, "");
    }
    gridwalk::app::drafts::save(
        &store,
        &format!("move:{id}"),
        &(
            "RECHECK",
            "杂物已清走，通道畅通",
            "SATISFIED",
            None::<String>,
        ),
    )
    .unwrap();
    let store = Arc::new(Mutex::new(store));
    let mut screen = Screen::open(&store, id);
    assert!(screen.html().contains("现场照片（必须）"));
    let queued = store.lock().unwrap().outbox_len().unwrap();
    // Without a photo: refused beside the field, the note kept, nothing queued.
    screen.tap("data-act", "move-submit");
    let html = screen.html();
    assert!(html.contains("请填写现场照片"), "{html}");
    assert!(html.contains("杂物已清走，通道畅通"), "the note was lost");
    {
        let s = store.lock().unwrap();
        assert_eq!(s.any_record(id).unwrap().common().status, Status::Rectified);
        assert_eq!(s.outbox_len().unwrap(), queued, "nothing queued");
    }
    // With a photo staged: the move is made and the photo goes with the record.
    let form = gridwalk::app::views::moves::photo_form(id);
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/photos/pole-gps.jpg"
    ))
    .unwrap();
    let sha = store
        .lock()
        .unwrap()
        .stage_photo(form, &bytes, "image/jpeg", "site.jpg", now())
        .unwrap();
    screen.tap("data-act", "move-submit");
    let s = store.lock().unwrap();
    let rec = s.any_record(id).unwrap();
    assert_eq!(rec.common().status, Status::Recheck);
    assert!(
        rec.to_json()["photos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == &serde_json::json!(sha)),
        "{}",
        rec.to_json()
    );
    assert!(
        s.staged_photos(form).unwrap().is_empty(),
        "the draft let go"
    );
    assert!(
        s.pending_photos().unwrap().iter().any(|p| p.sha256 == sha),
        "the photo waits for upload"
    );
}

#[test]
fn marking_rectified_takes_a_photo_but_does_not_need_one() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    let id = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    for to in [Status::Confirmed, Status::Rectifying] {
        county_moves(&mut store, id, EntityKind::Hazard, to, "");
    }
    let m = Move {
        urgency: None,
        place: None,
        to: Status::Rectified,
        note: "已清理杂物".into(),
        satisfaction: Satisfaction::Satisfied,
        text: None,
    };
    let form = gridwalk::app::views::moves::photo_form(id);
    make_move_with_photos(&mut store, id, &m, Some(form), today(), now()).unwrap();
    assert_eq!(
        store.any_record(id).unwrap().common().status,
        Status::Rectified
    );
    // A move that takes no photo leaves a staged one where it is.
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/photos/pole-gps.jpg"
    ))
    .unwrap();
    let d = dispute(&store);
    let did = d.common.id;
    store.create_record(&d, now()).unwrap();
    let dform = gridwalk::app::views::moves::photo_form(did);
    store
        .stage_photo(dform, &bytes, "image/jpeg", "x.jpg", now())
        .unwrap();
    let m = Move {
        urgency: None,
        place: None,
        to: Status::Mediating,
        note: String::new(),
        satisfaction: Satisfaction::Satisfied,
        text: None,
    };
    make_move_with_photos(&mut store, did, &m, Some(dform), today(), now()).unwrap();
    assert_eq!(store.staged_photos(dform).unwrap().len(), 1);
}

#[test]
fn a_resubmitted_hazard_takes_a_new_place_and_urgency_never_below_its_severity() {
    let (_dir, mut store, _county, _scope) = demo_store();
    let h = hazard(&store);
    let id = h.common.id;
    store.create_record(&h, now() - Duration::hours(2)).unwrap();
    county_moves(
        &mut store,
        id,
        EntityKind::Hazard,
        Status::Returned,
        "请写明具体单元",
    );
    let store = Arc::new(Mutex::new(store));
    let html = {
        let mut screen = Screen::open(&store, id);
        screen.tap("data-move", "REPORTED");
        screen.html()
    };
    assert!(html.contains("id=\"move-urgency\""), "{html}");
    assert!(html.contains("id=\"move-place\""), "{html}");
    assert!(
        html.contains("3号楼一单元"),
        "the place to edit is the record's"
    );
    let mut s = store.lock().unwrap();
    // 重大 (High) makes it at least 紧急: a lower choice is raised to the floor.
    let m = Move {
        to: Status::Reported,
        note: String::new(),
        satisfaction: Satisfaction::Satisfied,
        text: None,
        urgency: Some(Urgency::Normal),
        place: Some(" 3号楼二单元楼道 ".into()),
    };
    make_move(&mut s, id, &m, today(), now()).unwrap();
    let after: Hazard = s.record(id).unwrap();
    assert_eq!(after.common.status, Status::Reported);
    assert_eq!(after.place, "3号楼二单元楼道");
    assert_eq!(after.common.urgency, Severity::High.urgency());
    // Another, resubmitted as 重大 (above the floor): taken as chosen, its place kept.
    let h2 = hazard(&s);
    let id2 = h2.common.id;
    s.create_record(&h2, now() - Duration::hours(2)).unwrap();
    county_moves(&mut s, id2, EntityKind::Hazard, Status::Returned, "再核实");
    let m = Move {
        urgency: Some(Urgency::Major),
        place: None,
        ..m
    };
    make_move(&mut s, id2, &m, today(), now()).unwrap();
    let after: Hazard = s.record(id2).unwrap();
    assert_eq!(after.common.status, Status::Reported);
    assert_eq!(after.common.urgency, Urgency::Major);
    assert_eq!(after.place, "3号楼一单元", "the place kept");
}
