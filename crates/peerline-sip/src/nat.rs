//! SIP through a NAT, sans-IO: the address a server saw us at (RFC 3581 `received` and
//! `rport` in the top Via of its response), our Contact rewritten to it, and the
//! keep-alive schedule that holds the NAT binding of a registration's flow open: a
//! double CRLF on the flow, RFC 5626 §4.4.1's ping for connection-oriented transports,
//! sent over UDP too as pjsip and Linphone do (RFC 5626 §4.4.2's UDP keep-alive is STUN,
//! which a registrar answers only if it demultiplexes STUN on its SIP port).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rsip::Response;

use crate::message::MessageExt;

/// What a keep-alive carries over UDP: the double CRLF of RFC 5626 §4.4.1 (4 bytes). A SIP parser
/// skips CRLFs between messages (RFC 3261 §7.5), so any server ignores it; the point is
/// the outgoing datagram, which refreshes the NAT binding.
pub const KEEPALIVE_PING: &[u8] = b"\r\n\r\n";

/// Where the server saw our request come from, from the top Via of its response: the
/// `received` IP (else the sent-by host, when it is an IP) and the `rport` value (else
/// the sent-by port, else 5060). `None` when the Via is missing or malformed, or when
/// neither `received` nor a valued `rport` is there (the server told us nothing).
pub fn public_address(response: &Response) -> Option<SocketAddr> {
    let via = response.top_via()?;
    let received = via.received();
    let rport = via.rport().flatten();
    if received.is_none() && rport.is_none() {
        return None;
    }
    let host = received.unwrap_or(via.host.as_str());
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let port = rport.or(via.port).unwrap_or(5060);
    if port == 0 {
        return None;
    }
    Some(SocketAddr::new(ip, port))
}

/// `uri` (a SIP URI: `sip:user@host:port;params`) with its host and port replaced by
/// `addr`; `None` when `uri` does not parse.
pub fn uri_at(uri: &str, addr: SocketAddr) -> Option<String> {
    rsip::Uri::try_from(uri).ok()?;
    // Edited as text: rsip would re-spell the parameters (`transport=TCP`).
    let (scheme, rest) = uri.split_once(':')?;
    let start = rest.find('@').map(|i| i + 1).unwrap_or(0);
    let end = rest[start..]
        .find([';', '?', '>'])
        .map(|i| start + i)
        .unwrap_or(rest.len());
    Some(format!("{scheme}:{}{addr}{}", &rest[..start], &rest[end..]))
}

/// The host and port of a SIP URI as a socket address (`None` for a name or no URI).
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = rsip::Uri::try_from(uri).ok()?;
    let ip: IpAddr = u
        .host_with_port
        .host
        .to_string()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let port = u.host_with_port.port.map(|p| *p.value()).unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

/// The keep-alive schedule of one flow (UDP: our SIP socket to the registrar): a ping
/// every `interval` while it runs. Sans-IO: the driver sends [`KEEPALIVE_PING`] when
/// [`KeepAlive::poll_transmit`] says so and sleeps until [`KeepAlive::poll_timeout`].
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Duration,
    next: Option<Instant>,
}

