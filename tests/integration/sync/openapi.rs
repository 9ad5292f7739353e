//! The API's OpenAPI description at `/api/v1/openapi.json`: read without a session or the
//! protocol header, an OpenAPI 3 document whose operations are exactly the routes the server
//! registers (read from `src/server/api/` itself, so a route added without a description
//! fails here), each described, each answering what it says, and every machine code of
//! `Failure` listed.

use std::collections::{BTreeMap, BTreeSet};

use gridwalk::server::error::Failure;
use gridwalk::wire::{PROTOCOL_HEADER, PROTOCOL_VERSION};
use serde_json::Value;

use super::util::{Backend, TestServer, api_client};

/// The source that registers the routes and describes the handlers (`src/server/api/`).
const API_SOURCES: [&str; 6] = [
    include_str!("../../../src/server/api/mod.rs"),
    include_str!("../../../src/server/api/push_pull.rs"),
    include_str!("../../../src/server/api/photos.rs"),
    include_str!("../../../src/server/api/review.rs"),
    include_str!("../../../src/server/api/recovery.rs"),
    include_str!("../../../src/server/api/relay.rs"),
];
/// Where the API is nested.
const BASE: &str = "/api/v1";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The string literal starting at `s` (which begins with `"`), without its quotes.
fn literal(s: &str) -> &str {
    let s = s.trim_start();
    assert!(
        s.starts_with('"'),
        "a string literal at {:?}",
        &s[..s.len().min(40)]
    );
    let end = s[1..].find('"').expect("a closed literal");
    &s[1..1 + end]
}

