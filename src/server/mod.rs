//! The county server (`gridwalk-server`): accounts and scope, the sync protocol, photos and
//! the county's actions on records, over one storage trait with SQLite and PostgreSQL.
//!
//! The server keeps no state between requests in memory: sessions, rate limits, watermarks,
//! the push inbox and the change sequence live in the database, so several replicas can
//! serve one PostgreSQL (they tell each other when the push inbox moves: [`wake`]).

pub mod api;
pub mod auth;
pub mod backup;
pub mod body;
pub mod dashboard;
pub mod data;
pub mod db;
pub mod demo;
pub mod error;
pub mod inbox;
pub mod openapi;
pub mod records;
pub mod relay;
pub mod repo;
pub mod state;
pub mod wake;

pub use state::AppState;

/// Largest photo accepted, in bytes.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;
/// Largest JSON body accepted (a push batch), in bytes.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

pub use api::router;

/// Connections waiting to be accepted, at most (the kernel caps it at `net.core.somaxconn`).
/// The monthly discussion day brings a thousand phones at once; with tokio's default of 1,024
/// the queue overflowed under load and a dropped handshake costs its device a one-second
/// retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// What the server listens on: see [`no_delay`].
pub type Listener = axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)>;

/// `listener`, with TCP_NODELAY on every connection it accepts. A streamed pull ends with
/// small writes (the end of the chunked body) that Nagle's algorithm would hold back until
/// the device's delayed ACK: 40 ms added to every pull.
pub fn no_delay(listener: tokio::net::TcpListener) -> Listener {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// A listener on `addr` with [`LISTEN_BACKLOG`]. Needs a tokio runtime.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
