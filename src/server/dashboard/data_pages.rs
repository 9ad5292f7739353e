//! The data page (数据导入导出): imports with a progress bar and a row-by-row report, and
//! exports of records, people and statistics to XLSX and CSV, honouring scope and masking.
//!
//! An import runs on the blocking pool in one transaction ([`crate::server::data::import`]);
//! its progress lives in this process's memory (a job table keyed by a random id, visible only
//! to whoever started it) and the page refreshes itself until the report is ready. Progress is
//! the one thing the server keeps in memory: a restart loses the progress display, never data
//! (the import's transaction either committed or did not).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::load::RecordRow;
use super::queue::QueueFilter;
use super::stats::{Stats, StatsQuery, compute};
use super::{Clerk, Flash, PageError, flash, local, page};
use crate::domain::codes::Coded;
use crate::server::AppState;
use crate::server::data::{self, Cell, ImportKind, ImportReport, Mode, Sheet};
use crate::server::error::Failure;
use crate::server::repo;
use crate::wire::Role;

/// Largest import file accepted.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/data", get(data_page))
        .route(
            "/data/import",
            post(import_submit).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/data/template/{file}", get(template))
        .route("/data/jobs/{id}", get(job_page))
        .route("/data/jobs/{id}/errors.csv", get(job_errors))
        .route("/export/{file}", get(export))
}

/// One import in progress or done.
struct Job {
    owner: Uuid,
    kind: ImportKind,
    file: String,
    mode: Mode,
    started: DateTime<Utc>,
    done: usize,
    total: usize,
    outcome: Option<Result<ImportReport, String>>,
    /// Generated passwords are shown once, then forgotten.
    passwords_shown: bool,
}

static JOBS: LazyLock<Mutex<HashMap<Uuid, Job>>> = LazyLock::new(Default::default);

fn jobs() -> std::sync::MutexGuard<'static, HashMap<Uuid, Job>> {
    JOBS.lock().unwrap_or_else(|p| p.into_inner())
}

fn kind_label(k: ImportKind) -> &'static str {
    match k {
        ImportKind::Households => "户籍与人员 households and people",
        ImportKind::Grids => "网格边界 grid boundaries",
        ImportKind::Accounts => "账号 accounts",
    }
}

