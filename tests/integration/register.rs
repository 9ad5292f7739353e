//! The household register kept on the phone: each write lands in the outbox as a create or as
//! the fields it changed, and each refusal names its field and writes nothing.

use chrono::{Duration, NaiveDate};
use gridwalk::domain::codes::*;
use gridwalk::domain::model::*;
use gridwalk::domain::validate::{IdNumber, IdNumberError, Problem};
use gridwalk::store::drafts::Filed;
use gridwalk::store::{Store, StoreError};
use gridwalk::wire::{Lane, Op, OutboxEntry};
use uuid::Uuid;

use crate::util::{demo_store, now, today};

/// A valid 居民身份证 number born on `birth`, sequence `seq` (odd: male, even: female).
pub fn id_number(birth: NaiveDate, seq: u32) -> String {
    let first17 = format!("360123{}{seq:03}", birth.format("%Y%m%d"));
    format!("{first17}{}", IdNumber::check_char(&first17))
}

fn last(store: &Store) -> OutboxEntry {
    store.outbox(Lane::Normal, 100_000).unwrap().pop().unwrap()
}

pub fn blank(household: Uuid) -> Person {
    Person {
        id: new_id(),
        household_id: household,
        name: String::new(),
        sex: Sex::Male,
        birth_date: None,
        id_type: IdType::ResidentCard,
        id_number: None,
        phone: None,
        person_type: PersonType::Household,
        residence: ResidenceStatus::Both,
        status: PersonStatus::Active,
        relation: Relation::Son,
        tags: vec![],
        status_on: None,
        origin: None,
    }
}

/// A household of the demo grid with at least two active members.
fn household(s: &Store) -> Uuid {
    s.households(&Default::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.members >= 2)
        .expect("a household of two")
        .id
}

