//! County settings (县级设置), for county administrators only: the deadline policy (limits per
//! urgency, holidays and make-up working days) and the visit cadence per care tag. Every
//! dashboard page reads deadlines by this policy; the cadence reaches every enrolled phone with
//! its next sync (see `repo::save_county_settings`). Each change is written to the audit log.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{NaiveDate, Utc};
use maud::{Markup, html};

use super::{Clerk, Flash, PageError, flash, local, page};
use crate::domain::codes::{Coded, Lang, Tag};
use crate::domain::deadline::DeadlinePolicy;
use crate::domain::validate::Problem;
use crate::server::AppState;
use crate::server::error::Failure;
use crate::server::repo;
use crate::wire::Role;

/// The audit log's action for a change of the county settings.
pub const AUDIT_ACTION: &str = "SETTINGS";

pub fn routes() -> Router<AppState> {
    Router::new().route("/settings", get(settings_page).post(save))
}

/// Only county administrators change county settings; anyone else is told so.
fn admin_only(clerk: &Clerk) -> Result<(), PageError> {
    if clerk.user.role == Role::Admin {
        Ok(())
    } else {
        Err(Failure::Forbidden(
            "县级设置只有县级管理员可以查看和修改；如需调整时限或走访周期，请联系县级管理员".into(),
        )
        .into())
    }
}

/// The deadline limits the page offers: (form field, label, unit).
const LIMITS: [(&str, &str, &str); 5] = [
    ("urgent_accept_minutes", "紧急/重大事项受理时限", "分钟"),
    ("urgent_close_hours", "紧急/重大事项办结时限", "小时"),
    ("normal_accept_working_days", "一般事项受理时限", "个工作日"),
    ("normal_close_working_days", "一般事项办结时限", "个工作日"),
    ("dispute_close_working_days", "矛盾纠纷调处时限", "个工作日"),
];

/// The largest limit the page takes (a year of minutes, hours or working days would be a
/// typing slip).
const LIMIT_MAX: i64 = 10_000;

fn limit_of(p: &DeadlinePolicy, field: &str) -> i64 {
    match field {
        "urgent_accept_minutes" => p.urgent_accept_minutes,
        "urgent_close_hours" => p.urgent_close_hours,
        "normal_accept_working_days" => p.normal_accept_working_days,
        "normal_close_working_days" => p.normal_close_working_days,
        _ => p.dispute_close_working_days,
    }
}

fn set_limit(p: &mut DeadlinePolicy, field: &str, v: i64) {
    match field {
        "urgent_accept_minutes" => p.urgent_accept_minutes = v,
        "urgent_close_hours" => p.urgent_close_hours = v,
        "normal_accept_working_days" => p.normal_accept_working_days = v,
        "normal_close_working_days" => p.normal_close_working_days = v,
        _ => p.dispute_close_working_days = v,
    }
}

fn cadence_field(t: Tag) -> String {
    format!("cadence_{}", t.code())
}

