//! The points ledger's volunteers and 积分兑换: a credited volunteer appears in the ledger with
//! what the credited matter earns, within the scope of the page; a reviewer records a
//! redemption for a worker or a volunteer of its area, bad input refused beside its field;
//! each is audited and listed on the person's ledger page; and a household's page lists the
//! disputes its members are parties to, within scope.

use chrono::Utc;
use gridwalk::domain::codes::{DisputeCategory, Domain, PartyRole};
use gridwalk::domain::model::{Common, Dispute, EntityKind, Party};
use gridwalk::server::demo::DEMO_PASSWORD;

use super::{Page, Session, import_hazard, sign_in};
use crate::both_backends;
use crate::sync::e2e_hazard as hazard;
use crate::sync::util::{Backend, TestServer};

async fn signed_in(server: &TestServer, user: &str) -> Session {
    match sign_in(server, user, DEMO_PASSWORD).await {
        Ok(s) => s,
        Err(p) => panic!("{user} could not sign in: {}", p.body),
    }
}

/// The number inside `<strong id="{id}">…</strong>`.
fn strong(body: &str, id: &str) -> i64 {
    let start = format!("<strong id=\"{id}\">");
    body.split(&start)
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no #{id} in {body}"))
}

async fn audited(server: &TestServer, action: &'static str) -> i64 {
    server
        .read(move |db| {
            db.query_one(
                "SELECT count(*) FROM audit WHERE action = $1",
                &[action.into()],
            )?[0]
                .i64()
        })
        .await
}

fn refused_beside(p: &Page, field: &str, says: &str) {
    assert_eq!(p.status, 422, "{}", p.body);
    let err = format!("id=\"err-{field}\"");
    assert!(p.body.contains(&err), "no {err}: {}", p.body);
    assert!(p.body.contains(says), "{says}: {}", p.body);
}

