//! Every kind of local write lands in the outbox in the same transaction, with the changed
//! fields and the base version; a refused write leaves neither data nor an outbox entry.

use chrono::Duration;
use gridwalk::domain::codes::*;
use gridwalk::domain::geo::{GeoPoint, TrackPoint};
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::*;
use gridwalk::domain::validate::Problem;
use gridwalk::store::people::RevealField;
use gridwalk::store::{Store, StoreError};
use gridwalk::wire::{Lane, Op, OutboxEntry};
use uuid::Uuid;

use crate::util::{demo_store, now, today};

fn last(store: &Store, lane: Lane) -> OutboxEntry {
    store
        .outbox(lane, 100_000)
        .unwrap()
        .pop()
        .expect("an outbox entry")
}

fn hazard(grid: Uuid) -> Hazard {
    let mut c = Common::new(Domain::Hazard, grid, "worker-a", now());
    c.location = Some(GeoPoint::new(116.4, 28.1, Some(6.0)).unwrap());
    Hazard {
        common: c,
        category: HazardCategory::CorridorEbike,
        severity: Severity::Medium,
        description: "楼道内电动车飞线充电".into(),
        place: "3组12号".into(),
        owner: None,
        due_date: None,
    }
}

#[test]
fn a_new_record_is_one_create_entry_with_every_field() {
    let (_d, mut s, county, _) = demo_store();
    let grid = county.grids[0].grid.id;
    assert_eq!(
        s.outbox_len().unwrap(),
        0,
        "seeded remote state is not in the outbox"
    );
    let h = hazard(grid);
    s.create_record(&h, now()).unwrap();
    let e = last(&s, Lane::Normal);
    assert_eq!(
        (e.kind, e.op, e.record_id, e.base_version, e.seq),
        (EntityKind::Hazard, Op::Create, h.common.id, 0, 1)
    );
    assert_eq!(e.fields["category"], "CORRIDOR_EBIKE");
    assert_eq!(e.fields["description"], "楼道内电动车飞线充电");
    assert_eq!(e.fields["status"], "REPORTED");
    assert_eq!(e.edited_at, now());
    let back: Hazard = s.record(h.common.id).unwrap();
    assert_eq!(back, h);
}

#[test]
fn an_edit_sends_only_changed_fields_on_the_server_version() {
    let (_d, mut s, _county, scope) = demo_store();
    // A record that came from the server has version 1.
    let rec = scope
        .records
        .iter()
        .find(|r| r.domain() == Domain::Hazard)
        .expect("a demo hazard");
    let id = rec.common().id;
    s.update_record::<Hazard>(id, |h| h.place = "村口桥头".into(), now())
        .unwrap();
    let e = last(&s, Lane::Normal);
    assert_eq!((e.op, e.base_version), (Op::Update, 1));
    assert_eq!(e.fields.len(), 1, "{:?}", e.fields);
    assert_eq!(e.fields["place"], "村口桥头");
    // No change, no entry.
    let before = s.outbox_len().unwrap();
    s.update_record::<Hazard>(id, |_| {}, now()).unwrap();
    assert_eq!(s.outbox_len().unwrap(), before);
    // Status changes go through transitions only.
    let err = s
        .update_record::<Hazard>(id, |h| h.common.status = Status::Closed, now())
        .unwrap_err();
    assert!(err.to_string().contains("status"), "{err}");
}