impl KeepAlive {
    /// A stopped schedule with this interval (a zero interval never starts).
    pub fn new(interval: Duration) -> Self {
        KeepAlive {
            interval,
            next: None,
        }
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether pings are scheduled.
    pub fn running(&self) -> bool {
        self.next.is_some()
    }

    /// Starts (or keeps) the schedule: the first ping one interval from `now`.
    pub fn start(&mut self, now: Instant) {
        if self.interval.is_zero() || self.next.is_some() {
            return;
        }
        self.next = Some(now + self.interval);
    }

    /// Stops the schedule (unregistered, or no NAT any more).
    pub fn stop(&mut self) {
        self.next = None;
    }

    /// Something else went out on the flow at `now` (a REGISTER refresh): it refreshed
    /// the binding, so the next ping is due one interval later.
    pub fn on_sent(&mut self, now: Instant) {
        if self.next.is_some() {
            self.next = Some(now + self.interval);
        }
    }

    /// When the next ping is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The ping to send now, if one is due (the next is then scheduled).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&'static [u8]> {
        match self.next {
            Some(t) if t <= now => {
                self.next = Some(now + self.interval);
                Some(KEEPALIVE_PING)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_message;

    fn response(via: &str) -> Response {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:a@example.com>;tag=1\r\n\
             To: <sip:a@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match parse_message(text.as_bytes()).unwrap() {
            rsip::SipMessage::Response(r) => r,
            _ => panic!("not a response"),
        }
    }

    #[test]
    fn public_address_from_received_and_rport() {
        let r =
            response("SIP/2.0/UDP 10.0.1.2:5060;rport=40123;branch=z9hG4bKa;received=203.0.113.11");
        assert_eq!(
            public_address(&r),
            Some("203.0.113.11:40123".parse().unwrap())
        );
        // rport alone (same IP, another port: a NAT that kept the address).
        let r = response("SIP/2.0/UDP 192.0.2.1:5060;rport=5062;branch=z9hG4bKa");
        assert_eq!(public_address(&r), Some("192.0.2.1:5062".parse().unwrap()));
        // received alone: the sent-by port.
        let r = response("SIP/2.0/UDP 10.0.1.2:5070;branch=z9hG4bKa;received=198.51.100.7");
        assert_eq!(
            public_address(&r),
            Some("198.51.100.7:5070".parse().unwrap())
        );
        // IPv6 received.
        let r =
            response("SIP/2.0/UDP [fd00::2]:5060;rport=6000;received=2001:db8::9;branch=z9hG4bKa");
        assert_eq!(
            public_address(&r),
            Some("[2001:db8::9]:6000".parse().unwrap())
        );
    }

    #[test]
    fn no_public_address_when_the_server_said_nothing_or_nonsense() {
        // rport asked for but not filled in, no received: nothing learned.
        let r = response("SIP/2.0/UDP 10.0.1.2:5060;rport;branch=z9hG4bKa");
        assert_eq!(public_address(&r), None);
        // A received that is not an IP, or a port of 0: ignored, never a panic.
        let r = response("SIP/2.0/UDP 10.0.1.2:5060;rport=7;received=not-an-ip;branch=z9hG4bKa");
        assert_eq!(public_address(&r), None);
        let r = response("SIP/2.0/UDP 10.0.1.2:5060;rport=0;received=203.0.113.5;branch=z9hG4bKa");
        assert_eq!(public_address(&r), None);
        let r = response("SIP/2.0/UDP host.example:5060;rport=99999;branch=z9hG4bKa");
        assert_eq!(public_address(&r), None);
    }

    #[test]
    fn contact_rewritten_to_the_public_address() {
        let a: SocketAddr = "203.0.113.11:40123".parse().unwrap();
        assert_eq!(
            uri_at("sip:alice@10.0.1.2:5060", a).as_deref(),
            Some("sip:alice@203.0.113.11:40123")
        );
        assert_eq!(
            uri_at("sip:alice@10.0.1.2:5060;transport=tcp", a).as_deref(),
            Some("sip:alice@203.0.113.11:40123;transport=tcp")
        );
        assert_eq!(
            uri_addr("sip:alice@10.0.1.2:5060"),
            Some("10.0.1.2:5060".parse().unwrap())
        );
        assert_eq!(
            uri_addr("sip:alice@10.0.1.2"),
            Some("10.0.1.2:5060".parse().unwrap())
        );
        assert_eq!(uri_addr("sip:alice@example.com"), None);
        assert_eq!(uri_at("not a uri", a), None);
    }

    #[test]
    fn keepalive_schedule() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut k = KeepAlive::new(s(25));
        assert_eq!(k.poll_timeout(), None);
        assert_eq!(k.poll_transmit(t0 + s(100)), None);
        k.start(t0);
        k.start(t0 + s(10)); // already running: unchanged
        assert_eq!(k.poll_timeout(), Some(t0 + s(25)));
        assert_eq!(k.poll_transmit(t0 + s(24)), None);
        assert_eq!(k.poll_transmit(t0 + s(25)), Some(KEEPALIVE_PING));
        assert_eq!(k.poll_timeout(), Some(t0 + s(50)));
        // A REGISTER refresh at 40 s refreshed the binding: the ping waits until 65 s.
        k.on_sent(t0 + s(40));
        assert_eq!(k.poll_transmit(t0 + s(50)), None);
        assert_eq!(k.poll_timeout(), Some(t0 + s(65)));
        // Late wake-up: one ping, the next an interval after it (no burst).
        assert_eq!(k.poll_transmit(t0 + s(200)), Some(KEEPALIVE_PING));
        assert_eq!(k.poll_transmit(t0 + s(200)), None);
        assert_eq!(k.poll_timeout(), Some(t0 + s(225)));
        // Ten minutes of pings: 24 of 4 bytes = 96 bytes, 9.6 B/min of payload.
        let mut k = KeepAlive::new(s(25));
        k.start(t0);
        let mut bytes = 0;
        for sec in 0..=600 {
            if let Some(p) = k.poll_transmit(t0 + s(sec)) {
                bytes += p.len();
            }
        }
        assert_eq!(bytes, 24 * 4);
        k.stop();
        assert_eq!(k.poll_timeout(), None);
        let mut off = KeepAlive::new(Duration::ZERO);
        off.start(t0);
        assert!(!off.running());
    }
}
