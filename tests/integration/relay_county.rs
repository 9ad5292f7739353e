//! The county's side of a village-office relay: the RELAY account may use only its own
//! routes; the village's mirror, written into a relay's own database, makes the county's pull
//! code answer there exactly as at the county; revocations reach the mirror; and pushes a
//! device left at the office land as that device's own.

use chrono::Utc;
use gridwalk::domain::codes::*;
use gridwalk::domain::model::*;
use gridwalk::server::db::Database;
use gridwalk::server::{records, repo};
use gridwalk::wire::relay::MirrorPage;
use gridwalk::wire::{ApiError, Lane, Op, OutboxEntry, PullResponse, PushRequest, PushResponse};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::sync::util::{Backend, Device, TestServer, api_client, push_past_the_store};

/// A new hazard in `grid` by worker-a, as its fields.
fn hazard_fields(grid: Uuid) -> (Uuid, serde_json::Map<String, Value>) {
    let h = Hazard {
        common: Common::new(Domain::Hazard, grid, "worker-a", Utc::now()),
        category: HazardCategory::Fire,
        severity: Severity::Low,
        description: "村办门口电动车飞线充电".into(),
        place: String::new(),
        owner: None,
        due_date: None,
    };
    let Value::Object(fields) = serde_json::to_value(&h).unwrap() else {
        unreachable!()
    };
    (h.common.id, fields)
}

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let res = api_client()
        .get(format!("{}/api/v1{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or_default())
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = api_client()
        .post(format!("{}/api/v1{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or_default())
}

fn forbidden(body: &Value) {
    let e: ApiError = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(e.error, "forbidden", "{body}");
}

async fn a_relay_account_syncs_its_office_and_nothing_else(backend: Backend) {
    let server = TestServer::start(backend).await;
    let village = server.county.villages[0].code.clone();
    let office = server.login("office").await;
    assert_eq!(office.account.role, gridwalk::wire::Role::Relay);
    assert_eq!(office.account.scope_code, village);
    assert_eq!(office.account.display_name, "山下村村办中转站");
    for path in ["/sync/pull", "/sync/pull/stream", "/records"] {
        let (st, body) = get(&server, &office.token, path).await;
        assert_eq!(st, 403, "{path}: {body}");
        forbidden(&body);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("中转站账号只用于"),
            "{body}"
        );
    }
    let (st, body) = post(&server, &office.token, "/sync/push", json!({})).await;
    assert_eq!(st, 403, "{body}");
    let (st, me) = get(&server, &office.token, "/me").await;
    assert_eq!((st, me["role"].as_str()), (200, Some("RELAY")), "{me}");
    let (st, page) = get(&server, &office.token, "/relay/mirror?limit=5").await;
    assert_eq!(st, 200, "{page}");
    let page: MirrorPage = serde_json::from_value(page).unwrap();
    assert_eq!(page.entities.len(), 5);
    assert!(page.more);

    // Nobody else uses the relay's routes.
    let worker = server.login("worker-a").await;
    let (st, body) = get(&server, &worker.token, "/relay/mirror").await;
    assert_eq!(st, 403, "{body}");
    forbidden(&body);
    let admin = server.login("admin").await;
    let (st, body) = post(&server, &admin.token, "/relay/push", json!({})).await;
    assert_eq!(st, 403, "{body}");

    // The dashboard refuses its sign-in, saying why.
    let refused = crate::dashboard::sign_in(&server, "office", repo_password())
        .await
        .err()
        .expect("no dashboard session for a relay");
    let to = refused.location.expect("back to the sign-in page");
    let said: String = form_urlencoded::parse(to.split('?').nth(1).unwrap().as_bytes())
        .find(|(k, _)| k == "err")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(
        said.contains("中转站账号只用于村办中转站同步，不能登录工作台"),
        "{said}"
    );

    // The address it advertises reaches the village's accounts, and only theirs.
    let (st, body) = get(&server, &office.token, "/relay/mirror?advertise=ftp://x").await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["field"], "advertise");
    let (st, _) = get(
        &server,
        &office.token,
        "/relay/mirror?limit=1&advertise=http://192.168.1.20:8080/",
    )
    .await;
    assert_eq!(st, 200);
    let (_, me) = get(&server, &worker.token, "/me").await;
    assert_eq!(me["relay_url"], "http://192.168.1.20:8080", "{me}");
    assert_eq!(
        server.login("secretary").await.account.relay_url.as_deref(),
        Some("http://192.168.1.20:8080")
    );
    let elsewhere = server.county.grids[2].worker.username.clone();
    assert_ne!(
        server.county.grids[2].grid.code.as_str()[..12],
        village[..],
        "the third grid is in another village"
    );
    assert_eq!(server.login(&elsewhere).await.account.relay_url, None);
    assert_eq!(server.login("admin").await.account.relay_url, None);
}
both_backends!(a_relay_account_syncs_its_office_and_nothing_else);

fn repo_password() -> &'static str {
    gridwalk::server::demo::DEMO_PASSWORD
}

