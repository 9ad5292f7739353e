//! The county dashboard (综治中心 and village secretaries): server-rendered HTML pages at the
//! server's root URL over the same accounts, scopes and repository as the sync API.
//!
//! Pages are plain HTML from [`maud`] templates with one stylesheet and no JavaScript build
//! step: forms post, the server redirects (post/redirect/get) with a flash message. Sign-in
//! sets an `HttpOnly`, `SameSite=Strict` session cookie holding the same kind of session token
//! the app gets, so sessions, expiry, revocation and rate limiting are shared with the API.
//! Every read goes through the account's scope; anything outside it answers "not found".
//! Every route sits behind [`guard`]: security headers on every answer (no script may run),
//! and no state-changing request without our own origin and the session's CSRF token.

pub mod charts;
mod data_pages;
pub mod guard;
mod households;
mod inbox;
pub mod load;
mod map;
pub mod queue;
mod record;
mod redemptions;
mod settings;
pub mod stats;
mod supervision;
mod tasks;
mod todo;
mod volunteers;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::auth;
use super::error::Failure;
use super::repo::{self, User};
use crate::domain::codes::{Coded, Lang};
use crate::domain::cst;
use crate::domain::labels::{Explain, field_label};
use crate::domain::validate::Problem;
use crate::wire::{LoginRequest, Role};

/// The session cookie's name.
pub const COOKIE: &str = "gw_session";

/// The dashboard's routes (merged into the server's router at `/`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/queue") }))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", axum::routing::post(logout))
        .route("/assets/dashboard.css", get(css))
        .merge(queue::routes())
        .merge(record::routes())
        .merge(stats::routes())
        .merge(map::routes())
        .merge(data_pages::routes())
        .merge(inbox::routes())
        .merge(todo::routes())
        .merge(settings::routes())
        .merge(supervision::routes())
        .merge(tasks::routes())
        .merge(households::routes())
        .merge(volunteers::routes())
        // Forms first (a refusal is a page too), then the headers on every answer.
        .layer(axum::middleware::from_fn(guard::check_forms))
        .layer(axum::middleware::map_response(guard::security_headers))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../../assets/dashboard.css"),
    )
        .into_response()
}

/// Runs database work on the blocking pool.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, Failure> + Send + 'static,
) -> Result<R, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::Internal(format!("task failed: {e}")))?
}

/// The signed-in person of a dashboard request (from the session cookie).
#[derive(Clone)]
pub struct Clerk {
    pub user: User,
    pub token_hash: String,
}

impl Clerk {
    /// Whether this account may act on records (accept, assign, reply, settle).
    pub fn reviews(&self) -> bool {
        self.user.role.reviews()
    }

    /// The CSRF token of this session, for its forms (see [`guard`]).
    pub fn csrf(&self) -> String {
        guard::session_token(&self.token_hash)
    }

    /// The hidden field that every form of this session carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(guard::FIELD) value=(self.csrf()); }
    }
}

fn cookie_token(parts: &Parts) -> Option<String> {
    guard::cookie(&parts.headers, COOKIE).map(str::to_owned)
}

impl FromRequestParts<AppState> for Clerk {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/queue".into());
        let Some(token) = cookie_token(parts) else {
            return Err(PageError::SignIn { next });
        };
        // A state-changing request got here only through `guard::check_forms`: from our own
        // page, with this session's CSRF token.
        let hash = auth::token_hash(&token);
        let found = state.sessions.look_up(&state.db, hash.clone()).await?;
        match found {
            // An assignee opens only its own list and the records on it.
            Some(live) if live.user.role == Role::Assignee => {
                if parts.uri.path() == "/queue" {
                    Err(PageError::Elsewhere("/todo".into()))
                } else if todo::assignee_may_open(&parts.method, parts.uri.path()) {
                    Ok(Clerk {
                        user: live.user,
                        token_hash: hash,
                    })
                } else {
                    Err(PageError::Failure(todo::not_for_assignee()))
                }
            }
            // A relay account syncs its village office, and nothing here.
            Some(live) if live.user.role == Role::Relay => Err(PageError::Failure(
                Failure::Forbidden(auth::RELAY_ONLY.into()),
            )),
            Some(live) => Ok(Clerk {
                user: live.user,
                token_hash: hash,
            }),
            None => Err(PageError::SignIn { next }),
        }
    }
}

