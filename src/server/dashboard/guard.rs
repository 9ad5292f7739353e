//! What every dashboard request and answer goes through.
//!
//! - [`security_headers`]: every answer carries a Content-Security-Policy that allows no script
//!   at all (the pages have none: forms post, charts are server-drawn SVG) and styles only from
//!   our own stylesheet, may not be framed, sends no referrer to other sites, and is never
//!   type-sniffed.
//! - [`check_forms`]: a request that could change something (anything but GET and HEAD) must
//!   come from one of our own pages: its `Origin` (or, without one, its `Referer`) names this
//!   server, and its form carries the CSRF token of the session it is sent with (the `csrf`
//!   field). The token is `hex(sha256("gridwalk-csrf" ‖ session token hash))`, so it needs
//!   no storage: the server derives it from the session cookie each time, and the page that
//!   holds the form got it the same way. Sign-in has no session yet: `GET /login` sets a
//!   short-lived random `gw_csrf` cookie and puts the same value in the form (double submit).
//!   Multipart forms (the import) are checked by their handler with [`form_token_ok`], before
//!   the file is read.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;
use rand::RngExt;
use sha2::{Digest, Sha256};

use super::{COOKIE, bare};
use crate::server::auth;

/// The form field that carries the CSRF token.
pub const FIELD: &str = "csrf";
/// The pre-session cookie of the sign-in form.
pub const LOGIN_COOKIE: &str = "gw_csrf";
/// How long a sign-in form stays usable (seconds).
pub const LOGIN_TOKEN_SECONDS: u32 = 3600;
/// Largest urlencoded form body (the same limit axum's `Form` has by default).
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;
/// The one route that takes a multipart form; its handler checks the token itself.
pub const MULTIPART_ROUTE: &str = "/data/import";

/// The policy of every dashboard page. No script runs (`script-src 'none'`; there are no
/// inline handlers either), styles come only from `/assets/dashboard.css` (no inline style
/// attributes), images from this server (photos, the stylesheet's data: URIs).
pub const CSP: &str = "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Why a form was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request names neither its Origin nor its Referer")]
    NoOrigin,
    #[error("the form was sent from another site")]
    ForeignOrigin,
    #[error("the form carries no CSRF token")]
    NoToken,
    #[error("the form's CSRF token does not match the session")]
    WrongToken,
    #[error("the body is not a form")]
    NotAForm,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        tracing::info!(reason = %self, "dashboard: form refused");
        let title = "表单已失效 Form refused";
        let body = bare(
            title,
            html! {
                main.narrow {
                    h1 { (title) }
                    p.flash.err role="alert" {
                        "表单已过期或来自其他网站，请刷新页面后重试。"
                        br;
                        "The form expired or came from another site; reload the page and try again."
                    }
                    p.muted { "（" (self) "）" }
                    p { a href="/queue" { "返回待办队列 Back to the queue" } " · " a href="/login" { "重新登录 Sign in again" } }
                }
            },
        );
        (axum::http::StatusCode::FORBIDDEN, body).into_response()
    }
}

/// The CSRF token of the session whose token hashes to `token_hash`.
pub fn session_token(token_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"gridwalk-csrf");
    h.update(token_hash.as_bytes());
    hex::encode(h.finalize())
}

/// A new random sign-in token (64 hex digits).
pub fn new_login_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    hex::encode(bytes)
}

fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

/// A cookie's value from the request's headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The sign-in form's token from its cookie, if it has a well-formed one.
pub fn login_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, LOGIN_COOKIE)
        .filter(|t| is_token(t))
        .map(str::to_owned)
}

/// The token a form sent with these headers must carry: the sign-in cookie's for `/login`, the
/// session's otherwise (`None`: there is nothing to compare with).
fn expected(path: &str, headers: &HeaderMap) -> Option<String> {
    if path == "/login" {
        login_token(headers)
    } else {
        cookie(headers, COOKIE).map(|t| session_token(&auth::token_hash(t)))
    }
}

/// Whether a multipart form's token is the session's (for handlers of multipart forms).
pub fn form_token_ok(token_hash: &str, sent: &str) -> bool {
    same(&session_token(token_hash), sent.trim())
}

/// The host a URL (`scheme://host[:port]/…`) names.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|h| !h.is_empty())
}