/// `s` up to the parenthesis that closes the one just before it (string literals skipped).
fn balanced(s: &str) -> &str {
    let (mut depth, mut in_string, mut escaped) = (1, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {:?}", &s[..s.len().min(80)])
}

/// Whether `code` calls `name(` (not as the end of a longer name).
fn calls(code: &str, name: &str) -> bool {
    code.match_indices(&format!("{name}(")).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Every (METHOD, path) that `src/server/api/` routes: each handler `routes!` registers,
/// with the method and path of its `#[utoipa::path]`; and each plain axum route (which has no
/// description), with the methods its method router names. Paths are as written (relative to
/// the router they are in).
fn routes_in_source() -> (BTreeSet<(String, String)>, Vec<String>) {
    let code: String = API_SOURCES
        .concat()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut problems = Vec::new();
    // Every file of the API is read: a new one must be added to API_SOURCES.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/api");
    let files = std::fs::read_dir(dir).unwrap().count();
    if files != API_SOURCES.len() {
        problems.push(format!(
            "{dir} has {files} files, API_SOURCES reads {}",
            API_SOURCES.len()
        ));
    }
    // The handlers' descriptions, by function name.
    let mut described: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (at, _) in code.match_indices("#[utoipa::path(") {
        let start = at + "#[utoipa::path(".len();
        let args = balanced(&code[start..]);
        let method = args
            .trim_start()
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap()
            .to_ascii_uppercase();
        let path = literal(&args[args.find("path =").expect("a path") + "path =".len()..]);
        let after = &code[start + args.len()..];
        let name = after[after.find("fn ").expect("the handler") + 3..]
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap()
            .to_owned();
        described.insert(name, (method, path.to_owned()));
    }
    let mut routed = BTreeSet::new();
    for (at, _) in code.match_indices("routes!(") {
        for name in balanced(&code[at + "routes!(".len()..]).split(',') {
            let name = name.trim().rsplit("::").next().unwrap();
            if name.is_empty() {
                continue;
            }
            match described.get(name) {
                Some(route) => {
                    routed.insert(route.clone());
                }
                None => problems.push(format!("routes!({name}): no #[utoipa::path] found")),
            }
        }
    }
    // Routes added any other way carry no description.
    for (at, _) in code.match_indices(".route(") {
        let args = balanced(&code[at + ".route(".len()..]);
        let path = literal(args);
        let mut any = false;
        for m in METHODS.into_iter().filter(|m| calls(args, m)) {
            routed.insert((m.to_ascii_uppercase(), path.to_owned()));
            any = true;
        }
        if !any {
            problems.push(format!(".route({path:?}, ..): no method found to check"));
        }
    }
    for call in [".route_service(", ".nest_service(", ".fallback_service("] {
        if code.contains(call) {
            problems.push(format!("{call}..) serves a route that cannot be described"));
        }
    }
    for (at, _) in code.match_indices(".merge(") {
        let what = balanced(&code[at + ".merge(".len()..]);
        if !what.contains("dashboard") {
            problems.push(format!(
                ".merge({what}): only the dashboard (HTML) is merged"
            ));
        }
    }
    for (at, _) in code.match_indices(".nest(") {
        let what = balanced(&code[at + ".nest(".len()..]);
        if !what.starts_with("openapi::BASE") {
            problems.push(format!(
                ".nest({what}): the API is nested at openapi::BASE only"
            ));
        }
    }
    (routed, problems)
}

/// Every (METHOD, path) the description has.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_ascii_uppercase(), path.clone()), op.clone());
            }
        }
    }
    out
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// What a `$ref` points to in the document.
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    let pointer = r.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Sends a request for an operation, with sample path values and (where it takes one) an
/// empty JSON object as the body.
async fn probe(
    server: &TestServer,
    client: &reqwest::Client,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!(
        "{}{}",
        server.url,
        path.replace("{sha}", &"0".repeat(64))
            .replace("{id}", "00000000-0000-7000-8000-000000000000")
    );
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method == "POST" || method == "PUT" {
        req = req.header("content-type", "application/json").body("{}");
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_covers_every_route_and_every_error_code() {
    let server = TestServer::start(Backend::Sqlite).await;
    let url = format!("{}{BASE}/openapi.json", server.url);

    // Read first: no session, no protocol header (or another version), and still the API's
    // headers.
    let plain = reqwest::Client::new();
    let res = plain.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h[PROTOCOL_HEADER], PROTOCOL_VERSION.to_string().as_str());
    let doc: Value = res.json().await.unwrap();
    let other = plain
        .get(&url)
        .header(PROTOCOL_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        200,
        "read whatever version the client names"
    );
    assert_eq!(other.json::<Value>().await.unwrap(), doc);

    // OpenAPI 3.x, with what a reader needs.
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Exactly the routes the source registers, each described.
    let ops = operations(&doc);
    let (routed, problems) = routes_in_source();
    assert!(
        problems.is_empty(),
        "routes without a description: {problems:#?}"
    );
    assert!(
        routed.len() >= 17,
        "routes found in src/server/api/: {routed:?}"
    );
    let documented = |(m, p): &(String, String)| {
        ops.contains_key(&(m.clone(), p.clone()))
            || ops.contains_key(&(m.clone(), format!("{BASE}{p}")))
    };
    let undescribed: Vec<_> = routed.iter().filter(|r| !documented(r)).collect();
    assert!(
        undescribed.is_empty(),
        "routed but not in the description: {undescribed:?}"
    );
    assert_eq!(
        ops.len(),
        routed.len(),
        "the description has operations no route has: {:?}",
        ops.keys().collect::<Vec<_>>()
    );

    // Every $ref resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }

    // Every machine code is listed on the error body, has its error answer with the status
    // it answers with, and every operation lists an error answer under that status.
    let codes = Failure::every_code();
    let listed = &doc["components"]["schemas"]["ApiError"]["properties"]["error"]["enum"];
    let mut by_answer = BTreeMap::new();
    for (status, code) in &codes {
        assert!(
            listed.as_array().unwrap().contains(&Value::from(*code)),
            "{code} not listed on ApiError.error: {listed}"
        );
        let (name, answer) = doc["components"]["responses"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, r)| r["content"]["application/json"]["example"]["error"] == *code)
            .unwrap_or_else(|| panic!("no error answer for {code}"));
        assert!(
            answer["description"]
                .as_str()
                .unwrap()
                .starts_with(&status.as_u16().to_string()),
            "{name}: {answer}"
        );
        by_answer.insert(format!("#/components/responses/{name}"), status.as_u16());
    }
    assert_eq!(listed.as_array().unwrap().len(), codes.len());

    for ((method, path), op) in &ops {
        let what = format!("{method} {path}");
        for key in ["summary", "description", "operationId"] {
            assert!(
                op[key].as_str().is_some_and(|s| !s.trim().is_empty()),
                "{what}: no {key}"
            );
        }
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no success answer"
        );
        for (status, r) in responses {
            if let Some(r) = r["$ref"].as_str()
                && let Some(expected) = by_answer.get(r)
            {
                assert_eq!(status, &expected.to_string(), "{what}: {r} under {status}");
            }
        }
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(
            secured,
            responses.contains_key("401")
                // Sign-ins, where 401 means a wrong password.
                && path != &format!("{BASE}/auth/login")
                && path != &format!("{BASE}/device/recovery/release"),
            "{what}: a bearer token exactly where 401 means a missing session"
        );
        let in_api = path.starts_with(BASE);
        let open = path == &format!("{BASE}/openapi.json");
        let protocol = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                let p = p["$ref"]
                    .as_str()
                    .and_then(|r| resolve(&doc, r))
                    .unwrap_or(p);
                p["name"] == PROTOCOL_HEADER && p["in"] == "header"
            })
        });
        assert_eq!(protocol, in_api && !open, "{what}: the protocol header");
        assert_eq!(
            responses.contains_key("426"),
            in_api && !open,
            "{what}: 426 without the protocol header"
        );
    }

    // Every operation is served (nothing answers "no such route" or "no such method"), and
    // answers a status it documents: first without a session, then with one.
    let token = server.login("admin").await.token;
    let client = api_client();
    let logout = ("POST".to_owned(), format!("{BASE}/auth/logout"));
    for token in [None, Some(token.as_str())] {
        let order = ops.keys().filter(|k| **k != logout).chain([&logout]);
        for (method, path) in order {
            let (status, headers, body) = probe(&server, &client, method, path, token).await;
            let what = format!("{method} {path} (session: {})", token.is_some());
            // The fallback's 404 says "no such route"; to HEAD, without a body, a handler's
            // 404 shows by the session it looked up.
            let fallback = status == 404
                && match body["message"].as_str() {
                    Some(m) => m.contains("no such route"),
                    None => !headers.contains_key(gridwalk::wire::SESSION_EXPIRES_HEADER),
                };
            assert!(
                status != 405 && !fallback,
                "{what}: not served ({status} {body})"
            );
            let op = &ops[&(method.clone(), path.clone())];
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{what}: answered {status}, which the description does not list ({body})"
            );
        }
    }
}