/// A dashboard failure, shown as an HTML page (or a redirect to sign in).
#[derive(Debug)]
pub enum PageError {
    SignIn {
        next: String,
    },
    /// A page this account has elsewhere (an assignee's queue is its 我的待办).
    Elsewhere(String),
    Failure(Failure),
}

impl From<Failure> for PageError {
    fn from(f: Failure) -> Self {
        PageError::Failure(f)
    }
}

impl From<super::db::DbError> for PageError {
    fn from(e: super::db::DbError) -> Self {
        PageError::Failure(Failure::Db(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next } => {
                Redirect::to(&format!("/login?next={}", enc(&next))).into_response()
            }
            PageError::Elsewhere(to) => Redirect::to(&to).into_response(),
            PageError::Failure(f) => {
                let status = f.status();
                match &f {
                    Failure::Db(e) => tracing::error!(error = %e, "dashboard: database error"),
                    Failure::Internal(e) => tracing::error!(error = %e, "dashboard: internal"),
                    _ => {}
                }
                let title = match status {
                    StatusCode::NOT_FOUND => "未找到 Not found",
                    StatusCode::FORBIDDEN => "无权访问 Forbidden",
                    StatusCode::UNPROCESSABLE_ENTITY => "输入有误 Invalid input",
                    _ => "出错了 Error",
                };
                let body = bare(
                    title,
                    html! {
                        main.narrow {
                            h1 { (title) }
                            p.flash.err { (explain(&f)) }
                            p { a href="/queue" { "返回待办队列 Back to the queue" } " · " a href="/todo" { "我的待办 My tasks" } }
                        }
                    },
                );
                (status, body).into_response()
            }
        }
    }
}

/// A failure in words a clerk can act on: Chinese first, the field as the page names it. A
/// message already worded in Chinese is shown as it is; otherwise the field's label leads.
pub fn explain(f: &Failure) -> String {
    let worded = crate::domain::labels::has_chinese;
    match f {
        Failure::Invalid { message, .. } if worded(message) => message.clone(),
        Failure::Invalid {
            message,
            field: Some(field),
        } => format!("{}：{message}", field_label(field, Lang::Zh)),
        Failure::NotFound(m) if !worded(m) => format!("找不到要找的内容，请返回列表重新打开 ({m})"),
        Failure::Forbidden(m) if !worded(m) => {
            format!("这不在你的管辖范围内，请联系管理员 ({m})")
        }
        Failure::Db(_) | Failure::Internal(_) => {
            "服务器暂时无法完成这一步，已记入日志；请稍后再试或联系管理员".to_owned()
        }
        other => other.to_string(),
    }
}

/// A person as the pages show them: the name and role, the username on hover (a clerk asks a
/// colleague by name; an operator searches the log by username).
pub fn who(people: &load::People, username: &str) -> Markup {
    match people.get(username) {
        Some((name, role)) => html! {
            span.who title=(username) { (name) small.muted { "（" (role.zh()) "）" } }
        },
        None => html! { span.who { (username) } },
    }
}

/// A filter's `from` or `to` date (2026-11-29), if given; one that is not a date is refused
/// with the filter's label.
pub fn period_date(s: Option<&str>, field: &str) -> Result<Option<chrono::NaiveDate>, Failure> {
    let label = if field == "from" {
        "开始日期"
    } else {
        "结束日期"
    };
    s.map(|s| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad_date(s, field, label))
    })
    .transpose()
}

/// A typed date that is not one, worded for the clerk with the filter's label.
pub fn bad_date(typed: &str, field: &str, label: &str) -> Failure {
    Failure::invalid(
        Problem::DateFormat {
            typed: typed.to_owned(),
        }
        .text(Lang::Zh, label),
        Some(field),
    )
}