fn invalid(r: Result<impl std::fmt::Debug, StoreError>) -> (String, Problem) {
    match r {
        Err(StoreError::Invalid(e)) => (e.errors[0].field.clone(), e.errors[0].problem.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_member_added_by_id_number_is_one_create_with_every_field() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let birth = NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
    let mut p = blank(hh);
    p.name = "刘建国".into();
    p.id_number = Some(id_number(birth, 13));
    p.birth_date = Some(birth);
    p.phone = Some("13907941234".into());
    let before = s.household_detail(hh, today()).unwrap().members.len();
    let filed = s
        .register_person(Some("person:x"), &p, Registration::Member, now())
        .unwrap();
    assert_eq!(filed, Filed::New { photos: 0 });
    let e = last(&s);
    assert_eq!(
        (e.kind, e.op, e.record_id),
        (EntityKind::Person, Op::Create, p.id)
    );
    assert_eq!(e.fields["name"], "刘建国");
    assert_eq!(e.fields["birth_date"], "1990-05-17");
    assert!(
        !e.fields.contains_key("status_on"),
        "no date until a change"
    );
    let d = s.household_detail(hh, today()).unwrap();
    assert_eq!(d.members.len(), before + 1);
    // A second tap with the same id adds nobody.
    let n = s.outbox_len().unwrap();
    assert_eq!(
        s.register_person(Some("person:x"), &p, Registration::Member, now())
            .unwrap(),
        Filed::Already
    );
    assert_eq!(s.outbox_len().unwrap(), n);
}

#[test]
fn a_wrong_check_digit_or_a_future_birth_is_refused_on_its_field() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let n0 = s.outbox_len().unwrap();
    let good = id_number(NaiveDate::from_ymd_opt(1990, 5, 17).unwrap(), 13);
    let last_char = if good.ends_with('0') { '1' } else { '0' };
    let bad = format!("{}{last_char}", &good[..17]);
    let mut p = blank(hh);
    p.name = "刘建国".into();
    p.id_number = Some(bad);
    let (field, problem) = invalid(s.register_person(None, &p, Registration::Member, now()));
    assert_eq!(field, "id_number");
    assert!(
        matches!(problem, Problem::IdNumber(IdNumberError::CheckDigit { .. })),
        "{problem:?}"
    );
    // A member needs an ID number.
    p.id_number = None;
    let (field, problem) = invalid(s.register_person(None, &p, Registration::Member, now()));
    assert_eq!((field.as_str(), problem), ("id_number", Problem::Required));
    // A newborn born tomorrow.
    let mut b = blank(hh);
    b.name = "刘小宝".into();
    b.birth_date = Some(today() + Duration::days(1));
    let (field, problem) = invalid(s.register_person(None, &b, Registration::Newborn, now()));
    assert_eq!(field, "birth_date");
    assert!(matches!(problem, Problem::FutureDate { .. }), "{problem:?}");
    // A newborn with no birth date, or as the head's parent.
    b.birth_date = None;
    let (field, problem) = invalid(s.register_person(None, &b, Registration::Newborn, now()));
    assert_eq!((field.as_str(), problem), ("birth_date", Problem::Required));
    b.birth_date = Some(today());
    b.relation = Relation::Parent;
    let (field, problem) = invalid(s.register_person(None, &b, Registration::Newborn, now()));
    assert_eq!(
        (field.as_str(), problem),
        ("relation", Problem::NewbornRelation)
    );
    // A floating person needs where they are from; a bad phone is refused.
    let mut f = blank(hh);
    f.name = "外来工".into();
    f.person_type = PersonType::Floating;
    let (field, problem) = invalid(s.register_person(None, &f, Registration::Floating, now()));
    assert_eq!((field.as_str(), problem), ("origin", Problem::Required));
    f.origin = Some("湖南省长沙市".into());
    f.phone = Some("12345".into());
    let (field, _) = invalid(s.register_person(None, &f, Registration::Floating, now()));
    assert_eq!(field, "phone");
    assert_eq!(s.outbox_len().unwrap(), n0, "nothing refused was written");
}

#[test]
fn the_same_person_twice_in_one_household_is_refused() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let member = s
        .household_detail(hh, today())
        .unwrap()
        .members
        .into_iter()
        .find(|m| m.id_number.is_some() && m.birth_date.is_some())
        .unwrap();
    let n0 = s.outbox_len().unwrap();
    // The same ID number (typed in lower case).
    let mut p = blank(hh);
    p.name = "另一个名字".into();
    p.id_number = member.id_number.clone().map(|n| n.to_lowercase());
    p.birth_date = member.birth_date;
    let (field, problem) = invalid(s.register_person(None, &p, Registration::Member, now()));
    assert_eq!(field, "id_number");
    assert_eq!(
        problem,
        Problem::DuplicatePerson {
            name: member.name.clone()
        }
    );
    // The same name and birth date, without an ID number (a newborn entered twice).
    let mut b = blank(hh);
    b.name = "刘小宝".into();
    b.birth_date = Some(today() - Duration::days(3));
    s.register_person(None, &b, Registration::Newborn, now())
        .unwrap();
    let mut again = b.clone();
    again.id = new_id();
    again.name = " 刘小宝 ".into();
    let (field, problem) = invalid(s.register_person(None, &again, Registration::Newborn, now()));
    assert_eq!(field, "name");
    assert_eq!(
        problem,
        Problem::DuplicatePerson {
            name: "刘小宝".into()
        }
    );
    assert_eq!(s.outbox_len().unwrap(), n0 + 1, "only the first newborn");
    // The words beside the field name it as the screen does.
    let text = problem.text(Lang::Zh, "姓名");
    assert!(text.contains("刘小宝") && text.contains("姓名"), "{text}");
}

#[test]
fn a_newborn_is_added_without_an_id_number_and_counts_as_a_member() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let card = |s: &Store| {
        s.households(&Default::default(), today())
            .unwrap()
            .into_iter()
            .find(|c| c.id == hh)
            .unwrap()
    };
    let before = card(&s).members;
    let mut b = blank(hh);
    b.name = "刘小宝".into();
    b.sex = Sex::Female;
    b.relation = Relation::Grandchild;
    b.birth_date = Some(today() - Duration::days(10));
    s.register_person(None, &b, Registration::Newborn, now())
        .unwrap();
    assert_eq!(card(&s).members, before + 1);
    let e = last(&s);
    assert_eq!(
        (e.op, e.fields["id_number"].clone()),
        (Op::Create, serde_json::Value::Null)
    );
    assert_eq!(e.fields["sex"], "2");
}

