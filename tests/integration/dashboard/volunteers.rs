//! Volunteers (志愿者): a secretary registers one for a village of its area, bad input is
//! refused beside its field keeping what was typed, the phone is shown masked, a secretary of
//! another village neither sees nor deactivates them, each change is audited, and worker and
//! assignee accounts are refused the page.

use gridwalk::server::demo::DEMO_PASSWORD;

use super::{Session, import_hazard, sign_in};
use crate::both_backends;
use crate::sync::e2e_hazard as hazard;
use crate::sync::util::{Backend, TestServer};

async fn signed_in(server: &TestServer, user: &str) -> Session {
    match sign_in(server, user, DEMO_PASSWORD).await {
        Ok(s) => s,
        Err(p) => panic!("{user} could not sign in: {}", p.body),
    }
}

/// The id of the volunteer row that shows `name`.
fn row_id(body: &str, name: &str) -> String {
    body.split("id=\"volunteer-")
        .skip(1)
        .find(|row| row.split("</tr>").next().unwrap().contains(name))
        .and_then(|row| row.split('"').next())
        .unwrap_or_else(|| panic!("no row for {name} in {body}"))
        .to_owned()
}

async fn audited(server: &TestServer, action: &'static str) -> i64 {
    server
        .read(move |db| {
            db.query_one(
                "SELECT count(*) FROM audit WHERE action = $1 AND username = 'secretary'",
                &[action.into()],
            )?[0]
                .i64()
        })
        .await
}