/// A code the page does not offer (a hand-edited address, an old bookmark).
pub fn bad_code(e: &crate::domain::codes::UnknownCode, field: &str) -> Failure {
    Failure::invalid(e.explain(Lang::Zh), Some(field))
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Redirects to `to` with a flash message (`ok` or `err`).
pub fn flash(to: &str, ok: bool, msg: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let key = if ok { "ok" } else { "err" };
    Redirect::to(&format!("{to}{sep}{key}={}", enc(msg))).into_response()
}

/// The flash message of a redirect, if any.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    #[serde(default)]
    pub ok: Option<String>,
    #[serde(default)]
    pub err: Option<String>,
}

impl Flash {
    pub fn render(&self) -> Markup {
        html! {
            @if let Some(m) = &self.ok { p.flash.ok role="status" { (m) } }
            @if let Some(m) = &self.err { p.flash.err role="alert" { (m) } }
        }
    }
}

/// China Standard Time, how every time on the dashboard is shown.
pub fn local(t: DateTime<Utc>) -> String {
    cst::local(t).format("%Y-%m-%d %H:%M").to_string()
}

/// Today in China Standard Time.
pub fn today() -> chrono::NaiveDate {
    cst::today(Utc::now())
}

/// The page frame: navigation, who is signed in, and the content.
pub fn page(title: &str, clerk: &Clerk, active: &str, content: Markup) -> Response {
    let u = &clerk.user;
    let mut all = vec![
        ("queue", "/queue", "待办队列", "Queue"),
        ("todo", "/todo", "我的待办", "My tasks"),
        ("stats", "/stats", "统计分析", "Statistics"),
        ("map", "/map", "网格地图", "Map"),
        ("tasks", "/tasks", "任务", "Tasks"),
        ("data", "/data", "数据导入导出", "Data"),
    ];
    if u.role.reviews() {
        all.push(("volunteers", "/volunteers", "志愿者", "Volunteers"));
    }
    if u.role == Role::Admin {
        all.push(("settings", "/settings", "县级设置", "Settings"));
    }
    // An assignee has its list only.
    let nav: Vec<_> = all
        .into_iter()
        .filter(|(key, ..)| u.role != Role::Assignee || *key == "todo")
        .collect();
    let scope = match u.role {
        Role::Worker => u
            .grids
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => u.scope_code.clone(),
    };
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body {
                header.top {
                    a.brand href=(if u.role == Role::Assignee { "/todo" } else { "/queue" }) { "网格通" span.en { " gridwalk · 综治中心" } }
                    nav {
                        @for (key, href, zh, en) in nav {
                            a href=(href) class=@if key == active { "active" } {
                                (zh) span.en { " " (en) }
                            }
                        }
                    }
                    div.who {
                        span #who { (u.display_name) }
                        span.role { (u.role.zh()) " · " (scope) }
                        form method="post" action="/logout" {
                            (clerk.csrf_field())
                            button.link type="submit" { "退出 Sign out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    };
    Html(markup).into_response()
}

/// A page without the navigation (sign-in, errors).
pub fn bare(title: &str, content: Markup) -> Html {
    Html(html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title))
            body { (content) }
        }
    })
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · 网格通 gridwalk" }
            link rel="stylesheet" href="/assets/dashboard.css";
        }
    }
}

/// An HTML response.
pub struct Html(pub Markup);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            self.0.into_string(),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    err: Option<String>,
}

/// Where sign-in goes on to: only a path of this server (a single `/`, then visible ASCII
/// without `\`), never another site (`//evil`, `/\evil` and `https://evil` are read as
/// other hosts by browsers), and never back to the sign-in page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/login")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/queue".to_owned(),
    }
}

