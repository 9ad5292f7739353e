//! 积分兑换: a reviewer (village, town, county) records points a worker or a volunteer of its
//! area spent, as a ledger entry: points (a positive whole number, at most the balance), what
//! for (用途) and the day (today unless typed). A person's balance is everything their ledger
//! ever earned (`domain::points`, the same rules as the statistics) less what they redeemed.
//! Each redemption is audited (`POINTS_REDEEM`) and listed on the person's ledger page, which
//! is also where a volunteer's ledger is shown (`/stats/volunteers/{id}`).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::stats::{self, StatsQuery};
use super::volunteers::Shown;
use super::{Clerk, Flash, PageError, explain, flash, load, local, page};
use crate::domain::points::Entry;
use crate::server::AppState;
use crate::server::db::Sql;
use crate::server::error::Failure;
use crate::server::repo::{self, Person, Redemption, Scope, User, Volunteer};
use crate::wire::Role;

/// The longest 用途 accepted, in characters.
const MAX_PURPOSE: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/stats/volunteers/{id}", get(volunteer_page))
        .route("/stats/volunteers/{id}/redeem", post(redeem_volunteer))
        .route("/stats/points/{worker}/redeem", post(redeem_worker))
}

/// Every day since points were first kept: a balance counts the whole ledger.
fn all_time() -> StatsQuery {
    StatsQuery {
        from: Some("2000-01-01".into()),
        ..StatsQuery::default()
    }
}

/// A person's points over all time and what they redeemed.
#[derive(Debug, Clone)]
pub struct Balance {
    pub earned: i64,
    pub redemptions: Vec<Redemption>,
}

impl Balance {
    pub fn redeemed(&self) -> i64 {
        self.redemptions.iter().map(|r| r.points).sum()
    }

    pub fn balance(&self) -> i64 {
        self.earned - self.redeemed()
    }
}

/// A volunteer of `user`'s area (none for a worker or assignee account).
fn visible_volunteer(
    db: &mut dyn Sql,
    user: &User,
    id: Uuid,
) -> Result<Option<Volunteer>, Failure> {
    if matches!(user.role, Role::Worker | Role::Assignee) {
        return Ok(None);
    }
    let Scope::Area(area) = user.scope() else {
        return Ok(None);
    };
    Ok(repo::volunteer(db, id)?.filter(|v| v.village_code.starts_with(&area)))
}

/// What every person `user` may see earned over all time, by person (for the statistics'
/// ledger table), within the page's village filter.
pub fn earned_all_time(
    db: &mut dyn Sql,
    user: &User,
    village: Option<String>,
) -> Result<BTreeMap<Person, i64>, Failure> {
    let st = stats::compute(
        db,
        user,
        &StatsQuery {
            village,
            ..all_time()
        },
    )?;
    let mut out = BTreeMap::new();
    for e in &st.ledger {
        *out.entry(Person::Worker(e.worker.clone())).or_default() += e.points;
    }
    for e in &st.volunteer_ledger {
        if let Ok(id) = Uuid::parse_str(&e.worker) {
            *out.entry(Person::Volunteer(id)).or_default() += e.points;
        }
    }
    Ok(out)
}

/// A person's balance as `user` may see it; `None` when they are not a worker account whose
/// ledger `user` may open, nor a volunteer of `user`'s area.
pub fn balance_of(
    db: &mut dyn Sql,
    user: &User,
    person: &Person,
) -> Result<Option<Balance>, Failure> {
    let earned: i64 = match person {
        Person::Worker(w) => {
            let Some(a) = load::account_area(db, w)?.filter(|a| a.role == Role::Worker) else {
                return Ok(None);
            };
            if !stats::ledger_visible(user, w, Some(&a), false) {
                return Ok(None);
            }
            // The worker's own ledger, over their grids: what they earned wherever it is.
            let own = User {
                username: w.clone(),
                role: Role::Worker,
                scope_code: a.scope_code.clone(),
                grids: a.grids.iter().map(|g| (Uuid::nil(), g.clone())).collect(),
                ..user.clone()
            };
            let st = stats::compute(db, &own, &all_time())?;
            st.ledger
                .iter()
                .filter(|e| &e.worker == w)
                .map(|e| e.points)
                .sum()
        }
        Person::Volunteer(id) => {
            let Some(v) = visible_volunteer(db, user, *id)? else {
                return Ok(None);
            };
            let st = stats::compute(
                db,
                user,
                &StatsQuery {
                    village: Some(v.village_code.clone()),
                    ..all_time()
                },
            )?;
            let key = id.to_string();
            st.volunteer_ledger
                .iter()
                .filter(|e| e.worker == key)
                .map(|e| e.points)
                .sum()
        }
    };
    Ok(Some(Balance {
        earned,
        redemptions: repo::redemptions_of(db, person)?,
    }))
}

