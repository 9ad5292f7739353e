//! The push inbox for county administrators: pushes set aside (quarantined) after failing to
//! apply for a reason that is not one entry's, with a button to queue one again.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::Utc;
use maud::html;

use super::{Clerk, Flash, PageError, blocking, flash, page};
use crate::server::AppState;
use crate::server::error::Failure;
use crate::server::repo;
use crate::server::wake::{self, Move};
use crate::wire::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/data/inbox", get(inbox_page))
        .route("/data/inbox/{id}/retry", post(retry))
}

/// Only county administrators: to anyone else the page does not exist.
fn admin_only(clerk: &Clerk) -> Result<(), PageError> {
    if clerk.user.role == Role::Admin {
        Ok(())
    } else {
        Err(Failure::NotFound("no such page".into()).into())
    }
}

async fn inbox_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    admin_only(&clerk)?;
    let _turn = s.db.read_turn().await;
    let (rows, (queued, oldest, _)) = blocking(move || {
        Ok(s.db.read(|db| {
            Ok::<_, crate::server::db::DbError>((
                repo::quarantined_pushes(db)?,
                repo::inbox_health(db)?,
            ))
        })?)
    })
    .await?;
    let waited = oldest
        .map(|t| format!("{} 秒", (Utc::now() - t).num_seconds().max(0)))
        .unwrap_or_else(|| "—".into());
    let content = html! {
        h1 { "推送队列" span.en { " Push inbox" } }
        (fl.render())
        p { "待处理 " strong #inbox-queued { (queued) } " 条，最早一条已等待 " (waited)
            span.en { " (queued pushes, and how long the oldest has waited)" } }
        h2 { "已搁置的推送 " span.en { "Quarantined pushes" } }
        p.muted { "这些推送多次处理失败（不是某条记录的内容问题：那种会退回给手机），已暂放一边，其后的推送照常处理。"
            "排除原因后点击“重新处理”。"
            span.en { " Pushes that failed to apply several times for a reason outside their entries; the rest of the inbox moves on. Retry once the cause is fixed." } }
        @if rows.is_empty() {
            p #inbox-none { "没有被搁置的推送。" span.en { " None." } }
        } @else {
            table #quarantined {
                thead { tr { th { "编号" } th { "账号" } th { "设备" } th { "收到" } th { "搁置" } th { "次数" } th { "原因" } th {} } }
                tbody {
                    @for r in &rows {
                        tr {
                            td.num { (r.id) }
                            td { (r.username) }
                            td { code { (r.device) } " · " (r.lane) }
                            td { (when(&r.received_at)) }
                            td { (when(&r.quarantined_at)) }
                            td.num { (r.attempts) }
                            td { (r.last_error) }
                            td { form method="post" action={"/data/inbox/" (r.id) "/retry"} {
                                (clerk.csrf_field())
                                button type="submit" { "重新处理 Retry" } } }
                        }
                    }
                }
            }
        }
    };
    Ok(page("推送队列 Push inbox", &clerk, "data", content))
}

/// A stored time as the clerk's wall clock reads it.
fn when(stored: &str) -> String {
    repo::parse_ts(stored)
        .map(super::local)
        .unwrap_or_else(|_| stored.to_owned())
}

async fn retry(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    admin_only(&clerk)?;
    let who = clerk.user.username.clone();
    let _turn = s.db.write_turn().await;
    let (db, inbox) = (s.db.clone(), s.inbox.clone());
    let me = inbox.id().to_owned();
    let ok = blocking(move || {
        db.tx(|tx| {
            let ok = repo::retry_quarantined(tx, id, &who, Utc::now())?;
            if ok {
                wake::notify(tx, Move::Queued, &me)?;
            }
            Ok::<_, crate::server::db::DbError>(ok)
        })
        .map_err(Failure::from)
    })
    .await?;
    if ok {
        inbox.kick(&s.db);
        Ok(flash(
            "/data/inbox",
            true,
            &format!("推送 {id} 已重新排队处理 (queued again)"),
        ))
    } else {
        Ok(flash(
            "/data/inbox",
            false,
            &format!("没有被搁置的推送 {id} (no quarantined push {id})"),
        ))
    }
}