/// The `Set-Cookie` value of the sign-in form's token (or, with `None`, the one that clears it).
fn login_cookie(token: Option<&str>, secure: bool) -> Option<HeaderValue> {
    let (value, age) = match token {
        Some(t) => (t, guard::LOGIN_TOKEN_SECONDS),
        None => ("", 0),
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={age}{}",
        guard::LOGIN_COOKIE,
        if secure { "; Secure" } else { "" }
    ))
    .ok()
}

/// Whether the request came through a TLS-terminating proxy (cookies then are `Secure`).
fn behind_tls(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

async fn login_page(headers: axum::http::HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    // The form's token: the one this browser already holds (another tab's form stays valid),
    // or a new one.
    let token = guard::login_token(&headers).unwrap_or_else(guard::new_login_token);
    let mut res = bare(
        "登录 Sign in",
        html! {
            main.login {
                h1 { "网格通 综治中心" }
                p.sub { "gridwalk county dashboard" }
                @if let Some(e) = &q.err { p.flash.err role="alert" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name=(guard::FIELD) value=(token);
                    input type="hidden" name="next" value=(next);
                    label for="username" { "用户名 Username" }
                    input #username name="username" autocomplete="username" required autofocus;
                    label for="password" { "密码 Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button #signin type="submit" { "登录 Sign in" }
                }
            }
        },
    )
    .into_response();
    if let Some(v) = login_cookie(Some(&token), behind_tls(&headers)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// What the sign-in page says to a relay account.
const RELAY_SIGN_IN: &str = "中转站账号只用于村办中转站同步，不能登录工作台：请用本人的账号登录 (a village-office relay account cannot sign in to the dashboard)";

async fn login_submit(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    Form(f): Form<LoginForm>,
) -> Response {
    // Failed sign-ins are counted per account and address (see `auth::login_from`).
    let from = crate::server::api::peer(&extensions);
    // Behind a TLS-terminating proxy the cookie must never travel over plain HTTP.
    let secure = behind_tls(&headers);
    let next = safe_next(f.next.as_deref());
    let req = LoginRequest {
        username: f.username.trim().to_owned(),
        password: f.password,
        // The browser is the "device" of a dashboard session.
        device_id: Uuid::now_v7(),
    };
    let _turn = s.db.write_turn().await;
    let res = blocking(move || {
        let r = auth::login_from(&s, &req, from, Utc::now())?;
        if r.account.role == Role::Relay {
            // Its password was right, but it has nothing here: the session just opened ends.
            let h = auth::token_hash(&r.token);
            s.db.tx(|db| repo::revoke_session(db, &h))?;
            return Err(Failure::Forbidden(RELAY_SIGN_IN.into()));
        }
        Ok(r)
    })
    .await;
    match res {
        Ok(r) => {
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                r.token,
                // The browser keeps the cookie as long as the session can live; the server
                // decides whether it still does (unused for SESSION_DAYS, it does not).
                auth::SESSION_MAX_DAYS * 86400,
                if secure { "; Secure" } else { "" }
            );
            let mut resp = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            // The sign-in form's token has done its work.
            if let Some(v) = login_cookie(None, secure) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            let msg = match e {
                Failure::Unauthorized => "用户名或密码错误，或账号已停用 (wrong username or password, or the account is disabled)".to_owned(),
                other => other.to_string(),
            };
            Redirect::to(&format!("/login?next={}&err={}", enc(&next), enc(&msg))).into_response()
        }
    }
}

async fn logout(State(s): State<AppState>, clerk: Clerk) -> Result<Response, PageError> {
    let h = clerk.token_hash.clone();
    let _turn = s.db.write_turn().await;
    blocking(move || Ok(s.db.tx(|db| repo::revoke_session(db, &h))?)).await?;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("gw_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

/// Inline SVG markup (already escaped by the chart builders).
pub fn svg(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

/// A query value: empty form fields mean "any".
pub fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A code's Chinese label, or the code itself when unknown.
pub fn label<T: Coded>(code: &str) -> String {
    T::from_code(code)
        .map(|c| c.zh().to_owned())
        .unwrap_or_else(|_| code.to_owned())
}
