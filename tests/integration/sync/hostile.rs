//! A hostile client with its own HTTP client, not the app: poison entries, arbitrary field
//! values, another account's photos and devices, the protocol header, password guessing, the
//! privacy rule at the API and its error answers. Every test on both backends.

use std::time::{Duration, Instant};

use chrono::Utc;
use gridwalk::domain::Coded;
use gridwalk::domain::model::EntityKind;
use gridwalk::server::{auth, demo, repo};
use gridwalk::wire::{Lane, PROTOCOL_HEADER, PROTOCOL_VERSION, Rejection, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::refused;
use super::util::{Backend, Device, TestServer, api_client};
use crate::both_backends;

/// Signs in with a device id of its own (as a script would); the token and the device.
async fn sign_in(server: &TestServer, username: &str) -> (String, Uuid) {
    let device = Uuid::now_v7();
    let res = login_as(server, username, demo::DEMO_PASSWORD, device).await;
    assert_eq!(res.0, 200, "{username} signs in: {}", res.1);
    (res.1["token"].as_str().unwrap().to_owned(), device)
}

async fn login_as(server: &TestServer, user: &str, password: &str, device: Uuid) -> (u16, Value) {
    let res = api_client()
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"username": user, "password": password, "device_id": device}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

/// One outbox entry as JSON text, its fields as given (so they may hold what JSON allows but
/// no Rust value does: `1e999`, a lone surrogate).
fn entry(lane: Lane, seq: u64, kind: &str, id: Uuid, op: &str, fields: &str) -> String {
    format!(
        r#"{{"lane":"{}","seq":{seq},"kind":"{kind}","record_id":"{id}","op":"{op}","fields":{fields},"base_version":0,"edited_at":"{}"}}"#,
        lane_code(lane),
        Utc::now().to_rfc3339()
    )
}

fn lane_code(lane: Lane) -> &'static str {
    match lane {
        Lane::Urgent => "URGENT",
        Lane::Normal => "NORMAL",
    }
}

/// Pushes entries (JSON texts) to a lane; the status and the answer.
async fn push_raw(
    server: &TestServer,
    token: &str,
    device: Uuid,
    lane: Lane,
    entries: &[String],
) -> (u16, Value) {
    let body = format!(
        r#"{{"device_id":"{device}","lane":"{}","device_now":"{}","entries":[{}]}}"#,
        lane_code(lane),
        Utc::now().to_rfc3339(),
        entries.join(",")
    );
    let res = api_client()
        .post(format!("{}/api/v1/sync/push", server.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or_default())
}

/// A valid new hazard's fields in worker-a's grid, as a JSON object.
fn hazard_fields(server: &TestServer, id: Uuid) -> serde_json::Map<String, Value> {
    let mut h = super::e2e_hazard(server.county.grids[0].grid.id);
    h.common.id = id;
    let Value::Object(m) = serde_json::to_value(&h).unwrap() else {
        unreachable!()
    };
    m
}

/// The fields with `key` (a dotted path) set to the raw JSON text `raw`, or removed (`None`).
fn with_raw(mut m: serde_json::Map<String, Value>, key: &str, raw: Option<&str>) -> String {
    const MARK: &str = "\u{1}RAW\u{1}";
    let (head, tail) = match key.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (key, None),
    };
    match (tail, raw) {
        (None, None) => {
            m.remove(head);
        }
        (None, Some(_)) => {
            m.insert(head.into(), Value::String(MARK.into()));
        }
        (Some(t), _) => {
            let inner = m.get_mut(head).and_then(Value::as_object_mut).unwrap();
            match raw {
                Some(_) => inner.insert(t.into(), Value::String(MARK.into())),
                None => inner.remove(t),
            };
        }
    }
    let text = serde_json::to_string(&m).unwrap();
    match raw {
        Some(r) => text.replace(&format!("\"{}\"", "\\u0001RAW\\u0001"), r),
        None => text,
    }
}

/// A device that signs in, files one hazard and syncs: how long until the county has it.
async fn good_device_gets_through(server: &TestServer, who: &str, grid: usize) -> Duration {
    let b = Device::enrol(server, who).await;
    let mut h = super::e2e_hazard(server.county.grids[grid].grid.id);
    h.common.author = who.into();
    let t = Instant::now();
    b.with(|s| s.create_record(&h, Utc::now())).unwrap();
    tokio::time::timeout(Duration::from_secs(20), b.sync())
        .await
        .expect("the good device's sync finished");
    let took = t.elapsed();
    assert!(
        server.entity(h.common.id).await.is_some(),
        "{who}'s hazard reached the county past the bad entries"
    );
    took
}

async fn quarantined(server: &TestServer) -> i64 {
    server
        .read(|db| repo::quarantined_pushes(db).map(|q| q.len() as i64))
        .await
}

