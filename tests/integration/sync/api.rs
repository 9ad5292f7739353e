//! Accounts, scope and bad input at the API: 401s, rate limiting, scope refusals that reveal
//! nothing, replays and gaps, 4xx answers that say what and where, and pushed entries refused
//! when applied: nothing of them stored, and the pull says what and where.

use chrono::{Duration, Utc};
use gridwalk::domain::codes::*;
use gridwalk::domain::model::*;
use gridwalk::wire::{
    ApiError, Lane, Op, OutboxEntry, PullResponse, PushRequest, PushResponse, Rejection,
};
use serde_json::json;
use uuid::Uuid;

use super::util::{Backend, Device, TestServer};
use crate::both_backends;

fn hazard_entry(
    seq: u64,
    grid: Uuid,
    tweak: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> OutboxEntry {
    let h = Hazard {
        common: Common::new(Domain::Hazard, grid, "worker-a", Utc::now()),
        category: HazardCategory::Fire,
        severity: Severity::Low,
        description: "柴草堆靠近灶台".into(),
        place: String::new(),
        owner: None,
        due_date: None,
    };
    let serde_json::Value::Object(mut fields) = serde_json::to_value(&h).unwrap() else {
        unreachable!()
    };
    tweak(&mut fields);
    OutboxEntry {
        lane: Lane::Normal,
        seq,
        kind: EntityKind::Hazard,
        record_id: h.common.id,
        op: Op::Create,
        fields,
        base_version: 0,
        edited_at: Utc::now(),
    }
}

async fn push(
    server: &TestServer,
    token: &str,
    device: Uuid,
    entries: Vec<OutboxEntry>,
) -> (u16, serde_json::Value) {
    let req = PushRequest {
        device_id: device,
        lane: Lane::Normal,
        device_now: Utc::now(),
        entries,
    };
    let res = super::util::api_client()
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(token)
        .json(&req)
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or_default())
}