/// The balance and redemptions of a person's ledger page, and (for a reviewer) the form that
/// records a redemption, posting to `action`.
pub fn section(
    clerk: &Clerk,
    action: &str,
    b: &Balance,
    names: &load::People,
    shown: &Shown,
) -> Markup {
    let on = match shown.value("on") {
        "" => super::today().to_string(),
        v => v.to_owned(),
    };
    html! {
        section.card #points-balance {
            h2 { "积分兑换 Redemptions" }
            p {
                "累计获得 " strong #earned { (b.earned) } " 分 · 已兑换 " strong #redeemed { (b.redeemed()) }
                " 分 · 余额 " strong #balance { (b.balance()) } " 分"
            }
            @if b.redemptions.is_empty() {
                p.muted #no-redemptions { "还没有兑换记录。" }
            } @else {
                table.ledger #redemptions {
                    thead { tr { th { "兑换日期" } th { "积分" } th { "用途" } th { "登记人" } th { "登记时间" } } }
                    tbody { @for r in &b.redemptions {
                        tr { td { (r.redeemed_on) } td.num { (format!("−{}", r.points)) } td { (r.purpose) }
                            td { (super::who(names, &r.created_by)) } td { (local(r.created_at)) } }
                    } }
                }
            }
            @if clerk.reviews() {
                form.action #redeem-form method="post" action=(action) {
                    (clerk.csrf_field())
                    label { "兑换积分"
                        input #redeem-points name="points" required inputmode="numeric" value=(shown.value("points"));
                        (shown.error("points"))
                    }
                    label { "用途"
                        input #redeem-purpose name="purpose" required maxlength=(MAX_PURPOSE) value=(shown.value("purpose"));
                        (shown.error("purpose"))
                    }
                    label { "兑换日期"
                        input #redeem-on type="date" name="on" value=(on);
                        (shown.error("on"))
                    }
                    div.buttons { button #redeem type="submit" { "登记兑换" } }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct RedeemForm {
    #[serde(default)]
    points: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    on: String,
}

impl RedeemForm {
    fn shown(self, errors: BTreeMap<&'static str, String>) -> Shown {
        Shown {
            values: BTreeMap::from([
                ("points", self.points),
                ("purpose", self.purpose),
                ("on", self.on),
            ]),
            errors,
        }
    }
}

/// Checks the form against the balance: (points, 用途, day), or the error beside each field.
fn check(
    f: &RedeemForm,
    balance: i64,
    today: NaiveDate,
) -> Result<(i64, String, NaiveDate), BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    let points = match f.points.trim().parse::<i64>() {
        Ok(p) if p <= 0 => {
            errors.insert("points", "「兑换积分」必须大于 0，请填正整数".to_owned());
            None
        }
        Ok(p) if p > balance => {
            errors.insert(
                "points",
                format!(
                    "「兑换积分」超过余额：现有 {} 分，请改为 {} 分或以下",
                    balance.max(0),
                    balance.max(0)
                ),
            );
            None
        }
        Ok(p) => Some(p),
        Err(_) => {
            errors.insert(
                "points",
                "「兑换积分」请填正整数（如 10），不要带小数或文字".to_owned(),
            );
            None
        }
    };
    let purpose = f.purpose.trim();
    if purpose.is_empty() {
        errors.insert("purpose", "请填写「用途」（兑换了什么）".to_owned());
    } else if purpose.chars().count() > MAX_PURPOSE {
        errors.insert(
            "purpose",
            format!("「用途」最多 {MAX_PURPOSE} 个字，请缩短"),
        );
    }
    let on = match f.on.trim() {
        "" => Some(today),
        typed => match NaiveDate::parse_from_str(typed, "%Y-%m-%d") {
            Ok(d) if d > today => {
                errors.insert("on", format!("「兑换日期」不能晚于今天（{today}）"));
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                errors.insert(
                    "on",
                    "「兑换日期」格式不对，请按 年-月-日 填写（如 2026-12-01）".to_owned(),
                );
                None
            }
        },
    };
    match (points, on) {
        (Some(p), Some(d)) if errors.is_empty() => Ok((p, purpose.to_owned(), d)),
        _ => Err(errors),
    }
}

/// Only reviewers record redemptions.
fn allowed(clerk: &Clerk) -> Result<(), PageError> {
    if clerk.reviews() {
        Ok(())
    } else {
        Err(PageError::Failure(Failure::Forbidden(
            "积分兑换只有村、乡镇和县级人员可以登记".into(),
        )))
    }
}

fn not_found(who: &str) -> Failure {
    Failure::NotFound(format!(
        "没有找到「{who}」的积分（不存在或不在你的范围内），请从统计分析页重新打开"
    ))
}

/// Records the redemption the form describes for `person`, or says why not: `Ok(Err(page))`
/// is the person's page again with the errors beside the fields (422).
async fn redeem(
    s: &AppState,
    clerk: &Clerk,
    person: Person,
    f: RedeemForm,
) -> Result<Result<String, Shown>, PageError> {
    allowed(clerk)?;
    let (user, p2) = (clerk.user.clone(), person.clone());
    let b = s
        .read(move |db| balance_of(db, &user, &p2))
        .await?
        .ok_or_else(|| not_found(&key(&person)))?;
    let (points, purpose, on) = match check(&f, b.balance(), super::today()) {
        Ok(ok) => ok,
        Err(errors) => return Ok(Err(f.shown(errors))),
    };
    let r = Redemption {
        id: Uuid::now_v7(),
        person: person.clone(),
        points,
        purpose,
        redeemed_on: on,
        created_by: clerk.user.username.clone(),
        created_at: Utc::now(),
    };
    let earned = b.earned;
    let r2 = r.clone();
    let written = s
        .write(move |db| {
            // Read again in the writer's turn: a redemption recorded meanwhile counts.
            let redeemed: i64 = repo::redemptions_of(db, &r2.person)?
                .iter()
                .map(|x| x.points)
                .sum();
            if r2.points > earned - redeemed {
                return Err(Failure::invalid(
                    format!(
                        "「兑换积分」超过余额：现有 {} 分，请改为 {} 分或以下",
                        earned - redeemed,
                        earned - redeemed
                    ),
                    Some("points"),
                ));
            }
            repo::add_redemption(db, &r2)?;
            repo::audit(
                db,
                r2.created_at,
                &r2.created_by,
                None,
                "POINTS_REDEEM",
                None,
                Some(r2.id),
                Some(format!(
                    "{} {} 分 {} {}",
                    key(&r2.person),
                    r2.points,
                    r2.redeemed_on,
                    r2.purpose
                )),
            )?;
            Ok(())
        })
        .await;
    match written {
        Ok(()) => Ok(Ok(format!("已登记兑换 {} 分（{}）", r.points, r.purpose))),
        Err(e) => {
            let mut shown = f.shown(BTreeMap::new());
            shown.errors.insert("points", explain(&e));
            Ok(Err(shown))
        }
    }
}

/// How a person is named in the audit and in messages.
fn key(p: &Person) -> String {
    match p {
        Person::Worker(w) => w.clone(),
        Person::Volunteer(v) => format!("volunteer:{v}"),
    }
}

async fn redeem_worker(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(worker): Path<String>,
    Form(f): Form<RedeemForm>,
) -> Result<Response, PageError> {
    let back = format!("/stats/points/{}", super::enc(&worker));
    match redeem(&s, &clerk, Person::Worker(worker.clone()), f).await? {
        Ok(msg) => Ok(flash(&back, true, &msg)),
        Err(shown) => {
            let mut res =
                stats::worker_ledger(&s, clerk, worker, StatsQuery::default(), refused(), shown)
                    .await?;
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(res)
        }
    }
}

async fn redeem_volunteer(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Form(f): Form<RedeemForm>,
) -> Result<Response, PageError> {
    let back = format!("/stats/volunteers/{id}");
    match redeem(&s, &clerk, Person::Volunteer(id), f).await? {
        Ok(msg) => Ok(flash(&back, true, &msg)),
        Err(shown) => {
            let mut res =
                volunteer_ledger(&s, clerk, id, StatsQuery::default(), refused(), shown).await?;
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(res)
        }
    }
}

fn refused() -> Flash {
    Flash {
        ok: None,
        err: Some("兑换未登记：请按字段旁的提示修改后再提交".into()),
    }
}

async fn volunteer_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Query(q): Query<StatsQuery>,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    volunteer_ledger(&s, clerk, id, q, fl, Shown::default()).await
}

