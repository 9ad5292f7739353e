//! The county dashboard over HTTP against a real server (both backends): a clerk signs in,
//! finds the hazard a device pushed, accepts and dispatches it, and the device's next sync
//! shows it; scope (a secretary sees only their village; a worker account opens nothing of
//! other villages); conflicts with both values; statistics and the map. The same flow in a
//! real browser is `dashboard_in_a_real_browser` (needs chromium; run by scripts/test.sh).

use chrono::{Duration, Utc};
use gridwalk::domain::lifecycle::Status;
use gridwalk::domain::model::{EventRecord, Hazard};
use reqwest::redirect::Policy;

use crate::both_backends;
use crate::sync::e2e_hazard as hazard;
use crate::sync::util::{Backend, Device, TestServer};

/// A browser session: the session cookie and the CSRF token its pages' forms carry, no
/// automatic redirects (tests look at them).
pub(crate) struct Session {
    base: String,
    cookie: String,
    csrf: String,
    http: reqwest::Client,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) location: Option<String>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn page_of(res: reqwest::Response) -> Page {
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    Page {
        status,
        location,
        body: res.text().await.unwrap(),
    }
}

/// The hidden CSRF field of a page's forms.
fn csrf_of(body: &str) -> String {
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in {body}"))
        .to_owned()
}

/// The sign-in form as a browser gets it: the `gw_csrf` cookie (`name=value`) and the form's
/// token.
async fn login_form(server: &TestServer) -> (String, String) {
    let res = client()
        .get(format!("{}/login", server.url))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("gw_csrf="), "{cookie}");
    let body = res.text().await.unwrap();
    (cookie, csrf_of(&body))
}