#[test]
fn marking_a_member_deceased_sends_status_and_date_and_they_stop_counting() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let d = s.household_detail(hh, today()).unwrap();
    let member = d
        .members
        .iter()
        .find(|m| m.status == PersonStatus::Active)
        .unwrap()
        .clone();
    let members_before = s
        .households(&Default::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.id == hh)
        .unwrap()
        .members;
    let n0 = s.outbox_len().unwrap();
    // Not in the future.
    let (field, problem) = invalid(s.mark_person(
        member.id,
        PersonStatus::Deceased,
        today() + Duration::days(1),
        now(),
    ));
    assert_eq!(field, "status_on");
    assert!(matches!(problem, Problem::FutureDate { .. }));
    assert_eq!(s.outbox_len().unwrap(), n0);
    let on = today() - Duration::days(2);
    let p = s
        .mark_person(member.id, PersonStatus::Deceased, on, now())
        .unwrap();
    assert_eq!((p.status, p.status_on), (PersonStatus::Deceased, Some(on)));
    let e = last(&s);
    assert_eq!(
        (e.kind, e.op, e.record_id),
        (EntityKind::Person, Op::Update, member.id)
    );
    let mut keys: Vec<&String> = e.fields.keys().collect();
    keys.sort();
    assert_eq!(keys, ["status", "status_on"], "only the changed fields");
    assert_eq!(e.fields["status"], "DECEASED");
    assert_eq!(e.fields["status_on"], on.to_string());
    // Still listed, no longer counted.
    let d = s.household_detail(hh, today()).unwrap();
    assert!(
        d.members
            .iter()
            .any(|m| m.id == member.id && m.status == PersonStatus::Deceased)
    );
    let card = s
        .households(&Default::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.id == hh)
        .unwrap();
    assert_eq!(card.members, members_before - 1);
    // Once deceased, no more changes: marked again, or a new phone.
    let (field, problem) = invalid(s.mark_person(member.id, PersonStatus::MovedOut, on, now()));
    assert_eq!(field, "status");
    assert_eq!(
        problem,
        Problem::NotActiveMember {
            status: PersonStatus::Deceased
        }
    );
    let (field, _) = invalid(s.set_phone(member.id, Some("13907941234".into()), now()));
    assert_eq!(field, "phone");
}

#[test]
fn a_deceased_members_tag_stops_setting_the_households_cadence() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let d = s.household_detail(hh, today()).unwrap();
    let member = d
        .members
        .iter()
        .find(|m| m.status == PersonStatus::Active)
        .unwrap()
        .clone();
    s.set_tags(member.id, vec![Tag::ElderlyAlone], now())
        .unwrap();
    let tagged = s.household_detail(hh, today()).unwrap().due;
    assert_eq!(tagged.reason, Some(Tag::ElderlyAlone));
    s.mark_person(member.id, PersonStatus::Deceased, today(), now())
        .unwrap();
    let after = s.household_detail(hh, today()).unwrap().due;
    assert_ne!(after.reason, Some(Tag::ElderlyAlone), "{after:?}");
    assert!(after.cadence_days > tagged.cadence_days);
}

#[test]
fn a_phone_or_tags_change_sends_only_that_field_and_managed_tags_stay_off_cards() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let member = s.household_detail(hh, today()).unwrap().members[0].clone();
    let (field, problem) = invalid(s.set_phone(member.id, Some("0794-12".into()), now()));
    assert_eq!(field, "phone");
    assert!(matches!(problem, Problem::Phone { .. }));
    s.set_phone(member.id, Some("13907945678".into()), now())
        .unwrap();
    let e = last(&s);
    assert_eq!(e.fields.len(), 1);
    assert_eq!(e.fields["phone"], "13907945678");
    s.set_tags(
        member.id,
        vec![Tag::Disabled, Tag::CommunityCorrection],
        now(),
    )
    .unwrap();
    let e = last(&s);
    assert_eq!(e.fields.keys().collect::<Vec<_>>(), ["tags"]);
    let card = s
        .households(&Default::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.id == hh)
        .unwrap();
    assert!(card.care_tags.contains(&Tag::Disabled));
    assert!(
        !card.care_tags.iter().any(|t| t.is_managed()),
        "{:?}",
        card.care_tags
    );
}