/// A relay's own database: server schema, empty.
async fn relay_db(dir: &tempfile::TempDir) -> Database {
    let path = dir.path().join("relay.db").display().to_string();
    tokio::task::spawn_blocking(move || {
        let db = Database::open(&path).unwrap();
        db.migrate().unwrap();
        db
    })
    .await
    .unwrap()
}

/// Mirrors the county into `mirror` from its stored cursor until a page says no more, `limit`
/// entities a page, as a relay would. Returns the pages read.
async fn mirror_all(server: &TestServer, token: &str, mirror: &Database, limit: usize) -> usize {
    let mut pages = 0;
    loop {
        let m = mirror.clone();
        let (cursor, generation) = tokio::task::spawn_blocking(move || m.read(repo::mirror_cursor))
            .await
            .unwrap()
            .unwrap();
        let (st, page) = get(
            server,
            token,
            &format!("/relay/mirror?cursor={cursor}&limit={limit}"),
        )
        .await;
        assert_eq!(st, 200, "{page}");
        let page: MirrorPage = serde_json::from_value(page).unwrap();
        assert!(page.cursor >= cursor);
        if let Some(g) = generation {
            assert_eq!(g, page.generation, "one county generation");
        }
        let more = page.more;
        let m = mirror.clone();
        tokio::task::spawn_blocking(move || m.tx(|db| repo::apply_page(db, &page)))
            .await
            .unwrap()
            .unwrap();
        pages += 1;
        if !more {
            return pages;
        }
    }
}

/// Every page of a pull from `cursor` and `base`, `limit` changes a page, on one database.
fn pull_all(
    db: &Database,
    user: &str,
    device: Uuid,
    cursor: i64,
    base: i64,
    limit: usize,
) -> Vec<PullResponse> {
    let (user, _) = db.read(|tx| repo::user_by_name(tx, user)).unwrap().unwrap();
    let (mut cursor, mut pages) = (cursor, Vec::new());
    loop {
        let page = db
            .read(|tx| records::pull(tx, &user, Some(device), cursor, base, limit))
            .unwrap();
        cursor = page.cursor;
        let more = page.more;
        pages.push(page);
        if !more {
            return pages;
        }
    }
}