async fn volunteers_earn_and_redeem_within_scope(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mine = server.county.villages[0].clone();
    let other = server.county.villages[1].clone();
    let sec = signed_in(&server, "secretary").await;
    let stranger = signed_in(&server, &other.secretary.username).await;

    // A volunteer of the secretary's village, credited for a matter filed today.
    let ok = sec
        .post(
            "/volunteers",
            &[
                ("name", "张桂兰"),
                ("phone", "13812345678"),
                ("team", ""),
                ("village", &mine.code),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let list = sec.get("/volunteers").await.body;
    let id = list
        .split("<tr id=\"volunteer-")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let grid = &server.county.grids[0].grid;
    let h = hazard(grid.id);
    import_hazard(&server, grid.code.as_str(), &h).await;
    let record = h.common.id.to_string();
    let credited = sec
        .post(
            "/volunteers/credit",
            &[
                ("record", record.as_str()),
                ("volunteer", id.as_str()),
                ("note", "协助劝离围观群众"),
            ],
        )
        .await;
    assert_eq!(credited.status, 303, "{}", credited.body);

    // The ledger shows the volunteer, marked, with the team and the matter's points (a
    // record filed: 上报 +1, as its author earns for it).
    let stats = sec.get("/stats").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let row = stats
        .body
        .split(&format!("id=\"ledger-volunteer-{id}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no ledger row for the volunteer: {}", stats.body))
        .to_owned();
    assert!(
        row.contains("张桂兰") && row.contains("银龄志愿者"),
        "{row}"
    );
    assert!(row.contains("银龄使者服务队"), "{row}");
    assert!(row.contains("记功事项 1 件"), "{row}");
    assert!(
        row.contains(&format!("href=\"/stats/volunteers/{id}?")),
        "{row}"
    );
    let ledger = sec.get(&format!("/stats/volunteers/{id}")).await;
    assert_eq!(ledger.status, 200, "{}", ledger.body);
    assert_eq!(strong(&ledger.body, "points-total"), 1, "{}", ledger.body);
    assert!(ledger.body.contains("上报"), "{}", ledger.body);
    assert!(ledger.body.contains(&format!("/records/{record}")));
    assert_eq!(strong(&ledger.body, "earned"), 1);
    assert_eq!(strong(&ledger.body, "balance"), 1);
    // The county sees them; a secretary of another village neither in the ledger nor on
    // their page, nor can redeem for them.
    let county = signed_in(&server, "admin").await;
    assert!(
        county
            .get("/stats")
            .await
            .body
            .contains(&format!("ledger-volunteer-{id}"))
    );
    let theirs = stranger.get("/stats").await;
    assert_eq!(theirs.status, 200);
    assert!(!theirs.body.contains("张桂兰"), "{}", theirs.body);
    assert_eq!(
        stranger
            .get(&format!("/stats/volunteers/{id}"))
            .await
            .status,
        404
    );
    let path = format!("/stats/volunteers/{id}/redeem");
    let good = [("points", "1"), ("purpose", "兑换洗衣粉一袋"), ("on", "")];
    assert_eq!(stranger.post(&path, &good).await.status, 404);
    let worker = signed_in(&server, "worker-a").await;
    assert_eq!(worker.post(&path, &good).await.status, 403);
    assert!(
        !worker.get("/stats").await.body.contains("张桂兰"),
        "a worker account sees only its own ledger"
    );

    // Bad input: refused beside its field, what was typed kept, nothing recorded.
    let over = sec
        .post(
            &path,
            &[("points", "2"), ("purpose", "兑换大米"), ("on", "")],
        )
        .await;
    refused_beside(&over, "points", "超过余额：现有 1 分");
    assert!(
        over.body.contains("value=\"兑换大米\""),
        "kept: {}",
        over.body
    );
    for bad in ["0", "-1", "abc", "1.5", ""] {
        let p = sec
            .post(
                &path,
                &[("points", bad), ("purpose", "兑换大米"), ("on", "")],
            )
            .await;
        refused_beside(&p, "points", "「兑换积分」");
    }
    let p = sec
        .post(&path, &[("points", "1"), ("purpose", "  "), ("on", "")])
        .await;
    refused_beside(&p, "purpose", "请填写「用途」");
    assert_eq!(audited(&server, "POINTS_REDEEM").await, 0);

    // A good one: recorded, listed with who and when, the balance down, audited.
    let done = sec.post(&path, &good).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let page = sec.get(done.location.as_deref().unwrap()).await;
    assert!(page.body.contains("已登记兑换 1 分"), "{}", page.body);
    assert_eq!(strong(&page.body, "earned"), 1);
    assert_eq!(strong(&page.body, "redeemed"), 1);
    assert_eq!(strong(&page.body, "balance"), 0);
    let listed = page
        .body
        .split("id=\"redemptions\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no redemptions table: {}", page.body));
    assert!(listed.contains("兑换洗衣粉一袋"), "{listed}");
    assert!(
        listed.contains(&gridwalk::domain::cst::today(Utc::now()).to_string()),
        "the day, today by default"
    );
    assert_eq!(audited(&server, "POINTS_REDEEM").await, 1);
    // Nothing left: a second one is over the balance.
    let again = sec.post(&path, &good).await;
    refused_beside(&again, "points", "超过余额：现有 0 分");
    assert_eq!(audited(&server, "POINTS_REDEEM").await, 1);
    // The ledger table shows what was redeemed and the balance.
    let row = sec
        .get("/stats")
        .await
        .body
        .split(&format!("id=\"ledger-volunteer-{id}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap()
        .to_owned();
    assert!(
        row.ends_with("<td class=\"num\">1</td><td class=\"num\">0</td>"),
        "{row}"
    );

    // A worker of the area: redeemed from the balance their own ledger earned.
    let wpath = "/stats/points/worker-a";
    let w = sec.get(wpath).await;
    assert_eq!(w.status, 200, "{}", w.body);
    let balance = strong(&w.body, "balance");
    assert!(balance >= 1, "worker-a filed the hazard: {}", w.body);
    let too_much = (balance + 1).to_string();
    let over = sec
        .post(
            "/stats/points/worker-a/redeem",
            &[("points", &too_much), ("purpose", "兑换毛巾"), ("on", "")],
        )
        .await;
    refused_beside(&over, "points", &format!("现有 {balance} 分"));
    let done = sec
        .post(
            "/stats/points/worker-a/redeem",
            &[
                ("points", "1"),
                ("purpose", "兑换毛巾"),
                ("on", "2026-01-05"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let w = sec.get(wpath).await;
    assert_eq!(strong(&w.body, "balance"), balance - 1);
    assert!(w.body.contains("2026-01-05") && w.body.contains("兑换毛巾"));
    assert_eq!(audited(&server, "POINTS_REDEEM").await, 2);
    // Another village's secretary cannot redeem for worker-a.
    assert_eq!(
        stranger
            .post(
                "/stats/points/worker-a/redeem",
                &[("points", "1"), ("purpose", "兑换毛巾"), ("on", "")],
            )
            .await
            .status,
        404
    );
}
both_backends!(volunteers_earn_and_redeem_within_scope);

/// A dispute one of whose parties is a member of the household is listed on the household's
/// page with a link to its record, only where the clerk's scope holds the dispute.
async fn a_households_page_lists_its_members_disputes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let grid = server.county.grids[0].grid.clone();
    let far = server
        .county
        .grids
        .iter()
        .find(|g| {
            !g.grid
                .code
                .as_str()
                .starts_with(&server.county.villages[0].code)
        })
        .expect("a grid of another village")
        .grid
        .clone();
    let code = grid.code.as_str().to_owned();
    let (household, person, name) = server
        .read(move |db| {
            let r = db.query_one(
                "SELECT parent_id, id, data FROM entities WHERE kind = 'PERSON' AND grid_code = $1
                 ORDER BY id LIMIT 1",
                &[code.into()],
            )?;
            let data: serde_json::Value = serde_json::from_str(r[2].str()?).unwrap();
            Ok((
                r[0].string()?,
                uuid::Uuid::parse_str(r[1].str()?).unwrap(),
                data["name"].as_str().unwrap().to_owned(),
            ))
        })
        .await;
    let dispute = |grid: uuid::Uuid, summary: &str| Dispute {
        common: Common::new(Domain::Dispute, grid, "worker-a", Utc::now()),
        category: DisputeCategory::Neighbor,
        summary: summary.into(),
        parties: vec![
            Party {
                name: "外村人".into(),
                role: PartyRole::Applicant,
                phone: None,
                person_id: None,
            },
            Party {
                name: name.clone(),
                role: PartyRole::Respondent,
                phone: None,
                person_id: Some(person),
            },
        ],
        follow_up: None,
    };
    let near = dispute(grid.id, "两户因排水沟堵塞发生争执");
    let away = dispute(far.id, "外村宅基地边界争执");
    let unrelated = Dispute {
        parties: vec![],
        ..dispute(grid.id, "无关的纠纷")
    };
    for (d, g) in [
        (&near, grid.code.as_str().to_owned()),
        (&away, far.code.as_str().to_owned()),
        (&unrelated, grid.code.as_str().to_owned()),
    ] {
        import(&server, &g, d).await;
    }
    let path = format!("/households/{household}");
    let sec = signed_in(&server, "secretary").await;
    let p = sec.get(&path).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let listed = p
        .body
        .split("id=\"disputes\"")
        .nth(1)
        .and_then(|r| r.split("</ul>").next())
        .unwrap_or_else(|| panic!("no disputes list: {}", p.body))
        .to_owned();
    assert!(
        listed.contains(&format!("href=\"/records/{}\"", near.common.id)),
        "{listed}"
    );
    assert!(listed.contains(&format!("{name}（被申请人）")), "{listed}");
    assert!(
        !listed.contains(&away.common.id.to_string()),
        "another village's dispute is out of the secretary's scope"
    );
    assert!(!listed.contains(&unrelated.common.id.to_string()));
    // The county sees both.
    let county = signed_in(&server, "admin").await;
    let all = county.get(&path).await.body;
    assert!(all.contains(&format!("href=\"/records/{}\"", near.common.id)));
    assert!(all.contains(&format!("href=\"/records/{}\"", away.common.id)));
}
both_backends!(a_households_page_lists_its_members_disputes);

async fn import(server: &TestServer, grid_code: &str, d: &Dispute) {
    let data = serde_json::to_value(d).unwrap();
    let code = grid_code.to_owned();
    let (id, gid) = (d.common.id, d.common.grid_id);
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            let seq = gridwalk::server::repo::reserve_seqs(tx, 1)?;
            gridwalk::server::records::import_entity(
                tx,
                seq,
                EntityKind::Dispute,
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

/// An emergency's 处置中 move, with its note, is among its reports on the county's record
/// page, as the 续报 it stands for.
async fn handling_reads_as_an_update_report(backend: Backend) {
    use gridwalk::domain::codes::{EmergencyCategory, EmergencyLevel};
    use gridwalk::domain::model::Emergency;
    let server = TestServer::start(backend).await;
    let grid = server.county.grids[0].grid.clone();
    let e = Emergency {
        common: Common::new(Domain::Emergency, grid.id, "worker-a", Utc::now()),
        category: EmergencyCategory::Accident,
        level: EmergencyLevel::Iv,
        title: "村道货车侧翻".into(),
        occurred_at: Utc::now() - chrono::Duration::minutes(20),
    };
    let data = serde_json::to_value(&e).unwrap();
    let (id, gid, code) = (e.common.id, grid.id, grid.code.as_str().to_owned());
    let db = server.db.clone();
    tokio::task::spawn_blocking(move || {
        db.tx(|tx| {
            let seq = gridwalk::server::repo::reserve_seqs(tx, 1)?;
            gridwalk::server::records::import_entity(
                tx,
                seq,
                EntityKind::Emergency,
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
    let sec = signed_in(&server, "secretary").await;
    let moved = sec
        .post(
            &format!("/records/{id}/transition"),
            &[("to", "HANDLING"), ("note", "消防队已到场疏导交通")],
        )
        .await;
    assert_eq!(moved.status, 303, "{}", moved.body);
    let p = sec.get(&format!("/records/{id}")).await;
    let reports = p
        .body
        .split("id=\"reports\"")
        .nth(1)
        .and_then(|r| r.split("</ol>").next())
        .unwrap_or_else(|| panic!("no reports: {}", p.body))
        .to_owned();
    assert!(
        reports.contains("续报（处置中）") && reports.contains("消防队已到场疏导交通"),
        "{reports}"
    );
}
both_backends!(handling_reads_as_an_update_report);