/// Whether the request comes from a page of this server: its `Origin`, or without one its
/// `Referer`, names the host it was sent to (`Host`, the request's authority under HTTP/2, or
/// `X-Forwarded-Host` behind a proxy: a page on another site cannot set any of them on a form
/// it makes a browser send).
pub fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), Refusal> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let from = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) => host_of(origin),
        (None, Some(referer)) => host_of(referer),
        (None, None) => return Err(Refusal::NoOrigin),
    };
    let Some(from) = from else {
        // `Origin: null` (a sandboxed frame, a file) or a malformed value.
        return Err(Refusal::ForeignOrigin);
    };
    let ours = [
        text(header::HOST),
        authority,
        text(header::HeaderName::from_static("x-forwarded-host"))
            .and_then(|h| h.split(',').next())
            .map(str::trim),
    ];
    if ours
        .into_iter()
        .flatten()
        .any(|h| h.eq_ignore_ascii_case(from))
    {
        Ok(())
    } else {
        Err(Refusal::ForeignOrigin)
    }
}

fn is_form(headers: &HeaderMap, kind: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(kind))
}

/// The middleware that refuses state-changing requests not sent by our own forms.
pub async fn check_forms(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    if let Err(r) = same_origin(&parts.headers, parts.uri.authority().map(|a| a.as_str())) {
        return r.into_response();
    }
    let path = parts.uri.path();
    let Some(expected) = expected(path, &parts.headers) else {
        if path == "/login" {
            return Refusal::NoToken.into_response();
        }
        // No session cookie: the handler sends the person to sign in, changing nothing.
        return next.run(Request::from_parts(parts, body)).await;
    };
    if is_form(&parts.headers, "multipart/form-data") && path == MULTIPART_ROUTE {
        return next.run(Request::from_parts(parts, body)).await;
    }
    if !is_form(&parts.headers, "application/x-www-form-urlencoded") {
        return Refusal::NotAForm.into_response();
    }
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return (
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "表单内容过长 (the form is too long)",
            )
                .into_response();
        }
    };
    let sent = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    match sent {
        None => Refusal::NoToken.into_response(),
        Some(t) if !same(&expected, t.trim()) => Refusal::WrongToken.into_response(),
        Some(_) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

/// The middleware that puts the security headers on every dashboard answer.
pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, v: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(v));
        }
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn same_origin_of(h: &HeaderMap) -> Result<(), Refusal> {
        same_origin(h, None)
    }

    #[test]
    fn a_form_must_come_from_this_host() {
        let host = ("host", "gw.example:8080");
        assert_eq!(
            same_origin_of(&headers(&[host, ("origin", "https://gw.example:8080")])),
            Ok(())
        );
        assert_eq!(
            same_origin_of(&headers(&[
                host,
                ("referer", "http://gw.example:8080/records/x")
            ])),
            Ok(())
        );
        assert_eq!(same_origin_of(&headers(&[host])), Err(Refusal::NoOrigin));
        for bad in [
            "http://evil.example",
            "http://gw.example:8080.evil.example",
            "null",
            "http://gw.example",
        ] {
            assert_eq!(
                same_origin_of(&headers(&[host, ("origin", bad)])),
                Err(Refusal::ForeignOrigin),
                "{bad}"
            );
        }
        // The Origin decides when both are there.
        assert_eq!(
            same_origin_of(&headers(&[
                host,
                ("origin", "http://evil.example"),
                ("referer", "http://gw.example:8080/queue")
            ])),
            Err(Refusal::ForeignOrigin)
        );
        // Under HTTP/2 the host is the request's authority.
        assert_eq!(
            same_origin(
                &headers(&[("origin", "https://gw.example")]),
                Some("gw.example")
            ),
            Ok(())
        );
        // Behind a proxy that rewrites Host.
        assert_eq!(
            same_origin_of(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("x-forwarded-host", "gw.example"),
                ("origin", "https://gw.example")
            ])),
            Ok(())
        );
    }

    #[test]
    fn tokens_are_per_session_and_compared_whole() {
        let a = session_token(&auth::token_hash("one"));
        let b = session_token(&auth::token_hash("two"));
        assert!(is_token(&a) && a != b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b) && !same(&a, &a[..63]) && !same(&a, ""));
        let cookies = headers(&[("cookie", &format!("{COOKIE}=one; {LOGIN_COOKIE}=zz"))]);
        assert_eq!(expected("/logout", &cookies), Some(a));
        assert_eq!(login_token(&cookies), None, "not a well-formed token");
        assert!(is_token(&new_login_token()));
    }
}