async fn the_mirror_answers_a_pull_as_the_county_does(backend: Backend) {
    let server = TestServer::start(backend).await;
    let village = server.county.villages[0].code.clone();
    let grid_a = server.county.grids[0].grid.id;

    // worker-a records a hazard and syncs; then the county moves it (history and fields after
    // the device's base), and a push of the device's is refused.
    let a = Device::enrol(&server, "worker-a").await;
    let (id, fields) = hazard_fields(grid_a);
    let h: Hazard = serde_json::from_value(Value::Object(fields)).unwrap();
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    assert_eq!(a.sync().await.pushed, 1);
    let base = server
        .read(|db| db.query_one("SELECT max(version) FROM entities", &[])?[0].i64())
        .await;
    let admin = server.login("admin").await;
    for (to, note) in [("CONFIRMED", Some("已受理")), ("RECTIFYING", None)] {
        let (st, body) = post(
            &server,
            &admin.token,
            &format!("/records/{id}/transition"),
            json!({"to": to, "note": note}),
        )
        .await;
        assert_eq!(st, 200, "{body}");
    }
    let (bad_id, mut bad) = hazard_fields(grid_a);
    bad.insert("severity".into(), json!("NOT_A_SEVERITY"));
    push_past_the_store(&server, &a, EntityKind::Hazard, bad_id, Op::Create, bad).await;
    let device = a.with(|s| s.device_id());
    let refused = server
        .read(move |db| {
            db.query_one(
                "SELECT count(*) FROM push_rejections WHERE device_id = $1",
                &[device.to_string().into()],
            )?[0]
                .i64()
        })
        .await;
    assert_eq!(refused, 1, "the bad hazard was refused");

    // A relay reads the village in small pages into its own database.
    let office = server.login("office").await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = relay_db(&dir).await;
    let pages = mirror_all(&server, &office.token, &mirror, 40).await;
    assert!(pages > 3, "{pages} pages");

    // The county's pull code over the mirror answers worker-a's device as the county does.
    let elsewhere = server.county.grids[2].worker.username.clone();
    let (county, m) = (server.db.clone(), mirror.clone());
    tokio::task::spawn_blocking(move || {
        let user = |db: &Database| {
            db.read(|tx| repo::user_by_name(tx, "worker-a"))
                .unwrap()
                .unwrap()
                .0
        };
        assert_eq!(user(&county), user(&m));
        for (cursor, base, limit) in [
            (0, 0, records::MAX_PAGE),
            (0, 0, 25),
            (base, base, records::MAX_PAGE),
            (base, base, 3),
            (base, 0, records::MAX_PAGE),
        ] {
            let at_county = pull_all(&county, "worker-a", device, cursor, base, limit);
            let at_office = pull_all(&m, "worker-a", device, cursor, base, limit);
            assert_eq!(at_county, at_office, "cursor {cursor}, base {base}, limit {limit}");
            // The secretary's village, too.
            let phone = Uuid::now_v7();
            let at_county = pull_all(&county, "secretary", phone, cursor, base, limit);
            let at_office = pull_all(&m, "secretary", phone, cursor, base, limit);
            assert_eq!(at_county, at_office, "secretary: cursor {cursor}, base {base}");
        }
        let last = pull_all(&county, "worker-a", device, base, base, records::MAX_PAGE);
        let changes: usize = last.iter().map(|p| p.changes.len()).sum();
        let rejected: usize = last.iter().map(|p| p.rejected.len()).sum();
        assert!(changes > 0 && rejected == 1, "{changes} changes, {rejected} refused");
        assert!(
            last.iter()
                .flat_map(|p| &p.changes)
                .any(|c| c.id == id && c.partial && c.history.is_some()),
            "the county's moves come as a partial change with its history"
        );

        // Only the village is mirrored.
        let count = |db: &Database, sql: &str, v: &str| {
            let (sql, v) = (sql.to_owned(), v.to_owned());
            db.read(move |tx| {
                tx.query_one(&sql, &[v.clone().into(), format!("{v}~").into()])?[0].i64()
            })
            .unwrap()
        };
        let inside = "SELECT count(*) FROM entities WHERE grid_code >= $1 AND grid_code < $2";
        let outside = "SELECT count(*) FROM entities WHERE grid_code < $1 OR grid_code >= $2";
        assert_eq!(count(&county, inside, &village), count(&m, inside, &village));
        assert!(count(&county, outside, &village) > 0);
        assert_eq!(count(&m, outside, &village), 0);
        let names = |db: &Database| {
            db.read(|tx| {
                tx.query("SELECT username, password_hash FROM users ORDER BY username", &[])?
                    .into_iter()
                    .map(|r| Ok((r[0].string()?, r[1].string()?)))
                    .collect::<Result<Vec<_>, gridwalk::server::db::DbError>>()
            })
            .unwrap()
        };
        let mirrored = names(&m);
        let usernames: Vec<&str> = mirrored.iter().map(|(u, _)| u.as_str()).collect();
        for u in ["secretary", "worker-a", "worker-b"] {
            assert!(usernames.contains(&u), "{usernames:?}");
        }
        for u in ["office", "admin", "village-committee", "town-safety", &elsewhere] {
            assert!(!usernames.contains(&u), "{usernames:?}");
        }
        let at_county = names(&county);
        for (u, hash) in &mirrored {
            assert_eq!(hash, repo::MIRRORED_PASSWORD);
            assert!(at_county.iter().any(|(cu, ch)| cu == u && ch != hash));
        }
        // Every session of theirs, by its hash.
        let sessions = |db: &Database| {
            db.read(|tx| {
                tx.query(
                    "SELECT s.token_hash, s.revoked FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE u.username IN ('secretary', 'worker-a', 'worker-b') ORDER BY s.token_hash",
                    &[],
                )
            })
            .unwrap()
        };
        assert_eq!(sessions(&county), sessions(&m));
        assert!(!sessions(&m).is_empty());
    })
    .await
    .unwrap();

    // A sign-in with a password at the relay's database is refused plainly.
    assert!(
        !gridwalk::server::auth::verify_password(repo_password(), repo::MIRRORED_PASSWORD),
        "a mirrored account's hash verifies nothing"
    );

    // A session revoked at the county is revoked in the mirror with the next page.
    let session = server.login("worker-a").await;
    mirror_all(&server, &office.token, &mirror, 1000).await;
    let hash = gridwalk::server::auth::token_hash(&session.token);
    let live = |hash: String| {
        let m = mirror.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                m.read(|tx| repo::session(tx, &hash, Utc::now()))
                    .unwrap()
                    .is_some()
            })
            .await
            .unwrap()
        }
    };
    assert!(live(hash.clone()).await);
    let (st, _) = post(&server, &session.token, "/auth/logout", json!({})).await;
    assert_eq!(st, 204);
    mirror_all(&server, &office.token, &mirror, 1000).await;
    assert!(!live(hash).await, "the logout reached the mirror");
}
both_backends!(the_mirror_answers_a_pull_as_the_county_does);

