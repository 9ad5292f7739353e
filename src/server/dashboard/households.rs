//! One household as the county holds it: its address, its members (added on the phone or
//! imported) with their status and its date (迁出, 死亡 on a day; a newborn without an ID
//! number yet), ID numbers and phones masked, the records reported from its page, the
//! disputes its members are parties to, and its visits. Read within the account's scope.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Clerk, PageError, label, page};
use crate::domain::codes::{
    Coded, PartyRole, PersonStatus, PersonType, Relation, ResidenceStatus, Sex, Tag, VisitPurpose,
};
use crate::domain::lifecycle::Status;
use crate::domain::model::EntityKind;
use crate::domain::validate::{mask_id, mask_phone};
use crate::server::db::Sql;
use crate::server::error::Failure;
use crate::server::{AppState, repo};

pub fn routes() -> Router<AppState> {
    Router::new().route("/households/{id}", get(household_page))
}

struct Page {
    household: Map<String, Value>,
    grid_code: String,
    people: Vec<Map<String, Value>>,
    visits: Vec<Map<String, Value>>,
    /// Records reported from the household's page: (id, kind, grid code, the record).
    records: Vec<(String, EntityKind, Map<String, Value>)>,
    /// Disputes whose parties are its members.
    disputes: Vec<MemberDispute>,
}

/// A dispute a member is a party to: its id, the record, the members as parties (名（角色）).
type MemberDispute = (String, Map<String, Value>, Vec<String>);

fn children(
    db: &mut dyn Sql,
    id: Uuid,
    kind: EntityKind,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let rows = db.query(
        "SELECT data FROM entities WHERE parent_id = $1 AND kind = $2 ORDER BY created_at, id",
        crate::args![id.to_string(), kind.code()],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(r[0].str()?) {
            out.push(m);
        }
    }
    Ok(out)
}

fn load(db: &mut dyn Sql, clerk: &Clerk, id: Uuid) -> Result<Page, Failure> {
    let not_found = || Failure::NotFound(format!("no household {id} in your scope"));
    let e = repo::get_entity(db, id)?.ok_or_else(not_found)?;
    if e.kind != EntityKind::Household || !clerk.user.scope().covers(&e.grid_code) {
        return Err(not_found());
    }
    let scope = clerk.user.scope();
    let mut records = Vec::new();
    for r in db.query(
        "SELECT id, kind, grid_code, data FROM entities WHERE household_id = $1
         ORDER BY created_at DESC, id DESC",
        crate::args![id.to_string()],
    )? {
        let (Ok(kind), true) = (
            EntityKind::from_code(r[1].str()?),
            scope.covers(r[2].str()?),
        ) else {
            continue;
        };
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(r[3].str()?) {
            records.push((r[0].string()?, kind, m));
        }
    }
    let people = children(db, id, EntityKind::Person)?;
    let disputes = disputes_of(db, clerk, &people, &records)?;
    Ok(Page {
        household: e.data,
        grid_code: e.grid_code,
        people,
        visits: children(db, id, EntityKind::Visit)?,
        records,
        disputes,
    })
}

/// The disputes in the clerk's scope one of whose parties is a member of the household (by
/// the party's person id, as the phone's household page finds them), newest first, less those
/// already listed as reported from the household: (id, the record, the members who are
/// parties, with their role).
fn disputes_of(
    db: &mut dyn Sql,
    clerk: &Clerk,
    people: &[Map<String, Value>],
    listed: &[(String, EntityKind, Map<String, Value>)],
) -> Result<Vec<MemberDispute>, Failure> {
    let members: std::collections::BTreeMap<&str, &str> = people
        .iter()
        .filter_map(|p| Some((p.get("id")?.as_str()?, text(p, "name"))))
        .collect();
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let (clause, mut args) = clerk.user.scope().clause(1);
    // A person's id is a UUID: found in a dispute's text only where the dispute names them,
    // then checked against its parties below.
    let likes: Vec<String> = members
        .keys()
        .map(|m| {
            args.push(format!("%{m}%").into());
            format!("data LIKE ${}", args.len())
        })
        .collect();
    let rows = db.query(
        &format!(
            "SELECT id, data FROM entities WHERE kind = 'DISPUTE' AND {clause} AND ({})
             ORDER BY created_at DESC, id DESC",
            likes.join(" OR ")
        ),
        &args,
    )?;
    let mut out = Vec::new();
    for r in rows {
        let id = r[0].string()?;
        if listed.iter().any(|(l, _, _)| *l == id) {
            continue;
        }
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(r[1].str()?) else {
            continue;
        };
        let parties: Vec<String> = m
            .get("parties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let name = members.get(p.get("person_id")?.as_str()?)?;
                let role = p
                    .get("role")
                    .and_then(Value::as_str)
                    .map(label::<PartyRole>)
                    .unwrap_or_default();
                Some(format!("{name}（{role}）"))
            })
            .collect();
        if !parties.is_empty() {
            out.push((id, m, parties));
        }
    }
    Ok(out)
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A person's status in words, with its date: "死亡（2026-11-30）".
fn status_words(p: &Map<String, Value>) -> String {
    let status = label::<PersonStatus>(text(p, "status"));
    match p.get("status_on").and_then(Value::as_str) {
        Some(on) => format!("{status}（{on}）"),
        None => status,
    }
}