#[test]
fn every_record_type_and_child_write_lands_in_the_outbox() {
    let (_d, mut s, county, scope) = demo_store();
    let grid = county.grids[0].grid.id;
    let mut expected: Vec<(EntityKind, Op)> = Vec::new();

    let h = hazard(grid);
    s.create_record(&h, now()).unwrap();
    expected.push((EntityKind::Hazard, Op::Create));
    s.transition(h.common.id, Status::Rectified, Some("当场整改"), now())
        .unwrap();
    expected.push((EntityKind::Hazard, Op::Transition));

    let o = Opinion {
        common: Common::new(Domain::Opinion, grid, "worker-a", now()),
        category: OpinionCategory::Infrastructure,
        content: "希望修补通组道路".into(),
        raised_by: None,
        deliberation: Some(DeliberationStage::Proposed),
        deliberation_notes: None,
    };
    s.create_record(&o, now()).unwrap();
    expected.push((EntityKind::Opinion, Op::Create));

    let person = &scope.people[0];
    let d = Dispute {
        common: Common::new(Domain::Dispute, grid, "worker-a", now()),
        category: DisputeCategory::Neighbor,
        summary: "屋檐滴水纠纷".into(),
        parties: vec![Party {
            name: person.name.clone(),
            role: PartyRole::Applicant,
            phone: None,
            person_id: Some(person.id),
        }],
        follow_up: None,
    };
    s.create_record(&d, now()).unwrap();
    expected.push((EntityKind::Dispute, Op::Create));
    let session = MediationSession {
        id: new_id(),
        dispute_id: d.common.id,
        held_on: today(),
        method: MediationMethod::OnSite,
        participants: vec!["乐美阳".into()],
        notes: "现场调处".into(),
        agreement: Some("互相谅解".into()),
        author: "worker-a".into(),
        created_at: now(),
    };
    s.add_mediation_session(&session, now()).unwrap();
    expected.push((EntityKind::MediationSession, Op::Append));
    expected.push((EntityKind::Dispute, Op::Transition)); // REGISTERED → MEDIATING
    assert_eq!(
        s.record::<Dispute>(d.common.id).unwrap().common.status,
        Status::Mediating
    );
    assert_eq!(s.mediation_sessions(d.common.id).unwrap(), vec![session]);

    let p = Patrol {
        common: Common::new(Domain::Patrol, grid, "worker-a", now() - Duration::hours(1)),
        started_at: now() - Duration::hours(1),
        ended_at: None,
        notes: String::new(),
        distance_m: 0.0,
    };
    s.create_record(&p, now()).unwrap();
    expected.push((EntityKind::Patrol, Op::Create));
    let pts = PatrolPoints {
        id: new_id(),
        patrol_id: p.common.id,
        points: (0..3)
            .map(|i| TrackPoint {
                at: now() - Duration::minutes(30 - i * 10),
                lon: 116.4,
                lat: 28.10 + i as f64 * 0.001,
                accuracy_m: Some(5.0),
            })
            .collect(),
    };
    let dist = s.append_patrol_points(&pts, now()).unwrap();
    assert!((dist - 222.4).abs() < 1.0, "{dist}");
    expected.push((EntityKind::PatrolPoints, Op::Append));
    s.finish_patrol(p.common.id, now(), "未发现异常", now())
        .unwrap();
    expected.push((EntityKind::Patrol, Op::Update));
    expected.push((EntityKind::Patrol, Op::Transition));
    let late = s.append_patrol_points(&pts, now()).unwrap_err();
    assert!(
        matches!(&late, StoreError::Invalid(e) if e.problem("patrol_id") == Some(&Problem::NotRecording)),
        "{late}"
    );
    // The server sends the batch back with the next pulls (twice here, a page repeated after
    // a lost answer): its points are kept once.
    let echo = gridwalk::wire::PullResponse {
        changes: vec![gridwalk::wire::Change::whole(
            9_000,
            EntityKind::PatrolPoints,
            pts.id,
            serde_json::to_value(&pts).unwrap(),
        )],
        cursor: 9_000,
        base: 0,
        more: false,
        cadence: None,
        rejected: Vec::new(),
    };
    s.apply_pull(&echo, now()).unwrap();
    s.apply_pull(&echo, now()).unwrap();
    assert_eq!(s.patrol_track(p.common.id).unwrap(), pts.points);

    let ev = Event::new(
        Common::new(Domain::Livelihood, grid, "worker-a", now()),
        Domain::Livelihood,
        "代办认证".into(),
        "为老人代办养老金资格认证".into(),
    );
    s.create_record(&ev, now()).unwrap();
    expected.push((EntityKind::Livelihood, Op::Create));

    let sha = s
        .attach_photo(
            h.common.id,
            b"\xff\xd8\xff\xe0 not really a jpeg",
            "image/jpeg",
            now(),
        )
        .unwrap();
    expected.push((EntityKind::Photo, Op::Append));
    // The same photo again is stored once and not sent again.
    assert_eq!(
        s.attach_photo(
            h.common.id,
            b"\xff\xd8\xff\xe0 not really a jpeg",
            "image/jpeg",
            now()
        )
        .unwrap(),
        sha
    );
    assert_eq!(
        s.record::<Hazard>(h.common.id).unwrap().common.photos,
        vec![sha.clone()]
    );
    assert_eq!(s.photo(&sha).unwrap().1, "image/jpeg");

    let hh = &scope.households[0];
    s.update_household(
        hh.id,
        |h| h.address = format!("{}（新门牌）", h.address),
        now(),
    )
    .unwrap();
    expected.push((EntityKind::Household, Op::Update));
    s.update_person(person.id, |p| p.phone = Some("13907941234".into()), now())
        .unwrap();
    expected.push((EntityKind::Person, Op::Update));
    let newborn = Person {
        id: new_id(),
        household_id: hh.id,
        name: "王小宝".into(),
        sex: Sex::Male,
        birth_date: Some(today() - Duration::days(20)),
        id_type: IdType::ResidentCard,
        id_number: None,
        phone: None,
        person_type: PersonType::Household,
        residence: ResidenceStatus::Both,
        status: PersonStatus::Active,
        relation: Relation::Grandchild,
        tags: vec![],
        status_on: None,
        origin: None,
    };
    s.add_person(&newborn, now()).unwrap();
    expected.push((EntityKind::Person, Op::Create));
    let house = House {
        id: new_id(),
        grid_id: grid,
        number: "88".into(),
        address: "山下村1组88号".into(),
        use_: HouseUse::Rental,
        location: None,
    };
    s.add_house(&house, now()).unwrap();
    expected.push((EntityKind::House, Op::Create));
    let household = Household {
        id: new_id(),
        grid_id: grid,
        house_id: Some(house.id),
        head_id: None,
        address: "山下村1组88号".into(),
        location: None,
    };
    s.add_household(&household, now()).unwrap();
    expected.push((EntityKind::Household, Op::Create));
    let v = Visit {
        id: new_id(),
        household_id: hh.id,
        grid_id: grid,
        author: "worker-a".into(),
        visited_on: today(),
        purpose: VisitPurpose::Care,
        notes: "老人身体好".into(),
        next_due: None,
        location: None,
        created_at: now(),
    };
    s.record_visit(&v, now()).unwrap();
    expected.push((EntityKind::Visit, Op::Append));
    let shown = s.reveal(person.id, RevealField::IdNumber, now()).unwrap();
    assert_eq!(shown, person.id_number);
    expected.push((EntityKind::Audit, Op::Append));

    let got: Vec<(EntityKind, Op)> = s
        .outbox(Lane::Normal, 1000)
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.op))
        .collect();
    assert_eq!(got, expected);
    let seqs: Vec<u64> = s
        .outbox(Lane::Normal, 1000)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=expected.len() as u64).collect::<Vec<_>>(),
        "dense sequence"
    );
}

