//! County settings (县级设置): only the county administrator opens or changes them; bad values
//! are refused beside their field keeping what was typed; a change is audited, every
//! dashboard page reads deadlines by it, and the visit cadence reaches an enrolled phone with
//! its next sync and changes who is due.

use chrono::Duration;
use gridwalk::domain::codes::{Tag, VisitPurpose};
use gridwalk::domain::model::Visit;
use gridwalk::store::people::HouseholdQuery;
use gridwalk::wire::PullResponse;

use super::{Session, sign_in};
use crate::both_backends;
use crate::sync::util::{Backend, Device, TestServer, api_client, today};

/// The settings form as the page shows it, with `changes` typed over it.
fn settings_form<'a>(page: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for chunk in page.split("<input ").skip(1) {
        let attr = |name: &str| {
            chunk
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(str::to_owned)
        };
        if let (Some(n), Some(v)) = (attr("name"), attr("value"))
            && n != "csrf"
        {
            out.push((n, v));
        }
    }
    for t in ["holidays", "workdays"] {
        let v = page
            .split(&format!("name=\"{t}\""))
            .nth(1)
            .and_then(|s| s.split('>').nth(1))
            .and_then(|s| s.split("</textarea").next())
            .unwrap_or("");
        out.push((t.into(), v.into()));
    }
    for (k, v) in changes {
        out.retain(|(n, _)| n != k);
        out.push(((*k).into(), (*v).into()));
    }
    out
}

