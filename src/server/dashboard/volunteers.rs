//! Volunteers (志愿者): the village's or county's register of people who help with matters
//! (银龄使者服务队 and other teams). They never sign in. A reviewer registers one for a village
//! of its area (name, phone checked as a phone number and shown masked, team), sees them by
//! village and deactivates one; every change is audited. Workers and assignee accounts may not
//! open these pages. From a record's page a reviewer credits volunteers of the record's
//! village for the matter they helped with (记功), once per volunteer and record.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::{Clerk, Flash, PageError, explain, flash, local, page};
use crate::domain::validate::{Phone, mask_phone};
use crate::server::AppState;
use crate::server::error::Failure;
use crate::server::repo::{self, Volunteer};

/// The team a new volunteer is put in unless another is typed.
pub const DEFAULT_TEAM: &str = "银龄使者服务队";
/// The longest name or team accepted, in characters.
const MAX_TEXT: usize = 40;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volunteers", get(list).post(register))
        .route("/volunteers/{id}/deactivate", post(deactivate))
        .route("/volunteers/credit", get(credit_form).post(credit))
}

/// Only reviewers (village, town, county) keep the register, each within its area.
fn allowed(clerk: &Clerk) -> Result<(), PageError> {
    if clerk.reviews() {
        Ok(())
    } else {
        Err(PageError::Failure(Failure::Forbidden(
            "志愿者名册只有村、乡镇和县级人员可以查看和登记".into(),
        )))
    }
}

/// What the registration form shows: the values typed and the error beside each field.
#[derive(Default)]
pub(super) struct Shown {
    pub(super) values: BTreeMap<&'static str, String>,
    pub(super) errors: BTreeMap<&'static str, String>,
}

impl Shown {
    pub(super) fn value(&self, f: &str) -> &str {
        self.values.get(f).map(String::as_str).unwrap_or("")
    }

    pub(super) fn error(&self, f: &str) -> Markup {
        html! {
            @if let Some(e) = self.errors.get(f) {
                span.field-error id={"err-" (f)} role="alert" { (e) }
            }
        }
    }
}

/// The villages of the clerk's area (code → name) and the volunteers in it.
async fn load(
    s: &AppState,
    clerk: &Clerk,
) -> Result<(BTreeMap<String, String>, Vec<Volunteer>), PageError> {
    let user = clerk.user.clone();
    Ok(s.read(move |db| {
        let grids = super::load::grids(db, &user)?;
        let villages = super::load::villages(&grids);
        let people = repo::volunteers_in(db, &user.scope_code)?;
        Ok((villages, people))
    })
    .await?)
}