/// A volunteer's ledger in the period (the matters they were credited for), their balance and
/// redemptions.
async fn volunteer_ledger(
    s: &AppState,
    clerk: Clerk,
    id: Uuid,
    q: StatsQuery,
    fl: Flash,
    shown: Shown,
) -> Result<Response, PageError> {
    let user = clerk.user.clone();
    let (v, st, cases, balance) = s
        .read(move |db| {
            let v = visible_volunteer(db, &user, id)?.ok_or_else(|| not_found("这位志愿者"))?;
            let st = stats::compute(
                db,
                &user,
                &StatsQuery {
                    village: Some(v.village_code.clone()),
                    ..q
                },
            )?;
            let key = id.to_string();
            let subjects: Vec<Uuid> = st
                .volunteer_ledger
                .iter()
                .filter(|e| e.worker == key)
                .filter_map(|e| e.subject)
                .collect();
            let cases = repo::case_numbers(db, &subjects)?;
            let balance = balance_of(db, &user, &Person::Volunteer(id))?
                .ok_or_else(|| not_found("这位志愿者"))?;
            Ok::<_, Failure>((v, st, cases, balance))
        })
        .await?;
    let key = id.to_string();
    let entries: Vec<&Entry> = st
        .volunteer_ledger
        .iter()
        .filter(|e| e.worker == key)
        .collect();
    let total: i64 = entries.iter().map(|e| e.points).sum();
    let content = html! {
        p.crumbs { a href="/stats" { "← 统计分析" } }
        h1 { (v.name) " 的积分明细" span.en { " Points ledger" } }
        p { span.pill { "银龄志愿者" } " " (v.team) @if !v.active { " · 已停用" } }
        (fl.render())
        p { (st.from) " 至 " (st.to) "：记功事项所得共 " strong #points-total { (total) } " 分，" (entries.len()) " 条" }
        table.ledger {
            thead { tr { th { "时间" } th { "事由" } th { "积分" } th { "关联" } } }
            tbody { @for e in &entries {
                tr { td { (local(e.at)) } td { (e.reason) } td.num { (format!("{:+}", e.points)) }
                    td { @if let Some(rid) = e.subject { a href={"/records/" (rid)} { "案件 " (cases.get(&rid).cloned().unwrap_or_else(|| rid.to_string()[..8].to_owned())) } } } }
            } }
        }
        (section(&clerk, &format!("/stats/volunteers/{id}/redeem"), &balance, &st.names, &shown))
    };
    Ok(page("积分明细", &clerk, "stats", content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(points: &str, purpose: &str, on: &str) -> RedeemForm {
        RedeemForm {
            points: points.into(),
            purpose: purpose.into(),
            on: on.into(),
        }
    }

    #[test]
    fn a_redemption_is_a_positive_whole_number_within_the_balance_with_its_purpose() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        assert_eq!(
            check(&form(" 5 ", " 兑换大米一袋 ", ""), 5, today),
            Ok((5, "兑换大米一袋".into(), today))
        );
        let err = |f: RedeemForm, bal: i64| check(&f, bal, today).unwrap_err();
        assert!(err(form("6", "大米", ""), 5)["points"].contains("超过余额：现有 5 分"));
        assert!(err(form("0", "大米", ""), 5)["points"].contains("必须大于 0"));
        assert!(err(form("-3", "大米", ""), 5)["points"].contains("必须大于 0"));
        assert!(err(form("2.5", "大米", ""), 5)["points"].contains("正整数"));
        assert!(err(form("十", "大米", ""), 5)["points"].contains("正整数"));
        assert!(err(form("1", "  ", ""), 5)["purpose"].contains("「用途」"));
        assert!(err(form("1", "大米", "2026-12-05"), 5)["on"].contains("不能晚于今天"));
        assert!(err(form("1", "大米", "12/01"), 5)["on"].contains("格式不对"));
    }
}
