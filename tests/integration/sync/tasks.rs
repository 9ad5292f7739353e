//! The county's tasks for grid workers, end to end: a clerk gives worker-a a hazard recheck,
//! worker-a's next sync brings it (Today and the feedback inbox), worker-a completes it with a
//! photo and the county holds it done with the photo's bytes. Another worker of the same grid
//! completing it, a worker of another grid, and a completion of a task the county cancelled
//! meanwhile are refused and the refusal reaches the device.

use chrono::{Duration, Utc};
use gridwalk::domain::codes::{TaskKind, TaskStatus};
use gridwalk::domain::model::EntityKind;
use gridwalk::domain::model::Task;
use gridwalk::server::error::Failure;
use gridwalk::server::records::{self, NewTask};
use gridwalk::server::repo;
use gridwalk::store::feedback::FeedbackKind;
use gridwalk::store::tasks::photo_form;
use gridwalk::wire::{Op, Role};
use uuid::Uuid;

use super::util::{Backend, Device, TestServer};
use crate::both_backends;

/// The clerk `by` gives a task about `about` to `assignee`, as the dashboard's form does.
async fn give(
    server: &TestServer,
    by: &str,
    kind: TaskKind,
    about: Uuid,
    assignee: &str,
) -> Result<Task, Failure> {
    let db = server.db.clone();
    let (by, assignee) = (by.to_owned(), assignee.to_owned());
    tokio::task::spawn_blocking(move || {
        db.tx(|db| {
            let (user, _) = repo::user_by_name(db, &by)?.expect("the clerk's account");
            let t = NewTask {
                kind,
                about,
                assignee,
                due_date: Utc::now().date_naive() + Duration::days(2),
                note: "请复查池塘护栏是否装好，拍照上传".into(),
            };
            Ok::<_, Failure>(records::create_task(db, &user, &t, Utc::now())?)
        })
    })
    .await
    .unwrap()
}

async fn cancel(server: &TestServer, id: Uuid) {
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|db| {
            let (user, _) = repo::user_by_name(db, "admin")?.unwrap();
            Ok::<_, Failure>(records::cancel_task(db, &user, id, Utc::now())?)
        })
    })
    .await
    .unwrap()
    .unwrap();
}

async fn on_server(server: &TestServer, id: Uuid) -> Task {
    serde_json::from_value(server.entity(id).await.expect("the task is stored")).unwrap()
}

/// A completion of `task` pushed as a hostile device would, past its own store.
async fn push_completion(server: &TestServer, d: &Device, task: Uuid) {
    let fields = serde_json::json!({"status": "DONE", "done_note": "我来完成"})
        .as_object()
        .unwrap()
        .clone();
    super::util::push_past_the_store(server, d, EntityKind::Task, task, Op::Update, fields).await;
}

fn jpeg() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend((0..3000u32).map(|i| (i as u8).wrapping_mul(7)));
    b
}