/// Posts the sign-in form as the page at `server` would (its Origin, cookie and token).
async fn post_login(
    server: &TestServer,
    user: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let (cookie, token) = login_form(server).await;
    client()
        .post(format!("{}/login", server.url))
        .header("origin", &server.url)
        .header("cookie", cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("username", user),
            ("password", password),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

/// The session cookie (`gw_session=…`) a sign-in answer sets, if any.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("gw_session=") && c.len() > "gw_session=".len())
}

pub(crate) async fn sign_in(
    server: &TestServer,
    user: &str,
    password: &str,
) -> Result<Session, Page> {
    let res = post_login(server, user, password, "/queue").await;
    match session_cookie(&res) {
        Some(cookie) => {
            let mut s = Session {
                base: server.url.clone(),
                cookie,
                csrf: String::new(),
                http: client(),
            };
            // An assignee's queue is its 我的待办.
            let q = s.get("/queue").await;
            let q = match q.location {
                Some(to) if q.status == 303 => s.get(&to).await,
                _ => q,
            };
            s.csrf = csrf_of(&q.body);
            Ok(s)
        }
        None => Err(page_of(res).await),
    }
}

impl Session {
    pub(crate) async fn get(&self, path: &str) -> Page {
        page_of(
            self.http
                .get(format!("{}{path}", self.base))
                .header("cookie", &self.cookie)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts a form as this session's pages do: from its origin, with its CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut form = form.to_vec();
        form.push(("csrf", &self.csrf));
        self.post_as(path, &form, &[("origin", &self.base)]).await
    }

    /// Posts a form exactly as given, with these headers (and the session cookie).
    async fn post_as(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        page_of(req.send().await.unwrap()).await
    }

    /// Posts a form and follows the redirect back, returning the page it lands on.
    async fn act(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let p = self.post(path, form).await;
        assert_eq!(p.status, 303, "{path}: {}", p.body);
        self.get(p.location.as_deref().unwrap()).await
    }
}

async fn dispatch_flow(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    // A JPEG's signature, then bytes: the dashboard serves photos by what their bytes are.
    let photo: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain((0..5000u32).map(|i| (i * 7 % 251) as u8))
        .collect();
    let sha = a
        .with(|s| s.attach_photo(h.common.id, &photo, "image/jpeg", Utc::now()))
        .unwrap();
    a.sync().await;

    // Not signed in: every page sends you to sign in, and comes back after.
    let anon = client()
        .get(format!("{}/queue?domain=HAZARD", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 303);
    assert_eq!(
        anon.headers()["location"].to_str().unwrap(),
        "/login?next=%2Fqueue%3Fdomain%3DHAZARD"
    );
    // A wrong password is refused in words, and sets no session.
    let bad = sign_in(&server, "admin", "not-the-password")
        .await
        .err()
        .unwrap();
    assert_eq!(bad.status, 303);
    assert!(bad.location.unwrap().contains("err="));

    let clerk = sign_in(&server, "admin", gridwalk::server::demo::DEMO_PASSWORD)
        .await
        .ok()
        .unwrap();
    // The queue shows the pushed hazard, urgent ones marked.
    let q = clerk.get("/queue?domain=HAZARD").await;
    assert_eq!(q.status, 200);
    assert!(q.body.contains("村头池塘无护栏"), "{}", q.body);
    let id = h.common.id.to_string();
    assert!(q.body.contains(&format!("data-id=\"{id}\"")));
    let rec = clerk.get(&format!("/records/{id}")).await;
    assert!(rec.body.contains("已上报") && rec.body.contains("溺水"));
    // People by name: the reporter reads as worker-a's name and role, on the queue and the
    // record, with the account's code only on hover.
    let name = &server.county.grids[0].worker.name;
    let shown = format!("title=\"worker-a\">{name}<small class=\"muted\">（网格员）</small>");
    assert!(q.body.contains(&shown), "{}", q.body);
    assert!(rec.body.contains(&shown), "{}", rec.body);
    // A short case number, this year's, on the record and its queue row; searching finds it.
    let case = rec
        .body
        .split("<span class=\"case-no\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the record page shows its case number")
        .to_owned();
    let year = gridwalk::domain::cst::local(Utc::now())
        .format("%Y")
        .to_string();
    assert!(
        case.len() == 10 && case.starts_with(&format!("{year}-")),
        "{case}"
    );
    assert!(q.body.contains(&format!(">{case}</a>")), "{}", q.body);
    let found = clerk.get(&format!("/queue?q={case}&state=all")).await;
    assert!(found.body.contains("id=\"count\">1<"), "{}", found.body);
    // The worker's photo is on the page, served to whoever's scope holds the record.
    assert!(rec.body.contains(&format!("src=\"/photos/{sha}\"")));
    let res = clerk
        .http
        .get(format!("{}/photos/{sha}", clerk.base))
        .header("cookie", &clerk.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().to_vec(), photo);
    assert!(rec.body.contains("move-CONFIRMED"));

    // Accept, then dispatch to a department with a due date and a note for the worker.
    let path = format!("/records/{id}/transition");
    let p = clerk
        .act(&path, &[("to", "CONFIRMED"), ("note", "已受理")])
        .await;
    assert!(
        p.body.contains("已受理") && p.body.contains("id=\"status\">已确认"),
        "{}",
        p.body
    );
    // Dispatching without saying to whom is refused beside the form, and nothing changes.
    let p = clerk
        .act(&path, &[("to", "RECTIFYING"), ("assignee", " ")])
        .await;
    assert!(
        p.body.contains("flash err") && p.body.contains("须填写「分派给」"),
        "{}",
        p.body
    );
    // A due date typed by hand that is not a date is named by its label, in Chinese.
    let p = clerk
        .act(
            &path,
            &[
                ("to", "RECTIFYING"),
                ("assignee", "镇安监站"),
                ("due_date", "下周五"),
            ],
        )
        .await;
    assert!(p.body.contains("整改期限「下周五」不是日期"), "{}", p.body);
    assert!(p.body.contains("id=\"status\">已确认"));
    // An illegal move is refused in words.
    let p = clerk.act(&path, &[("to", "CLOSED")]).await;
    assert!(p.body.contains("cannot go from CONFIRMED"), "{}", p.body);
    let due = (Utc::now() + Duration::days(7)).date_naive().to_string();
    let p = clerk
        .act(
            &path,
            &[
                ("to", "RECTIFYING"),
                ("assignee", "town-safety"),
                ("due_date", &due),
                ("note", "请一周内设置护栏"),
            ],
        )
        .await;
    assert!(p.body.contains("id=\"status\">整改中"), "{}", p.body);
    assert!(p.body.contains("分派给：镇安监办。请一周内设置护栏"));
    let p = clerk
        .act(
            &format!("/records/{id}/reply"),
            &[("text", "护栏材料已到村委会")],
        )
        .await;
    assert!(p.body.contains("护栏材料已到村委会"));

    // The device's next sync shows the new status, who owns it, the history and the replies.
    let sum = a.sync().await;
    assert!(sum.feedback >= 1, "{sum:?}");
    let local: Hazard = a.with(|s| s.record(h.common.id)).unwrap();
    assert_eq!(local.common.status, Status::Rectifying);
    assert_eq!(local.owner.as_deref(), Some("镇安监办"));
    assert_eq!(local.due_date.map(|d| d.to_string()), Some(due));
    let history = a.with(|s| s.status_history(h.common.id)).unwrap();
    assert_eq!(
        history.iter().map(|c| c.to).collect::<Vec<_>>(),
        vec![Status::Confirmed, Status::Rectifying]
    );
    let replies: Vec<String> = a
        .with(|s| s.replies(h.common.id))
        .unwrap()
        .into_iter()
        .map(|r| r.text)
        .collect();
    for r in [
        "已受理",
        "分派给：镇安监办。请一周内设置护栏",
        "护栏材料已到村委会",
    ] {
        assert!(replies.iter().any(|x| x == r), "{r} in {replies:?}");
    }
    // Every action is in the audit log.
    let audited = server
        .read(move |db| {
            db.query_one(
                "SELECT count(*) FROM audit WHERE entity_id = $1 AND username = 'admin'",
                &[id.clone().into()],
            )?[0]
                .i64()
        })
        .await;
    assert!(audited >= 4, "transition ×2, edit, reply: {audited}");

    // A form posted from another site is refused, even with the session cookie.
    let forged = clerk
        .post_as(
            &path,
            &[
                ("to", "TRANSFERRED"),
                ("assignee", "x"),
                ("csrf", &clerk.csrf),
            ],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(forged.status, 403);

    // Behind a TLS proxy the cookie is Secure; on plain loopback it is not.
    let (cookie, token) = login_form(&server).await;
    let res = client()
        .post(format!("{}/login", server.url))
        .header("x-forwarded-proto", "https")
        .header("origin", &server.url)
        .header("cookie", cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", "gridwalk-demo"),
        ])
        .send()
        .await
        .unwrap();
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("gw_session="))
        .unwrap();
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict")
    );
    assert!(!clerk.cookie.contains("Secure"));

    // Signing out ends the session.
    let out = clerk.post("/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(clerk.get("/queue").await.status, 303);
}
both_backends!(dispatch_flow);

/// The "records filed" figure of a statistics page.
fn total_of(body: &str) -> usize {
    body.split("id=\"total\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .parse()
        .unwrap()
}

async fn scope(backend: Backend) {
    let server = TestServer::start(backend).await;
    let county = &server.county;
    // A record in each village: grid 0 is 山下村 (the secretary's), the last grid another.
    let here = hazard(county.grids[0].grid.id);
    let other_grid = county.grids.last().unwrap();
    assert_ne!(
        &other_grid.grid.code.as_str()[..12],
        &county.grids[0].grid.code.as_str()[..12]
    );
    let a = Device::enrol(&server, "worker-a").await;
    a.with(|s| s.create_record(&here, Utc::now())).unwrap();
    a.sync().await;
    let mut there = hazard(other_grid.grid.id);
    there.description = "外村的隐患".into();
    let there_id = there.common.id;
    // Written as the county would import it: not through worker-a's scope.
    import_hazard(&server, other_grid.grid.code.as_str(), &there).await;
    let admin = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let all = admin.get("/queue?state=all").await.body;
    assert!(all.contains("外村的隐患") && all.contains("村头池塘无护栏"));

    let sec = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let q = sec.get("/queue?state=all").await.body;
    assert!(
        q.contains("村头池塘无护栏") && !q.contains("外村的隐患"),
        "{q}"
    );
    // Not even by asking for the other village, its record, or its grid on the map.
    let v = &other_grid.grid.code.as_str()[..12];
    let q = sec.get(&format!("/queue?state=all&village={v}")).await.body;
    assert!(q.contains("id=\"count\">0<"), "{q}");
    assert_eq!(sec.get(&format!("/records/{there_id}")).await.status, 404);
    let p = sec
        .post(
            &format!("/records/{there_id}/transition"),
            &[("to", "CONFIRMED")],
        )
        .await;
    assert_eq!(p.status, 404);
    let map = sec.get("/map").await.body;
    assert!(!map.contains(&format!("data-code=\"{}\"", other_grid.grid.code.as_str())));
    assert!(map.contains(&format!(
        "data-code=\"{}\"",
        county.grids[0].grid.code.as_str()
    )));
    // The statistics count only the village: what the county sees for that village.
    let mine = &county.grids[0].grid.code.as_str()[..12];
    let sec_total = total_of(&sec.get("/stats").await.body);
    assert_eq!(
        sec_total,
        total_of(&admin.get(&format!("/stats?village={mine}")).await.body)
    );
    assert!(total_of(&admin.get("/stats").await.body) > sec_total);

    // A grid worker may look at their own grid, and act on nothing.
    let w = sign_in(&server, "worker-a", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert_eq!(w.get(&format!("/records/{there_id}")).await.status, 404);
    let own = w.get(&format!("/records/{}", here.common.id)).await;
    assert_eq!(own.status, 200);
    assert!(!own.body.contains("move-CONFIRMED"));
    let p = w
        .act(
            &format!("/records/{}/transition", here.common.id),
            &[("to", "CONFIRMED")],
        )
        .await;
    assert!(
        p.body.contains("only village, town and county staff"),
        "{}",
        p.body
    );
    let b = sign_in(&server, "worker-b", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert_eq!(
        b.get(&format!("/records/{}", here.common.id)).await.status,
        404
    );
}
both_backends!(scope);

/// Writes a hazard as the county would import it (not through any account's scope).
async fn import_hazard(server: &TestServer, grid_code: &str, h: &Hazard) {
    let data = serde_json::to_value(h).unwrap();
    let code = grid_code.to_owned();
    let (id, gid) = (h.common.id, h.common.grid_id);
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            let seq = gridwalk::server::repo::reserve_seqs(tx, 1)?;
            gridwalk::server::records::import_entity(
                tx,
                seq,
                gridwalk::domain::model::EntityKind::Hazard,
                id,
                gid,
                &code,
                None,
                data,
                Utc::now(),
                Utc::now(),
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
}

/// Stores photo bytes as a complete upload with the type its uploader declared.
async fn store_photo(server: &TestServer, bytes: &[u8], declared: &str) -> String {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(bytes));
    let (sha2, bytes, declared) = (sha.clone(), bytes.to_vec(), declared.to_owned());
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.exec(
                "INSERT INTO photos (sha256, size, mime, received, complete, data, uploaded_by, created_at)
                 VALUES ($1, $2, $3, $4, 1, $5, 'worker-a', $6)",
                gridwalk::args![
                    &sha2,
                    bytes.len() as i64,
                    &declared,
                    bytes.len() as i64,
                    bytes,
                    gridwalk::server::repo::ts(Utc::now())
                ],
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
    sha
}

/// A stored "photo" that is really an SVG with a script is never served as SVG (or at all):
/// the dashboard types photos by their bytes, not by what the upload declared.
async fn photos_are_served_as_the_raster_they_are(backend: Backend) {
    let server = TestServer::start(backend).await;
    let svg =
        br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>"#;
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..300u32).map(|i| (i % 256) as u8))
        .collect();
    let evil = store_photo(&server, svg, "image/svg+xml").await;
    let good = store_photo(&server, &png, "image/jpeg").await;
    let grid = &server.county.grids[0].grid;
    let mut h = hazard(grid.id);
    h.common.photos = vec![evil.clone(), good.clone()];
    import_hazard(&server, grid.code.as_str(), &h).await;

    let clerk = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let rec = clerk.get(&format!("/records/{}", h.common.id)).await;
    assert!(rec.body.contains(&format!("src=\"/photos/{evil}\"")));
    let res = clerk
        .http
        .get(format!("{}/photos/{evil}", clerk.base))
        .header("cookie", &clerk.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!ct.contains("svg"), "{ct}");
    assert!(!res.text().await.unwrap().contains("<script>alert"));

    // A real PNG is served as PNG whatever was declared, inline, and not to be sniffed.
    let res = clerk
        .http
        .get(format!("{}/photos/{good}", clerk.base))
        .header("cookie", &clerk.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        res.headers()["content-disposition"],
        format!("inline; filename=\"{good}.png\"").as_str()
    );
    assert_eq!(res.bytes().await.unwrap().to_vec(), png);
}
both_backends!(photos_are_served_as_the_raster_they_are);

async fn conflicts_show_both_values(backend: Backend) {
    let server = TestServer::start(backend).await;
    // worker-a's phone and tablet both edit the hazard's description offline.
    let phone = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    phone.with(|s| s.create_record(&h, Utc::now())).unwrap();
    phone.sync().await;
    let tablet = Device::enrol(&server, "worker-a").await;
    let id = h.common.id;
    let t0 = Utc::now();
    phone
        .with(|s| {
            s.update_record::<Hazard>(
                id,
                |r| r.description = "手机：护栏已损坏".into(),
                t0 - Duration::minutes(2),
            )
        })
        .unwrap();
    tablet
        .with(|s| {
            s.update_record::<Hazard>(
                id,
                |r| r.description = "平板：护栏缺失".into(),
                t0 - Duration::minutes(1),
            )
        })
        .unwrap();
    phone.sync().await;
    tablet.sync().await;
    let sec = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let rec = sec.get(&format!("/records/{id}")).await.body;
    assert!(rec.contains("同步冲突"), "{rec}");
    assert!(rec.contains("平板：护栏缺失") && rec.contains("手机：护栏已损坏"));
    // Settle by taking the value that lost: it becomes the record's, and flows down.
    let conflict = rec
        .split("action=\"/conflicts/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    let p = sec
        .act(
            &format!("/conflicts/{conflict}/settle"),
            &[("take", "lost"), ("record", &id.to_string())],
        )
        .await;
    assert!(p.body.contains("已处理"), "{}", p.body);
    tablet.sync().await;
    let local: Hazard = tablet.with(|s| s.record(id)).unwrap();
    assert_eq!(local.description, "手机：护栏已损坏");
    assert_eq!(local.summary(), "手机：护栏已损坏");
}
both_backends!(conflicts_show_both_values);

/// The statistics: totals, resolution, coverage and the points ledger follow what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_follow_the_work() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let before = admin.get("/stats").await.body;
    let total = total_of;
    let a = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    a.sync().await;
    let after = admin.get("/stats").await.body;
    assert_eq!(total(&after), total(&before) + 1);
    // worker-a's ledger has the filing, as an entry with its reason.
    // One person, one row, by name: worker-a's seeded history and today's filing are theirs.
    let name = &server.county.grids[0].worker.name;
    assert_eq!(after.matches("title=\"worker-a\"").count(), 1, "{after}");
    assert!(
        after.contains(&format!("title=\"worker-a\">{name}")),
        "{after}"
    );
    assert!(
        !after.contains(">grid-361"),
        "accounts named by code: {after}"
    );
    let ledger = admin.get("/stats/points/worker-a").await.body;
    assert!(ledger.contains(&format!("{name} 的积分明细")), "{ledger}");
    assert!(
        ledger.contains("上报") && ledger.contains(&h.common.id.to_string()[..8]),
        "{ledger}"
    );
    let for_period = admin.get("/stats?from=2026-13-01").await;
    assert_eq!(for_period.status, 422);
    assert!(
        for_period.body.contains("开始日期「2026-13-01」不是日期"),
        "{}",
        for_period.body
    );
    let map = admin.get("/map?color=hazards").await;
    assert_eq!(map.status, 200);
    assert!(map.body.contains(&format!("data-id=\"{}\"", h.common.id)));
}

/// The security headers every dashboard answer must carry.
fn assert_hardened(what: &str, h: &reqwest::header::HeaderMap) {
    let get = |k: &str| {
        h.get(k)
            .unwrap_or_else(|| panic!("{what}: no {k}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let csp = get("content-security-policy");
    assert_eq!(csp, gridwalk::server::dashboard::guard::CSP, "{what}");
    for part in [
        "default-src 'self'",
        "script-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {part} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("referrer-policy"), "same-origin", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
}

/// Whether a page has anything its policy would block: a script, an inline handler or style.
fn assert_no_inline_code(what: &str, body: &str) {
    let lower = body.to_lowercase();
    assert!(!lower.contains("<script"), "{what}: a script");
    assert!(!lower.contains(" style="), "{what}: an inline style");
    assert!(!lower.contains("javascript:"), "{what}: a javascript: URL");
    // No on…= attribute (onclick, onchange, onload …) anywhere in a tag.
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        for attr in tag.split_whitespace().skip(1) {
            assert!(
                !(attr.starts_with("on") && attr.contains('=')),
                "{what}: an inline handler {attr}"
            );
        }
    }
}

/// Every page and answer of the dashboard, signed in or not, carries the security headers,
/// and no page has a script, an inline event handler or an inline style.
async fn every_answer_carries_the_security_headers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    let jpeg: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0].into_iter().chain(0..200).collect();
    let sha = a
        .with(|s| s.attach_photo(h.common.id, &jpeg, "image/jpeg", Utc::now()))
        .unwrap();
    a.sync().await;

    let anon = client();
    for path in [
        "/login",
        "/queue",
        "/login?next=/stats",
        "/assets/dashboard.css",
    ] {
        let res = anon
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_hardened(path, res.headers());
        let body = res.text().await.unwrap();
        assert_no_inline_code(path, &body);
    }
    // A refused form is a page too.
    let res = anon
        .post(format!("{}/login", server.url))
        .form(&[("username", "admin"), ("password", "gridwalk-demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_hardened("refused sign-in", res.headers());

    let clerk = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let id = h.common.id;
    let pages = [
        "/queue".to_owned(),
        "/queue?domain=HAZARD&state=all".to_owned(),
        format!("/records/{id}"),
        "/stats".to_owned(),
        "/stats/points/worker-a".to_owned(),
        "/map".to_owned(),
        "/map?color=hazards".to_owned(),
        "/data".to_owned(),
        format!("/photos/{sha}"),
        "/export/records.csv?state=all".to_owned(),
        "/export/stats.xlsx".to_owned(),
        "/data/template/households.xlsx".to_owned(),
        format!("/records/{}", uuid::Uuid::now_v7()),
        "/stats?from=2026-13-01".to_owned(),
    ];
    for path in &pages {
        let res = clerk
            .http
            .get(format!("{}{path}", clerk.base))
            .header("cookie", &clerk.cookie)
            .send()
            .await
            .unwrap();
        assert_hardened(path, res.headers());
        let html = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        let body = res.bytes().await.unwrap();
        if html {
            assert_no_inline_code(path, &String::from_utf8_lossy(&body));
        }
    }
    // An import's page, and an action's redirect.
    let job = clerk
        .upload(
            "households",
            "x.csv",
            "网格编码\n1\n".as_bytes().to_vec(),
            false,
        )
        .await;
    let res = clerk
        .http
        .get(format!("{}{job}", clerk.base))
        .header("cookie", &clerk.cookie)
        .send()
        .await
        .unwrap();
    assert_hardened("import job", res.headers());
    let res = clerk
        .http
        .post(format!("{}/records/{id}/reply", clerk.base))
        .header("cookie", &clerk.cookie)
        .header("origin", &clerk.base)
        .form(&[("text", "收到"), ("csrf", &clerk.csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_hardened("an action's redirect", res.headers());
}
both_backends!(every_answer_carries_the_security_headers);

/// The words of the refusal page.
const REFUSED: &str = "表单已过期或来自其他网站，请刷新页面后重试";

/// A state-changing form needs this session's CSRF token and our own Origin (or Referer);
/// sign-in needs the token its page set, and our Origin.
async fn forms_need_the_sessions_token_and_our_origin(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    a.sync().await;
    let sec = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let admin = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert_ne!(sec.csrf, admin.csrf, "a token per session");
    let rec = format!("/records/{}", h.common.id);
    let path = format!("{rec}/transition");
    let origin = [("origin", sec.base.as_str())];
    let status_is = |body: &str, zh: &str| body.contains(&format!("id=\"status\">{zh}"));

    // No token, a wrong one, another session's: refused in words, nothing changes.
    for (what, form) in [
        ("no token", vec![("to", "CONFIRMED")]),
        (
            "a wrong token",
            vec![("to", "CONFIRMED"), ("csrf", "0123abcd")],
        ),
        ("an empty token", vec![("to", "CONFIRMED"), ("csrf", "")]),
        (
            "another session's token",
            vec![("to", "CONFIRMED"), ("csrf", admin.csrf.as_str())],
        ),
    ] {
        let p = sec.post_as(&path, &form, &origin).await;
        assert_eq!(p.status, 403, "{what}");
        assert!(p.body.contains(REFUSED), "{what}: {}", p.body);
    }
    // The right token, but no Origin and no Referer, or another site's: refused.
    let form = [("to", "CONFIRMED"), ("csrf", sec.csrf.as_str())];
    let p = sec.post_as(&path, &form, &[]).await;
    assert_eq!(p.status, 403, "neither Origin nor Referer");
    assert!(p.body.contains(REFUSED));
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("referer", "http://evil.example/page")],
        vec![("origin", "http://evil.example"), ("referer", &rec)],
    ] {
        let p = sec.post_as(&path, &form, &headers).await;
        assert_eq!(p.status, 403, "{headers:?}");
    }
    assert!(status_is(&sec.get(&rec).await.body, "已上报"));
    // The right token from our own page (by Origin, or by Referer alone): done.
    let p = sec.post_as(&path, &form, &origin).await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert!(status_is(&sec.get(&rec).await.body, "已确认"));
    let referer = format!("{}{rec}", sec.base);
    let p = sec
        .post_as(
            &format!("{rec}/reply"),
            &[("text", "已收到"), ("csrf", &sec.csrf)],
            &[("referer", &referer)],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    // A form that is not a form, and signing out, need the same.
    let res = sec
        .http
        .post(format!("{}{path}", sec.base))
        .header("cookie", &sec.cookie)
        .header("origin", &sec.base)
        .json(&serde_json::json!({"to": "CLOSED", "csrf": sec.csrf}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(sec.post_as("/logout", &[], &origin).await.status, 403);
    assert_eq!(sec.get("/queue").await.status, 200, "still signed in");

    // The import form: its token is checked before the file is read.
    for token in [None, Some("wrong")] {
        let mut form = reqwest::multipart::Form::new();
        if let Some(t) = token {
            form = form.text("csrf", t.to_owned());
        }
        let form = form.text("kind", "households").part(
            "file",
            reqwest::multipart::Part::bytes(b"a,b\n".to_vec()).file_name("x.csv"),
        );
        let res = sec
            .http
            .post(format!("{}/data/import", sec.base))
            .header("cookie", &sec.cookie)
            .header("origin", &sec.base)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{token:?}");
        assert!(res.text().await.unwrap().contains(REFUSED));
    }

    // Sign-in: the page's token in its cookie and its form, from our own origin.
    let (cookie, token) = login_form(&server).await;
    let set = client()
        .get(format!("{}/login", server.url))
        .send()
        .await
        .unwrap()
        .headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="),
        "{set}"
    );
    let login = |form: Vec<(&'static str, String)>, headers: Vec<(&'static str, String)>| {
        let mut req = client().post(format!("{}/login", server.url)).form(&form);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap() }
    };
    let creds = |t: &str| {
        vec![
            ("csrf", t.to_owned()),
            ("username", "admin".to_owned()),
            ("password", "gridwalk-demo".to_owned()),
        ]
    };
    let ours = ("origin", server.url.clone());
    let with_cookie = ("cookie", cookie.clone());
    for (what, form, headers) in [
        ("no cookie", creds(&token), vec![ours.clone()]),
        (
            "no token",
            creds(&token)[1..].to_vec(),
            vec![ours.clone(), with_cookie.clone()],
        ),
        (
            "a token that is not the cookie's",
            creds(&"0".repeat(64)),
            vec![ours.clone(), with_cookie.clone()],
        ),
        (
            "another site",
            creds(&token),
            vec![
                ("origin", "http://evil.example".into()),
                with_cookie.clone(),
            ],
        ),
        ("no origin", creds(&token), vec![with_cookie.clone()]),
    ] {
        let res = login(form, headers).await;
        assert_eq!(res.status().as_u16(), 403, "{what}");
        assert!(session_cookie(&res).is_none(), "{what}: no session");
        assert!(res.text().await.unwrap().contains(REFUSED), "{what}");
    }
    let res = login(creds(&token), vec![ours, with_cookie]).await;
    assert_eq!(res.status().as_u16(), 303);
    assert!(session_cookie(&res).is_some());
    let cleared = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("gw_csrf=;"));
    assert!(cleared, "the sign-in token is dropped once used");
}
both_backends!(forms_need_the_sessions_token_and_our_origin);

/// After signing in, `next` leads only to a page of this server.
async fn sign_in_goes_on_only_to_our_own_pages(backend: Backend) {
    let server = TestServer::start(backend).await;
    for next in [
        "/\\evil.example/",
        "/\\/evil.example",
        "//evil.example",
        "//evil.example/queue",
        "https://evil",
        "http://evil.example/",
        "evil.example",
        "/\t/evil.example",
        "/queue\r\nSet-Cookie: x=1",
        "/login",
        "",
    ] {
        let res = post_login(&server, "admin", "gridwalk-demo", next).await;
        assert_eq!(res.status().as_u16(), 303, "{next:?}");
        assert_eq!(res.headers()["location"], "/queue", "{next:?}");
        // The page does not offer it either.
        let page = client()
            .get(format!("{}/login?next={}", server.url, urlenc(next)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("name=\"next\" value=\"/queue\""),
            "{next:?}: {page}"
        );
    }
    let res = post_login(&server, "admin", "gridwalk-demo", "/stats?from=2026-11-01").await;
    assert_eq!(res.headers()["location"], "/stats?from=2026-11-01");
    // A wrong password keeps only a safe next too.
    let res = post_login(&server, "admin", "wrong", "//evil.example").await;
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/login?next=%2Fqueue&err="), "{to}");
}
both_backends!(sign_in_goes_on_only_to_our_own_pages);

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Creates a worker account for a grid (as the county's account import would).
async fn add_worker(server: &TestServer, username: &str, grid: uuid::Uuid, scope: &str) {
    let (username, scope) = (username.to_owned(), scope.to_owned());
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            gridwalk::server::repo::create_user(
                tx,
                &gridwalk::server::repo::NewUser {
                    username,
                    display_name: "外村网格员".into(),
                    role: gridwalk::wire::Role::Worker,
                    scope_code: scope,
                    password_hash: gridwalk::server::auth::hash_password("gridwalk-demo").unwrap(),
                    grids: vec![grid],
                },
                Utc::now(),
            )
        })
    })
    .await
    .unwrap()
    .unwrap();
}

/// A points ledger opens only within the account's scope: a worker sees its own, a secretary
/// the workers of its village; anything else is "not found", as a missing one is.
async fn ledgers_only_within_scope(backend: Backend) {
    let server = TestServer::start(backend).await;
    let county = &server.county;
    let (g0, g1) = (&county.grids[0].grid, &county.grids[1].grid);
    let other = &county.grids.last().unwrap().grid;
    let village = &g0.code.as_str()[..12];
    assert_eq!(
        &g1.code.as_str()[..12],
        village,
        "worker-b works in the same village"
    );
    assert_ne!(&other.code.as_str()[..12], village);
    add_worker(&server, "worker-c", other.id, &other.code.as_str()[..12]).await;
    // Records filed in the period: worker-a's and worker-b's in their grids, one by worker-b
    // and one by worker-c in worker-a's grid, worker-c's in its own grid, and an old author
    // without an account in each village.
    let file = |grid: &gridwalk::domain::geo::Grid, author: &str| {
        let mut h = hazard(grid.id);
        h.common.author = author.into();
        (grid.code.as_str().to_owned(), h)
    };
    for (code, h) in [
        file(g0, "worker-a"),
        file(g1, "worker-b"),
        file(g0, "worker-b"),
        file(g0, "worker-c"),
        file(other, "worker-c"),
        file(g0, "grid-old-001"),
        file(other, "grid-old-002"),
    ] {
        import_hazard(&server, &code, &h).await;
    }
    let ledger_of = |s: &'static str| format!("/stats/points/{s}");
    let opens = async |who: &Session, worker: &'static str| {
        let p = who.get(&ledger_of(worker)).await;
        match p.status {
            200 => true,
            404 => {
                assert!(p.body.contains("未找到"), "{}", p.body);
                false
            }
            other => panic!("{worker}: {other} {}", p.body),
        }
    };

    let a = sign_in(&server, "worker-a", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert!(opens(&a, "worker-a").await);
    for w in [
        "worker-b",
        "worker-c",
        "secretary",
        "grid-old-001",
        "nobody",
    ] {
        assert!(!opens(&a, w).await, "worker-a opens {w}");
    }
    // Their statistics list only themselves, though worker-b filed in their grid.
    let st = a.get("/stats").await.body;
    assert!(st.contains("/stats/points/worker-a"), "{st}");
    assert!(!st.contains("/stats/points/worker-b") && !st.contains("grid-old-001"));

    let sec = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    for w in ["worker-a", "worker-b", "secretary", "grid-old-001"] {
        assert!(opens(&sec, w).await, "secretary opens {w}");
    }
    // worker-c works in another village: not even its filing in this village shows.
    for w in ["worker-c", "grid-old-002", "admin", "nobody"] {
        assert!(!opens(&sec, w).await, "secretary opens {w}");
    }
    let st = sec.get("/stats").await.body;
    assert!(st.contains("/stats/points/worker-b") && st.contains("/stats/points/grid-old-001"));
    assert!(!st.contains("/stats/points/worker-c"), "{st}");
    let (status, _, x) = sec.bytes("/export/stats.xlsx").await;
    assert_eq!(status, 200);
    let sheets = read_xlsx_all(x);
    let text = format!("{sheets:?}");
    assert!(
        text.contains("worker-b") && !text.contains("worker-c"),
        "{text}"
    );
    // The workers' sheet: each column under its own heading.
    let workers = sheets.iter().find(|t| t[0][0] == "网格员").unwrap();
    assert_eq!(
        workers[0][..3],
        ["网格员", "用户名", "上报"].map(String::from)
    );
    assert!(
        workers[1..].iter().any(|r| r[1] == "worker-b"),
        "{workers:?}"
    );

    let admin = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    for w in ["worker-a", "worker-b", "worker-c", "grid-old-002"] {
        assert!(opens(&admin, w).await, "admin opens {w}");
    }
    assert!(!opens(&admin, "nobody").await);
}
both_backends!(ledgers_only_within_scope);

/// A push row the server cannot read is set aside; the administrator sees it on the data
/// pages and queues it again (with the session's token); nobody else sees the page.
async fn quarantined_pushes_are_the_administrators(backend: Backend) {
    let server = TestServer::start(backend).await;
    let db = server.db.clone();
    let id: i64 = tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            tx.query_one(
                "INSERT INTO push_inbox (device_id, lane, username, device_now, received_at, entries, entries_zstd)
                 VALUES ($1, 'NORMAL', 'worker-a', $2, $2, '', $3) RETURNING id",
                gridwalk::args![
                    uuid::Uuid::now_v7().to_string(),
                    gridwalk::server::repo::ts(Utc::now()),
                    b"not zstd".to_vec()
                ],
            )?[0]
                .i64()
        })
    })
    .await
    .unwrap()
    .unwrap();
    // Another device's sync runs the applier, which sets the row aside and goes on.
    let b = Device::enrol(&server, "worker-b").await;
    let h = hazard(server.county.grids[1].grid.id);
    b.with(|s| s.create_record(&h, Utc::now())).unwrap();
    b.sync().await;
    assert!(server.entity(h.common.id).await.is_some());

    let secretary = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert_eq!(
        secretary.get("/data/inbox").await.status,
        404,
        "administrators only"
    );
    assert_eq!(
        secretary
            .post(&format!("/data/inbox/{id}/retry"), &[])
            .await
            .status,
        404
    );
    let admin = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let p = admin.get("/data/inbox").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"quarantined\""), "{}", p.body);
    assert!(
        p.body.contains(&format!("<td class=\"num\">{id}</td>")),
        "{}",
        p.body
    );
    assert!(p.body.contains("zstd"), "the reason is shown");
    // Without the token the retry is refused; with it the row is queued again.
    let refused = admin
        .post_as(
            &format!("/data/inbox/{id}/retry"),
            &[],
            &[("origin", &admin.base)],
        )
        .await;
    assert_eq!(refused.status, 403);
    let p = admin.act(&format!("/data/inbox/{id}/retry"), &[]).await;
    assert!(p.body.contains("已重新排队"), "{}", p.body);
    // The applier is kicked by the retry and sets it aside again (it still cannot be read).
    for _ in 0..100 {
        let q = server
            .read(|db| gridwalk::server::repo::quarantined_pushes(db))
            .await;
        if q.len() == 1 && q[0].attempts >= 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the retried row was not applied again");
}
both_backends!(quarantined_pushes_are_the_administrators);

/// A hazard located 10 km outside its grid is kept and flagged 位置异常 in the queue and on
/// its page; one inside its grid is not.
async fn records_located_off_their_grid_are_flagged(backend: Backend) {
    use geo::Centroid;
    let server = TestServer::start(backend).await;
    let grid = &server.county.grids[0].grid;
    let c = grid.boundary.centroid().unwrap();
    let mut near = hazard(grid.id);
    near.common.location = Some(gridwalk::domain::geo::GeoPoint::new(c.x(), c.y(), None).unwrap());
    near.description = "网格里面的隐患".into();
    let mut far = hazard(grid.id);
    far.common.location =
        Some(gridwalk::domain::geo::GeoPoint::new(c.x() + 0.1, c.y(), None).unwrap());
    far.description = "网格外面的隐患".into();
    import_hazard(&server, grid.code.as_str(), &near).await;
    import_hazard(&server, grid.code.as_str(), &far).await;
    let clerk = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let q = clerk.get("/queue").await;
    let row = |needle: &str| {
        let at = q
            .body
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in the queue"));
        let end = q.body[at..].find("</tr>").unwrap() + at;
        q.body[at..end].to_owned()
    };
    assert!(
        row("网格外面的隐患").contains("位置异常"),
        "the far one is flagged"
    );
    assert!(
        !row("网格里面的隐患").contains("位置异常"),
        "the near one is not"
    );
    let p = clerk.get(&format!("/records/{}", far.common.id)).await;
    assert!(p.body.contains("位置异常"));
    let p = clerk.get(&format!("/records/{}", near.common.id)).await;
    assert!(!p.body.contains("位置异常"));
}
both_backends!(records_located_off_their_grid_are_flagged);

/// A clerk's day in real headless Chromium: a clerk signs in, finds the hazard a device
/// pushed, accepts and assigns it; the device's next sync shows the status and the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and tests/browser/node_modules: run by scripts/test.sh"]
async fn dashboard_in_a_real_browser() {
    let server = TestServer::start(Backend::Sqlite).await;
    let a = Device::enrol(&server, "worker-a").await;
    let h = hazard(server.county.grids[0].grid.id);
    a.with(|s| s.create_record(&h, Utc::now())).unwrap();
    a.sync().await;
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || {
        crate::util::run_node(
            "dashboard_flow.mjs",
            &[&url, "村头池塘无护栏"],
            "dashboard: all steps passed",
        )
    })
    .await
    .unwrap();
    a.sync().await;
    let local: Hazard = a.with(|s| s.record(h.common.id)).unwrap();
    // Dispatched to the safety office, which rectified it.
    assert_eq!(local.common.status, Status::Rectified);
    assert_eq!(local.owner.as_deref(), Some("镇安监办"));
    let replies = a.with(|s| s.replies(h.common.id)).unwrap();
    for r in ["请一周内设置护栏", "护栏已装好"] {
        assert!(
            replies.iter().any(|x| x.text.contains(r)),
            "{r} in {replies:?}"
        );
    }
    let history = a.with(|s| s.status_history(h.common.id)).unwrap();
    assert_eq!(history.last().unwrap().actor, "town-safety");
}

impl Session {
    /// Uploads a file to the import form; returns the job page's path.
    async fn upload(&self, kind: &str, name: &str, bytes: Vec<u8>, valid_only: bool) -> String {
        let mut form = reqwest::multipart::Form::new()
            .text("csrf", self.csrf.clone())
            .text("kind", kind.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
            );
        if valid_only {
            form = form.text("valid_only", "1");
        }
        let res = self
            .http
            .post(format!("{}/data/import", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let p = page_of(res).await;
        assert_eq!(p.status, 303, "{}", p.body);
        p.location.unwrap()
    }

    /// Follows an import's page until it stops refreshing.
    async fn finished(&self, job: &str) -> String {
        for _ in 0..600 {
            let p = self.get(job).await;
            assert_eq!(p.status, 200, "{}", p.body);
            if !p.body.contains("http-equiv=\"refresh\"") {
                return p.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("import {job} did not finish");
    }

    async fn bytes(&self, path: &str) -> (u16, String, Vec<u8>) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, res.bytes().await.unwrap().to_vec())
    }
}

/// Every worksheet's rows as text.
fn read_xlsx_all(bytes: Vec<u8>) -> Vec<Vec<Vec<String>>> {
    use calamine::Reader;
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    wb.sheet_names()
        .into_iter()
        .map(|n| {
            let range = wb.worksheet_range(&n).unwrap();
            range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect()
        })
        .collect()
}

fn read_xlsx(bytes: Vec<u8>) -> Vec<Vec<String>> {
    use calamine::Reader;
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let first = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&first).unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

/// The data page: an XLSX with bad rows gets a row-by-row report and imports nothing; with
/// "valid rows only" the good rows go in; exports open and are masked and scoped.
async fn data_page(backend: Backend) {
    use gridwalk::server::data::{self, Cell};
    let server = TestServer::start(backend).await;
    let mut sheet = data::demo_households(&server.county, &[0]);
    let col = |name: &str| sheet.header.iter().position(|h| h == name).unwrap();
    let (id_col, grid_col) = (col("身份证号"), col("网格编码"));
    let rows = sheet.rows.len();
    assert!(rows > 5);
    sheet.rows[1][grid_col] = Cell::Text("999999999999001".into());
    sheet.rows[3][id_col] = Cell::Text("11010519491231002X".replace('X', "9"));
    // A new person on a good row, to see the valid rows land.
    let new_name = "导入测试新人";
    let name_col = col("姓名");
    sheet.rows[0][name_col] = Cell::Text(new_name.into());
    let bytes = data::to_xlsx(&[sheet]).unwrap();
    let count_named = |name: &'static str| {
        server.read(move |db| {
            db.query_one(
                "SELECT count(*) FROM entities WHERE kind = 'PERSON' AND data LIKE $1",
                &[format!("%\"name\":\"{name}\"%").into()],
            )?[0]
                .i64()
        })
    };
    let before = count_named(new_name).await;

    let sec = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let page = sec.get("/data").await;
    assert!(page.body.contains("id=\"import\""));
    let job = sec
        .upload("households", "people.xlsx", bytes.clone(), false)
        .await;
    let report = sec.finished(&job).await;
    assert!(report.contains("未导入任何数据"), "{report}");
    assert!(
        report.contains("<td class=\"num\">3</td><td class=\"field\">网格编码</td>"),
        "{report}"
    );
    assert!(
        report.contains("<td class=\"num\">5</td><td class=\"field\">身份证号</td>"),
        "{report}"
    );
    assert_eq!(count_named(new_name).await, before, "nothing imported");
    let (st, ct, csv) = sec.bytes(&format!("{job}/errors.csv")).await;
    assert_eq!((st, ct.as_str()), (200, "text/csv; charset=utf-8"));
    assert!(String::from_utf8(csv).unwrap().contains("网格编码"));
    // Another account cannot read this import's report.
    let admin = sign_in(&server, "admin", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert_eq!(admin.get(&job).await.status, 404);

    let job = sec.upload("households", "people.xlsx", bytes, true).await;
    let report = sec.finished(&job).await;
    assert!(report.contains("已导入无误的"), "{report}");
    assert_eq!(count_named(new_name).await, before + 1);

    // An unreadable sex is one error for its cell, not also "sex is required".
    let g0 = server.county.grids[0].grid.code.as_str().to_owned();
    let csv = format!("网格编码,地址,姓名,与户主关系,性别\n{g0},山下村1组99号,赵六,户主,火星\n");
    let job = sec
        .upload("households", "one.csv", csv.into_bytes(), false)
        .await;
    let report = sec.finished(&job).await;
    assert_eq!(
        report.matches("<td class=\"field\">性别</td>").count(),
        1,
        "{report}"
    );

    // A wrong file type is refused in words.
    let job = sec
        .upload("households", "people.pdf", b"%PDF".to_vec(), false)
        .await;
    let report = sec.finished(&job).await;
    assert!(report.contains("不支持的文件类型"), "{report}");

    // Exports: the queue's records as XLSX (read back), people masked, a worker refused.
    let (st, ct, x) = sec
        .bytes("/export/records.xlsx?state=all&domain=HAZARD")
        .await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/vnd.openxmlformats"), "{ct}");
    let table = read_xlsx(x);
    assert_eq!(
        table[0][..5],
        ["案件编号", "编号", "类型", "类别", "状态"].map(String::from)
    );
    assert!(table.len() > 1 && table[1..].iter().all(|r| r[2] == "安全隐患"));
    assert!(
        table[1..].iter().all(|r| r[0].len() == 10),
        "every record has its case number"
    );
    let (_, _, x) = sec.bytes("/export/people.xlsx").await;
    let people = read_xlsx(x);
    let idc = people[0].iter().position(|h| h == "身份证号").unwrap();
    let ids: Vec<&String> = people[1..]
        .iter()
        .map(|r| &r[idc])
        .filter(|s| !s.is_empty())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|s| s.contains("**********")),
        "{ids:?}"
    );
    let (st, _, _) = sec.bytes("/export/people.xlsx?unmasked=1").await;
    assert_eq!(st, 403, "only the county administrator may export unmasked");
    let (st, _, x) = sec.bytes("/export/stats.xlsx").await;
    assert_eq!(st, 200);
    assert_eq!(read_xlsx(x)[0], ["指标", "数值"].map(String::from));
    // The template has the columns the importer reads.
    let (st, _, x) = sec.bytes("/data/template/households.xlsx").await;
    assert_eq!(st, 200);
    assert_eq!(
        read_xlsx(x)[0],
        data::PEOPLE_HEADER
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(sec.bytes("/data/template/grids.xlsx").await.0, 404);
    let w = sign_in(&server, "worker-a", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    assert_eq!(w.bytes("/export/records.xlsx").await.0, 403);
}
both_backends!(data_page);

/// A dispute's parties' phones are masked on the record page; a reviewer can see them whole
/// with one link, and each look is audited. A worker account's page never shows them.
async fn phones_are_revealed_only_on_purpose_and_audited(backend: Backend) {
    use gridwalk::domain::codes::{DisputeCategory, Domain, PartyRole};
    use gridwalk::domain::model::{Common, Dispute, Party};
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let d = Dispute {
        common: Common::new(
            Domain::Dispute,
            server.county.grids[0].grid.id,
            "worker-a",
            Utc::now(),
        ),
        category: DisputeCategory::Neighbor,
        summary: "两户因宅基地边界发生争执".into(),
        parties: vec![Party {
            name: "张三".into(),
            role: PartyRole::Applicant,
            phone: Some("13812345678".into()),
            person_id: None,
        }],
        follow_up: None,
    };
    a.with(|s| s.create_record(&d, Utc::now())).unwrap();
    a.sync().await;
    let id = d.common.id;
    async fn audits(server: &TestServer, id: uuid::Uuid) -> i64 {
        let sql =
            format!("SELECT count(*) FROM audit WHERE action = 'REVEAL' AND entity_id = '{id}'");
        server
            .read(move |db| db.query_one(&sql, &[])?[0].i64())
            .await
    }

    let clerk = sign_in(&server, "secretary", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let p = clerk.get(&format!("/records/{id}")).await;
    assert!(p.body.contains("138****5678") && !p.body.contains("13812345678"));
    assert!(p.body.contains("id=\"reveal-phones\""), "{}", p.body);
    assert_eq!(
        audits(&server, id).await,
        0,
        "opening the record reveals nothing"
    );
    let p = clerk.get(&format!("/records/{id}?reveal=1")).await;
    assert!(p.body.contains("13812345678"), "{}", p.body);
    assert!(p.body.contains("id=\"revealed\""));
    assert_eq!(audits(&server, id).await, 1, "the look is audited");

    let worker = sign_in(&server, "worker-a", "gridwalk-demo")
        .await
        .ok()
        .unwrap();
    let p = worker.get(&format!("/records/{id}?reveal=1")).await;
    assert_eq!(p.status, 200);
    assert!(!p.body.contains("13812345678") && !p.body.contains("reveal-phones"));
    assert_eq!(audits(&server, id).await, 1);
}
both_backends!(phones_are_revealed_only_on_purpose_and_audited);

/// An assignee's API answer for `path` (status, body).
async fn api_get(server: &TestServer, token: &str, path: &str) -> (u16, String) {
    let res = crate::sync::util::api_client()
        .get(format!("{}/api/v1{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A clerk dispatches a hazard to the town's safety office (an assignee account); the office
/// signs in, finds it on 我的待办 and nothing else anywhere (pages, API), rectifies it, and the
/// clerk and the worker's phone see the move; forged and out-of-scope attempts are refused;
/// re-dispatching moves the record to another account's list.
async fn dispatch_to_an_assignee(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let grid = server.county.grids[0].grid.id;
    let (mine, other) = (hazard(grid), hazard(grid));
    a.with(|s| s.create_record(&mine, Utc::now())).unwrap();
    a.with(|s| s.create_record(&other, Utc::now())).unwrap();
    let photo: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain(0..200u8)
        .collect();
    let sha = a
        .with(|s| s.attach_photo(mine.common.id, &photo, "image/jpeg", Utc::now()))
        .unwrap();
    let other_photo: Vec<u8> = [0xFF, 0xD8, 0xFF, 0xE0]
        .into_iter()
        .chain(50..250u8)
        .collect();
    let other_sha = a
        .with(|s| s.attach_photo(other.common.id, &other_photo, "image/jpeg", Utc::now()))
        .unwrap();
    a.sync().await;
    let (id, other_id) = (mine.common.id.to_string(), other.common.id.to_string());

    let clerk = sign_in(&server, "admin", gridwalk::server::demo::DEMO_PASSWORD)
        .await
        .ok()
        .unwrap();
    let path = format!("/records/{id}/transition");
    clerk.act(&path, &[("to", "CONFIRMED")]).await;
    // The form offers the assignee accounts whose area holds the record, by name.
    let rec = clerk.get(&format!("/records/{id}")).await;
    assert!(
        rec.body.contains("<option value=\"town-safety\">镇安监办"),
        "{}",
        rec.body
    );
    // An account that is not an assignee (typed into a forged form) is refused, nothing moves.
    let p = clerk
        .act(&path, &[("to", "RECTIFYING"), ("assignee", "worker-b")])
        .await;
    assert!(
        p.body.contains("flash err") && p.body.contains("不是可接收这条记录的承办部门账号"),
        "{}",
        p.body
    );
    assert!(p.body.contains("id=\"status\">已确认"), "{}", p.body);
    let p = clerk
        .act(
            &path,
            &[
                ("to", "RECTIFYING"),
                ("assignee", "town-safety"),
                ("note", "请三天内设置护栏"),
            ],
        )
        .await;
    assert!(p.body.contains("id=\"status\">整改中"), "{}", p.body);
    assert!(p.body.contains("id=\"assigned-to\""), "{}", p.body);
    assert!(p.body.contains("分派给：镇安监办。请三天内设置护栏"));
    // The clerk's queue names who holds it.
    let q = clerk.get("/queue?domain=HAZARD").await;
    assert!(q.body.contains("承办：镇安监办"), "{}", q.body);
    // The other hazard goes to the village committee.
    let other_path = format!("/records/{other_id}/transition");
    clerk.act(&other_path, &[("to", "CONFIRMED")]).await;
    clerk
        .act(
            &other_path,
            &[("to", "RECTIFYING"), ("assignee", "village-committee")],
        )
        .await;

    // The safety office: its list holds its record only, with the deadline state.
    let office = sign_in(
        &server,
        "town-safety",
        gridwalk::server::demo::DEMO_PASSWORD,
    )
    .await
    .ok()
    .unwrap();
    let home = office.get("/queue").await;
    assert_eq!(
        (home.status, home.location.as_deref()),
        (303, Some("/todo"))
    );
    let todo = office.get("/todo").await;
    assert_eq!(todo.status, 200);
    assert!(
        todo.body.contains(&format!("data-id=\"{id}\"")),
        "{}",
        todo.body
    );
    assert!(!todo.body.contains(&other_id), "{}", todo.body);
    assert!(todo.body.contains("class=\"dl "), "{}", todo.body);
    assert!(!todo.body.contains("href=\"/stats\""), "{}", todo.body);
    // Every other page is refused in Chinese; another record is not found.
    for p in [
        "/stats",
        "/map",
        "/data",
        "/export/records.csv",
        "/data/inbox",
    ] {
        let page = office.get(p).await;
        assert_eq!(page.status, 403, "{p}");
        assert!(
            page.body.contains("承办部门账号只能查看"),
            "{p}: {}",
            page.body
        );
    }
    assert_eq!(
        office.get(&format!("/records/{other_id}")).await.status,
        404
    );
    let open = office.get(&format!("/records/{id}")).await;
    assert_eq!(open.status, 200);
    assert!(open.body.contains("move-RECTIFIED"), "{}", open.body);
    assert!(!open.body.contains("move-TRANSFERRED"), "{}", open.body);
    // It sees where the record is: its grid, by name.
    let grid_name = &server.county.grids[0].grid.name;
    assert!(open.body.contains(grid_name.as_str()), "{}", open.body);
    // Its record's photo is served to it; another record's is not.
    assert_eq!(office.get(&format!("/photos/{sha}")).await.status, 200);
    assert_eq!(
        office.get(&format!("/photos/{other_sha}")).await.status,
        404
    );
    // The API answers the same way.
    let token = server.login("town-safety").await.token;
    let (st, list) = api_get(&server, &token, "/records").await;
    assert_eq!(st, 200);
    assert!(list.contains(&id) && !list.contains(&other_id), "{list}");
    assert_eq!(
        api_get(&server, &token, &format!("/records/{id}")).await.0,
        200
    );
    assert_eq!(
        api_get(&server, &token, &format!("/records/{other_id}"))
            .await
            .0,
        404
    );
    // Hostile moves: another record's, a reviewer-only move, a re-dispatch, a forged origin.
    let p = office
        .post(
            &format!("/records/{other_id}/transition"),
            &[("to", "RECTIFIED")],
        )
        .await;
    assert_eq!(p.status, 404, "{}", p.body);
    let p = office
        .act(&path, &[("to", "TRANSFERRED"), ("assignee", "town-safety")])
        .await;
    assert!(p.body.contains("flash err"), "{}", p.body);
    assert!(p.body.contains("id=\"status\">整改中"), "{}", p.body);
    let p = office
        .post(
            &format!("/records/{id}/dispatch"),
            &[("assignee", "town-justice")],
        )
        .await;
    assert_eq!(p.status, 403);
    let forged = office
        .post_as(
            &path,
            &[("to", "RECTIFIED"), ("csrf", &office.csrf)],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(forged.status, 403);
    // The office answers and rectifies.
    let p = office
        .act(&format!("/records/{id}/reply"), &[("text", "护栏已装好")])
        .await;
    assert!(p.body.contains("护栏已装好"), "{}", p.body);
    let p = office.act(&path, &[("to", "RECTIFIED")]).await;
    assert!(p.body.contains("id=\"status\">已整改"), "{}", p.body);

    // The clerk sees the move by the office's name; the worker's phone gets it with its pull.
    let rec = clerk.get(&format!("/records/{id}")).await;
    assert!(rec.body.contains("id=\"status\">已整改"), "{}", rec.body);
    assert!(
        rec.body.contains("title=\"town-safety\">镇安监办"),
        "{}",
        rec.body
    );
    a.sync().await;
    let history = a.with(|s| s.status_history(mine.common.id)).unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.to, last.actor.as_str()),
        (Status::Rectified, "town-safety")
    );
    let replies: Vec<String> = a
        .with(|s| s.replies(mine.common.id))
        .unwrap()
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert!(replies.iter().any(|r| r == "护栏已装好"), "{replies:?}");

    // Re-dispatch: the committee's record goes to the justice office, off the committee's list.
    let p = clerk
        .act(
            &format!("/records/{other_id}/dispatch"),
            &[("assignee", "town-justice"), ("note", "涉及纠纷")],
        )
        .await;
    assert!(p.body.contains("已改派给"), "{}", p.body);
    assert!(p.body.contains("分派记录"), "{}", p.body);
    let committee = sign_in(
        &server,
        "village-committee",
        gridwalk::server::demo::DEMO_PASSWORD,
    )
    .await
    .ok()
    .unwrap();
    assert!(!committee.get("/todo").await.body.contains(&other_id));
    assert_eq!(
        committee.get(&format!("/records/{other_id}")).await.status,
        404
    );
    let justice = sign_in(
        &server,
        "town-justice",
        gridwalk::server::demo::DEMO_PASSWORD,
    )
    .await
    .ok()
    .unwrap();
    assert!(justice.get("/todo").await.body.contains(&other_id));
    // The clerk's 我的待办 lists what they dispatched and to whom.
    let mine_list = clerk.get("/todo").await;
    assert!(
        mine_list.body.contains(&id) && mine_list.body.contains("镇司法所"),
        "{}",
        mine_list.body
    );
}
both_backends!(dispatch_to_an_assignee);

/// Records of 特殊人群服务, 政策宣传 and 民生服务 filed offline reach the county with their
/// own fields intact (a livelihood matter resolved on the spot with its move), the record
/// page shows them in words (the person served by name), and a service record naming a
/// person outside the worker's grids is refused, naming the field.
async fn service_records_reach_the_county_intact(backend: Backend) {
    use gridwalk::domain::codes::{Domain, LivelihoodMatter, ServiceKind};
    use gridwalk::domain::model::{Common, Event};

    let server = TestServer::start(backend).await;
    let a = Device::enrol(&server, "worker-a").await;
    let grid = server.county.grids[0].grid.id;
    let now = Utc::now();
    let person = a.with(|s| s.people_served(None, 1).unwrap().remove(0));
    let household = a.with(|s| s.households(&Default::default(), now.date_naive()).unwrap()[0].id);
    let event = |domain: Domain, title: &str, content: &str| {
        Event::new(
            Common::new(domain, grid, "worker-a", now),
            domain,
            title.into(),
            content.into(),
        )
    };
    let mut sp = event(Domain::SpecialPop, "心理疏导", "与老人谈心，情绪稳定");
    sp.served_person_id = Some(person.id);
    sp.service = Some(ServiceKind::Counselling);
    let mut pb = event(Domain::Publicity, "防范电信诈骗", "讲解常见诈骗手法");
    pb.place = Some("村委会".into());
    pb.audience = Some(45);
    let mut lv = event(Domain::Livelihood, "医保社保", "代办医保缴费");
    lv.matter = Some(LivelihoodMatter::Insurance);
    lv.common.household_id = Some(household);
    // Someone of another grid, as a tampered phone might name them.
    let stranger = server
        .county
        .scope(&[1])
        .people
        .iter()
        .find(|p| !p.tags.is_empty())
        .expect("grid 1 has a special-population person")
        .id;
    let mut bad = event(Domain::SpecialPop, "探视", "不在本网格的人");
    bad.served_person_id = Some(stranger);
    bad.service = Some(gridwalk::domain::codes::ServiceKind::CheckIn);
    a.with(|s| {
        for r in [&sp, &pb, &lv, &bad] {
            s.create_record(r, now).unwrap();
        }
        s.transition(lv.common.id, Status::Resolved, Some("就地办结"), now)
            .unwrap();
    });
    a.sync().await;
    server.applied().await;

    for ev in [&sp, &pb, &lv] {
        let on_server = server
            .entity(ev.common.id)
            .await
            .unwrap_or_else(|| panic!("{:?} reached the county", ev.domain));
        let mut back: Event = serde_json::from_value(on_server).unwrap();
        if ev.domain == Domain::Livelihood {
            assert_eq!(
                back.common.status,
                Status::Resolved,
                "就地办结 reached the county"
            );
            back.common.status = ev.common.status;
        }
        assert_eq!(
            (
                back.served_person_id,
                back.service,
                &back.place,
                back.audience,
                back.matter,
                back.common.household_id
            ),
            (
                ev.served_person_id,
                ev.service,
                &ev.place,
                ev.audience,
                ev.matter,
                ev.common.household_id
            ),
            "{:?} intact",
            ev.domain
        );
    }
    assert!(
        server.entity(bad.common.id).await.is_none(),
        "the stranger's record is refused"
    );
    a.sync().await;
    let refused = a.with(|s| s.rejections(true).unwrap());
    let r = refused
        .iter()
        .find(|r| r.rejection.record_id == bad.common.id)
        .expect("the refusal comes back to the phone");
    assert!(
        r.rejection.error == "not_found" && r.rejection.message.contains("served_person_id"),
        "{:?}",
        r.rejection
    );

    let clerk = sign_in(&server, "admin", gridwalk::server::demo::DEMO_PASSWORD)
        .await
        .ok()
        .unwrap();
    let page = clerk.get(&format!("/records/{}", sp.common.id)).await;
    assert_eq!(page.status, 200);
    for shown in ["服务对象", person.name.as_str(), "服务内容", "心理疏导"] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    let page = clerk.get(&format!("/records/{}", pb.common.id)).await;
    for shown in ["受众人数", "45 人", "村委会"] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    let page = clerk.get(&format!("/records/{}", lv.common.id)).await;
    for shown in ["事项", "医保社保", "已办结"] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
}
both_backends!(service_records_reach_the_county_intact);

mod settings;
mod supervision;

/// The household a phone changed, as the county's dashboard shows it after the sync: the
/// newborn (no ID number yet) and the member marked deceased with the date, greyed; within
/// scope only.
async fn household_page_shows_the_phones_register(backend: Backend) {
    use gridwalk::domain::codes::{PersonStatus, Relation, Sex};
    use gridwalk::domain::model::Registration;
    let server = TestServer::start(backend).await;
    let phone = Device::enrol(&server, "worker-a").await;
    let today = gridwalk::domain::cst::today(Utc::now());
    let d = phone
        .with(|s| {
            let c = s
                .households(&Default::default(), today)?
                .into_iter()
                .find(|c| c.members >= 2)
                .unwrap();
            s.household_detail(c.id, today)
        })
        .unwrap();
    let gone = d
        .members
        .iter()
        .find(|m| m.relation != Relation::Head)
        .unwrap()
        .clone();
    let mut baby = crate::register::blank(d.household.id);
    baby.name = "新生宝宝".into();
    baby.sex = Sex::Female;
    baby.relation = Relation::Grandchild;
    baby.birth_date = Some(today - Duration::days(5));
    let died = today - Duration::days(1);
    phone
        .with(|s| {
            s.register_person(None, &baby, Registration::Newborn, Utc::now())?;
            s.mark_person(gone.id, PersonStatus::Deceased, died, Utc::now())
        })
        .unwrap();
    phone.sync().await;
    server.applied().await;
    let path = format!("/households/{}", d.household.id);
    let Ok(admin) = sign_in(&server, "admin", "gridwalk-demo").await else {
        panic!("admin signs in")
    };
    let p = admin.get(&path).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains(&d.household.address), "{}", p.body);
    assert!(p.body.contains("新生宝宝"), "the newborn is listed");
    assert!(p.body.contains("未办证（新生儿）"));
    // A reviewer can send the worker to visit it (a task about the household).
    assert!(
        p.body
            .contains(&format!("href=\"/tasks/new?about={}\"", d.household.id)),
        "{}",
        p.body
    );
    assert!(
        p.body.contains(&format!("死亡（{died}）")),
        "the death with its date: {}",
        p.body
    );
    assert!(
        p.body
            .contains(&format!(r#"class="member gone" data-person="{}""#, gone.id)),
        "the deceased stays listed, greyed"
    );
    // ID numbers masked on the page.
    if let Some(n) = &d.members[0].id_number {
        assert!(!p.body.contains(n.as_str()), "an ID number in full");
    }
    // Another grid's worker opens nothing of it.
    let Ok(b) = sign_in(&server, "worker-b", "gridwalk-demo").await else {
        panic!("worker-b signs in")
    };
    assert_eq!(b.get(&path).await.status, 404);
}
both_backends!(household_page_shows_the_phones_register);
mod points;
mod volunteers;