fn dates_text(d: &[NaiveDate]) -> String {
    d.iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the form shows: the values (as stored, or as typed) and the errors by field.
struct Shown {
    values: HashMap<String, String>,
    errors: BTreeMap<String, String>,
}

impl Shown {
    fn stored(p: &DeadlinePolicy, cadence: &[(Tag, u32)]) -> Shown {
        let mut values = HashMap::new();
        for (f, _, _) in LIMITS {
            values.insert(f.to_owned(), limit_of(p, f).to_string());
        }
        values.insert("holidays".into(), dates_text(&p.holidays));
        values.insert("workdays".into(), dates_text(&p.workdays));
        for (t, d) in cadence {
            values.insert(cadence_field(*t), d.to_string());
        }
        Shown {
            values,
            errors: BTreeMap::new(),
        }
    }

    fn value(&self, f: &str) -> &str {
        self.values.get(f).map(String::as_str).unwrap_or("")
    }

    fn error(&self, f: &str) -> Markup {
        html! {
            @if let Some(e) = self.errors.get(f) {
                span.field-error id={"err-" (f)} role="alert" { (e) }
            }
        }
    }
}

/// A limit as typed: a whole number from 1 to [`LIMIT_MAX`].
fn parse_limit(typed: &str, label: &str) -> Result<i64, String> {
    let t = typed.trim();
    if t.is_empty() {
        return Err(format!("请填写{label}"));
    }
    let n: i64 = t
        .parse()
        .map_err(|_| format!("{label}须为大于 0 的整数，如 30（现为「{t}」）"))?;
    if n <= 0 {
        return Err(format!(
            "{label}必须大于 0，请填写 1 到 {LIMIT_MAX} 之间的整数"
        ));
    }
    if n > LIMIT_MAX {
        return Err(format!("{label}不能超过 {LIMIT_MAX}，请检查是否多输了数字"));
    }
    Ok(n)
}

/// Dates as typed, one a line (or separated by spaces, commas or 、), sorted and without
/// repeats.
fn parse_dates(typed: &str, label: &str) -> Result<Vec<NaiveDate>, String> {
    let mut out = Vec::new();
    for part in typed
        .split(|c: char| c.is_whitespace() || c == ',' || c == '，' || c == '、' || c == ';')
        .filter(|s| !s.is_empty())
    {
        let d = NaiveDate::parse_from_str(part, "%Y-%m-%d").map_err(|_| {
            Problem::DateFormat {
                typed: part.to_owned(),
            }
            .text(Lang::Zh, label)
        })?;
        out.push(d);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A visit cadence as typed: 1 to 365 days.
fn parse_cadence(typed: &str, label: &str) -> Result<u32, String> {
    let t = typed.trim();
    let n: i64 = t
        .parse()
        .map_err(|_| format!("{label}的走访周期须为 1 到 365 之间的整数天数（现为「{t}」）"))?;
    if !(1..=365).contains(&n) {
        return Err(format!(
            "{label}的走访周期必须在 1 到 365 天之间（填写的是 {n}）"
        ));
    }
    Ok(n as u32)
}

/// Errors by form field, each in words for beside it.
type FieldErrors = BTreeMap<String, String>;

/// The form as typed, checked: the policy and cadence it sets, or the errors by field.
fn parse(
    form: &HashMap<String, String>,
    stored: &DeadlinePolicy,
) -> Result<(DeadlinePolicy, Vec<(Tag, u32)>), FieldErrors> {
    let mut errors = BTreeMap::new();
    let typed = |f: &str| form.get(f).map(String::as_str).unwrap_or("");
    let mut p = stored.clone();
    for (f, label, _) in LIMITS {
        match parse_limit(typed(f), label) {
            Ok(v) => set_limit(&mut p, f, v),
            Err(e) => {
                errors.insert(f.to_owned(), e);
            }
        }
    }
    for (f, label) in [("holidays", "法定节假日"), ("workdays", "调休上班日")] {
        match parse_dates(typed(f), label) {
            Ok(d) if f == "holidays" => p.holidays = d,
            Ok(d) => p.workdays = d,
            Err(e) => {
                errors.insert(f.to_owned(), e);
            }
        }
    }
    if !errors.contains_key("holidays")
        && !errors.contains_key("workdays")
        && let Some(d) = p.holidays.iter().find(|d| p.workdays.contains(d))
    {
        errors.insert(
            "workdays".into(),
            format!("{d} 同时填在了法定节假日和调休上班日里，请只保留一处"),
        );
    }
    let mut cadence = Vec::new();
    for t in Tag::ALL {
        match parse_cadence(typed(&cadence_field(*t)), t.zh()) {
            Ok(d) => cadence.push((*t, d)),
            Err(e) => {
                errors.insert(cadence_field(*t), e);
            }
        }
    }
    if errors.is_empty() {
        Ok((p, cadence))
    } else {
        Err(errors)
    }
}

/// What changed, in words for the audit log and the flash.
fn changes(
    old: &DeadlinePolicy,
    new: &DeadlinePolicy,
    old_c: &[(Tag, u32)],
    new_c: &[(Tag, u32)],
) -> Vec<String> {
    let mut out = Vec::new();
    for (f, label, unit) in LIMITS {
        let (a, b) = (limit_of(old, f), limit_of(new, f));
        if a != b {
            out.push(format!("{label} {a}→{b} {unit}"));
        }
    }
    if old.holidays != new.holidays {
        out.push(format!(
            "法定节假日 [{}]→[{}]",
            dates_text(&old.holidays).replace('\n', " "),
            dates_text(&new.holidays).replace('\n', " ")
        ));
    }
    if old.workdays != new.workdays {
        out.push(format!(
            "调休上班日 [{}]→[{}]",
            dates_text(&old.workdays).replace('\n', " "),
            dates_text(&new.workdays).replace('\n', " ")
        ));
    }
    for (t, b) in new_c {
        let a = old_c.iter().find(|(o, _)| o == t).map(|(_, d)| *d);
        if a != Some(*b) {
            out.push(format!(
                "{}走访周期 {}→{b} 天",
                t.zh(),
                a.map(|a| a.to_string()).unwrap_or_else(|| "—".into())
            ));
        }
    }
    out
}

/// The settings as stored, and the latest changes from the audit log.
type Stored = (DeadlinePolicy, Vec<(Tag, u32)>, Vec<repo::SettingsChange>);

async fn read_stored(s: &AppState) -> Result<Stored, Failure> {
    s.read(|db| {
        Ok((
            repo::deadline_policy(db)?,
            repo::cadence(db)?,
            repo::settings_changes(db, AUDIT_ACTION, 20)?,
        ))
    })
    .await
}

async fn settings_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    admin_only(&clerk)?;
    let (policy, cadence, log) = read_stored(&s).await?;
    let shown = Shown::stored(&policy, &cadence);
    Ok(render(&clerk, &fl, &shown, &log))
}

async fn save(
    State(s): State<AppState>,
    clerk: Clerk,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    admin_only(&clerk)?;
    let (stored, stored_cadence, log) = read_stored(&s).await?;
    let (policy, cadence) = match parse(&form, &stored) {
        Ok(v) => v,
        Err(errors) => {
            let shown = Shown {
                values: form,
                errors,
            };
            let fl = Flash {
                ok: None,
                err: Some("有填写不正确的地方，请按红字提示修改后再保存；尚未保存任何改动".into()),
            };
            let mut res = render(&clerk, &fl, &shown, &log);
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(res);
        }
    };
    let what = changes(&stored, &policy, &stored_cadence, &cadence);
    if what.is_empty() {
        return Ok(flash("/settings", true, "没有改动 (nothing changed)"));
    }
    let who = clerk.user.username.clone();
    let detail = what.join("；");
    s.write(move |db| {
        repo::save_county_settings(db, &policy, &cadence)?;
        repo::audit(
            db,
            Utc::now(),
            &who,
            None,
            AUDIT_ACTION,
            None,
            None,
            Some(detail),
        )?;
        Ok(())
    })
    .await?;
    Ok(flash(
        "/settings",
        true,
        &format!(
            "已保存：{}。走访周期随各手机下次同步生效 (saved)",
            what.join("；")
        ),
    ))
}

fn render(clerk: &Clerk, fl: &Flash, shown: &Shown, log: &[repo::SettingsChange]) -> Response {
    let content = html! {
        h1 { "县级设置" span.en { " County settings" } }
        (fl.render())
        form #settings method="post" action="/settings" {
            (clerk.csrf_field())
            h2 { "办理时限" span.en { " Deadlines" } }
            p.muted { "紧急、重大事项和应急事件按分钟/小时计；一般事项和矛盾纠纷按工作日计（跳过周末和下面的法定节假日，调休上班日照常计）。" }
            @for (f, label, unit) in LIMITS {
                p.field {
                    label for=(f) { (label) }
                    input id=(f) name=(f) inputmode="numeric" size="6" value=(shown.value(f));
                    " " (unit)
                    (shown.error(f))
                }
            }
            p.field {
                label for="holidays" { "法定节假日" span.en { " Public holidays" } }
                textarea #holidays name="holidays" rows="4" placeholder="2026-10-01" { (shown.value("holidays")) }
                small.muted { "每行一个日期，如 2026-10-01" }
                (shown.error("holidays"))
            }
            p.field {
                label for="workdays" { "调休上班日" span.en { " Make-up working days" } }
                textarea #workdays name="workdays" rows="3" placeholder="2026-10-10" { (shown.value("workdays")) }
                small.muted { "周末调休上班的日期，每行一个" }
                (shown.error("workdays"))
            }
            h2 { "走访周期" span.en { " Visit cadence" } }
            p.muted { "有该标签人员的户，至少每隔这么多天走访一次（1 到 365 天）。保存后随网格员手机下次同步生效。" }
            table #cadence {
                thead { tr { th { "人员标签" } th { "走访周期（天）" } } }
                tbody {
                    @for t in Tag::ALL {
                        @let f = cadence_field(*t);
                        tr {
                            td { label for=(f) { (t.zh()) } }
                            td {
                                input id=(f) name=(f) inputmode="numeric" size="4" value=(shown.value(&f));
                                (shown.error(&f))
                            }
                        }
                    }
                }
            }
            p { button #save type="submit" { "保存设置 Save" } }
        }
        h2 { "修改记录" span.en { " Changes" } }
        @if log.is_empty() {
            p.muted #settings-log-none { "还没有修改过。" }
        } @else {
            table #settings-log {
                thead { tr { th { "时间" } th { "修改人" } th { "改动" } } }
                tbody {
                    @for c in log {
                        tr { td { (local(c.at)) } td { (c.username) } td { (c.detail) } }
                    }
                }
            }
        }
    };
    page("县级设置 Settings", clerk, "settings", content).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let p = DeadlinePolicy::default();
        let mut s = Shown::stored(
            &p,
            &Tag::ALL
                .iter()
                .map(|t| (*t, t.default_cadence_days()))
                .collect::<Vec<_>>(),
        )
        .values;
        for (k, v) in pairs {
            s.insert((*k).into(), (*v).into());
        }
        s
    }

    #[test]
    fn good_values_set_the_policy() {
        let (p, c) = parse(
            &form(&[
                ("normal_close_working_days", " 7 "),
                ("holidays", "2026-10-01\n2026-10-02，2026-10-01"),
                ("workdays", "2026-10-10"),
                ("cadence_ELDERLY_ALONE", "3"),
            ]),
            &DeadlinePolicy::default(),
        )
        .unwrap();
        assert_eq!(p.normal_close_working_days, 7);
        assert_eq!(p.holidays.len(), 2);
        assert_eq!(p.workdays.len(), 1);
        assert!(c.contains(&(Tag::ElderlyAlone, 3)));
    }

    #[test]
    fn bad_values_are_refused_beside_their_field() {
        let e = parse(
            &form(&[
                ("urgent_accept_minutes", "半小时"),
                ("urgent_close_hours", "0"),
                ("normal_accept_working_days", "-1"),
                ("holidays", "2026-13-01"),
                ("cadence_ELDERLY_ALONE", "0"),
                ("cadence_DISABLED", "400"),
            ]),
            &DeadlinePolicy::default(),
        )
        .unwrap_err();
        assert!(e["urgent_accept_minutes"].contains("半小时"));
        assert!(e["urgent_close_hours"].contains("大于 0"));
        assert!(e["normal_accept_working_days"].contains("大于 0"));
        assert!(e["holidays"].contains("2026-13-01"));
        assert!(e["cadence_ELDERLY_ALONE"].contains("1 到 365"));
        assert!(e["cadence_DISABLED"].contains("1 到 365"));
        assert!(!e.contains_key("dispute_close_working_days"));
    }
}