async fn data_page(clerk: Clerk, Query(fl): Query<Flash>) -> Result<Response, PageError> {
    let staff = clerk.reviews();
    let admin = clerk.user.role == Role::Admin;
    let mine: Vec<(Uuid, String, String, bool)> = {
        let j = jobs();
        let mut v: Vec<_> = j
            .iter()
            .filter(|(_, job)| job.owner == clerk.user.id)
            .map(|(id, job)| {
                (
                    *id,
                    job.file.clone(),
                    local(job.started),
                    job.outcome.is_some(),
                )
            })
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2));
        v
    };
    let content = html! {
        h1 { "数据导入导出" span.en { " Data" } }
        (fl.render())
        @if !staff {
            p.muted { "网格员账号不能导入或导出数据。" }
        } @else {
            div.cols {
                section.card {
                    h2 { "导入 Import" }
                    form #import method="post" action="/data/import" enctype="multipart/form-data" {
                        // First, so the server reads it before the file.
                        (clerk.csrf_field())
                        p { label { "内容 " select #kind name="kind" {
                            option value="households" { (kind_label(ImportKind::Households)) " · CSV / XLSX" }
                            option value="grids" { (kind_label(ImportKind::Grids)) " · GeoJSON" }
                            @if admin { option value="accounts" { (kind_label(ImportKind::Accounts)) " · CSV / XLSX" } }
                        } } }
                        p { input #file type="file" name="file" required accept=".csv,.xlsx,.geojson,.json"; }
                        p { label { input #valid-only type="checkbox" name="valid_only" value="1"; " 只导入无误的行（默认：有任何错误则整个文件不导入）" } }
                        button #import-submit type="submit" { "上传并导入" }
                    }
                    p { "模板：" a #template-households href="/data/template/households.xlsx" { "户籍与人员 Excel" } " / "
                        a href="/data/template/households.csv" { "CSV" }
                        @if admin { " · " a href="/data/template/accounts.xlsx" { "账号 Excel" } } }
                    details {
                        summary { "文件格式" }
                        ul {
                            li { strong { "户籍与人员" } "（.csv 或 .xlsx 第一个工作表）：每人一行，第一行为表头，户的列在每人行中重复。必填：网格编码、地址、姓名、与户主关系；可选：户ID、户编号、门牌号、房屋用途、经度、纬度、人员ID、性别、出生日期、证件类型、身份证号、联系电话、人员类型、人户状态、人员状态、标签（用 ; 、 或 , 分隔）。英文列名（grid_code, address, name, relation, id_number, phone, tags …）同样可用；代码值可填代码或中文（户主 或 HEAD）。已有人员按人员ID、身份证号或户内姓名找到并更新，不会重复；空白单元格保留原值，填「无」清除。导出的人口表可原样导回。" }
                            li { strong { "网格边界" } "：GeoJSON FeatureCollection，每个要素为 Polygon，属性 code 为 15 位网格编码；新网格还需 name、village、town。" }
                            li { strong { "账号" } "（仅县级管理员）：用户名/username、姓名/display_name、角色/role、范围编码/scope_code、网格/grids、初始密码/password（留空则生成，导入后只显示一次）。" }
                        }
                    }
                    @if !mine.is_empty() {
                        h3 { "我的导入" }
                        ul { @for (id, file, at, done) in &mine {
                            li { a href={"/data/jobs/" (id)} { (file) } " · " (at) " · " (if *done { "已完成" } else { "进行中" }) }
                        } }
                    }
                }
                section.card {
                    h2 { "导出 Export" }
                    p.muted { "导出只包含你权限范围内的数据；身份证号与手机号默认脱敏，每次导出都记入审计日志。" }
                    ul.exports {
                        li { "事项（待办队列中的全部记录）："
                            a #export-records-xlsx href="/export/records.xlsx?state=all" { "Excel" } " / "
                            a href="/export/records.csv?state=all" { "CSV" }
                            span.muted { "（在待办队列中筛选后导出，可只导出所见）" } }
                        li { "实有人口（脱敏）：" a #export-people-xlsx href="/export/people.xlsx" { "Excel" } " / " a href="/export/people.csv" { "CSV" } }
                        @if admin {
                            li { "实有人口（不脱敏，仅县级管理员，记入审计）："
                                a href="/export/people.xlsx?unmasked=1" { "Excel" } }
                        }
                        li { "统计（近12周）：" a #export-stats-xlsx href="/export/stats.xlsx" { "Excel" } " / " a href="/export/stats.csv" { "CSV" } }
                    }
                }
            }
        }
    };
    Ok(page("数据导入导出", &clerk, "data", content))
}

async fn import_submit(
    State(s): State<AppState>,
    clerk: Clerk,
    mut form: Multipart,
) -> Result<Response, PageError> {
    let mut kind: Option<String> = None;
    let mut valid_only = false;
    let mut file: Option<(String, Vec<u8>)> = None;
    // The form's CSRF token (see `guard`): it comes before the file, and no file is read
    // without it.
    let mut token_ok = false;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Ok(flash(
                    "/data",
                    false,
                    &format!("上传失败（{e}）：文件不能超过 64 MB"),
                ));
            }
        };
        match field.name().unwrap_or("") {
            super::guard::FIELD => {
                let sent = field.text().await.unwrap_or_default();
                token_ok = super::guard::form_token_ok(&clerk.token_hash, &sent);
                if !token_ok {
                    return Ok(super::guard::Refusal::WrongToken.into_response());
                }
            }
            _ if !token_ok => return Ok(super::guard::Refusal::NoToken.into_response()),
            "kind" => kind = field.text().await.ok(),
            "valid_only" => valid_only = true,
            "file" => {
                let name = field.file_name().unwrap_or("").to_owned();
                match field.bytes().await {
                    Ok(b) => file = Some((name, b.to_vec())),
                    Err(e) => {
                        return Ok(flash(
                            "/data",
                            false,
                            &format!("上传失败（{e}）：文件不能超过 64 MB"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let kind: ImportKind = match kind.as_deref().unwrap_or("").parse() {
        Ok(k) => k,
        Err(e) => return Ok(flash("/data", false, &e)),
    };
    let Some((name, bytes)) = file.filter(|(n, b)| !n.is_empty() && !b.is_empty()) else {
        return Ok(flash("/data", false, "请选择要导入的文件 (choose a file)"));
    };
    let mode = if valid_only {
        Mode::ValidRowsOnly
    } else {
        Mode::AllOrNothing
    };
    let id = Uuid::now_v7();
    {
        let mut j = jobs();
        // Forget finished jobs after a day.
        let old = Utc::now() - Duration::days(1);
        j.retain(|_, job| job.outcome.is_none() || job.started > old);
        j.insert(
            id,
            Job {
                owner: clerk.user.id,
                kind,
                file: name.clone(),
                mode,
                started: Utc::now(),
                done: 0,
                total: 0,
                outcome: None,
                passwords_shown: false,
            },
        );
    }
    let user = clerk.user.clone();
    tokio::spawn(async move {
        // The import waits its turn to write like any other writer; the page shows 0 rows
        // until it starts.
        let turn = s.db.write_turn().await;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let mut progress = |done: usize, total: usize| {
                if let Some(job) = jobs().get_mut(&id) {
                    job.done = done;
                    job.total = total;
                }
            };
            let res = s.db.tx(|db| {
                data::import(
                    db,
                    &user,
                    kind,
                    &name,
                    &bytes,
                    mode,
                    &mut progress,
                    Utc::now(),
                )
                .map_err(Failure::from)
            });
            if let Some(job) = jobs().get_mut(&id) {
                job.outcome = Some(res.map_err(|e| super::explain(&e)));
            }
        })
        .await
        .unwrap_or_else(|e| {
            // A panic rolled the transaction back: say so instead of refreshing forever.
            tracing::error!(error = %e, "import task failed");
            if let Some(job) = jobs().get_mut(&id) {
                job.outcome = Some(Err("internal error: nothing was imported".into()));
            }
        });
    });
    Ok(axum::response::Redirect::to(&format!("/data/jobs/{id}")).into_response())
}

async fn job_page(clerk: Clerk, Path(id): Path<Uuid>) -> Result<Response, PageError> {
    let not_found = || PageError::Failure(Failure::NotFound(format!("no import {id}")));
    let (kind, file, mode, started, done, total, outcome, show_passwords) = {
        let mut j = jobs();
        let job = j
            .get_mut(&id)
            .filter(|j| j.owner == clerk.user.id)
            .ok_or_else(not_found)?;
        let show = job.outcome.is_some() && !job.passwords_shown;
        if show {
            job.passwords_shown = true;
        }
        let outcome = job.outcome.clone();
        if show && let Some(Ok(r)) = job.outcome.as_mut() {
            // Shown on this page once; the hashes are all the server keeps.
            r.passwords.clear();
        }
        (
            job.kind,
            job.file.clone(),
            job.mode,
            job.started,
            job.done,
            job.total,
            outcome,
            show,
        )
    };
    let running = outcome.is_none();
    let pct = if total == 0 {
        0.0
    } else {
        done as f64 / total as f64 * 100.0
    };
    let content = html! {
        @if running { meta http-equiv="refresh" content="1"; }
        p.crumbs { a href="/data" { "← 数据导入导出" } }
        h1 { "导入 " (file) }
        p.muted { (kind_label(kind)) " · " (if mode == Mode::AllOrNothing { "有错误则整个文件不导入" } else { "只导入无误的行" }) " · 开始于 " (local(started)) }
        @match &outcome {
            None => {
                p { progress #progress value=(done) max=(total.max(1)) {} }
                p #progress-text { "正在导入：" (done) " / " (total) " 行（" (format!("{pct:.0}")) "%）…本页每秒自动刷新。" }
            }
            Some(Err(e)) => {
                p.flash.err #outcome { "导入失败，未写入任何数据：" (e) }
            }
            Some(Ok(r)) => {
                @if r.errors.is_empty() {
                    p.flash.ok #outcome { "导入完成：共 " (r.rows) " 行，导入 " (r.imported) " 行（新增 " (r.created) "，更新 " (r.updated) "）。设备下次同步时会收到更新。" }
                } @else if r.imported == 0 {
                    p.flash.err #outcome { "文件有 " (r.errors.len()) " 处错误，未导入任何数据。请按下表修改后重新导入，或勾选「只导入无误的行」。" }
                } @else {
                    p.flash.err #outcome { "已导入无误的 " (r.imported) " 行；" (r.skipped) " 行有错误未导入，见下表。" }
                }
                @if show_passwords && !r.passwords.is_empty() {
                    section.card {
                        h2 { "新账号的初始密码（只显示这一次）" }
                        table { thead { tr { th { "用户名" } th { "密码" } } }
                            tbody { @for p in &r.passwords { tr { td { (p.username) } td { code { (p.password) } } } } } }
                    }
                }
                @if !r.errors.is_empty() {
                    p { a href={"/data/jobs/" (id) "/errors.csv"} { "下载错误报告 CSV" } }
                    table.report #report {
                        thead { tr { th { "行号" } th { "字段" } th { "原因" } } }
                        tbody { @for e in r.errors.iter().take(1000) {
                            tr { td.num { (e.row) } td.field { (e.field) } td { (e.reason) } }
                        } }
                    }
                    @if r.errors.len() > 1000 { p.muted { "只显示前 1000 条，完整报告请下载 CSV。" } }
                }
            }
        }
    };
    Ok(page("导入", &clerk, "data", content))
}

async fn job_errors(clerk: Clerk, Path(id): Path<Uuid>) -> Result<Response, PageError> {
    let sheet = {
        let j = jobs();
        match j
            .get(&id)
            .filter(|j| j.owner == clerk.user.id)
            .and_then(|j| j.outcome.as_ref())
        {
            Some(Ok(r)) => r.errors_sheet(),
            _ => return Err(Failure::NotFound(format!("no report for import {id}")).into()),
        }
    };
    file_response("csv", "import-errors", &[sheet])
}

/// An empty import file with the right columns: `/data/template/{households|accounts}.{xlsx|csv}`.
async fn template(clerk: Clerk, Path(file): Path<String>) -> Result<Response, PageError> {
    staff(&clerk)?;
    let bad = || Failure::NotFound(format!("no template {file:?}"));
    let (kind, fmt) = file.split_once('.').ok_or_else(bad)?;
    let kind: ImportKind = kind.parse().map_err(|_| bad())?;
    let sheet = kind.template().ok_or_else(bad)?;
    file_response(
        fmt,
        &format!("template-{}", file.split('.').next().unwrap_or("")),
        &[sheet],
    )
}

/// A download: XLSX (every sheet) or CSV (the first sheet).
fn file_response(fmt: &str, name: &str, sheets: &[Sheet]) -> Result<Response, PageError> {
    let (bytes, mime) = match fmt {
        "xlsx" => (
            data::to_xlsx(sheets).map_err(Failure::from)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        "csv" => (
            data::to_csv(&sheets[0]).map_err(Failure::from)?,
            "text/csv; charset=utf-8",
        ),
        other => {
            return Err(
                Failure::NotFound(format!("no export format {other:?}: use xlsx or csv")).into(),
            );
        }
    };
    let stamp = super::today().format("%Y%m%d");
    let disposition = format!("attachment; filename=\"gridwalk-{name}-{stamp}.{fmt}\"");
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

fn staff(clerk: &Clerk) -> Result<(), PageError> {
    if clerk.reviews() {
        Ok(())
    } else {
        Err(Failure::Forbidden("grid worker accounts cannot export data".into()).into())
    }
}

/// The queue's records, as shown (same filter), as a sheet.
fn records_sheet(
    rows: &[RecordRow],
    grids: &std::collections::BTreeMap<String, super::load::GridInfo>,
    people: &super::load::People,
    policy: &crate::domain::deadline::DeadlinePolicy,
) -> Sheet {
    let now = Utc::now();
    let t = |d: DateTime<Utc>| Cell::DateTime(crate::domain::cst::local(d).naive_local());
    Sheet {
        name: "事项".into(),
        header: [
            "案件编号",
            "编号",
            "类型",
            "类别",
            "状态",
            "紧急程度",
            "时限",
            "时限到期",
            "村/社区",
            "网格",
            "网格编码",
            "上报人",
            "上报账号",
            "上报时间",
            "内容",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                let g = grids.get(&r.grid_code);
                vec![
                    r.case_no.as_deref().into(),
                    Cell::Text(r.id.to_string()),
                    r.domain.zh().into(),
                    r.category_label().into(),
                    r.status.zh().into(),
                    r.urgency.zh().into(),
                    r.deadline_state(now, policy).map(|s| s.zh()).into(),
                    r.deadline.map(|d| t(d.due)).unwrap_or(Cell::Empty),
                    g.map(|g| g.village_name.as_str()).into(),
                    g.map(|g| g.name.as_str()).into(),
                    r.grid_code.as_str().into(),
                    people.name(&r.author).unwrap_or(&r.author).into(),
                    r.author.as_str().into(),
                    t(r.created_at),
                    r.summary.as_str().into(),
                ]
            })
            .collect(),
    }
}

/// `/export/{records|people|stats}.{xlsx|csv}` with the page's filters as the query.
async fn export(
    state: State<AppState>,
    clerk: Clerk,
    Path(file): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, PageError> {
    let bad = || {
        Failure::NotFound(format!(
            "no export {file:?}: records, people or stats, .xlsx or .csv"
        ))
    };
    let (what, fmt) = file.split_once('.').ok_or_else(bad)?;
    if !matches!(fmt, "xlsx" | "csv") {
        return Err(bad().into());
    }
    let fmt = fmt.to_owned();
    let q = |e: axum::extract::rejection::QueryRejection| {
        PageError::Failure(Failure::invalid(e.body_text(), Some("query")))
    };
    match what {
        "records" => {
            let Query(f) = Query::<QueueFilter>::try_from_uri(&uri).map_err(q)?;
            export_records(state, clerk, fmt, f).await
        }
        "people" => {
            let Query(p) = Query::<PeopleQuery>::try_from_uri(&uri).map_err(q)?;
            export_people(state, clerk, fmt, p).await
        }
        "stats" => {
            let Query(s) = Query::<StatsQuery>::try_from_uri(&uri).map_err(q)?;
            export_stats(state, clerk, fmt, s).await
        }
        _ => Err(bad().into()),
    }
}

async fn export_records(
    State(s): State<AppState>,
    clerk: Clerk,
    fmt: String,
    f: QueueFilter,
) -> Result<Response, PageError> {
    staff(&clerk)?;
    let c2 = clerk.clone();
    let sheet = s
        .write(move |db| {
            let rows = f.run(db, &c2)?;
            let grids = super::load::grids(db, &c2.user)?;
            repo::audit(
                db,
                Utc::now(),
                &c2.user.username,
                None,
                "EXPORT_RECORDS",
                None,
                None,
                Some(format!("{} records; {}", rows.len(), f.query_string())),
            )?;
            let people = super::load::people(db)?;
            let policy = repo::deadline_policy(db)?;
            Ok::<_, Failure>(records_sheet(&rows, &grids, &people, &policy))
        })
        .await?;
    file_response(&fmt, "records", &[sheet])
}

#[derive(Deserialize)]
struct PeopleQuery {
    #[serde(default)]
    unmasked: Option<String>,
}

async fn export_people(
    State(s): State<AppState>,
    clerk: Clerk,
    fmt: String,
    q: PeopleQuery,
) -> Result<Response, PageError> {
    staff(&clerk)?;
    let unmasked = q.unmasked.as_deref() == Some("1");
    let user = clerk.user.clone();
    let sheet = s
        .write(move |db| {
            data::export_people(db, &user, unmasked, Utc::now()).map_err(Failure::from)
        })
        .await?;
    file_response(&fmt, "people", &[sheet])
}

async fn export_stats(
    State(s): State<AppState>,
    clerk: Clerk,
    fmt: String,
    q: StatsQuery,
) -> Result<Response, PageError> {
    staff(&clerk)?;
    let user = clerk.user.clone();
    let st = s
        .write(move |db| {
            let st = compute(db, &user, &q)?;
            repo::audit(
                db,
                Utc::now(),
                &user.username,
                None,
                "EXPORT_STATS",
                None,
                None,
                Some(format!("{} to {}", st.from, st.to)),
            )?;
            Ok::<_, Failure>(st)
        })
        .await?;
    // CSV carries one table: the per-grid coverage and workers are in the XLSX.
    let sheets = if fmt == "csv" {
        vec![domain_sheet(&st)]
    } else {
        vec![
            summary_sheet(&st),
            domain_sheet(&st),
            category_sheet(&st),
            week_sheet(&st),
            coverage_sheet(&st),
            workers_sheet(&st),
            ledger_sheet(&st),
        ]
    };
    file_response(&fmt, "statistics", &sheets)
}

fn int(n: usize) -> Cell {
    Cell::Int(n as i64)
}

/// A rate as a percentage with one decimal.
fn pct(x: f64) -> Cell {
    Cell::Float((x * 1000.0).round() / 10.0)
}

/// 概况: the period and the headline figures.
fn summary_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "概况".into(),
        header: vec!["指标".into(), "数值".into()],
        rows: vec![
            vec![
                "统计期间".into(),
                format!("{} 至 {}", st.from, st.to).into(),
            ],
            vec!["上报事项".into(), int(st.total)],
            vec!["已办结".into(), int(st.handled)],
            vec!["作废".into(), int(st.void)],
            vec!["办结率 %".into(), pct(st.resolution_rate())],
            vec!["已超期".into(), int(st.overdue)],
            vec!["已评价".into(), int(st.rated)],
            vec![
                "满意率 %".into(),
                st.satisfaction_rate().map(pct).unwrap_or(Cell::Empty),
            ],
        ],
    }
}

/// 按类型: handled, open and overdue records by domain.
fn domain_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "按类型".into(),
        header: ["类型", "已办结", "办理中", "已超期", "合计"]
            .map(String::from)
            .to_vec(),
        rows: st
            .by_domain
            .iter()
            .map(|(d, h, o, x)| vec![d.zh().into(), int(*h), int(*o), int(*x), int(h + o + x)])
            .collect(),
    }
}

/// 按类别: records by category.
fn category_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "按类别".into(),
        header: vec!["类别".into(), "事项数".into()],
        rows: st
            .by_category
            .iter()
            .map(|(c, n)| vec![c.as_str().into(), int(*n)])
            .collect(),
    }
}

/// 按周: records filed each week, by domain.
fn week_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "按周".into(),
        header: std::iter::once("周（起）".to_owned())
            .chain(
                crate::domain::codes::Domain::ALL
                    .iter()
                    .map(|d| d.zh().to_owned()),
            )
            .chain(std::iter::once("合计".to_owned()))
            .collect(),
        rows: st
            .by_week
            .iter()
            .map(|(w, v)| {
                std::iter::once(w.as_str().into())
                    .chain(v.iter().map(|n| int(*n)))
                    .chain(std::iter::once(int(v.iter().sum())))
                    .collect()
            })
            .collect(),
    }
}

