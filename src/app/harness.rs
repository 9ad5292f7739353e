//! The browser harness: the same [`App`](super::App) served through dioxus-liveview and axum
//! on a loopback address, for machines without a display and for the Playwright flow tests.
//! Each browser tab gets its own `VirtualDom` over one shared device store.
//!
//! Routes: `GET /` and `GET /{*route}` serve the page, `GET /ws` is the liveview socket.
//! (`LiveviewRouter::with_virtual_dom("/")` registers only `/{*route}`, so `/` would be 404.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::response::Html;
use axum::routing::get;
use dioxus::prelude::*;
use dioxus_liveview::{LiveViewPool, axum_socket, interpreter_glue};

use super::{App, AppProps};

/// Makes the services of one browser tab (called once per connection, on the server thread).
pub use super::MakeServices;

fn page() -> Html<String> {
    let glue = interpreter_glue("/ws");
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>网格通 gridwalk</title></head>
<body><div id="main"></div>{glue}</body>
</html>"#
    ))
}

/// The axum router of the harness.
pub fn router(make: MakeServices) -> Router {
    let pool = Arc::new(LiveViewPool::new());
    Router::new()
        .route("/", get(|| async { page() }))
        .route("/{*route}", get(|| async { page() }))
        .route(
            "/ws",
            get(move |ws: WebSocketUpgrade| {
                let pool = pool.clone();
                let make = make.clone();
                async move {
                    ws.on_upgrade(move |socket| async move {
                        let _ = pool
                            .launch_virtualdom(axum_socket(socket), move || {
                                VirtualDom::new_with_props(App, AppProps { services: make() })
                            })
                            .await;
                    })
                }
            }),
        )
}

/// Binds `addr` (use port 0 for any free port) and returns the bound address and the server
/// future to run.
pub async fn bind(
    addr: SocketAddr,
    make: MakeServices,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(make);
    Ok((local, async move { axum::serve(listener, app).await }))
}