async fn household_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
) -> Result<Response, PageError> {
    let c = clerk.clone();
    let mut p = s.read(move |db| load(db, &c, id)).await?;
    // The head first, then by birth date; people who left or died stay listed, after.
    p.people.sort_by_key(|m| {
        (
            text(m, "status") != PersonStatus::Active.code(),
            text(m, "relation") != Relation::Head.code(),
            text(m, "birth_date").to_owned(),
        )
    });
    p.visits
        .sort_by(|a, b| text(b, "visited_on").cmp(text(a, "visited_on")));
    let active = p
        .people
        .iter()
        .filter(|m| text(m, "status") == PersonStatus::Active.code())
        .count();
    let address = text(&p.household, "address").to_owned();
    let content = html! {
        p.crumbs { a href="/map" { "← 网格地图" } }
        h1 #household-address { (address) }
        p.muted { "网格 " (p.grid_code) " · 在册 " (active) " 人 · 登记 " (p.people.len()) " 人" }
        (super::tasks::give_link(&clerk, id, true))
        div.card {
            h2 { "成员" }
            table #members {
                thead { tr { th { "姓名" } th { "与户主关系" } th { "性别" } th { "出生日期" }
                    th { "证件号码" } th { "联系电话" } th { "人员类别" } th { "状态" } th { "标签" } } }
                tbody {
                    @for m in &p.people {
                        @let gone = text(m, "status") != PersonStatus::Active.code();
                        tr.member.gone[gone] data-person=(text(m, "id")) {
                            td.name data-label="姓名" { (text(m, "name")) }
                            td data-label="与户主关系" { (label::<Relation>(text(m, "relation"))) }
                            td data-label="性别" { (label::<Sex>(text(m, "sex"))) }
                            td data-label="出生日期" { (text(m, "birth_date")) }
                            td.idno data-label="证件号码" {
                                @match m.get("id_number").and_then(Value::as_str) {
                                    Some(n) => (mask_id(n)),
                                    None => span.muted { "未办证（新生儿）" },
                                }
                            }
                            td data-label="联系电话" { @if let Some(ph) = m.get("phone").and_then(Value::as_str) { (mask_phone(ph)) } }
                            td data-label="人员类别" {
                                (label::<PersonType>(text(m, "person_type")))
                                @if text(m, "person_type") == PersonType::Floating.code() {
                                    " · " (label::<ResidenceStatus>(text(m, "residence")))
                                    @if let Some(o) = m.get("origin").and_then(Value::as_str) { " · 来自 " (o) }
                                }
                            }
                            td.status data-label="状态" { (status_words(m)) }
                            td data-label="标签" {
                                @for t in m.get("tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                                    span.pill { (label::<Tag>(t)) } " "
                                }
                            }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "为此户上报的事项 (" (p.records.len()) ")" }
            ul #records {
                @for (rid, kind, r) in &p.records {
                    li { a href={"/records/" (rid)} { (kind.zh()) " · " (label::<Status>(text(r, "status"))) }
                        " · " (text(r, "created_at").get(..10).unwrap_or("")) }
                }
            }
        }
        div.card {
            h2 { "成员涉及的矛盾纠纷 (" (p.disputes.len()) ")" }
            @if p.disputes.is_empty() {
                p.muted #no-disputes { "本户成员没有作为当事人的矛盾纠纷。" }
            } @else {
                ul #disputes {
                    @for (rid, r, parties) in &p.disputes {
                        li { a href={"/records/" (rid)} { "矛盾纠纷 · " (label::<Status>(text(r, "status"))) }
                            " · " (text(r, "created_at").get(..10).unwrap_or(""))
                            " · 当事人 " (parties.join("、")) }
                    }
                }
            }
        }
        div.card {
            h2 { "走访记录 (" (p.visits.len()) ")" }
            ul #visits {
                @for v in &p.visits {
                    li { (text(v, "visited_on")) " · " (label::<VisitPurpose>(text(v, "purpose")))
                        " · " (text(v, "author"))
                        @if !text(v, "notes").is_empty() { " · " (text(v, "notes")) } }
                }
            }
        }
    };
    Ok(page(&format!("住户 {address}"), &clerk, "map", content))
}