async fn a_relayed_push_lands_as_the_devices_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let grid_a = server.county.grids[0].grid.id;
    let a = Device::enrol(&server, "worker-a").await;
    a.sync().await;
    let office = server.login("office").await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = relay_db(&dir).await;
    mirror_all(&server, &office.token, &mirror, 20_000).await;
    let device = a.with(|s| s.device_id());
    let m = mirror.clone();
    let wm = tokio::task::spawn_blocking(move || {
        m.read(|db| repo::county_watermark(db, device, Lane::Normal))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        wm as u64,
        a.with(|s| s.outbox_last_seq(Lane::Normal)).unwrap()
    );

    let (id, fields) = hazard_fields(grid_a);
    let entry = OutboxEntry {
        lane: Lane::Normal,
        seq: wm as u64 + 1,
        kind: EntityKind::Hazard,
        record_id: id,
        op: Op::Create,
        fields,
        base_version: 0,
        edited_at: Utc::now(),
    };
    let push = |device: Uuid| PushRequest {
        device_id: device,
        lane: Lane::Normal,
        device_now: Utc::now(),
        entries: vec![entry.clone()],
    };

    // Devices the village does not hold are not found.
    let other = Uuid::now_v7();
    let elsewhere = server.county.grids[2].worker.username.clone();
    gridwalk::client::login(&server.url, &elsewhere, repo_password(), other)
        .await
        .unwrap();
    for d in [other, Uuid::now_v7()] {
        let (st, body) = post(
            &server,
            &office.token,
            "/relay/push",
            serde_json::to_value(push(d)).unwrap(),
        )
        .await;
        assert_eq!(st, 404, "{body}");
        assert_eq!(body["error"], "not_found");
    }

    // worker-a's device's entry, forwarded: received as its own push.
    let (st, body) = post(
        &server,
        &office.token,
        "/relay/push",
        serde_json::to_value(push(device)).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let res: PushResponse = serde_json::from_value(body).unwrap();
    assert_eq!((res.acked_through, res.queued), (wm as u64 + 1, 1));
    server.applied().await;
    let stored = server
        .entity(id)
        .await
        .expect("the hazard reached the county");
    assert_eq!(stored["author"], "worker-a");

    // The device pushing the same entry itself is answered from that watermark.
    let token = a.with(|s| s.meta("token")).unwrap().unwrap();
    let (st, body) = post(
        &server,
        &token,
        "/sync/push",
        serde_json::to_value(push(device)).unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let res: PushResponse = serde_json::from_value(body).unwrap();
    assert_eq!(
        (res.acked_through, res.queued, res.replayed),
        (wm as u64 + 1, 0, 1)
    );
    // A gap is the device's gap.
    let mut ahead = push(device);
    ahead.entries[0].seq += 5;
    let (st, body) = post(
        &server,
        &office.token,
        "/relay/push",
        serde_json::to_value(ahead).unwrap(),
    )
    .await;
    assert_eq!((st, body["expected"].as_u64()), (409, Some(wm as u64 + 2)));
    // And the mirror's watermark follows the county's.
    mirror_all(&server, &office.token, &mirror, 20_000).await;
    let m = mirror.clone();
    let now = tokio::task::spawn_blocking(move || {
        m.read(|db| repo::county_watermark(db, device, Lane::Normal))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(now, wm + 1);

    // A page under another county generation (the county was restored) empties the mirror
    // first: it starts over from that page.
    let m = mirror.clone();
    tokio::task::spawn_blocking(move || {
        let (cursor, generation) = m.read(repo::mirror_cursor).unwrap();
        assert!(cursor > 0 && generation.is_some());
        let entities = |m: &Database| {
            m.read(|db| db.query_one("SELECT count(*) FROM entities", &[])?[0].i64())
                .unwrap()
        };
        assert!(entities(&m) > 0);
        let restored = MirrorPage {
            generation: "restored".into(),
            cursor: 0,
            more: false,
            entities: vec![],
            histories: vec![],
            rejections: vec![],
            accounts: vec![],
            sessions: vec![],
            devices: vec![],
            watermarks: vec![],
            settings: vec![],
        };
        m.tx(|db| repo::apply_page(db, &restored)).unwrap();
        assert_eq!(entities(&m), 0);
        assert_eq!(
            m.read(repo::mirror_cursor).unwrap(),
            (0, Some("restored".to_owned()))
        );
        assert_eq!(
            m.read(|db| repo::county_watermark(db, device, Lane::Normal))
                .unwrap(),
            0
        );
    })
    .await
    .unwrap();
}
both_backends!(a_relayed_push_lands_as_the_devices_own);