#[test]
fn emergencies_go_into_the_urgent_lane_with_their_reports() {
    let (_d, mut s, county, _) = demo_store();
    let grid = county.grids[0].grid.id;
    s.create_record(&hazard(grid), now()).unwrap();
    let mut c = Common::new(Domain::Emergency, grid, "worker-a", now());
    c.urgency = Urgency::Urgent;
    let e = Emergency {
        common: c,
        category: EmergencyCategory::Natural,
        level: EmergencyLevel::Iv,
        title: "山洪冲毁便桥".into(),
        occurred_at: now() - Duration::minutes(20),
    };
    s.create_record(&e, now()).unwrap();
    let rep = EmergencyReport {
        id: new_id(),
        emergency_id: e.common.id,
        stage: ReportStage::Update,
        text: "已转移群众2户".into(),
        casualties: Some(0),
        author: "worker-a".into(),
        created_at: now(),
    };
    s.add_emergency_report(&rep, now()).unwrap();
    s.add_emergency_report(
        &EmergencyReport {
            id: new_id(),
            ..rep.clone()
        },
        now(),
    )
    .unwrap();
    let urgent: Vec<(EntityKind, Op, u64)> = s
        .outbox(Lane::Urgent, 100)
        .unwrap()
        .iter()
        .map(|e| (e.kind, e.op, e.seq))
        .collect();
    assert_eq!(
        urgent,
        vec![
            (EntityKind::Emergency, Op::Create, 1),
            (EntityKind::EmergencyReport, Op::Append, 2),
            (EntityKind::Emergency, Op::Transition, 3),
            (EntityKind::EmergencyReport, Op::Append, 4),
            (EntityKind::Emergency, Op::Transition, 5), // 续报 again: UPDATE → UPDATE
        ]
    );
    assert_eq!(s.outbox(Lane::Normal, 100).unwrap().len(), 1);
    assert_eq!(s.emergency_reports(e.common.id).unwrap().len(), 2);
}