/// 走访覆盖: each grid's households and those visited in the last 30 days.
fn coverage_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "走访覆盖".into(),
        header: [
            "村/社区",
            "网格",
            "网格编码",
            "户数",
            "近30天已走访",
            "覆盖率 %",
        ]
        .map(String::from)
        .to_vec(),
        rows: st
            .coverage
            .iter()
            .map(|c| {
                vec![
                    c.grid.village_name.as_str().into(),
                    c.grid.name.as_str().into(),
                    c.grid.code.as_str().into(),
                    Cell::Int(c.households),
                    Cell::Int(c.visited),
                    pct(c.share()),
                ]
            })
            .collect(),
    }
}

/// 网格员: each worker's records, visits, patrol distance and points.
fn workers_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "网格员".into(),
        header: [
            "网格员",
            "用户名",
            "上报",
            "已办结",
            "走访",
            "巡防公里",
            "积分",
        ]
        .map(String::from)
        .to_vec(),
        rows: st
            .workers
            .iter()
            .map(|w| {
                vec![
                    st.names.name(&w.worker).into(),
                    w.worker.as_str().into(),
                    int(w.filed),
                    int(w.handled),
                    int(w.visits),
                    Cell::Float((w.patrol_km * 10.0).round() / 10.0),
                    Cell::Int(w.points),
                ]
            })
            .collect(),
    }
}

/// 积分明细: the points ledger, entry by entry.
fn ledger_sheet(st: &Stats) -> Sheet {
    Sheet {
        name: "积分明细".into(),
        header: ["时间", "网格员", "事由", "积分", "关联"]
            .map(String::from)
            .to_vec(),
        rows: st
            .ledger
            .iter()
            .map(|e| {
                vec![
                    Cell::DateTime(crate::domain::cst::local(e.at).naive_local()),
                    st.names.label(&e.worker).into(),
                    e.reason.into(),
                    Cell::Int(e.points),
                    e.subject.map(|s| s.to_string()).into(),
                ]
            })
            .collect(),
    }
}