async fn post_settings(s: &Session, changes: &[(&str, &str)]) -> super::Page {
    let page = s.get("/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let form = settings_form(&page.body, changes);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s.post("/settings", &form).await
}

/// How many open records the queue counts as overdue.
async fn overdue_count(s: &Session) -> String {
    let q = s.get("/queue?state=all").await;
    q.body
        .split("已超期 <strong>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("no overdue count in {}", q.body))
        .to_owned()
}

async fn only_the_administrator_changes_county_settings(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = sign_in(&server, "admin", gridwalk::server::demo::DEMO_PASSWORD)
        .await
        .ok()
        .unwrap();
    let page = admin.get("/settings").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("县级设置"));
    assert!(
        page.body.contains("href=\"/settings\""),
        "the nav offers it"
    );
    assert!(page.body.contains("id=\"cadence_ELDERLY_ALONE\""));
    assert!(
        page.body.contains("value=\"30\""),
        "the default accept limit"
    );

    for who in ["secretary", "worker-a"] {
        let s = sign_in(&server, who, gridwalk::server::demo::DEMO_PASSWORD)
            .await
            .ok()
            .unwrap();
        let q = s.get("/queue").await;
        assert!(
            !q.body.contains("href=\"/settings\""),
            "{who}: no settings in the nav"
        );
        let p = s.get("/settings").await;
        assert_eq!(p.status, 403, "{who}");
        assert!(p.body.contains("只有县级管理员"), "{who}: {}", p.body);
        let p = s.post("/settings", &[("cadence_ELDERLY_ALONE", "1")]).await;
        assert_eq!(p.status, 403, "{who}");
    }
    let cadence = server.read(gridwalk::server::repo::cadence).await;
    assert!(cadence.contains(&(Tag::ElderlyAlone, 7)), "nothing changed");

    // Bad values: refused beside their fields, what was typed kept, nothing saved.
    let p = post_settings(
        &admin,
        &[
            ("urgent_accept_minutes", "半小时"),
            ("normal_close_working_days", "0"),
            ("holidays", "2026-10-01\n2026-02-30"),
            ("cadence_ELDERLY_ALONE", "0"),
            ("cadence_DISABLED", "400"),
        ],
    )
    .await;
    assert_eq!(p.status, 422, "{}", p.body);
    for (field, words) in [
        ("urgent_accept_minutes", "半小时"),
        ("normal_close_working_days", "大于 0"),
        ("holidays", "2026-02-30"),
        ("cadence_ELDERLY_ALONE", "1 到 365"),
        ("cadence_DISABLED", "1 到 365"),
    ] {
        let err = p
            .body
            .split(&format!("id=\"err-{field}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no error beside {field}: {}", p.body));
        assert!(
            err.split("</span>").next().unwrap().contains(words),
            "{field}: {err}"
        );
    }
    assert!(
        p.body.contains("value=\"半小时\""),
        "what was typed is kept"
    );
    assert!(p.body.contains("2026-02-30</textarea>"));
    assert!(p.body.contains("尚未保存任何改动"));
    let policy = server.read(gridwalk::server::repo::deadline_policy).await;
    assert_eq!(policy, Default::default());

    // A good change: saved, audited (who, what), and every page's deadlines follow it.
    let before = overdue_count(&admin).await;
    assert_ne!(before, "0", "the demo county has overdue matters");
    let p = post_settings(
        &admin,
        &[
            ("urgent_accept_minutes", "10000"),
            ("urgent_close_hours", "10000"),
            ("normal_accept_working_days", "10000"),
            ("normal_close_working_days", "10000"),
            ("dispute_close_working_days", "10000"),
            ("holidays", "2026-10-01 2026-10-02"),
            ("workdays", "2026-10-10"),
        ],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let back = admin.get(p.location.as_deref().unwrap()).await;
    assert!(back.body.contains("已保存"), "{}", back.body);
    assert!(back.body.contains("一般事项办结时限 5→10000"));
    let log = back.body.split("id=\"settings-log\"").nth(1).unwrap();
    assert!(log.contains("admin") && log.contains("法定节假日"), "{log}");
    assert!(back.body.contains("2026-10-01\n2026-10-02</textarea>"));
    let policy = server.read(gridwalk::server::repo::deadline_policy).await;
    assert_eq!(policy.normal_close_working_days, 10000);
    assert_eq!(policy.holidays.len(), 2);
    let after = overdue_count(&admin).await;
    assert!(
        after.parse::<u32>().unwrap() < before.parse::<u32>().unwrap(),
        "the queue reads the county's policy: {before} → {after}"
    );
    let stats = admin.get("/stats").await;
    assert_eq!(stats.status, 200);
}
both_backends!(only_the_administrator_changes_county_settings);

/// The county shortens the cadence for elders living alone; an enrolled phone's next sync
/// brings it (its cursor is behind the change), and the elder it visited three days ago is due.
/// A pull with nothing new carries nothing.
async fn a_cadence_change_reaches_the_phone_on_its_next_sync(backend: Backend) {
    let server = TestServer::start(backend).await;
    let phone = Device::enrol(&server, "worker-a").await;
    let elders = HouseholdQuery {
        tag: Some(Tag::ElderlyAlone),
        limit: Some(1000),
        ..Default::default()
    };
    // A member of an untagged household of the grid is an elder living alone.
    let all = HouseholdQuery {
        limit: Some(1000),
        ..Default::default()
    };
    let card = phone
        .with(|s| s.households(&all, today()))
        .unwrap()
        .into_iter()
        .find(|c| c.due.cadence_days == 90)
        .expect("the grid has an untagged household");
    let member = phone
        .with(|s| s.household_detail(card.id, today()))
        .unwrap()
        .members[0]
        .id;
    phone
        .with(|s| {
            s.update_person(
                member,
                |p| p.tags = vec![Tag::ElderlyAlone],
                chrono::Utc::now(),
            )
        })
        .unwrap();
    let card = phone
        .with(|s| s.households(&elders, today()))
        .unwrap()
        .into_iter()
        .find(|c| c.id == card.id)
        .unwrap();
    assert_eq!(card.due.reason, Some(Tag::ElderlyAlone));
    assert_eq!(card.due.cadence_days, 7);
    let visit = Visit {
        id: uuid::Uuid::now_v7(),
        household_id: card.id,
        grid_id: server.county.grids[0].grid.id,
        author: "worker-a".into(),
        visited_on: today() - Duration::days(3),
        purpose: VisitPurpose::Care,
        notes: String::new(),
        next_due: None,
        location: None,
        created_at: chrono::Utc::now(),
    };
    phone
        .with(|s| s.record_visit(&visit, chrono::Utc::now()))
        .unwrap();
    phone.sync().await;
    let due_now = |phone: &Device| {
        phone
            .with(|s| s.due_visits(today()))
            .unwrap()
            .into_iter()
            .any(|c| c.id == card.id)
    };
    assert!(!due_now(&phone), "visited 3 days ago, cadence 7: not due");

    let admin = sign_in(&server, "admin", gridwalk::server::demo::DEMO_PASSWORD)
        .await
        .ok()
        .unwrap();
    let p = post_settings(&admin, &[("cadence_ELDERLY_ALONE", "2")]).await;
    assert_eq!(p.status, 303, "{}", p.body);

    phone.sync().await;
    assert!(due_now(&phone), "cadence 2: due since yesterday");
    let h = phone
        .with(|s| s.household_detail(card.id, today()))
        .unwrap();
    assert_eq!(h.due.cadence_days, 2);

    // Nothing new: the pull carries no cadence and moves no cursor.
    let cursor = phone.with(|s| s.pull_cursor()).unwrap();
    let token = server.login("worker-a").await.token;
    let noop: PullResponse = api_client()
        .get(format!(
            "{}/api/v1/sync/pull?cursor={cursor}&base={cursor}&limit=100",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(noop.changes.is_empty() && noop.cadence.is_none());
    assert_eq!(noop.cursor, cursor);
}
both_backends!(a_cadence_change_reaches_the_phone_on_its_next_sync);