#[test]
fn a_refused_write_stores_nothing_and_says_which_field() {
    let (_d, mut s, county, _) = demo_store();
    let grid = county.grids[0].grid.id;
    let mut h = hazard(grid);
    h.description = "   ".into();
    h.common.location = Some(GeoPoint {
        lon: f64::INFINITY,
        lat: 28.0,
        accuracy_m: None,
    });
    match s.create_record(&h, now()) {
        Err(StoreError::Invalid(e)) => {
            assert_eq!(e.problem("description"), Some(&Problem::Required));
            assert_eq!(e.problem("location.lon"), Some(&Problem::NotFinite));
            // The worker reads it in Chinese, with the field as the form names it.
            let zh = e.message(Lang::Zh);
            assert!(zh.contains("描述") && zh.contains("经度"), "{zh}");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.record::<Hazard>(h.common.id).is_err());
    assert_eq!(s.outbox_len().unwrap(), 0);

    // An illegal transition names the record and both states, and changes nothing.
    let ok = hazard(grid);
    s.create_record(&ok, now()).unwrap();
    let err = s
        .transition(ok.common.id, Status::Closed, None, now())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&ok.common.id.to_string())
            && err.contains("REPORTED")
            && err.contains("CLOSED"),
        "{err}"
    );
    assert_eq!(
        s.record::<Hazard>(ok.common.id).unwrap().common.status,
        Status::Reported
    );
    assert_eq!(s.outbox_len().unwrap(), 1);
    assert!(s.status_history(ok.common.id).unwrap().is_empty());

    // A transition only a reviewer may make is refused on the device.
    let err = s
        .transition(ok.common.id, Status::Confirmed, None, now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Worker"), "{err}");

    // A visit for a household of another grid is refused.
    let stranger = Visit {
        id: new_id(),
        household_id: Uuid::now_v7(),
        grid_id: grid,
        author: "worker-a".into(),
        visited_on: today(),
        purpose: VisitPurpose::Routine,
        notes: String::new(),
        next_due: None,
        location: None,
        created_at: now(),
    };
    assert!(matches!(
        s.record_visit(&stranger, now()),
        Err(StoreError::NotFound {
            kind: "household",
            ..
        })
    ));
    assert_eq!(s.outbox_len().unwrap(), 1);
}

#[test]
fn acknowledged_entries_leave_and_the_rest_stay_in_order() {
    let (_d, mut s, county, _) = demo_store();
    let grid = county.grids[0].grid.id;
    for _ in 0..5 {
        s.create_record(&hazard(grid), now()).unwrap();
    }
    assert_eq!(s.ack_outbox(Lane::Normal, 3).unwrap(), 3);
    let left: Vec<u64> = s
        .outbox(Lane::Normal, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![4, 5]);
    assert_eq!(s.outbox_last_seq(Lane::Normal).unwrap(), 5);
}