/// What the server refused of this device's pushes: every page of a pull from 0 (the pull
/// waits until the device's pushes are applied).
pub(super) async fn refused(server: &TestServer, token: &str) -> Vec<Rejection> {
    let (mut cursor, mut out) = (0, Vec::new());
    loop {
        let res = super::util::api_client()
            .get(format!(
                "{}/api/v1/sync/pull?cursor={cursor}&base=0",
                server.url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let page: PullResponse = res.json().await.unwrap();
        out.extend(page.rejected);
        cursor = page.cursor;
        if !page.more {
            return out;
        }
    }
}

async fn count_hazards(server: &TestServer) -> i64 {
    server.read(|db| db.query_one("SELECT count(*) FROM entities WHERE kind = 'HAZARD' AND author = 'worker-a' AND category = 'FIRE'", &[])?[0].i64()).await
}

async fn auth_and_rate_limit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let c = super::util::api_client();
    let pull = format!("{}/api/v1/sync/pull", server.url);
    assert_eq!(
        c.get(&pull).send().await.unwrap().status(),
        401,
        "missing token"
    );
    assert_eq!(
        c.get(&pull)
            .bearer_auth("forged")
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "forged token"
    );
    let ok = server.login("worker-a").await;
    assert_eq!(
        c.get(&pull)
            .bearer_auth(&ok.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Expired: move the session's expiry into the past.
    let hash = gridwalk::server::auth::token_hash(&ok.token);
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.exec(
                "UPDATE sessions SET expires_at = $2 WHERE token_hash = $1",
                &[
                    hash.into(),
                    (Utc::now() - Duration::hours(1)).to_rfc3339().into(),
                ],
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        c.get(&pull)
            .bearer_auth(&ok.token)
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "expired token"
    );
    // Revoked by logout.
    let t2 = server.login("worker-a").await.token;
    assert_eq!(
        c.post(format!("{}/api/v1/auth/logout", server.url))
            .bearer_auth(&t2)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(&pull).bearer_auth(&t2).send().await.unwrap().status(),
        401,
        "revoked token"
    );
    // Wrong passwords: 401, then 429 with Retry-After, even for the right password.
    let login = |pw: &'static str| {
        let c = c.clone();
        let url = format!("{}/api/v1/auth/login", server.url);
        async move {
            c.post(url)
                .json(&json!({"username": "worker-b", "password": pw, "device_id": Uuid::now_v7()}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(login("wrong-password").await.status(), 401);
    }
    let limited = login("gridwalk-demo").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let unknown = c
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"username": "nobody", "password": "x", "device_id": Uuid::now_v7()}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    // An app of another protocol version is told to update.
    let old = c
        .get(&pull)
        .bearer_auth(&ok.token)
        .header("x-gridwalk-protocol", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
}
both_backends!(auth_and_rate_limit);

/// A request's session is one statement now: it still brings every grid the worker works, in
/// grid-code order, leaves out a grid whose entity is gone, and refuses a disabled account.
async fn a_session_brings_every_grid_of_its_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ok = server.login("worker-a").await;
    let own: Vec<String> = ok.account.grids.iter().map(|g| g.code.clone()).collect();
    assert_eq!(own.len(), 1, "worker-a starts with one grid");
    let me = |token: String| {
        let url = format!("{}/api/v1/me", server.url);
        async move {
            super::util::api_client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // Two more grids for worker-a: one that exists, one whose entity does not.
    let (db, user) = (server.db.clone(), ok.account.username.clone());
    let other: String = tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            let uid = tx.query_one("SELECT id FROM users WHERE username = $1", &[user.into()])?[0]
                .string()?;
            let other = tx.query_one(
                "SELECT id, grid_code FROM entities WHERE kind = 'GRID' AND grid_code <> $1
                 ORDER BY grid_code DESC LIMIT 1",
                &[own[0].clone().into()],
            )?;
            for grid in [other[0].string()?, Uuid::now_v7().to_string()] {
                tx.exec(
                    "INSERT INTO user_grids (user_id, grid_id) VALUES ($1, $2)",
                    &[uid.clone().into(), grid.into()],
                )?;
            }
            other[1].string()
        })
    })
    .await
    .unwrap()
    .unwrap();
    let account: serde_json::Value = me(ok.token.clone()).await.json().await.unwrap();
    let codes: Vec<&str> = account["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["code"].as_str().unwrap())
        .collect();
    let mut expected = vec![ok.account.grids[0].code.as_str(), other.as_str()];
    expected.sort();
    assert_eq!(
        codes, expected,
        "both grids, in code order, and not the missing one"
    );
    // Disabled: the same token is refused.
    let (db, user) = (server.db.clone(), ok.account.username.clone());
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.exec(
                "UPDATE users SET disabled = 1 WHERE username = $1",
                &[user.into()],
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(me(ok.token).await.status(), 401, "disabled account");
}
both_backends!(a_session_brings_every_grid_of_its_account);

/// Requests arriving together have their sessions looked up together: each still gets its
/// own account, and a revoked or unknown token its 401, however the group is cut (more
/// requests at once than one statement looks up, group sizes that are not a power of two).
async fn sessions_looked_up_together_each_get_their_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.login("worker-a").await.token;
    let b = server.login("worker-b").await.token;
    let gone = server.login("worker-a").await.token;
    let c = super::util::api_client();
    let logout = c
        .post(format!("{}/api/v1/auth/logout", server.url))
        .bearer_auth(&gone)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let tokens = [
        (a.as_str(), Some("worker-a")),
        (b.as_str(), Some("worker-b")),
        (gone.as_str(), None),
        ("not-a-token", None),
    ];
    let url = format!("{}/api/v1/me", server.url);
    let mut asks = tokio::task::JoinSet::new();
    for i in 0..203 {
        let (token, who) = tokens[i % tokens.len()];
        let ask = c.get(&url).bearer_auth(token).send();
        asks.spawn(async move {
            let res = ask.await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (i, who, status, body)
        });
    }
    while let Some(done) = asks.join_next().await {
        let (i, who, status, body) = done.unwrap();
        match who {
            Some(user) => {
                assert_eq!(status, 200, "request {i}: {body}");
                assert_eq!(body["username"], user, "request {i}");
            }
            None => assert_eq!(status, 401, "request {i}: {body}"),
        }
    }
    // The same through the store's query itself: 70 hashes (two statements), a repeated
    // hash, a revoked and an unknown one.
    let hashes: Vec<String> = (0..66)
        .map(|i| format!("{i:064x}"))
        .chain([&a, &b, &a, &gone].map(|t| gridwalk::server::auth::token_hash(t)))
        .collect();
    let found = server
        .read(move |db| {
            let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
            gridwalk::server::repo::sessions(db, &hashes, Utc::now())
        })
        .await;
    let mut names: Vec<&str> = found.values().map(|l| l.user.username.as_str()).collect();
    names.sort();
    assert_eq!(names, ["worker-a", "worker-b"]);
}
both_backends!(sessions_looked_up_together_each_get_their_own);

/// A streamed pull carries, one a line, exactly the pages `/sync/pull` gives for the same
/// cursors: a small first page, then pages of `frame`, up to `limit`, the last saying whether
/// more is to come. It refuses what the paged pull refuses.
async fn a_stream_is_the_pages_one_after_another(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = server.login("worker-a").await.token;
    let c = super::util::api_client();
    let get = |path: String| {
        c.get(format!("{}/api/v1/sync/{path}", server.url))
            .bearer_auth(&token)
            .send()
    };
    let res = get("pull/stream?cursor=0&base=0&limit=25&frame=10".into())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<PullResponse> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sizes: Vec<usize> = lines.iter().map(|p| p.changes.len()).collect();
    assert_eq!(sizes, vec![10, 10, 5], "pages of 10 up to the limit of 25");
    assert!(lines[2].more, "the grid holds more than 25 changes");
    assert!(lines[2].cadence.is_none() && lines[0].cadence.is_some());
    let mut cursor = 0;
    for (line, n) in lines.iter().zip(sizes) {
        let page: PullResponse = get(format!("pull?cursor={cursor}&base=0&limit={n}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(line).unwrap(),
            serde_json::to_value(&page).unwrap()
        );
        cursor = page.cursor;
    }
    // The rest in one more answer, ending with `more` false.
    let rest = get(format!("pull/stream?cursor={cursor}&base=0"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last: PullResponse = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert!(!last.more);

    let bad = get("pull/stream?cursor=3&base=4".into()).await.unwrap();
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["field"], "base");
    let anonymous = c
        .get(format!("{}/api/v1/sync/pull/stream", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
both_backends!(a_stream_is_the_pages_one_after_another);

async fn scope_is_enforced_without_revealing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let grid_a = server.county.grids[0].grid.id;
    let grid_b = server.county.grids[1].grid.id;
    let h = super::e2e_hazard(grid_a);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    a.sync().await;
    let b = server.login("worker-b").await;
    let c = super::util::api_client();
    // worker-b cannot read or move worker-a's record, and cannot tell it from a missing one.
    let real = c
        .get(format!("{}/api/v1/records/{}", server.url, h.common.id))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    let fake = c
        .get(format!("{}/api/v1/records/{}", server.url, Uuid::now_v7()))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (real.status(), fake.status()),
        (
            reqwest::StatusCode::NOT_FOUND,
            reqwest::StatusCode::NOT_FOUND
        )
    );
    let (rm, fm): (ApiError, ApiError) = (real.json().await.unwrap(), fake.json().await.unwrap());
    assert_eq!(rm.error, fm.error);
    // A worker may not review.
    let a_login = server.login("worker-a").await;
    let tr = c
        .post(format!(
            "{}/api/v1/records/{}/transition",
            server.url, h.common.id
        ))
        .bearer_auth(&a_login.token)
        .json(&json!({"to": "CONFIRMED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tr.status(), 403);
    // worker-b pushing an edit of worker-a's record: taken, then refused when applied, and
    // nothing stored; the pull says so, in the same words as a missing record.
    let dev_b = Uuid::now_v7();
    let b2 = gridwalk::client::login(&server.url, "worker-b", "gridwalk-demo", dev_b)
        .await
        .unwrap();
    let mut fields = serde_json::Map::new();
    fields.insert("description".into(), json!("改掉"));
    let e = OutboxEntry {
        lane: Lane::Normal,
        seq: 1,
        kind: EntityKind::Hazard,
        record_id: h.common.id,
        op: Op::Update,
        fields,
        base_version: 1,
        edited_at: Utc::now(),
    };
    let (st, body) = push(&server, &b2.token, dev_b, vec![e]).await;
    assert_eq!(st, 200, "{body}");
    let r = refused(&server, &b2.token).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].error.as_str(), r[0].record_id, r[0].entry_seq),
        ("not_found", h.common.id, 1)
    );
    assert!(
        r[0].message
            .contains(&format!("no hazard {} in your scope", h.common.id)),
        "{r:?}"
    );
    assert_eq!(
        server.entity(h.common.id).await.unwrap()["description"],
        "村头池塘无护栏，暑期有儿童玩水"
    );
    // Creating in a grid not one's own is refused; in one's own, kept.
    let (st, body) = push(
        &server,
        &b2.token,
        dev_b,
        vec![hazard_entry(2, grid_a, |_| {})],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = push(
        &server,
        &b2.token,
        dev_b,
        vec![hazard_entry(3, grid_b, |f| {
            f.insert("author".into(), json!("worker-b"));
        })],
    )
    .await;
    assert_eq!(st, 200);
    let r = refused(&server, &b2.token).await;
    assert_eq!(
        r.iter()
            .map(|r| (r.entry_seq, r.error.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "not_found"), (2, "not_found")],
        "{r:?}"
    );
    assert!(
        r[1].message
            .ends_with(&format!("no grid {grid_a} in your scope")),
        "{r:?}"
    );
    assert_eq!(r[1].field.as_deref(), None);
    // The secretary sees the village (both grids); worker-b's list holds only grid b.
    let sec = server.login("secretary").await;
    let all: Vec<serde_json::Value> = c
        .get(format!("{}/api/v1/records?limit=1000", server.url))
        .bearer_auth(&sec.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        all.iter().any(|r| r["grid_id"] == grid_a.to_string())
            && all.iter().any(|r| r["grid_id"] == grid_b.to_string())
    );
    let mine: Vec<serde_json::Value> = c
        .get(format!("{}/api/v1/records?limit=1000", server.url))
        .bearer_auth(&b2.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(mine.iter().all(|r| r["grid_id"] == grid_b.to_string()));
}
both_backends!(scope_is_enforced_without_revealing);

async fn bad_input_is_explained_and_nothing_of_it_is_kept(backend: Backend) {
    let server = TestServer::start(backend).await;
    let dev = Uuid::now_v7();
    let a = gridwalk::client::login(&server.url, "worker-a", "gridwalk-demo", dev)
        .await
        .unwrap();
    let grid = server.county.grids[0].grid.id;
    let c = super::util::api_client();
    let url = format!("{}/api/v1/sync/push", server.url);
    // Malformed JSON.
    let res = c
        .post(&url)
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body("{\"device_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let e: ApiError = res.json().await.unwrap();
    assert!(e.message.contains("malformed JSON"), "{e:?}");
    // Wrong type deep inside: says where.
    let res = c.post(&url).bearer_auth(&a.token).json(&json!({"device_id": dev, "lane": "NORMAL", "device_now": Utc::now(), "entries": [{"lane": "NORMAL", "seq": "one"}]})).send().await.unwrap();
    let e: ApiError = res.json().await.unwrap();
    assert_eq!(e.field.as_deref(), Some("entries[0].seq"), "{e:?}");
    // Fields are kept as text until applied, yet fields that are not an object, or a wrong
    // type after an entry's fields, are still refused with where.
    let good = serde_json::to_value(hazard_entry(1, grid, |_| {})).unwrap();
    let mut not_object = good.clone();
    not_object["seq"] = json!(2);
    not_object["fields"] = json!(["title", "楼道"]);
    let mut bad_seq = good.clone();
    bad_seq["seq"] = json!("two");
    for (second, field, says) in [
        (
            not_object,
            "entries[1].fields",
            "an array, expected an object of fields",
        ),
        (bad_seq, "entries[1].seq", "expected u64"),
    ] {
        let body = json!({"device_id": dev, "lane": "NORMAL", "device_now": Utc::now(), "entries": [good, second]});
        let res = c
            .post(&url)
            .bearer_auth(&a.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let e: ApiError = res.json().await.unwrap();
        assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
        assert!(e.message.contains(says), "{e:?}");
    }
    // Two good entries and one with an unknown code: taken; when applied, the bad one is
    // refused with the field named and nothing of it stored, the good ones kept.
    let batch = vec![
        hazard_entry(1, grid, |_| {}),
        hazard_entry(2, grid, |_| {}),
        hazard_entry(3, grid, |f| {
            f.insert("category".into(), json!("FIREWORKS"));
        }),
    ];
    let (st, body) = push(&server, &a.token, dev, batch.clone()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        (body["acked_through"].clone(), body["queued"].clone()),
        (json!(3), json!(3))
    );
    let r = refused(&server, &a.token).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (
            r[0].entry_seq,
            r[0].record_id,
            r[0].error.as_str(),
            r[0].field.as_deref()
        ),
        (3, batch[2].record_id, "invalid", Some("fields.category"))
    );
    assert!(r[0].message.contains("FIREWORKS"), "{r:?}");
    assert_eq!(count_hazards(&server).await, 2, "the good entries are kept");
    assert!(server.entity(batch[2].record_id).await.is_none());
    // The server keeps the refused entry whole, for county staff.
    let kept = server
        .read(move |db| {
            db.query_one(
                "SELECT entry FROM push_rejections WHERE record_id = $1",
                &[batch[2].record_id.to_string().into()],
            )?[0]
                .string()
        })
        .await;
    assert!(kept.contains("FIREWORKS"), "{kept}");
    // Out-of-range coordinates.
    let (st, body) = push(
        &server,
        &a.token,
        dev,
        vec![hazard_entry(4, grid, |f| {
            f.insert("location".into(), json!({"lon": 116.4, "lat": 95.0}));
        })],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let r = refused(&server, &a.token).await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[1].message.contains("lat"), "{r:?}");
    assert_eq!(count_hazards(&server).await, 2);
    // A gap: the server expects 5.
    let (st, body) = push(&server, &a.token, dev, vec![hazard_entry(6, grid, |_| {})]).await;
    assert_eq!(
        (st, body["error"].clone(), body["expected"].clone()),
        (409, json!("gap"), json!(5))
    );
    // Taken once, then the same batch again: answered as already taken, no duplicate.
    let good = vec![hazard_entry(5, grid, |_| {}), hazard_entry(6, grid, |_| {})];
    let (st, body) = push(&server, &a.token, dev, good.clone()).await;
    assert_eq!(st, 200, "{body}");
    let again: PushResponse =
        serde_json::from_value(push(&server, &a.token, dev, good.clone()).await.1).unwrap();
    assert_eq!(
        (again.acked_through, again.queued, again.replayed),
        (6, 0, 2)
    );
    assert_eq!(refused(&server, &a.token).await.len(), 2);
    assert_eq!(count_hazards(&server).await, 4);
    // An illegal transition is refused with both states named.
    let mut fields = serde_json::Map::new();
    fields.insert("status".into(), json!("CLOSED"));
    fields.insert("from".into(), json!("REPORTED"));
    let tr = OutboxEntry {
        lane: Lane::Normal,
        seq: 7,
        kind: EntityKind::Hazard,
        record_id: good[0].record_id,
        op: Op::Transition,
        fields,
        base_version: 1,
        edited_at: Utc::now(),
    };
    let (st, body) = push(&server, &a.token, dev, vec![tr]).await;
    assert_eq!(st, 200, "{body}");
    let r = refused(&server, &a.token).await;
    let m = &r.last().unwrap().message;
    assert!(m.contains("REPORTED") && m.contains("CLOSED"), "{m}");
    assert_eq!(
        server.entity(good[0].record_id).await.unwrap()["status"],
        "REPORTED"
    );
    // A body over the limit.
    let big = vec![b' '; gridwalk::server::MAX_JSON_BYTES + 10];
    let res = c
        .post(&url)
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    // Gzip bodies: one over the limit once unpacked (a few kilobytes as sent), a broken one,
    // and an encoding the server does not speak, each refused with why.
    let gzip = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let bomb = gzip(&big);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let good = serde_json::to_vec(&json!({"device_id": dev, "lane": "NORMAL",
        "device_now": Utc::now(), "entries": []}))
    .unwrap();
    let mut broken = gzip(&good);
    let n = broken.len();
    broken[n - 8] ^= 1;
    for (body, encoding, status, says) in [
        (bomb, "gzip", 422, "larger than"),
        (broken, "gzip", 422, "CRC-32"),
        (good.clone(), "br", 415, "Content-Encoding"),
    ] {
        let res = c
            .post(&url)
            .bearer_auth(&a.token)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status);
        let e: ApiError = res.json().await.unwrap();
        assert!(e.message.contains(says), "{e:?}");
    }
    // Nothing of them was kept, and the same lane takes a well-made gzip body after them.
    assert_eq!(count_hazards(&server).await, 4);
    let next = serde_json::to_vec(&json!({"device_id": dev, "lane": "NORMAL",
        "device_now": Utc::now(), "entries": [hazard_entry(8, grid, |_| {})]}))
    .unwrap();
    let res = c
        .post(&url)
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(&next))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let taken: PushResponse = res.json().await.unwrap();
    assert_eq!(taken.acked_through, 8);
}
both_backends!(bad_input_is_explained_and_nothing_of_it_is_kept);

/// A new 民生服务 record (an `Event`) must name its matter, as the phone's form requires
/// (`Event::validate_new`): a hostile or old client's entry without one is refused with the
/// field named, and the device's later entries still apply.
async fn a_new_event_missing_its_duty_field_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let dev = Uuid::now_v7();
    let a = gridwalk::client::login(&server.url, "worker-a", "gridwalk-demo", dev)
        .await
        .unwrap();
    let grid = server.county.grids[0].grid.id;
    let livelihood = |seq: u64, matter: Option<LivelihoodMatter>| {
        let mut ev = Event::new(
            Common::new(Domain::Livelihood, grid, "worker-a", Utc::now()),
            Domain::Livelihood,
            "代办医保缴费".into(),
            "为行动不便老人代办医保缴费".into(),
        );
        ev.matter = matter;
        let serde_json::Value::Object(fields) = serde_json::to_value(&ev).unwrap() else {
            unreachable!()
        };
        OutboxEntry {
            lane: Lane::Normal,
            seq,
            kind: EntityKind::Livelihood,
            record_id: ev.common.id,
            op: Op::Create,
            fields,
            base_version: 0,
            edited_at: Utc::now(),
        }
    };
    let batch = vec![
        livelihood(1, None),
        livelihood(2, Some(LivelihoodMatter::Insurance)),
        hazard_entry(3, grid, |_| {}),
    ];
    let (st, body) = push(&server, &a.token, dev, batch.clone()).await;
    assert_eq!(st, 200, "{body}");
    let r = refused(&server, &a.token).await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (
            r[0].entry_seq,
            r[0].record_id,
            r[0].error.as_str(),
            r[0].field.as_deref()
        ),
        (1, batch[0].record_id, "invalid", Some("fields.matter"))
    );
    assert!(r[0].message.contains("事项"), "{r:?}");
    assert!(
        server.entity(batch[0].record_id).await.is_none(),
        "nothing of it stored"
    );
    let kept = server
        .entity(batch[1].record_id)
        .await
        .expect("the good one applies");
    assert_eq!(kept["matter"], "INSURANCE");
    assert!(
        server.entity(batch[2].record_id).await.is_some(),
        "and the hazard after it"
    );
    // The next push goes on from the refused entry's number.
    let (st, body) = push(
        &server,
        &a.token,
        dev,
        vec![livelihood(4, Some(LivelihoodMatter::Repair))],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(refused(&server, &a.token).await.len(), 1);
}
both_backends!(a_new_event_missing_its_duty_field_is_refused);

async fn health_answers_when_the_database_is_reachable(backend: Backend) {
    let server = TestServer::start(backend).await;
    let res = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}
both_backends!(health_answers_when_the_database_is_reachable);

/// Receives `(device, account, push)`s together, as the inbox's receiving task does: one
/// transaction, one `receive_group`.
async fn receive_together(
    server: &TestServer,
    pushes: Vec<(Uuid, &'static str, PushRequest)>,
) -> Vec<Result<PushResponse, gridwalk::server::error::Failure>> {
    use gridwalk::server::{records, repo};
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            let users: Vec<repo::User> = pushes
                .iter()
                .map(|(_, name, _)| repo::user_by_name(tx, name).map(|u| u.unwrap().0))
                .collect::<Result<_, _>>()?;
            // As the server takes them off the wire: fields as text.
            let raw: Vec<_> = pushes.iter().map(|(_, _, req)| req.to_raw()).collect();
            let incoming: Vec<records::Incoming<'_>> = pushes
                .iter()
                .zip(&users)
                .zip(&raw)
                .map(|(((device, _, _), user), req)| records::Incoming {
                    user,
                    device: *device,
                    req,
                    packed: None,
                })
                .collect();
            records::receive_group(tx, &incoming, Utc::now())
        })
    })
    .await
    .unwrap()
    .unwrap()
}

/// Pushes that arrive together are received in one transaction and a handful of statements,
/// yet each is decided as if it came alone, in order: a second push of the same lane goes on
/// from the first, another account's push for the device and a push with a gap are refused
/// without touching the others, a replay is acknowledged without queuing anything again.
async fn pushes_received_together_are_decided_one_by_one(backend: Backend) {
    use gridwalk::server::{records, repo};
    let server = TestServer::start(backend).await;
    let grid = server.county.grids[0].grid.id;
    let (d1, d2) = (Uuid::now_v7(), Uuid::now_v7());
    let entries: Vec<OutboxEntry> = (1..=3).map(|s| hazard_entry(s, grid, |_| {})).collect();
    let req = |device: Uuid, range: std::ops::RangeInclusive<usize>| PushRequest {
        device_id: device,
        lane: Lane::Normal,
        device_now: Utc::now(),
        entries: entries[range.start() - 1..*range.end()].to_vec(),
    };
    let pushes = [
        (d1, "worker-a", req(d1, 1..=2)),
        (d1, "worker-a", req(d1, 3..=3)),
        (d1, "worker-b", req(d1, 3..=3)),
        (d2, "worker-a", req(d2, 2..=3)),
        (d1, "worker-a", req(d1, 2..=3)),
        (d2, "worker-a", req(d1, 1..=1)),
    ];
    let answers = receive_together(&server, pushes.to_vec()).await;
    let acks: Vec<Option<(u64, u32, u32)>> = answers
        .iter()
        .map(|a| {
            a.as_ref()
                .ok()
                .map(|r| (r.acked_through, r.queued, r.replayed))
        })
        .collect();
    assert_eq!(
        acks,
        [
            Some((2, 2, 0)),
            Some((3, 1, 0)),
            None,
            None,
            Some((3, 0, 2)),
            None
        ]
    );
    let err = |i: usize| answers[i].as_ref().unwrap_err().to_string();
    assert!(err(2).contains("enrolled to another account"), "{}", err(2));
    assert!(
        matches!(
            answers[3],
            Err(gridwalk::server::error::Failure::Gap { expected: 1 })
        ),
        "{:?}",
        answers[3]
    );
    assert!(err(5).contains("belongs to device"), "{}", err(5));
    // Two rows queued for d1, in order; d1's watermark at 3; d2 has a row at 0 (made for its
    // new lane by the lock), which its owner's next push starts from.
    let rows = server
        .read(|db| {
            let q = repo::queued_pushes(db, 0, 10)?;
            let marks = db.query(
                "SELECT device_id, seq, username FROM watermarks WHERE lane = 'NORMAL' ORDER BY seq DESC",
                &[],
            )?;
            Ok((
                q.iter().map(|q| (q.device, q.entries.matches("\"seq\"").count())).collect::<Vec<_>>(),
                marks
                    .iter()
                    .map(|r| Ok((r[0].string()?, r[1].i64()?, r[2].string()?)))
                    .collect::<Result<Vec<_>, gridwalk::server::db::DbError>>()?,
            ))
        })
        .await;
    assert_eq!(rows.0, [(d1, 2), (d1, 1)]);
    assert_eq!(
        rows.1,
        [
            (d1.to_string(), 3, "worker-a".to_owned()),
            (d2.to_string(), 0, "worker-a".to_owned())
        ]
    );
    // A row queued before the inbox kept entries compressed (plain JSON, no entries_zstd)
    // is still read and applied.
    let legacy = serde_json::to_string(&[hazard_entry(4, grid, |_| {})]).unwrap();
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.exec(
                "INSERT INTO push_inbox (device_id, lane, username, device_now, received_at, entries)
                 VALUES ($1, 'NORMAL', 'worker-a', $2, $2, $3)",
                gridwalk::args![d1.to_string(), Utc::now().to_rfc3339(), legacy],
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    // Applied, they are the four records, once each.
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || db.tx(|tx| records::apply_inbox(tx, 100, Utc::now())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count_hazards(&server).await, 4);
}

both_backends!(pushes_received_together_are_decided_one_by_one);

/// The applier takes whole inbox rows in arrival order until its chunk is full, fetching a
/// few rows at a time: a chunk smaller than the inbox stops after its last whole row, a
/// larger one goes on through later fetches to the end, and an empty inbox answers none.
async fn the_inbox_is_applied_in_chunks_of_whole_rows(backend: Backend) {
    use gridwalk::server::{records, repo};
    let server = TestServer::start(backend).await;
    let grid = server.county.grids[0].grid.id;
    // Nine devices of one worker, two records each: nine rows.
    let pushes: Vec<PushRequest> = (0..9)
        .map(|_| PushRequest {
            device_id: Uuid::now_v7(),
            lane: Lane::Normal,
            device_now: Utc::now(),
            entries: (1..=2).map(|s| hazard_entry(s, grid, |_| {})).collect(),
        })
        .collect();
    let pushes = pushes
        .into_iter()
        .map(|req| (req.device_id, "worker-a", req))
        .collect();
    let answers = receive_together(&server, pushes).await;
    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
    let ids: Vec<i64> = server
        .read(|db| {
            repo::queued_pushes(db, 0, 100).map(|q| q.iter().map(|q| q.id).collect::<Vec<_>>())
        })
        .await;
    assert_eq!(ids.len(), 9);
    let apply = |max: usize| {
        let db = server.db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                db.tx(|tx| records::apply_inbox(tx, max, Utc::now()))
            })
            .await
            .unwrap()
            .unwrap()
        }
    };
    // Three entries: the first two rows whole (the second takes it past three).
    assert_eq!(apply(3).await, Some(ids[1]));
    assert_eq!(count_hazards(&server).await, 4);
    // Enough for all: the other seven rows, over more than one fetch.
    assert_eq!(apply(100).await, Some(ids[8]));
    assert_eq!(count_hazards(&server).await, 18);
    assert_eq!(apply(100).await, None);
    let left = server
        .read(|db| repo::queued_pushes(db, 0, 100).map(|q| q.len()))
        .await;
    assert_eq!(left, 0);
}
both_backends!(the_inbox_is_applied_in_chunks_of_whole_rows);

/// Answers go zstd-compressed to a client that takes it, except small ones (an account, an
/// error, a push's acknowledgement): zstd would not make them smaller.
async fn small_answers_go_uncompressed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.login("worker-a").await;
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        gridwalk::wire::PROTOCOL_HEADER,
        reqwest::header::HeaderValue::from(gridwalk::wire::PROTOCOL_VERSION),
    );
    let c = reqwest::Client::builder()
        .no_zstd()
        .no_gzip()
        .default_headers(h)
        .build()
        .unwrap();
    let get = |path: &str, token: &str| {
        c.get(format!("{}/api/v1/{path}", server.url))
            .bearer_auth(token)
            .header("accept-encoding", "zstd, gzip")
            .send()
    };
    let encoding = |r: &reqwest::Response| {
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let me = get("me", &a.token).await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(encoding(&me), None);
    assert!(me.bytes().await.unwrap().len() < gridwalk::server::api::COMPRESS_ABOVE as usize);
    let refused = get("me", "forged").await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(encoding(&refused), None);
    // A whole grid's page is large: compressed.
    let page = get("sync/pull?cursor=0", &a.token).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(encoding(&page).as_deref(), Some("zstd"));
    let packed = page.bytes().await.unwrap();
    let json = zstd::stream::decode_all(&packed[..]).unwrap();
    let body: PullResponse = serde_json::from_slice(&json).unwrap();
    assert!(!body.changes.is_empty());
    assert!(json.len() > gridwalk::server::api::COMPRESS_ABOVE as usize);
}
both_backends!(small_answers_go_uncompressed);
