//! The worker's lifecycle moves made on the phone, against a county move of the same record
//! made meanwhile, in both arrival orders, for each lifecycle: the worker's move first and the
//! county's is refused when it no longer fits (or made when it still does); the county's first
//! and the worker's move, pushed later, loses by the merge rule, the county's status stands and
//! the worker's phone shows it as a conflict naming the record.

use chrono::Utc;
use gridwalk::domain::codes::*;
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::*;
use serde_json::json;
use uuid::Uuid;

use super::util::{Backend, Device, TestServer, api_client};
use crate::both_backends;

async fn county_move(server: &TestServer, token: &str, id: Uuid, to: Status, note: &str) -> u16 {
    api_client()
        .post(format!("{}/api/v1/records/{id}/transition", server.url))
        .bearer_auth(token)
        .json(&json!({"to": to.code(), "note": note}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn server_status(server: &TestServer, id: Uuid) -> String {
    server.entity(id).await.expect("on the server")["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// One record of each lifecycle, filed by worker-a in `grid`.
fn records(grid: Uuid) -> Vec<(AnyRecord, Status, Status)> {
    let c = |d| Common::new(d, grid, "worker-a", Utc::now());
    vec![
        // (record, the worker's move, the county's move), both from the initial status.
        (
            AnyRecord::Event(Event {
                common: c(Domain::Livelihood),
                domain: Domain::Livelihood,
                title: "路灯不亮".into(),
                content: "村口两盏路灯不亮".into(),
                satisfaction: None,
                served_person_id: None,
                service: None,
                place: None,
                audience: None,
                matter: Some(gridwalk::domain::codes::LivelihoodMatter::Repair),
            }),
            Status::Resolved,
            Status::Accepted,
        ),
        (
            AnyRecord::Opinion(Opinion {
                common: c(Domain::Opinion),
                category: OpinionCategory::Infrastructure,
                content: "希望修一条到小学的人行道".into(),
                raised_by: None,
                deliberation: None,
                deliberation_notes: None,
            }),
            Status::Void,
            Status::Accepted,
        ),
        (
            AnyRecord::Hazard(super::e2e::hazard(grid)),
            Status::Rectified,
            Status::Confirmed,
        ),
        (
            AnyRecord::Dispute(Dispute {
                common: c(Domain::Dispute),
                category: DisputeCategory::Neighbor,
                summary: "两户因排水沟堵塞发生争执".into(),
                parties: vec![Party {
                    name: "张三".into(),
                    role: PartyRole::Applicant,
                    phone: None,
                    person_id: None,
                }],
                follow_up: None,
            }),
            Status::Success,
            Status::Accepted,
        ),
        (
            AnyRecord::Emergency(Emergency {
                common: c(Domain::Emergency),
                category: EmergencyCategory::Accident,
                level: EmergencyLevel::Iv,
                title: "村道货车侧翻".into(),
                occurred_at: Utc::now() - chrono::Duration::minutes(20),
            }),
            Status::Handling,
            Status::Final,
        ),
    ]
}

fn create(store: &mut gridwalk::store::Store, r: &AnyRecord) {
    let now = Utc::now();
    match r {
        AnyRecord::Event(x) => store.create_record(x, now),
        AnyRecord::Opinion(x) => store.create_record(x, now),
        AnyRecord::Hazard(x) => store.create_record(x, now),
        AnyRecord::Dispute(x) => store.create_record(x, now),
        AnyRecord::Emergency(x) => store.create_record(x, now),
        AnyRecord::Patrol(x) => store.create_record(x, now),
    }
    .unwrap();
}

async fn worker_move_first(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let admin = server.login("admin").await;
    let grid = server.county.grids[0].grid.id;
    for (r, mine, county) in records(grid) {
        let id = r.common().id;
        a.with(|s| create(s, &r));
        a.sync().await;
        server.applied().await;
        a.with(|s| s.transition(id, mine, Some("当场处理"), Utc::now()))
            .unwrap();
        a.sync().await;
        server.applied().await;
        assert_eq!(server_status(&server, id).await, mine.code(), "{r:?}");
        let st = county_move(&server, &admin.token, id, county, "受理").await;
        let lc = gridwalk::domain::lifecycle::lifecycle(r.domain());
        if lc.find(mine, county).is_some() {
            // Still a legal move from where the worker took it (an emergency's 终报).
            assert_eq!(st, 200, "{:?}", r.domain());
            assert_eq!(server_status(&server, id).await, county.code());
        } else {
            assert!((400..500).contains(&st), "{:?}: {st}", r.domain());
            assert_eq!(server_status(&server, id).await, mine.code());
        }
        // The phone ends where the server is, with no conflict.
        a.sync().await;
        let local = a.with(|s| s.any_record(id)).unwrap().common().status;
        assert_eq!(local.code(), server_status(&server, id).await);
    }
    assert!(a.with(|s| s.conflicts(true)).unwrap().is_empty());
}
both_backends!(worker_move_first);

async fn county_move_first(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let admin = server.login("admin").await;
    let grid = server.county.grids[0].grid.id;
    for (r, mine, county) in records(grid) {
        let id = r.common().id;
        a.with(|s| create(s, &r));
        a.sync().await;
        server.applied().await;
        // The county moves it; the phone, not synced since, makes the worker's move.
        assert_eq!(
            county_move(&server, &admin.token, id, county, "受理").await,
            200,
            "{:?}",
            r.domain()
        );
        a.with(|s| s.transition(id, mine, Some("当场处理"), Utc::now()))
            .unwrap();
        a.sync().await;
        server.applied().await;
        a.sync().await;
        // The county's status stands, on the server and on the phone.
        assert_eq!(server_status(&server, id).await, county.code(), "{r:?}");
        let local = a.with(|s| s.any_record(id)).unwrap().common().status;
        assert_eq!(local, county, "{:?}", r.domain());
        // The worker's move is shown as a conflict naming the record and both statuses.
        let conflicts = a.with(|s| s.conflicts(true)).unwrap();
        let c = conflicts
            .iter()
            .find(|c| c.entity_id == id)
            .unwrap_or_else(|| panic!("{:?}: no conflict in {conflicts:?}", r.domain()));
        assert_eq!(c.field, "status");
        assert_eq!(c.kept, json!(county.code()));
        assert_eq!(c.lost, json!(mine.code()));
        assert_eq!(c.lost_by, "worker-a");
    }
}
both_backends!(county_move_first);

/// The county returns a hazard with a note; the worker reads it, edits the description and
/// resubmits; the county confirms it.
async fn returned_edited_resubmitted_accepted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let admin = server.login("admin").await;
    let h = super::e2e::hazard(server.county.grids[0].grid.id);
    let id = h.common.id;
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    a.sync().await;
    server.applied().await;
    assert_eq!(
        county_move(
            &server,
            &admin.token,
            id,
            Status::Returned,
            "请写明护栏缺多长"
        )
        .await,
        200
    );
    a.sync().await;
    let history = a.with(|s| s.status_history(id)).unwrap();
    let back = history.last().unwrap();
    assert_eq!(back.to, Status::Returned);
    assert_eq!(back.note.as_deref(), Some("请写明护栏缺多长"));
    let edited = "村头池塘东侧约20米无护栏，暑期有儿童玩水";
    a.with(|s| s.update_record::<Hazard>(id, |x| x.description = edited.into(), Utc::now()))
        .unwrap();
    a.with(|s| s.transition(id, Status::Reported, None, Utc::now()))
        .unwrap();
    a.sync().await;
    server.applied().await;
    let on_server = server.entity(id).await.unwrap();
    assert_eq!(on_server["status"], "REPORTED");
    assert_eq!(on_server["description"], edited);
    assert_eq!(
        county_move(&server, &admin.token, id, Status::Confirmed, "已受理").await,
        200
    );
    a.sync().await;
    let local: Hazard = a.with(|s| s.record(id)).unwrap();
    assert_eq!(local.common.status, Status::Confirmed);
    assert_eq!(local.description, edited);
    assert!(a.with(|s| s.conflicts(true)).unwrap().is_empty());
}
both_backends!(returned_edited_resubmitted_accepted);
