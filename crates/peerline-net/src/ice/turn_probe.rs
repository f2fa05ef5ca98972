//! One TURN Allocate (RFC 8656 §7) outside any ICE agent, for `peerline doctor`: when a
//! gathering gives no relay candidate, this tells why (the server's error code, e.g.
//! `401 Unauthorized` for refused credentials, or no answer at all).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

use super::turn_bridge::TurnBridge;
use super::TurnServer;

/// Allocates once on `server` with its credentials resolved at `now` and releases the
/// allocation; `Ok` is the relayed address, `Err` the reason (never a credential).
/// A TCP/TLS server is reached through a loopback bridge, as the ICE agent reaches it
/// (`turns:` verified with `tls`, else the system roots). Bounded by `timeout`. Needs a
/// tokio runtime.
pub async fn probe_allocate(
    server: &TurnServer,
    tls: Option<&Arc<rustls::ClientConfig>>,
    now: SystemTime,
    timeout: Duration,
) -> Result<SocketAddr, String> {
    let started = tokio::time::Instant::now();
    let (bridge, turn_serv_addr) = if server.transport.is_stream() {
        let b = TurnBridge::start(server, tls, timeout).await?;
        let addr = b.local_addr().to_string();
        (Some(b), addr)
    } else {
        (None, server.host_port())
    };
    let timeout = timeout.saturating_sub(started.elapsed());
    let (username, password) = server.credential.resolve(now);
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let conn: Arc<dyn Conn + Send + Sync> = Arc::new(socket);
    let client = Client::new(ClientConfig {
        stun_serv_addr: String::new(),
        turn_serv_addr,
        username,
        password,
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let result = tokio::time::timeout(timeout, async {
        client.listen().await.map_err(|e| e.to_string())?;
        let relay = client.allocate().await.map_err(|e| e.to_string())?;
        let addr = relay.local_addr().map_err(|e| e.to_string());
        let _ = relay.close().await;
        addr
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "no Allocate answer within {} ms",
            timeout.as_millis()
        ))
    });
    let _ = client.close().await;
    drop(bridge);
    result
}