async fn volunteers_are_registered_within_the_area(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mine = server.county.villages[0].clone();
    let other = server.county.villages[1].clone();
    let sec = signed_in(&server, "secretary").await;

    // The page opens with the villages of the secretary's area only.
    let p = sec.get("/volunteers").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("志愿者"), "{}", p.body);
    assert!(p.body.contains(&format!("value=\"{}\"", mine.code)));
    assert!(!p.body.contains(&format!("value=\"{}\"", other.code)));
    assert!(p.body.contains("银龄使者服务队"), "the default team");

    // Bad input: refused beside each field, what was typed kept, nothing saved.
    let bad = sec
        .post(
            "/volunteers",
            &[
                ("name", "张桂兰"),
                ("phone", "1234"),
                ("team", "银龄使者服务队"),
                ("village", &mine.code),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("id=\"err-phone\""), "{}", bad.body);
    assert!(bad.body.contains("「联系电话」格式不对"), "{}", bad.body);
    assert!(bad.body.contains("value=\"张桂兰\""), "the name is kept");
    assert!(
        bad.body.contains("value=\"1234\""),
        "the phone as typed is kept"
    );
    assert!(bad.body.contains("还没有登记志愿者"), "nothing saved");
    let empty = sec
        .post(
            "/volunteers",
            &[
                ("name", "  "),
                ("phone", "13812345678"),
                ("village", &mine.code),
            ],
        )
        .await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("id=\"err-name\""), "{}", empty.body);
    assert!(empty.body.contains("请填写「姓名」"));
    assert!(empty.body.contains("value=\"13812345678\""));
    // A village outside the area (a hand-made form) is refused the same way.
    let outside = sec
        .post(
            "/volunteers",
            &[
                ("name", "李四"),
                ("phone", "13812345678"),
                ("village", &other.code),
            ],
        )
        .await;
    assert_eq!(outside.status, 422);
    assert!(
        outside.body.contains("id=\"err-village\""),
        "{}",
        outside.body
    );
    assert_eq!(audited(&server, "VOLUNTEER_ADD").await, 0);

    // A good one is saved, listed under its village with the phone masked, and audited.
    let ok = sec
        .post(
            "/volunteers",
            &[
                ("name", "张桂兰"),
                ("phone", "138 1234 5678"),
                ("team", ""),
                ("village", &mine.code),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let p = sec.get("/volunteers").await;
    assert!(p.body.contains("张桂兰"), "{}", p.body);
    assert!(p.body.contains("138****5678"), "{}", p.body);
    assert!(!p.body.contains("13812345678"), "the phone is masked");
    assert!(p.body.contains(&mine.name));
    assert!(
        p.body
            .contains("在册志愿者 <strong id=\"active-count\">1</strong>"),
        "{}",
        p.body
    );
    assert_eq!(audited(&server, "VOLUNTEER_ADD").await, 1);
    let id = row_id(&p.body, "张桂兰");

    // The county sees them; a secretary of another village neither sees nor deactivates them.
    let county = signed_in(&server, "admin").await;
    assert!(county.get("/volunteers").await.body.contains("张桂兰"));
    let stranger = signed_in(&server, &other.secretary.username).await;
    let theirs = stranger.get("/volunteers").await;
    assert_eq!(theirs.status, 200);
    assert!(!theirs.body.contains("张桂兰"), "{}", theirs.body);
    let refused = stranger
        .post(&format!("/volunteers/{id}/deactivate"), &[])
        .await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    assert!(sec.get("/volunteers").await.body.contains("在册"));
    assert_eq!(audited(&server, "VOLUNTEER_DEACTIVATE").await, 0);

    // Credited for a matter of the village: once; a second time is refused; a secretary of
    // another village cannot open or credit the record.
    let grid = &server.county.grids[0].grid;
    let h = hazard(grid.id);
    import_hazard(&server, grid.code.as_str(), &h).await;
    let record = h.common.id.to_string();
    let rec = sec.get(&format!("/records/{record}")).await;
    assert!(
        rec.body
            .contains(&format!("/volunteers/credit?record={record}")),
        "{}",
        rec.body
    );
    let form = sec
        .get(&format!("/volunteers/credit?record={record}"))
        .await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.body.contains(&format!("value=\"{id}\"")),
        "{}",
        form.body
    );
    let give = [
        ("record", record.as_str()),
        ("volunteer", id.as_str()),
        ("note", "协助劝离飞线充电"),
    ];
    let first = sec.post("/volunteers/credit", &give).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let shown = sec
        .get(&format!("/volunteers/credit?record={record}"))
        .await;
    assert!(shown.body.contains("协助劝离飞线充电"), "{}", shown.body);
    let again = sec.post("/volunteers/credit", &give).await;
    assert_eq!(again.status, 303);
    let refused_page = sec.get(again.location.as_deref().unwrap()).await;
    assert!(
        refused_page.body.contains("同一件事只能记一次"),
        "{}",
        refused_page.body
    );
    assert_eq!(audited(&server, "VOLUNTEER_CREDIT").await, 1);
    let foreign = stranger
        .get(&format!("/volunteers/credit?record={record}"))
        .await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    let foreign = stranger.post("/volunteers/credit", &give).await;
    assert_eq!(foreign.status, 404, "{}", foreign.body);
    assert_eq!(audited(&server, "VOLUNTEER_CREDIT").await, 1);

    // Deactivated: kept in the list as 已停用, no longer counted, audited.
    let off = sec.post(&format!("/volunteers/{id}/deactivate"), &[]).await;
    assert_eq!(off.status, 303, "{}", off.body);
    let p = sec.get("/volunteers").await;
    assert!(p.body.contains("已停用"), "{}", p.body);
    assert!(
        p.body.contains("<strong id=\"active-count\">0</strong>"),
        "{}",
        p.body
    );
    assert_eq!(audited(&server, "VOLUNTEER_DEACTIVATE").await, 1);
}
both_backends!(volunteers_are_registered_within_the_area);

/// Workers and assignee accounts may not open or post to the register, and their navigation
/// does not offer it.
async fn volunteers_are_refused_to_workers_and_assignees(backend: Backend) {
    let server = TestServer::start(backend).await;
    let village = server.county.villages[0].code.clone();
    for user in ["worker-a", "village-committee"] {
        let s = signed_in(&server, user).await;
        let p = s.get("/volunteers").await;
        assert_eq!(p.status, 403, "{user}: {}", p.body);
        assert!(p.body.contains("无权访问"), "{user}: {}", p.body);
        let posted = s
            .post(
                "/volunteers",
                &[
                    ("name", "王五"),
                    ("phone", "13812345678"),
                    ("village", &village),
                ],
            )
            .await;
        assert_eq!(posted.status, 403, "{user}: {}", posted.body);
        let home = if user == "worker-a" {
            "/stats"
        } else {
            "/todo"
        };
        let nav = s.get(home).await;
        assert_eq!(nav.status, 200, "{user}: {}", nav.body);
        assert!(!nav.body.contains("href=\"/volunteers\""), "{user}");
    }
    let sec = signed_in(&server, "secretary").await;
    assert!(
        sec.get("/queue")
            .await
            .body
            .contains("href=\"/volunteers\"")
    );
}
both_backends!(volunteers_are_refused_to_workers_and_assignees);