// ---------------------------------------------------------------------------------------------
// No entry can stall the inbox.

async fn poison_entries_are_refused_and_others_move_on(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, device) = sign_in(&server, "worker-a").await;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    // (what, field to set or drop, raw JSON or None to drop, the field the refusal names)
    let cases: Vec<(&str, &str, Option<String>, &str)> = vec![
        (
            "lat 1e999",
            "location.lat",
            Some("1e999".into()),
            "fields.location.lat",
        ),
        (
            "lon -1e400",
            "location.lon",
            Some("-1e400".into()),
            "fields.location.lon",
        ),
        (
            "lone surrogate",
            "description",
            Some(r#""\ud800""#.into()),
            "fields.description",
        ),
        (
            "number for text",
            "place",
            Some("1e999".into()),
            "fields.place",
        ),
        (
            "NUL in text",
            "description",
            Some(r#""a\u0000b""#.into()),
            "fields.description",
        ),
        (
            "200 levels deep",
            "extra",
            Some(deep.clone()),
            "fields.extra",
        ),
        // The refusal names a field whose key holds NUL: it must still be kept.
        (
            "NUL in a key",
            "extra",
            Some(r#"{"k\u0000":"v\u0000"}"#.into()),
            "fields.extra",
        ),
        (
            "unknown category",
            "category",
            Some(r#""VOLCANO""#.into()),
            "fields.category",
        ),
        (
            "severity as number",
            "severity",
            Some("3".into()),
            "fields.severity",
        ),
        ("no description", "description", None, "fields.description"),
        (
            "lat 95",
            "location.lat",
            Some("95".into()),
            "fields.location.lat",
        ),
        (
            "lon 200",
            "location.lon",
            Some("200".into()),
            "fields.location.lon",
        ),
        (
            "negative accuracy",
            "location.accuracy_m",
            Some("-5".into()),
            "fields.location.accuracy_m",
        ),
        (
            "made in 2099",
            "created_at",
            Some(r#""2099-01-01T00:00:00Z""#.into()),
            "fields.created_at",
        ),
        (
            "not the first status",
            "status",
            Some(r#""RESOLVED""#.into()),
            "fields.status",
        ),
        (
            "Paris",
            "location",
            Some(r#"{"lon":2.35,"lat":48.86}"#.into()),
            "fields.location.lon",
        ),
        (
            "swapped",
            "location",
            Some(r#"{"lon":28.09,"lat":116.39}"#.into()),
            "fields.location.lat",
        ),
        (
            "grid as number",
            "grid_id",
            Some("1e999".into()),
            "fields.grid_id",
        ),
        (
            "photos as object",
            "photos",
            Some(r#"{"a":1}"#.into()),
            "fields.photos",
        ),
    ];
    let mut entries = Vec::new();
    let mut expect = Vec::new();
    for (i, (what, key, raw, field)) in cases.iter().enumerate() {
        let id = Uuid::now_v7();
        let fields = with_raw(hazard_fields(&server, id), key, raw.as_deref());
        entries.push(entry(
            Lane::Normal,
            i as u64 + 1,
            "HAZARD",
            id,
            "CREATE",
            &fields,
        ));
        expect.push((i as u64 + 1, *what, *field, id));
    }
    // One good entry after them in the same push: it is applied.
    let good = Uuid::now_v7();
    let fields = serde_json::to_string(&hazard_fields(&server, good)).unwrap();
    entries.push(entry(
        Lane::Normal,
        entries.len() as u64 + 1,
        "HAZARD",
        good,
        "CREATE",
        &fields,
    ));
    let (status, body) = push_raw(&server, &token, device, Lane::Normal, &entries).await;
    assert_eq!(status, 200, "acknowledged: {body}");
    assert_eq!(body["acked_through"], entries.len() as u64);

    // Another device's good push just after is applied within seconds.
    let took = good_device_gets_through(&server, "worker-b", 1).await;
    assert!(took < Duration::from_secs(10), "held up {took:?}");

    let refusals = refused(&server, &token).await;
    for (seq, what, field, id) in &expect {
        let r = refusals
            .iter()
            .find(|r| r.entry_seq == *seq)
            .unwrap_or_else(|| panic!("{what}: refused and told to the device ({refusals:?})"));
        assert_eq!(r.record_id, *id);
        let named = r.field.as_deref().unwrap_or("");
        assert!(
            named.starts_with(field),
            "{what}: the refusal names {field}, not {named:?} ({})",
            r.message
        );
        assert!(server.entity(*id).await.is_none(), "{what}: nothing stored");
    }
    assert!(
        server.entity(good).await.is_some(),
        "the good entry applied"
    );
    assert_eq!(
        quarantined(&server).await,
        0,
        "a bad entry is refused, not quarantined"
    );
    assert_eq!(server.read(repo::queued_count).await, 0);
}
both_backends!(poison_entries_are_refused_and_others_move_on);

/// Arbitrary JSON (and JSON that no Rust value holds) in any field of any kind a device
/// sends: every entry is applied or refused naming where, nothing stays queued, nothing is
/// quarantined, and another device's push gets through. Cases: `GRIDWALK_HOSTILE_CASES`
/// (default 40 a backend; the long mode takes thousands), seed `GRIDWALK_HOSTILE_SEED`.
async fn arbitrary_field_values_are_applied_or_refused(backend: Backend) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let server = TestServer::start(backend).await;
    let (token, device) = sign_in(&server, "worker-a").await;
    let cases: usize = std::env::var("GRIDWALK_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("GRIDWALK_HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_micros() as u64);
    println!("hostile field values: {cases} cases, GRIDWALK_HOSTILE_SEED={seed}");

    // Templates: an entity of every kind a device sends, from worker-a's grid.
    let code = server.county.grids[0].grid.code.as_str().to_owned();
    let kinds = [
        "HAZARD",
        "OPINION",
        "DISPUTE",
        "PATROL",
        "EMERGENCY",
        "SPECIAL_POP",
        "PUBLICITY",
        "LIVELIHOOD",
        "OTHER",
        "VISIT",
        "PERSON",
        "HOUSEHOLD",
        "HOUSE",
        "MEDIATION_SESSION",
        "EMERGENCY_REPORT",
        "PATROL_POINTS",
    ];
    let templates: Vec<(EntityKind, serde_json::Map<String, Value>)> = server
        .read(move |db| {
            let mut out = Vec::new();
            for k in kinds {
                if let Some(r) = db.query_opt(
                    "SELECT data FROM entities WHERE kind = $1 AND grid_code = $2 ORDER BY id LIMIT 1",
                    &[k.into(), code.clone().into()],
                )? {
                    let Value::Object(m) = serde_json::from_str(r[0].str()?).unwrap() else {
                        unreachable!()
                    };
                    out.push((EntityKind::from_code(k).unwrap(), m));
                }
            }
            Ok(out)
        })
        .await;
    assert!(
        templates.len() >= 8,
        "the demo county has most kinds: {}",
        templates.len()
    );

    let leaf = proptest::prop_oneof![
        proptest::strategy::Just(Value::Null),
        proptest::arbitrary::any::<bool>().prop_map(Value::from),
        proptest::arbitrary::any::<i64>().prop_map(Value::from),
        proptest::arbitrary::any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        proptest::strategy::Just(Value::from("2099-01-01T00:00:00Z")),
        proptest::strategy::Just(Value::from(Uuid::now_v7().to_string())),
    ];
    let value = leaf.prop_recursive(4, 24, 4, |inner| {
        proptest::prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let raw = proptest::prop_oneof![
        4 => value.prop_map(|v| v.to_string()),
        1 => proptest::sample::select(vec![
            "1e999", "-1e400", r#""\ud800""#, r#""\udfff x""#, r#""a\u0000""#,
            "[[[[[[[[[[[[1]]]]]]]]]]]]", "123456789012345678901234567890",
        ])
        .prop_map(str::to_owned),
    ];
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &{
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&seed.to_le_bytes());
            s
        }),
    );
    let (mut normal, mut urgent) = (Vec::new(), Vec::new());
    let mut sent = Vec::new();
    for i in 0..cases {
        let (kind, template) = &templates[i % templates.len()];
        let mut fields = template.clone();
        let id = Uuid::now_v7();
        fields.insert("id".into(), Value::from(id.to_string()));
        if let Some(domain) = kind.domain() {
            let initial = gridwalk::domain::lifecycle::lifecycle(domain).initial;
            fields.insert("status".into(), Value::from(initial.code()));
        }
        let keys: Vec<String> = fields.keys().cloned().collect();
        let pick = proptest::arbitrary::any::<proptest::sample::Index>()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let key = keys[pick.index(keys.len())].clone();
        let text = raw.new_tree(&mut runner).unwrap().current();
        let fields = with_raw(fields, &key, Some(&text));
        let lane = Lane::for_kind(*kind);
        let op = if kind.is_append_only() {
            "APPEND"
        } else {
            "CREATE"
        };
        let list = if lane == Lane::Urgent {
            &mut urgent
        } else {
            &mut normal
        };
        list.push(entry(
            lane,
            list.len() as u64 + 1,
            kind.code(),
            id,
            op,
            &fields,
        ));
        sent.push((lane, list.len() as u64, *kind, key, text, id));
    }
    for (lane, list) in [(Lane::Urgent, &urgent), (Lane::Normal, &normal)] {
        if !list.is_empty() {
            let (status, body) = push_raw(&server, &token, device, lane, list).await;
            assert_eq!(status, 200, "acknowledged: {body}");
        }
    }
    let took = good_device_gets_through(&server, "worker-b", 1).await;
    assert!(
        took < Duration::from_secs(10),
        "held up {took:?} (seed {seed})"
    );
    let refusals = refused(&server, &token).await;
    for (lane, seq, kind, key, text, id) in sent {
        let stored = server.entity(id).await.is_some();
        let refusal = refusals
            .iter()
            .find(|r| r.lane == lane && r.entry_seq == seq);
        match (stored, refusal) {
            (true, None) => {}
            (false, Some(r)) => assert!(
                r.field.is_some() || matches!(r.error.as_str(), "not_found" | "conflict"),
                "{kind} with {key} = {text}: the refusal says where ({r:?}, seed {seed})"
            ),
            (s, r) => {
                let q = server.read(repo::quarantined_pushes).await;
                let by_id: Vec<&Rejection> =
                    refusals.iter().filter(|r| r.record_id == id).collect();
                panic!(
                    "{kind} with {key} = {text}: stored {s}, refused {r:?}: one or the other \
                     (seed {seed}; refusals naming the record: {by_id:?}; quarantined: {q:?}; \
                     {} refusals in all)",
                    refusals.len()
                )
            }
        }
    }
    assert_eq!(quarantined(&server).await, 0, "seed {seed}");
    assert_eq!(server.read(repo::queued_count).await, 0, "seed {seed}");
}
both_backends!(arbitrary_field_values_are_applied_or_refused);

/// A row that cannot be applied at all is set aside after its tries, the rows behind it are
/// applied, the health check and the administrator see it, and a restart leaves it aside.
async fn a_row_that_cannot_be_read_is_quarantined_and_the_rest_moves_on(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, device) = sign_in(&server, "worker-a").await;
    // A row no push makes: its entries are not a zstd frame.
    let d = device.to_string();
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.exec(
                "INSERT INTO push_inbox (device_id, lane, username, device_now, received_at, entries, entries_zstd)
                 VALUES ($1, 'NORMAL', 'worker-a', $2, $2, '', $3)",
                &[d.into(), Utc::now().to_rfc3339().into(), b"not zstd".to_vec().into()],
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    let took = good_device_gets_through(&server, "worker-b", 1).await;
    assert!(took < Duration::from_secs(10), "held up {took:?}");
    let q = server.read(repo::quarantined_pushes).await;
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].last_error.contains("zstd"), "{q:?}");
    let health: Value = api_client()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["inbox"]["quarantined"], 1, "{health}");
    assert_eq!(health["inbox"]["queued"], 0, "{health}");

    // A restarted server (the binary, on the same database) leaves it aside and serves.
    let dir = tempfile::tempdir().unwrap();
    let other = super::faults::spawn_server(&server.db_url, dir.path()).await;
    let (token, dev) = {
        let res = login_as_url(&other.url, "worker-a", Uuid::now_v7()).await;
        (
            res["token"].as_str().unwrap().to_owned(),
            res["device"].clone(),
        )
    };
    let _ = dev;
    let health: Value = api_client()
        .get(format!("{}/healthz", other.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["inbox"]["quarantined"], 1, "{health}");
    let me = api_client()
        .get(format!("{}/api/v1/me", other.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // The administrator's command lists it and puts it back; it is set aside again.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
        .args(["--db", &server.db_url, "inbox", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&q[0].id.to_string()) && listed.contains("zstd"),
        "{listed}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
        .args([
            "--db",
            &server.db_url,
            "inbox",
            "retry",
            &q[0].id.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // On PostgreSQL the running server hears the retry announced and may apply (and set the
    // row aside again) at once; on SQLite it waits for the next push.
    if matches!(backend, Backend::Sqlite) {
        assert_eq!(quarantined(&server).await, 0);
    }
    good_device_gets_through(&server, "secretary", 0).await;
    assert_eq!(
        quarantined(&server).await,
        1,
        "quarantined again by the next application"
    );
}
both_backends!(a_row_that_cannot_be_read_is_quarantined_and_the_rest_moves_on);

async fn login_as_url(url: &str, user: &str, device: Uuid) -> Value {
    let res = api_client()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": demo::DEMO_PASSWORD, "device_id": device}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Photos and devices belong to their account.

/// A secretary of the second village (the demo has one only for the first).
async fn other_village_secretary(server: &TestServer) -> String {
    let village = server
        .county
        .grids
        .last()
        .unwrap()
        .grid
        .code
        .village()
        .to_owned();
    assert_ne!(village, server.county.grids[0].grid.code.village());
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            repo::create_user(
                tx,
                &repo::NewUser {
                    username: "secretary-2".into(),
                    display_name: "另一村书记".into(),
                    role: Role::Secretary,
                    scope_code: village,
                    password_hash: auth::hash_password(demo::DEMO_PASSWORD).unwrap(),
                    grids: vec![],
                },
                Utc::now(),
            )
            .map_err(gridwalk::server::error::Failure::from)
        })
    })
    .await
    .unwrap()
    .unwrap();
    "secretary-2".into()
}

fn jpeg(seed: u8) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend((0..5000u32).map(|i| (i as u8).wrapping_mul(seed)));
    b
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

/// Every cell of (HEAD, PUT, GET) × (own, same village, other village, naming a foreign hash).
async fn photos_belong_to_their_records_scope(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let grid_a = server.county.grids[0].grid.id;
    let h = super::e2e_hazard(grid_a);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    let done = jpeg(3);
    let sha_done = a
        .with(|s| s.attach_photo(h.common.id, &done, "image/jpeg", Utc::now()))
        .unwrap();
    a.sync().await;
    // A second photo whose record has reached the county but whose bytes have not: an
    // unfinished upload.
    let half = jpeg(5);
    let sha_half = a
        .with(|s| s.attach_photo(h.common.id, &half, "image/jpeg", Utc::now()))
        .unwrap();
    let token_a = a.with(|s| s.meta("token")).unwrap().unwrap();
    let a_dev = a.with(|s| s.device_id());
    {
        // Push only (no photo phase).
        let entries = a.with(|s| s.outbox_to_push(Lane::Normal, 100)).unwrap();
        let entries: Vec<String> = entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let (st, _) = push_raw(&server, &token_a, a_dev, Lane::Normal, &entries).await;
        assert_eq!(st, 200);
        server.applied().await;
    }
    let photo = |sha: &str| format!("{}/api/v1/photos/{sha}", server.url);
    let c = api_client();
    // The owner: HEAD and GET its photo, PUT the next chunk.
    assert_eq!(
        status_of(c.head(photo(&sha_done)).bearer_auth(&token_a)).await,
        200
    );
    assert_eq!(
        status_of(c.get(photo(&sha_done)).bearer_auth(&token_a)).await,
        200
    );
    let res = c
        .get(photo(&sha_done))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        status_of(c.head(photo(&sha_half)).bearer_auth(&token_a)).await,
        200
    );

    let (token_b, _) = sign_in(&server, "worker-b").await;
    let (token_s, _) = sign_in(&server, "secretary").await;
    let other = other_village_secretary(&server).await;
    let (token_o, _) = sign_in(&server, &other).await;
    // A second device of worker-a's own account: not the one that named the unfinished one.
    let (token_a2, _) = sign_in(&server, "worker-a").await;
    for (who, t) in [
        ("worker-b", &token_b),
        ("secretary", &token_s),
        ("other village", &token_o),
    ] {
        assert_eq!(
            status_of(c.head(photo(&sha_done)).bearer_auth(t)).await,
            404,
            "{who} HEAD"
        );
        assert_eq!(
            status_of(c.head(photo(&sha_half)).bearer_auth(t)).await,
            404,
            "{who} HEAD"
        );
        assert_eq!(
            status_of(
                c.put(format!("{}?offset=0", photo(&sha_half)))
                    .bearer_auth(t)
                    .body(half[..100].to_vec())
            )
            .await,
            404,
            "{who} PUT into another's upload"
        );
    }
    assert_eq!(
        status_of(c.head(photo(&sha_half)).bearer_auth(&token_a2)).await,
        404,
        "another device of the account"
    );
    // GET: the secretary of the village sees it (a record in scope), worker-b and the other
    // village do not.
    assert_eq!(
        status_of(c.get(photo(&sha_done)).bearer_auth(&token_s)).await,
        200,
        "secretary GET"
    );
    assert_eq!(
        status_of(c.get(photo(&sha_done)).bearer_auth(&token_b)).await,
        404,
        "worker-b GET"
    );
    assert_eq!(
        status_of(c.get(photo(&sha_done)).bearer_auth(&token_o)).await,
        404,
        "other village GET"
    );
    // The owner's upload still continues where it was.
    let res = c
        .put(format!("{}?offset=0", photo(&sha_half)))
        .bearer_auth(&token_a)
        .body(half.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["upload-complete"], "1");

    // worker-b names worker-a's hash in a record of its own, and in an APPEND: both refused,
    // naming the field, and the photo stays unreadable to worker-b.
    let b = Device::enrol(&server, "worker-b").await;
    let mut hb = super::e2e_hazard(server.county.grids[1].grid.id);
    hb.common.author = "worker-b".into();
    hb.common.photos = vec![sha_done.clone()];
    let token_bd = b.with(|s| s.meta("token")).unwrap().unwrap();
    let b_dev = b.with(|s| s.device_id());
    let fields = serde_json::to_string(&hb).unwrap();
    let mut hb2 = super::e2e_hazard(server.county.grids[1].grid.id);
    hb2.common.author = "worker-b".into();
    let append = json!({"record_id": hb2.common.id, "sha256": sha_done, "mime": "image/jpeg", "size": done.len()});
    let entries = vec![
        entry(Lane::Normal, 1, "HAZARD", hb.common.id, "CREATE", &fields),
        entry(
            Lane::Normal,
            2,
            "HAZARD",
            hb2.common.id,
            "CREATE",
            &serde_json::to_string(&hb2).unwrap(),
        ),
        entry(
            Lane::Normal,
            3,
            "PHOTO",
            Uuid::now_v7(),
            "APPEND",
            &append.to_string(),
        ),
    ];
    let (st, body) = push_raw(&server, &token_bd, b_dev, Lane::Normal, &entries).await;
    assert_eq!(st, 200, "{body}");
    let refusals = refused(&server, &token_bd).await;
    let r1 = refusals
        .iter()
        .find(|r| r.entry_seq == 1)
        .expect("the record naming it refused");
    assert_eq!(r1.field.as_deref(), Some("fields.photos[0]"), "{r1:?}");
    let r3 = refusals
        .iter()
        .find(|r| r.entry_seq == 3)
        .expect("the APPEND naming it refused");
    assert_eq!(r3.field.as_deref(), Some("fields.sha256"), "{r3:?}");
    assert!(
        server.entity(hb2.common.id).await.is_some(),
        "its own record is kept"
    );
    assert_eq!(
        status_of(c.get(photo(&sha_done)).bearer_auth(&token_bd)).await,
        404,
        "still not readable"
    );
    assert_eq!(
        status_of(c.head(photo(&sha_done)).bearer_auth(&token_bd)).await,
        404,
        "nor probed"
    );
    assert_eq!(
        status_of(
            c.put(format!("{}?offset=0", photo(&sha_done)))
                .bearer_auth(&token_bd)
                .body(done.clone())
        )
        .await,
        404,
        "nor written"
    );

    // A declared SVG is refused at the entry, and bytes that are not a raster at upload.
    let mut hs = super::e2e_hazard(grid_a);
    hs.common.author = "worker-a".into();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    a.with(|s| s.create_record(&hs, Utc::now())).unwrap();
    a.sync().await;
    let fake_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&svg));
    let seq = a.with(|s| s.outbox_last_seq(Lane::Normal)).unwrap() + 1;
    let svg_entry = json!({"record_id": hs.common.id, "sha256": fake_sha, "mime": "image/svg+xml", "size": svg.len()});
    let jpg_entry = json!({"record_id": hs.common.id, "sha256": fake_sha, "mime": "image/jpeg", "size": svg.len()});
    let entries = vec![
        entry(
            Lane::Normal,
            seq,
            "PHOTO",
            Uuid::now_v7(),
            "APPEND",
            &svg_entry.to_string(),
        ),
        entry(
            Lane::Normal,
            seq + 1,
            "PHOTO",
            Uuid::now_v7(),
            "APPEND",
            &jpg_entry.to_string(),
        ),
    ];
    let (st, body) = push_raw(&server, &token_a, a_dev, Lane::Normal, &entries).await;
    assert_eq!(st, 200, "{body}");
    let refusals = refused(&server, &token_a).await;
    let r = refusals
        .iter()
        .find(|r| r.entry_seq == seq)
        .expect("SVG refused");
    assert_eq!(r.field.as_deref(), Some("fields.mime"));
    let res = c
        .put(format!("{}?offset=0", photo(&fake_sha)))
        .bearer_auth(&token_a)
        .body(svg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        422,
        "an SVG declared as a JPEG is refused at upload"
    );
    assert_eq!(
        status_of(c.get(photo(&fake_sha)).bearer_auth(&token_a)).await,
        404
    );
}
both_backends!(photos_belong_to_their_records_scope);

/// worker-b signing in with worker-a's device id is refused; nothing of the device reaches
/// worker-b; worker-a's device goes on.
async fn a_device_id_belongs_to_one_account(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let a_dev = a.with(|s| s.device_id());
    let token_a = a.with(|s| s.meta("token")).unwrap().unwrap();
    // worker-a has a refused entry waiting on that device.
    let id = Uuid::now_v7();
    let bad = with_raw(hazard_fields(&server, id), "category", Some(r#""VOLCANO""#));
    let seq = a.with(|s| s.outbox_last_seq(Lane::Normal)).unwrap() + 1;
    let (st, _) = push_raw(
        &server,
        &token_a,
        a_dev,
        Lane::Normal,
        &[entry(Lane::Normal, seq, "HAZARD", id, "CREATE", &bad)],
    )
    .await;
    assert_eq!(st, 200);
    server.applied().await;

    let (st, body) = login_as(&server, "worker-b", demo::DEMO_PASSWORD, a_dev).await;
    assert_eq!(st, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("另一个账号"),
        "{body}"
    );
    // A session made for that device before it was enrolled (an old takeover) is refused too.
    let b_user = server
        .read(|db| repo::user_by_name(db, "worker-b").map(|u| u.unwrap().0.id))
        .await;
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            repo::create_session(
                tx,
                &auth::token_hash("old-takeover"),
                b_user,
                a_dev,
                Utc::now(),
                Utc::now() + chrono::Duration::days(1),
                Utc::now() + chrono::Duration::days(1),
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    let c = api_client();
    assert_eq!(
        status_of(
            c.get(format!("{}/api/v1/sync/pull", server.url))
                .bearer_auth("old-takeover")
        )
        .await,
        401
    );
    // worker-b's own device pushing into worker-a's lane by naming its device id: refused.
    let (token_b, _) = sign_in(&server, "worker-b").await;
    let (st, _) = push_raw(&server, &token_b, a_dev, Lane::Urgent, &[]).await;
    assert_eq!(st, 403, "a push names the session's device only");
    // worker-a's device goes on, and still gets its own refusal.
    let r = refused(&server, &token_a).await;
    assert!(r.iter().any(|r| r.record_id == id), "{r:?}");
    a.sync().await;
    // An administrator releases the device: then another account may enrol it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridwalk-server"))
        .args([
            "--db",
            &server.db_url,
            "device",
            "release",
            &a_dev.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        status_of(
            c.get(format!("{}/api/v1/sync/pull", server.url))
                .bearer_auth(&token_a)
        )
        .await,
        401,
        "released: its sessions end"
    );
    let (st, body) = login_as(&server, "worker-b", demo::DEMO_PASSWORD, a_dev).await;
    assert_eq!(st, 200, "{body}");
    let token_b2 = body["token"].as_str().unwrap();
    let r = refused(&server, token_b2).await;
    assert!(
        r.is_empty(),
        "worker-a's refusals never reach worker-b: {r:?}"
    );
}
both_backends!(a_device_id_belongs_to_one_account);

// ---------------------------------------------------------------------------------------------
// The edge: protocol, sign-in limits, masking, errors.

async fn the_protocol_header_is_required(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, device) = sign_in(&server, "worker-a").await;
    let bare = reqwest::Client::new();
    for (what, req) in [
        ("me", bare.get(format!("{}/api/v1/me", server.url))),
        ("pull", bare.get(format!("{}/api/v1/sync/pull", server.url))),
        (
            "push",
            bare.post(format!("{}/api/v1/sync/push", server.url))
                .json(&json!({"device_id": device, "lane": "NORMAL", "device_now": Utc::now(), "entries": []})),
        ),
    ] {
        let res = req.bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 426, "{what} without the header");
        assert_eq!(res.headers()[PROTOCOL_HEADER], PROTOCOL_VERSION.to_string());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "upgrade_required");
        assert_eq!(body["expected"], PROTOCOL_VERSION, "{body}");
    }
    // Sign-in answers the version it speaks, with or without the header.
    let res = bare
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(
            &json!({"username": "worker-a", "password": demo::DEMO_PASSWORD, "device_id": device}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["protocol"], PROTOCOL_VERSION);
}
both_backends!(the_protocol_header_is_required);

/// Five wrong passwords from a stranger's address lock out that address, and at worst (after
/// many addresses) everyone but the worker's enrolled phone: never the phone.
async fn a_strangers_failures_cannot_lock_a_worker_out(backend: Backend) {
    let server = TestServer::start(backend).await;
    let phone = Device::enrol(&server, "worker-a").await;
    let phone_id = phone.with(|s| s.device_id());
    let stranger = Uuid::now_v7();
    for _ in 0..auth::MAX_FAILURES {
        assert_eq!(
            login_as(&server, "worker-a", "guess", stranger).await.0,
            401
        );
    }
    let (st, _) = login_as(&server, "worker-a", demo::DEMO_PASSWORD, stranger).await;
    assert_eq!(
        st, 429,
        "the guessing address is limited, even with the right password"
    );
    let (st, body) = login_as(&server, "worker-a", demo::DEMO_PASSWORD, phone_id).await;
    assert_eq!(st, 200, "the worker's phone signs in: {body}");
    // Guesses from many addresses (counted in the database, as from other replicas).
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            for i in 0..auth::MAX_ACCOUNT_FAILURES {
                repo::add_login_failure(
                    tx,
                    "worker-a",
                    &format!("addr:10.0.0.{i}"),
                    Uuid::now_v7(),
                    Utc::now(),
                )?;
            }
            Ok::<_, gridwalk::server::db::DbError>(())
        })
    })
    .await
    .unwrap()
    .unwrap();
    let (st, _) = login_as(&server, "worker-a", demo::DEMO_PASSWORD, Uuid::now_v7()).await;
    assert_eq!(st, 429, "past the account's limit, a new device waits");
    let (st, body) = login_as(&server, "worker-a", demo::DEMO_PASSWORD, phone_id).await;
    assert_eq!(st, 200, "the enrolled phone still signs in: {body}");
    // The phone's own wrong PINs count against the phone alone.
    for _ in 0..auth::MAX_FAILURES {
        assert_eq!(login_as(&server, "worker-a", "typo", phone_id).await.0, 401);
    }
    assert_eq!(
        login_as(&server, "worker-a", demo::DEMO_PASSWORD, phone_id)
            .await
            .0,
        429
    );
    // Another worker is untouched by all of it.
    assert_eq!(
        login_as(&server, "worker-b", demo::DEMO_PASSWORD, Uuid::now_v7())
            .await
            .0,
        200
    );
}
both_backends!(a_strangers_failures_cannot_lock_a_worker_out);

/// The API masks dispute parties' phones as the dashboard does; a reviewer may reveal them,
/// audited; a worker may not.
async fn the_api_masks_what_the_dashboard_masks(backend: Backend) {
    let server = TestServer::start(backend).await;
    // worker-a files a dispute with a party's phone.
    let mut fields: serde_json::Map<String, Value> = server
        .read(move |db| {
            let r = db.query_one(
                "SELECT data FROM entities WHERE kind = 'DISPUTE' ORDER BY id LIMIT 1",
                &[],
            )?;
            Ok(serde_json::from_str(r[0].str()?).unwrap())
        })
        .await;
    fields.insert(
        "grid_id".into(),
        Value::from(server.county.grids[0].grid.id.to_string()),
    );
    let phone = "13912345678".to_owned();
    let id = Uuid::now_v7();
    fields.insert("id".into(), Value::from(id.to_string()));
    fields.insert("status".into(), Value::from("REGISTERED"));
    fields["parties"][0]["phone"] = Value::from(phone.clone());
    let (worker, device) = sign_in(&server, "worker-a").await;
    let text = serde_json::to_string(&fields).unwrap();
    let (st, body) = push_raw(
        &server,
        &worker,
        device,
        Lane::Normal,
        &[entry(Lane::Normal, 1, "DISPUTE", id, "CREATE", &text)],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    server.applied().await;
    assert!(
        server.entity(id).await.is_some(),
        "{:?}",
        refused(&server, &worker).await
    );
    let id = id.to_string();
    let (token, _) = sign_in(&server, "secretary").await;
    let c = api_client();
    let list: Value = c
        .get(format!(
            "{}/api/v1/records?kind=DISPUTE&limit=500",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(!text.contains(&phone), "the list masks phones");
    assert!(text.contains(&gridwalk::domain::validate::mask_phone(&phone)));
    let one = c
        .get(format!("{}/api/v1/records/{id}", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!one.contains(&phone), "the record masks phones");
    let revealed = c
        .get(format!("{}/api/v1/records/{id}?reveal=1", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(revealed.contains(&phone), "a reviewer may reveal");
    let id2 = id.clone();
    let audited = server
        .read(move |db| {
            db.query_one(
                "SELECT count(*) FROM audit WHERE action = 'REVEAL' AND entity_id = $1 AND username = 'secretary'",
                &[id2.clone().into()],
            )?[0]
                .i64()
        })
        .await;
    assert_eq!(audited, 1, "the reveal is audited");
    let res = c
        .get(format!("{}/api/v1/records/{id}?reveal=1", server.url))
        .bearer_auth(&worker)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a worker may not reveal");
}
both_backends!(the_api_masks_what_the_dashboard_masks);

/// Every 4xx is the JSON error with its field, and echoes nothing as HTML.
async fn every_client_error_is_the_json_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (token, _) = sign_in(&server, "secretary").await;
    let c = api_client();
    for (path, field) in [
        ("/api/v1/records?limit=-1", Some("limit")),
        ("/api/v1/records?kind=VOLCANO", Some("kind")),
        (
            "/api/v1/records/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            Some("id"),
        ),
        ("/api/v1/sync/pull?cursor=abc", Some("cursor")),
        ("/api/v1/photos/xyz", Some("sha")),
        ("/api/v1/no-such-route", None),
    ] {
        let res = c
            .get(format!("{}{path}", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{path}: {body}"
        );
        if let Some(f) = field {
            assert_eq!(body["field"], f, "{path}: {body}");
        }
    }
    let res = c
        .delete(format!("{}/api/v1/me", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}
both_backends!(every_client_error_is_the_json_error);
