//! The OPTIONS probe: one non-INVITE client transaction (the phone's own [`Endpoint`] and
//! [`SipTransports`]) to a located target over its transport, from an ephemeral port,
//! bounded by a short timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use peerline_sip::message::{make_header, new_branch, new_call_id, new_tag, RequestBuilder};
use peerline_sip::{Endpoint, Event, Target as SipTarget, Transport};
use peerline_transport::{SipTransports, TlsClientConfig, TransportConfig, TransportEvent};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rsip::Method;
use serde::Serialize;

/// What the probe of one target found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// `UDP`, `TCP` or `TLS`.
    pub transport: String,
    /// Where the OPTIONS went.
    pub target: String,
    /// The final status code, `None` for no answer.
    pub status: Option<u16>,
    /// The reason phrase, or why there was no answer.
    pub detail: String,
    /// Milliseconds from sending to the final response.
    pub rtt_ms: Option<u64>,
}

impl ProbeResult {
    /// A final response came back, and it is not 503 (Service Unavailable).
    pub fn answered(&self) -> bool {
        self.status.is_some_and(|s| s != 503)
    }

    fn no_answer(target: &peerline_dns::Target, detail: String) -> Self {
        Self {
            transport: target.transport.to_string(),
            target: target.addr.to_string(),
            status: None,
            detail,
            rtt_ms: None,
        }
    }
}

/// The SIP transport of a located target.
pub(crate) fn sip_transport(t: peerline_dns::Transport) -> Transport {
    match t {
        peerline_dns::Transport::Udp => Transport::Udp,
        peerline_dns::Transport::Tcp => Transport::Tcp,
        peerline_dns::Transport::Tls => Transport::Tls,
    }
}

/// Sends `OPTIONS request_uri` to `target` over its transport and waits at most `timeout`
/// for a final response. Over TLS the server's certificate is checked as the phone checks
/// it: with `tls` (the phone's `[tls]` client settings, or why they are unusable), against
/// the target's domain (RFC 5922).
pub async fn options_probe(
    target: &peerline_dns::Target,
    request_uri: &str,
    from: &str,
    tls: &Result<TlsClientConfig, String>,
    timeout: Duration,
) -> ProbeResult {
    let transport = sip_transport(target.transport);
    let tls_client = match (transport, tls) {
        (Transport::Tls, Err(e)) => {
            return ProbeResult::no_answer(target, format!("not probed: [tls] settings: {e}"))
        }
        (_, Ok(c)) => c.clone(),
        (_, Err(_)) => TlsClientConfig::default(),
    };
    let any = match target.addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let local_ip = crate::driver::local_ip_toward(target.addr, any);
    let mut transports = match SipTransports::bind(TransportConfig {
        bind: SocketAddr::new(local_ip, 0),
        tcp_listen: false,
        connect_timeout: timeout,
        tls_client,
        ..TransportConfig::default()
    })
    .await
    {
        Ok(t) => t,
        Err(e) => return ProbeResult::no_answer(target, format!("no answer: {e}")),
    };
    if transport == Transport::Tls {
        transports.set_server_name(target.addr, &target.domain);
    }
    let sent_by = transports
        .local_addr(Transport::Udp)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut rng = StdRng::from_entropy();
    let request = RequestBuilder::new(Method::Options, request_uri)
        .via(transport.via_token(), &sent_by, &new_branch(&mut rng))
        .from(from, None, &new_tag(&mut rng))
        .to(request_uri, None)
        .call_id(&new_call_id(&mut rng, &local_ip.to_string()))
        .cseq(1)
        .header(make_header("Accept", "application/sdp"))
        .header(make_header(
            "User-Agent",
            concat!("Peerline/", env!("CARGO_PKG_VERSION"), " doctor"),
        ))
        .build();
    let request = match request {
        Ok(r) => r,
        Err(e) => return ProbeResult::no_answer(target, format!("not probed: {e}")),
    };
    let mut endpoint = Endpoint::new(peerline_sip::Config::default());
    let hop = match transport {
        Transport::Udp => SipTarget::udp(target.addr),
        t => SipTarget::stream(target.addr, t, None),
    };
    let started = Instant::now();
    if let Err(e) = endpoint.send_request_to(started, request, hop) {
        return ProbeResult::no_answer(target, format!("not probed: {e}"));
    }
    let deadline = started + timeout;
    let no_answer = |why: &str| {
        ProbeResult::no_answer(
            target,
            format!("no answer within {} ms{why}", timeout.as_millis()),
        )
    };
    loop {
        while let Some(t) = endpoint.poll_transmit() {
            if let Err(e) = transports.send(&t).await {
                return no_answer(&format!(" ({e})"));
            }
        }
        while let Some(ev) = endpoint.poll_event() {
            match ev {
                Event::Response { response, .. } if response.status_code.code() >= 200 => {
                    return ProbeResult {
                        transport: target.transport.to_string(),
                        target: target.addr.to_string(),
                        status: Some(response.status_code.code()),
                        detail: response.status_code.to_string(),
                        rtt_ms: Some(started.elapsed().as_millis() as u64),
                    };
                }
                Event::TransactionTimeout { .. } => {
                    return no_answer(" (transaction failed: connection lost or Timer F)")
                }
                _ => {}
            }
        }
        let wake = endpoint
            .poll_timeout()
            .map_or(deadline, |t| t.min(deadline));
        tokio::select! {
            ev = transports.recv() => match ev {
                Some(TransportEvent::Incoming(m)) => {
                    let now = Instant::now();
                    match m.conn {
                        None => endpoint.handle_datagram(now, m.source, &m.bytes),
                        Some(c) => endpoint.handle_stream_message(now, c, m.transport, m.source, &m.bytes),
                    }
                }
                Some(TransportEvent::Closed { conn, reason, .. }) => {
                    endpoint.connection_closed(conn);
                    if endpoint.transaction_count() > 0 {
                        return no_answer(&format!(" ({reason})"));
                    }
                }
                Some(TransportEvent::Pong { .. }) => {}
                None => return no_answer(""),
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                if now >= deadline {
                    return no_answer("");
                }
                endpoint.handle_timeout(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_target(addr: SocketAddr) -> peerline_dns::Target {
        peerline_dns::Target {
            transport: peerline_dns::Transport::Tls,
            addr,
            from: peerline_dns::Origin::Numeric,
            ttl: Duration::ZERO,
            domain: "pbx.example.com".into(),
        }
    }

    #[tokio::test]
    async fn tls_targets_are_probed_with_the_phones_tls_settings() {
        // Unusable [tls] settings: said so, nothing sent.
        let t = tls_target("127.0.0.1:9".parse().unwrap());
        let r = options_probe(
            &t,
            "sip:pbx.example.com",
            "sip:a@example.com",
            &Err("bad pin".into()),
            Duration::from_millis(200),
        )
        .await;
        assert_eq!(r.transport, "TLS");
        assert_eq!(r.status, None);
        assert_eq!(r.detail, "not probed: [tls] settings: bad pin");

        // Usable ones: a TLS probe is made (here to a listener that never completes the
        // handshake, so it ends in no answer within the timeout, not "not probed").
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t = tls_target(silent.local_addr().unwrap());
        let r = options_probe(
            &t,
            "sip:pbx.example.com",
            "sip:a@example.com",
            &Ok(TlsClientConfig::default()),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(r.status, None);
        assert!(
            r.detail.starts_with("no answer within 300 ms"),
            "{}",
            r.detail
        );
    }
}