#[test]
fn a_new_household_in_a_known_house_comes_with_its_head() {
    let (_d, mut s, _c, _) = demo_store();
    let hh = household(&s);
    let house = s
        .household_detail(hh, today())
        .unwrap()
        .house
        .expect("a house");
    let h = Household {
        id: new_id(),
        grid_id: Uuid::nil(),
        house_id: Some(house.id),
        head_id: None,
        address: format!("{}（东厢）", house.address),
        location: None,
    };
    let mut head = blank(Uuid::nil());
    head.name = "陈分户".into();
    let n0 = s.outbox_len().unwrap();
    // Without the head's ID number: refused, nothing written.
    let (field, _) = invalid(s.register_household(None, &h, &head, now()));
    assert_eq!(field, "id_number");
    assert_eq!(s.outbox_len().unwrap(), n0);
    head.id_number = Some(id_number(NaiveDate::from_ymd_opt(1985, 2, 3).unwrap(), 21));
    // Without a phone: refused beside it.
    let (field, _) = invalid(s.register_household(None, &h, &head, now()));
    assert_eq!(field, "phone");
    assert_eq!(s.outbox_len().unwrap(), n0);
    head.phone = Some("13907940021".into());
    s.register_household(None, &h, &head, now()).unwrap();
    // A second tap: nothing filed twice.
    s.register_household(None, &h, &head, now()).unwrap();
    assert_eq!(s.outbox_len().unwrap(), n0 + 2);
    let entries = s.outbox(Lane::Normal, 100_000).unwrap();
    let tail: Vec<_> = entries[entries.len() - 2..]
        .iter()
        .map(|e| (e.kind, e.op, e.record_id))
        .collect();
    assert_eq!(
        tail,
        [
            (EntityKind::Household, Op::Create, h.id),
            (EntityKind::Person, Op::Create, head.id)
        ],
        "the household first"
    );
    let d = s.household_detail(h.id, today()).unwrap();
    assert_eq!(d.household.grid_id, house.grid_id, "the house's grid");
    assert_eq!(d.household.head_id, Some(head.id));
    assert_eq!(d.members[0].relation, Relation::Head);
    let card = s
        .households(&Default::default(), today())
        .unwrap()
        .into_iter()
        .find(|c| c.id == h.id)
        .unwrap();
    assert_eq!(card.head_name.as_deref(), Some("陈分户"));
}

#[test]
fn a_households_records_are_those_reported_for_it_and_disputes_naming_its_people() {
    use gridwalk::domain::geo::GeoPoint;
    let (_d, mut s, county, _) = demo_store();
    let grid = county.grids[0].grid.id;
    let hh = household(&s);
    let member = s.household_detail(hh, today()).unwrap().members[0].clone();
    let before = s.household_records(hh).unwrap().len();
    // A hazard reported for the household: its header names it, and the JSON carries it.
    let mut c = Common::new(Domain::Hazard, grid, "worker-a", now());
    c.location = Some(GeoPoint::new(116.4, 28.1, Some(6.0)).unwrap());
    c.household_id = Some(hh);
    let h = Hazard {
        common: c,
        category: HazardCategory::CorridorEbike,
        severity: Severity::Medium,
        description: "楼道内电动车充电".into(),
        place: "本户楼道".into(),
        owner: None,
        due_date: None,
    };
    s.create_record(&h, now()).unwrap();
    assert_eq!(last(&s).fields["household_id"], hh.to_string());
    // One that is not: no household_id key at all.
    let mut other = h.clone();
    other.common.id = new_id();
    other.common.household_id = None;
    s.create_record(&other, now()).unwrap();
    assert!(!last(&s).fields.contains_key("household_id"));
    // A dispute whose party is a member.
    let d = Dispute {
        common: Common::new(Domain::Dispute, grid, "worker-a", now()),
        category: DisputeCategory::Neighbor,
        summary: "屋檐滴水纠纷".into(),
        parties: vec![Party {
            name: member.name.clone(),
            role: PartyRole::Applicant,
            phone: None,
            person_id: Some(member.id),
        }],
        follow_up: None,
    };
    s.create_record(&d, now()).unwrap();
    let ids: Vec<Uuid> = s
        .household_records(hh)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), before + 2, "{ids:?}");
    assert!(ids.contains(&h.common.id) && ids.contains(&d.common.id));
    assert!(!ids.contains(&other.common.id));
    let back: Hazard = s.record(h.common.id).unwrap();
    assert_eq!(back.common.household_id, Some(hh));
}