fn render(
    clerk: &Clerk,
    fl: &Flash,
    villages: &BTreeMap<String, String>,
    people: &[Volunteer],
    shown: &Shown,
) -> Response {
    let village_name = |code: &str| villages.get(code).cloned().unwrap_or_else(|| code.into());
    let active = people.iter().filter(|v| v.active).count();
    let team = match shown.value("team") {
        "" => DEFAULT_TEAM,
        t => t,
    };
    let content = html! {
        h1 { "志愿者" span.en { " Volunteers" } }
        (fl.render())
        p.summary { "在册志愿者 " strong #active-count { (active) } " 人" }
        form.action #volunteer-form method="post" action="/volunteers" {
            (clerk.csrf_field())
            label { "姓名"
                input #name name="name" required maxlength=(MAX_TEXT) value=(shown.value("name"));
                (shown.error("name"))
            }
            label { "联系电话"
                input #phone name="phone" required inputmode="tel" value=(shown.value("phone"));
                (shown.error("phone"))
            }
            label { "服务队"
                input #team name="team" maxlength=(MAX_TEXT) value=(team);
                (shown.error("team"))
            }
            label { "所在村（社区）"
                select #village name="village" {
                    @for (code, name) in villages {
                        option value=(code) selected[shown.value("village") == code] { (name) }
                    }
                }
                (shown.error("village"))
            }
            div.buttons { button #register type="submit" { "登记志愿者" } }
        }
        @if people.is_empty() {
            p.muted #no-volunteers { "还没有登记志愿者。" }
        } @else {
            table.queue #volunteers {
                thead { tr {
                    th { "村（社区）" } th { "姓名" } th { "联系电话" } th { "服务队" } th { "登记" } th { "状态" } th {}
                } }
                tbody {
                    @for v in people {
                        tr id={"volunteer-" (v.id)} class=@if !v.active { "cancelled" } {
                            td { (village_name(&v.village_code)) }
                            td.name { (v.name) }
                            td.phone { (mask_phone(&v.phone)) }
                            td { (v.team) }
                            td { (local(v.created_at)) }
                            td.state { @if v.active { "在册" } @else { "已停用" } }
                            td {
                                @if v.active {
                                    form method="post" action={"/volunteers/" (v.id) "/deactivate"} {
                                        (clerk.csrf_field())
                                        button.secondary type="submit" { "停用" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("志愿者", clerk, "volunteers", content)
}

async fn list(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    allowed(&clerk)?;
    let (villages, people) = load(&s, &clerk).await?;
    Ok(render(&clerk, &fl, &villages, &people, &Shown::default()))
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    village: String,
}

/// Checks the form: the volunteer to register, or the error beside each field.
fn check(
    f: &RegisterForm,
    villages: &BTreeMap<String, String>,
    by: &str,
) -> Result<Volunteer, BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    let name = f.name.trim();
    if name.is_empty() {
        errors.insert("name", "请填写「姓名」".to_owned());
    } else if name.chars().count() > MAX_TEXT {
        errors.insert("name", format!("「姓名」最多 {MAX_TEXT} 个字，请缩短"));
    }
    let phone = match Phone::parse(&f.phone) {
        Ok(p) => Some(p),
        Err(_) => {
            errors.insert(
                "phone",
                "「联系电话」格式不对：请填 11 位手机号（如 13812345678）或带区号的座机号（如 0571-88123456）"
                    .to_owned(),
            );
            None
        }
    };
    let team = match f.team.trim() {
        "" => DEFAULT_TEAM,
        t => t,
    };
    if team.chars().count() > MAX_TEXT {
        errors.insert("team", format!("「服务队」最多 {MAX_TEXT} 个字，请缩短"));
    }
    if !villages.contains_key(f.village.trim()) {
        errors.insert(
            "village",
            "请从列表中选择你管辖范围内的「所在村（社区）」".to_owned(),
        );
    }
    match phone {
        Some(phone) if errors.is_empty() => Ok(Volunteer {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            phone: phone.as_str().to_owned(),
            team: team.to_owned(),
            village_code: f.village.trim().to_owned(),
            active: true,
            created_by: by.to_owned(),
            created_at: Utc::now(),
        }),
        _ => Err(errors),
    }
}

async fn register(
    State(s): State<AppState>,
    clerk: Clerk,
    Form(f): Form<RegisterForm>,
) -> Result<Response, PageError> {
    allowed(&clerk)?;
    let (villages, people) = load(&s, &clerk).await?;
    let v = match check(&f, &villages, &clerk.user.username) {
        Ok(v) => v,
        Err(errors) => {
            let values = BTreeMap::from([
                ("name", f.name),
                ("phone", f.phone),
                ("team", f.team),
                ("village", f.village),
            ]);
            let fl = Flash {
                ok: None,
                err: Some("登记未保存：请按字段旁的提示修改后再提交".into()),
            };
            let mut res = render(&clerk, &fl, &villages, &people, &Shown { values, errors });
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(res);
        }
    };
    let village = villages.get(&v.village_code).cloned().unwrap_or_default();
    let words = format!("{}（{}，{village}）", v.name, v.team);
    let result = s
        .write(move |db| {
            repo::add_volunteer(db, &v)?;
            repo::audit(
                db,
                v.created_at,
                &v.created_by,
                None,
                "VOLUNTEER_ADD",
                None,
                Some(v.id),
                Some(format!(
                    "{} {} {} {}",
                    v.name,
                    mask_phone(&v.phone),
                    v.team,
                    v.village_code
                )),
            )?;
            Ok(())
        })
        .await;
    Ok(match result {
        Ok(()) => flash("/volunteers", true, &format!("已登记志愿者 {words}")),
        Err(e) => flash("/volunteers", false, &explain(&e)),
    })
}

async fn deactivate(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
) -> Result<Response, PageError> {
    allowed(&clerk)?;
    let user = clerk.user.clone();
    let result = s
        .write(move |db| {
            let v = repo::volunteer(db, id)?
                .filter(|v| v.village_code.starts_with(&user.scope_code))
                .ok_or_else(|| Failure::NotFound("找不到这位志愿者，请返回名册重新打开".into()))?;
            if repo::deactivate_volunteer(db, id)? {
                repo::audit(
                    db,
                    Utc::now(),
                    &user.username,
                    None,
                    "VOLUNTEER_DEACTIVATE",
                    None,
                    Some(id),
                    Some(format!("{} {}", v.name, v.village_code)),
                )?;
            }
            Ok(v.name)
        })
        .await;
    match result {
        Ok(name) => Ok(flash("/volunteers", true, &format!("已停用志愿者 {name}"))),
        Err(e @ Failure::NotFound(_)) => Err(PageError::Failure(e)),
        Err(e) => Ok(flash("/volunteers", false, &explain(&e))),
    }
}

/// The link a record's page shows to credit volunteers who helped with it.
pub fn credit_link(clerk: &Clerk, record: Uuid) -> Markup {
    html! {
        @if clerk.reviews() {
            p { a.button #credit-volunteer href={"/volunteers/credit?record=" (record)} { "志愿者记功" } }
        }
    }
}

/// The record (checked in the clerk's scope), its village's volunteers and its credits.
fn credit_facts(
    db: &mut dyn crate::server::db::Sql,
    user: &crate::server::repo::User,
    record: Uuid,
) -> Result<(String, Vec<Volunteer>, Vec<repo::Credit>), Failure> {
    crate::server::records::record_detail(db, user, record, false)?;
    let grid = repo::grid_code_of(db, record)?
        .ok_or_else(|| Failure::NotFound("找不到这条记录，请返回列表重新打开".into()))?;
    let village: String = grid.chars().take(12).collect();
    let people = repo::volunteers_in(db, &village)?;
    let credits = repo::credits_of_record(db, record)?;
    Ok((village, people, credits))
}

#[derive(Deserialize)]
struct CreditQuery {
    record: Uuid,
}

async fn credit_form(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(q): Query<CreditQuery>,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    allowed(&clerk)?;
    let user = clerk.user.clone();
    let record = q.record;
    let (_, people, credits) = s.read(move |db| credit_facts(db, &user, record)).await?;
    let name = |id: Uuid| {
        people
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.name.clone())
            .unwrap_or_default()
    };
    let free: Vec<&Volunteer> = people
        .iter()
        .filter(|v| v.active && !credits.iter().any(|c| c.volunteer_id == v.id))
        .collect();
    let content = html! {
        p.crumbs { a href={"/records/" (record)} { "← 返回记录" } }
        h1 { "志愿者记功" span.en { " Credit a volunteer" } }
        (fl.render())
        @if credits.is_empty() {
            p.muted #no-credits { "还没有志愿者因这件事记功。" }
        } @else {
            ul #credits {
                @for c in &credits {
                    li { strong { (name(c.volunteer_id)) } " · " (c.note) " · " span.muted { (local(c.credited_at)) } }
                }
            }
        }
        @if free.is_empty() {
            p.muted #no-volunteers { "这条记录所在村没有可记功的在册志愿者；请先在「志愿者」页登记。" }
        } @else {
            form.action #credit-form method="post" action="/volunteers/credit" {
                (clerk.csrf_field())
                input type="hidden" name="record" value=(record);
                label { "志愿者（本村在册）"
                    select #volunteer name="volunteer" {
                        @for v in &free { option value=(v.id) { (v.name) "（" (v.team) "）" } }
                    }
                }
                label.wide { "协助内容" textarea #credit-note name="note" rows="2" required {} }
                div.buttons { button #credit type="submit" { "记功" } }
            }
        }
    };
    Ok(page("志愿者记功", &clerk, "volunteers", content))
}

#[derive(Deserialize)]
struct CreditForm {
    record: Uuid,
    volunteer: String,
    #[serde(default)]
    note: String,
}

async fn credit(
    State(s): State<AppState>,
    clerk: Clerk,
    Form(f): Form<CreditForm>,
) -> Result<Response, PageError> {
    allowed(&clerk)?;
    let back = format!("/volunteers/credit?record={}", f.record);
    let user = clerk.user.clone();
    let result = s
        .write(move |db| {
            let (_, people, _) = credit_facts(db, &user, f.record)?;
            let v = Uuid::parse_str(f.volunteer.trim())
                .ok()
                .and_then(|id| people.into_iter().find(|v| v.id == id && v.active))
                .ok_or_else(|| {
                    Failure::invalid("请从列表中选择本村在册的「志愿者」", Some("volunteer"))
                })?;
            let note = f.note.trim();
            if note.is_empty() {
                return Err(Failure::invalid("请填写「协助内容」", Some("note")));
            }
            let now = Utc::now();
            if !repo::credit_volunteer(db, f.record, v.id, note, &user.username, now)? {
                return Err(Failure::invalid(
                    format!("{} 已因这件事记过功，同一件事只能记一次", v.name),
                    Some("volunteer"),
                ));
            }
            repo::audit(
                db,
                now,
                &user.username,
                None,
                "VOLUNTEER_CREDIT",
                None,
                Some(f.record),
                Some(format!("{} {} {note}", v.id, v.name)),
            )?;
            Ok(v.name)
        })
        .await;
    match result {
        Ok(name) => Ok(flash(&back, true, &format!("已为志愿者 {name} 记功"))),
        Err(e @ Failure::NotFound(_)) => Err(PageError::Failure(e)),
        Err(e) => Ok(flash(&back, false, &explain(&e))),
    }
}