async fn a_task_reaches_its_worker_and_its_completion_the_county(backend: Backend) {
    let server = TestServer::start(backend).await;
    let grid_a = server.county.grids[0].grid.id;
    // A second worker of worker-a's grid: the task reaches their phone too (it is their
    // grid's), but it is not theirs to complete.
    {
        let db = server.db.clone();
        let code = server.county.grids[0].grid.code.as_str().to_owned();
        tokio::task::spawn_blocking(move || {
            db.tx(|db| {
                repo::create_user(
                    db,
                    &repo::NewUser {
                        username: "worker-c".into(),
                        display_name: "陈网格".into(),
                        role: Role::Worker,
                        scope_code: code,
                        password_hash: gridwalk::server::auth::hash_password(
                            gridwalk::server::demo::DEMO_PASSWORD,
                        )
                        .unwrap(),
                        grids: vec![grid_a],
                    },
                    Utc::now(),
                )
            })
        })
        .await
        .unwrap()
        .unwrap();
    }
    let a = Device::enrol(&server, "worker-a").await;
    let b = Device::enrol(&server, "worker-b").await;
    let c = Device::enrol(&server, "worker-c").await;
    let h = super::e2e_hazard(grid_a);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    a.sync().await;

    // Only a worker of the record's grid may be given it.
    let wrong = give(
        &server,
        "admin",
        TaskKind::RecheckHazard,
        h.common.id,
        "worker-b",
    )
    .await;
    assert!(
        matches!(&wrong, Err(Failure::Invalid { field: Some(f), .. }) if f == "assignee"),
        "{wrong:?}"
    );
    // A worker cannot give tasks.
    assert!(matches!(
        give(
            &server,
            "worker-a",
            TaskKind::Verify,
            h.common.id,
            "worker-a"
        )
        .await,
        Err(Failure::Forbidden(_))
    ));
    let t = give(
        &server,
        "admin",
        TaskKind::RecheckHazard,
        h.common.id,
        "worker-a",
    )
    .await
    .unwrap();
    assert_eq!(t.status, TaskStatus::Open);
    assert!(t.about.contains("安全隐患"), "{}", t.about);

    // worker-a's next sync: on Today and in the feedback inbox.
    a.sync().await;
    let open = a.with(|s| s.open_tasks()).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, t.id);
    assert_eq!(open[0].record_id, Some(h.common.id));
    let inbox = a.with(|s| s.feedback(10)).unwrap();
    assert!(
        inbox
            .iter()
            .any(|f| f.kind == FeedbackKind::Task && f.record_id == t.id),
        "{inbox:?}"
    );
    // worker-b (another grid) never receives it; worker-c (the same grid) holds it but it is
    // not on their Today.
    b.sync().await;
    assert!(b.with(|s| s.task(t.id)).is_err());
    c.sync().await;
    assert!(c.with(|s| s.task(t.id)).is_ok());
    assert!(c.with(|s| s.open_tasks()).unwrap().is_empty());

    // Hostile devices: worker-c and worker-b push a completion of worker-a's task.
    for (d, code) in [(&c, "forbidden"), (&b, "not_found")] {
        push_completion(&server, d, t.id).await;
        d.sync().await;
        let refused = d.with(|s| s.rejections(true)).unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].rejection.record_id, t.id);
        assert_eq!(refused[0].rejection.error, code);
    }
    assert_eq!(on_server(&server, t.id).await.status, TaskStatus::Open);

    // worker-a completes it with two photos of the site.
    let photo = jpeg();
    let mut photo_b = jpeg();
    photo_b.extend(b"the second view");
    let sha = a
        .with(|s| {
            s.stage_photo(
                &photo_form(t.id),
                &photo,
                "image/jpeg",
                "site.jpg",
                Utc::now(),
            )
        })
        .unwrap();
    let sha_b = a
        .with(|s| {
            s.stage_photo(
                &photo_form(t.id),
                &photo_b,
                "image/jpeg",
                "site-2.jpg",
                Utc::now(),
            )
        })
        .unwrap();
    a.with(|s| s.complete_task(t.id, "护栏已装好", Utc::now()))
        .unwrap();
    let sum = a.sync().await;
    assert_eq!(sum.pushed, 1);
    assert!(a.with(|s| s.pending_photos()).unwrap().is_empty());
    let done = on_server(&server, t.id).await;
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(done.done_by.as_deref(), Some("worker-a"));
    assert_eq!(done.done_note.as_deref(), Some("护栏已装好"));
    assert_eq!(done.done_photo.as_deref(), Some(sha.as_str()));
    assert_eq!(done.photos(), [sha.as_str(), sha_b.as_str()], "both photos");
    assert!(done.done_at.is_some());
    for (sha, bytes) in [(&sha, &photo), (&sha_b, &photo_b)] {
        let sha2 = sha.clone();
        let stored = server
            .read(move |db| {
                Ok(db
                    .query_opt(
                        "SELECT complete, data FROM photos WHERE sha256 = $1",
                        &[sha2.into()],
                    )?
                    .map(|r| (r[0].i64().unwrap(), r[1].bytes().unwrap())))
            })
            .await
            .expect("the photo is stored");
        assert_eq!(stored.0, 1);
        assert_eq!(&stored.1, bytes);
    }
    // The dashboard's task page shows both.
    let clerk = crate::dashboard::sign_in(&server, "admin", gridwalk::server::demo::DEMO_PASSWORD)
        .await
        .unwrap_or_else(|p| panic!("{}", p.body));
    let page = clerk.get("/tasks").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for sha in [&sha, &sha_b] {
        assert!(
            page.body.contains(&format!(r#"src="/photos/{sha}""#)),
            "{sha} on the task page:\n{}",
            page.body
        );
    }
    // The county's list shows it done; worker-a's phone agrees after the next pull.
    let listed = {
        let db = server.db.clone();
        tokio::task::spawn_blocking(move || {
            db.read(|db| {
                let (user, _) = repo::user_by_name(db, "admin")?.unwrap();
                Ok::<_, Failure>(records::list_tasks(db, &user)?)
            })
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert!(
        listed
            .iter()
            .any(|x| x.id == t.id && x.status == TaskStatus::Done)
    );
    a.sync().await;
    assert_eq!(a.with(|s| s.task(t.id)).unwrap().status, TaskStatus::Done);

    // A task the county cancels while the worker completes it offline: refused, and the
    // phone shows it cancelled.
    let t2 = give(&server, "admin", TaskKind::Verify, h.common.id, "worker-a")
        .await
        .unwrap();
    a.sync().await;
    a.with(|s| s.complete_task(t2.id, "核实过了", Utc::now()))
        .unwrap();
    cancel(&server, t2.id).await;
    a.sync().await;
    let refused = a.with(|s| s.rejections(true)).unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].rejection.record_id, t2.id);
    assert_eq!(refused[0].rejection.error, "conflict");
    assert!(refused[0].rejection.message.contains("撤销"));
    assert_eq!(
        on_server(&server, t2.id).await.status,
        TaskStatus::Cancelled
    );
    a.sync().await;
    assert_eq!(
        a.with(|s| s.task(t2.id)).unwrap().status,
        TaskStatus::Cancelled
    );
}
both_backends!(a_task_reaches_its_worker_and_its_completion_the_county);

async fn a_visit_is_given_about_a_household_and_completed_with_a_note(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let household = server.county.scope(&[0]).households[0].clone();
    let t = give(
        &server,
        "secretary",
        TaskKind::VisitHousehold,
        household.id,
        "worker-a",
    )
    .await
    .unwrap();
    assert_eq!(t.household_id, Some(household.id));
    assert!(t.about.contains(&household.address), "{}", t.about);
    // Another village's secretary does not find the household.
    let far = server
        .county
        .scope(&[server.county.grids.len() - 1])
        .households[0]
        .id;
    assert!(matches!(
        give(
            &server,
            "secretary",
            TaskKind::VisitHousehold,
            far,
            "worker-a"
        )
        .await,
        Err(Failure::NotFound(_))
    ));
    a.sync().await;
    assert_eq!(a.with(|s| s.open_tasks()).unwrap().len(), 1);
    // A visit asks for no photo.
    a.with(|s| s.complete_task(t.id, "已走访，家中一切正常", Utc::now()))
        .unwrap();
    a.sync().await;
    let done = on_server(&server, t.id).await;
    assert_eq!((done.status, done.done_photo), (TaskStatus::Done, None));
}
both_backends!(a_visit_is_given_about_a_household_and_completed_with_a_note);
