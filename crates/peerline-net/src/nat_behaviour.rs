//! NAT behaviour discovery (RFC 5780) for `peerline doctor`: does UDP get out, is there a
//! NAT, how does it map (§4.3) and filter (§4.4), and which path a call would likely take.
//!
//! [`NatProbe`] is sans-IO: it builds the Binding requests, matches the answers by
//! transaction id, retransmits on [`NatProbe::handle_timeout`] and classifies. Time comes
//! in as an [`Instant`], the five transaction ids are given to [`NatProbe::new`]. [`discover`]
//! is the thin tokio driver (one UDP socket, bound inside the RTP port range).
//!
//! The tests, all from one local socket, in this order:
//!
//! 1. **I**: Binding to the primary address. No answer: UDP does not get out (or the server
//!    is down). The answer's XOR-MAPPED-ADDRESS is our mapping; equal to our local address
//!    means no NAT. No OTHER-ADDRESS: the server does not support RFC 5780 and we stop.
//! 2. **Filtering II**: CHANGE-REQUEST change-IP and change-port. An answer (from the other
//!    address) means endpoint-independent filtering.
//! 3. **Filtering III**: CHANGE-REQUEST change-port. An answer (primary IP, other port)
//!    means address-dependent filtering, none address-and-port-dependent.
//! 4. **Mapping II**: Binding to the other IP, primary port. Same mapping as I:
//!    endpoint-independent mapping.
//! 5. **Mapping III**: Binding to the other address. Same mapping as II: address-dependent,
//!    else address-and-port-dependent.
//!
//! Filtering comes before mapping II/III: those send to the server's other IP and would
//! open the NAT for it, and filtering II would then look endpoint-independent.
//!
//! An answer to a CHANGE-REQUEST from an address other than the one asked for (a server
//! that ignores the attribute) or an error response is reported as "the server does not
//! support RFC 5780", never guessed around.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use stun::agent::TransactionId;
use stun::attributes::{
    ATTR_CHANGE_REQUEST, ATTR_MAPPED_ADDRESS, ATTR_OTHER_ADDRESS, ATTR_RESPONSE_ORIGIN,
    ATTR_XORMAPPED_ADDRESS,
};
use stun::message::{Message, BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS};
use stun::xoraddr::XorMappedAddress;

/// CHANGE-REQUEST flag "change IP" (RFC 5780 §7.2).
pub const CHANGE_IP: u32 = 0x04;
/// CHANGE-REQUEST flag "change port" (RFC 5780 §7.2).
pub const CHANGE_PORT: u32 = 0x02;

/// How a NAT maps (RFC 4787 §4.1, RFC 5780 §4.3) or filters (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Same mapping for / packets accepted from any remote address and port.
    EndpointIndependent,
    /// Depends on the remote IP address only.
    AddressDependent,
    /// Depends on the remote IP address and port.
    AddressAndPortDependent,
}

impl Behaviour {
    /// `endpoint-independent`, `address-dependent`, `address-and-port-dependent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::AddressDependent => "address-dependent",
            Self::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retransmission and give-up times of one test.
#[derive(Debug, Clone, Copy)]
pub struct NatProbeConfig {
    /// First retransmission after this long; doubled after each.
    pub rto: Duration,
    /// A test without an answer this long after its first request has failed.
    pub test_timeout: Duration,
}

impl Default for NatProbeConfig {
    fn default() -> Self {
        Self {
            rto: Duration::from_millis(200),
            test_timeout: Duration::from_millis(1600),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: SocketAddr,
    /// The encoded Binding request.
    pub payload: Vec<u8>,
}

/// What was found. Fields stay `None` where the tests did not get that far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatReport {
    /// The server's primary address (where test I went).
    pub server: Option<SocketAddr>,
    /// Our socket's address, if the driver knew it.
    pub local: Option<SocketAddr>,
    /// Test I answered: UDP gets out.
    pub udp_ok: bool,
    /// Our address as the server saw it (test I).
    pub mapped: Option<SocketAddr>,
    /// The server's OTHER-ADDRESS (test I).
    pub other_address: Option<SocketAddr>,
    /// The server's RESPONSE-ORIGIN in test I, if sent.
    pub response_origin: Option<SocketAddr>,
    /// Whether the mapped address differs from the local one (`None`: local unknown).
    pub behind_nat: Option<bool>,
    /// Mapping behaviour (§4.3).
    pub mapping: Option<Behaviour>,
    /// Filtering behaviour (§4.4).
    pub filtering: Option<Behaviour>,
    /// Why the RFC 5780 tests could not classify, e.g. "server does not support RFC 5780
    /// (no OTHER-ADDRESS in its Binding answer)".
    pub unsupported: Option<String>,
    /// Datagrams that were not an answer to an outstanding request (ignored).
    pub ignored: u32,
}

/// One RFC 5780 test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Primary,
    FilterChangeIpPort,
    FilterChangePort,
    MapOtherIp,
    MapOtherAddress,
}

impl Test {
    fn index(self) -> usize {
        match self {
            Self::Primary => 0,
            Self::FilterChangeIpPort => 1,
            Self::FilterChangePort => 2,
            Self::MapOtherIp => 3,
            Self::MapOtherAddress => 4,
        }
    }
}

#[derive(Debug)]
struct Pending {
    test: Test,
    txid: [u8; 12],
    transmit: Transmit,
    first_sent: Instant,
    next_send: Instant,
    rto: Duration,
}

/// A decoded Binding answer (success or error) for one of our requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingAnswer {
    /// The transaction id.
    pub txid: [u8; 12],
    /// Success (true) or error response.
    pub success: bool,
    /// XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS when the former is missing.
    pub mapped: Option<SocketAddr>,
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub other_address: Option<SocketAddr>,
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub response_origin: Option<SocketAddr>,
}

/// Why a datagram is not a Binding answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not a STUN message.
    #[error("not a STUN message: {0}")]
    NotStun(String),
    /// STUN, but not a Binding success or error response.
    #[error("not a Binding response: {0}")]
    NotBindingResponse(String),
    /// An address attribute that is not 8 (IPv4) or 20 (IPv6) bytes with a known family.
    #[error("malformed {0} attribute")]
    BadAddress(&'static str),
}

/// Decodes a datagram as a Binding answer. Never panics.
pub fn parse_answer(data: &[u8]) -> Result<BindingAnswer, AnswerError> {
    let mut m = Message::new();
    m.unmarshal_binary(data)
        .map_err(|e| AnswerError::NotStun(e.to_string()))?;
    let success = if m.typ == BINDING_SUCCESS {
        true
    } else if m.typ == BINDING_ERROR {
        false
    } else {
        return Err(AnswerError::NotBindingResponse(m.typ.to_string()));
    };
    let mapped = if m.contains(ATTR_XORMAPPED_ADDRESS) {
        let mut x = XorMappedAddress::default();
        x.get_from_as(&m, ATTR_XORMAPPED_ADDRESS)
            .map_err(|_| AnswerError::BadAddress("XOR-MAPPED-ADDRESS"))?;
        Some(SocketAddr::new(x.ip, x.port))
    } else {
        address_attr(&m, ATTR_MAPPED_ADDRESS, "MAPPED-ADDRESS")?
    };
    Ok(BindingAnswer {
        txid: m.transaction_id.0,
        success,
        mapped,
        other_address: address_attr(&m, ATTR_OTHER_ADDRESS, "OTHER-ADDRESS")?,
        response_origin: address_attr(&m, ATTR_RESPONSE_ORIGIN, "RESPONSE-ORIGIN")?,
    })
}

/// A MAPPED-ADDRESS-shaped attribute (RFC 5389 §15.1): reserved, family, port, address.
fn address_attr(
    m: &Message,
    t: stun::attributes::AttrType,
    name: &'static str,
) -> Result<Option<SocketAddr>, AnswerError> {
    let Ok(v) = m.get(t) else {
        return Ok(None);
    };
    decode_address(&v)
        .map(Some)
        .ok_or(AnswerError::BadAddress(name))
}

/// The value of a MAPPED-ADDRESS-shaped attribute, strictly sized.
pub fn decode_address(v: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
    match (v.get(1)?, v.len()) {
        (0x01, 8) => {
            let o: [u8; 4] = v.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(o)), port))
        }
        (0x02, 20) => {
            let o: [u8; 16] = v.get(4..20)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => None,
    }
}

/// A Binding request with transaction id `txid` and, if `change` is not 0, a
/// CHANGE-REQUEST with those flags.
pub fn binding_request(txid: [u8; 12], change: u32) -> Vec<u8> {
    let mut m = Message::new();
    // Neither setter can fail (both only write into the header).
    let _ = m.build(&[Box::new(BINDING_REQUEST), Box::new(TransactionId(txid))]);
    if change != 0 {
        m.add(ATTR_CHANGE_REQUEST, &change.to_be_bytes());
    }
    m.raw
}

/// The RFC 5780 test sequence for one STUN server (see the module docs).
#[derive(Debug)]
pub struct NatProbe {
    config: NatProbeConfig,
    ids: [[u8; 12]; 5],
    pending: Option<Pending>,
    transmits: VecDeque<Transmit>,
    report: NatReport,
    /// Mapping seen in mapping test II.
    mapped_other_ip: Option<SocketAddr>,
    done: bool,
}

impl NatProbe {
    /// A probe of `server` from a socket whose own address is `local` (if known), with
    /// one transaction id per test (they must differ; the OS RNG in production).
    pub fn new(
        server: SocketAddr,
        local: Option<SocketAddr>,
        ids: [[u8; 12]; 5],
        config: NatProbeConfig,
    ) -> Self {
        Self {
            config,
            ids,
            pending: None,
            transmits: VecDeque::new(),
            report: NatReport {
                server: Some(server),
                local,
                ..NatReport::default()
            },
            mapped_other_ip: None,
            done: false,
        }
    }

    /// Sends test I.
    pub fn start(&mut self, now: Instant) {
        if self.pending.is_none() && !self.done {
            self.begin(Test::Primary, now);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Self::handle_timeout`] wants to be called; `None` when finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p = self.pending.as_ref()?;
        Some(p.next_send.min(p.first_sent + self.config.test_timeout))
    }

    /// Retransmits, or gives up on the current test and goes on.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if now >= p.first_sent + self.config.test_timeout {
            let test = p.test;
            self.pending = None;
            self.no_answer(test, now);
        } else if now >= p.next_send {
            self.transmits.push_back(p.transmit.clone());
            p.rto = p.rto.saturating_mul(2);
            p.next_send = now + p.rto;
        }
    }

    /// A datagram arrived on the probe's socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Ok(answer) = parse_answer(data) else {
            self.report.ignored += 1;
            return;
        };
        let Some(p) = self.pending.as_ref() else {
            self.report.ignored += 1;
            return;
        };
        if answer.txid != p.txid {
            self.report.ignored += 1;
            return;
        }
        let test = p.test;
        self.pending = None;
        self.answered(test, from, &answer, now);
    }

    /// Finished: every test that could run has run.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What was found so far (complete once [`Self::is_done`]).
    pub fn report(&self) -> &NatReport {
        &self.report
    }

    fn server(&self) -> Option<SocketAddr> {
        self.report.server
    }

    fn begin(&mut self, test: Test, now: Instant) {
        let (Some(server), other) = (self.server(), self.report.other_address) else {
            self.finish();
            return;
        };
        let (dest, change) = match (test, other) {
            (Test::Primary, _) => (server, 0),
            (Test::FilterChangeIpPort, _) => (server, CHANGE_IP | CHANGE_PORT),
            (Test::FilterChangePort, _) => (server, CHANGE_PORT),
            (Test::MapOtherIp, Some(o)) => (SocketAddr::new(o.ip(), server.port()), 0),
            (Test::MapOtherAddress, Some(o)) => (o, 0),
            (_, None) => {
                self.finish();
                return;
            }
        };
        let txid = self.ids[test.index()];
        let transmit = Transmit {
            dest,
            payload: binding_request(txid, change),
        };
        self.transmits.push_back(transmit.clone());
        self.pending = Some(Pending {
            test,
            txid,
            transmit,
            first_sent: now,
            next_send: now + self.config.rto,
            rto: self.config.rto,
        });
    }

    fn finish(&mut self) {
        self.pending = None;
        self.done = true;
    }

    fn unsupported(&mut self, why: String) {
        self.report.unsupported = Some(why);
        self.finish();
    }

    fn no_answer(&mut self, test: Test, now: Instant) {
        match test {
            // UDP does not get out, or the server is down: nothing else to learn.
            Test::Primary => self.finish(),
            Test::FilterChangeIpPort => self.begin(Test::FilterChangePort, now),
            Test::FilterChangePort => {
                self.report.filtering = Some(Behaviour::AddressAndPortDependent);
                self.begin(Test::MapOtherIp, now);
            }
            Test::MapOtherIp | Test::MapOtherAddress => {
                let other = self
                    .report
                    .other_address
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                self.unsupported(format!(
                    "no answer from the server's other address ({other}): mapping not determined"
                ));
            }
        }
    }

    fn answered(&mut self, test: Test, from: SocketAddr, a: &BindingAnswer, now: Instant) {
        let Some(server) = self.server() else {
            self.finish();
            return;
        };
        if !a.success {
            if test == Test::Primary {
                self.report.udp_ok = true;
            }
            self.unsupported(format!(
                "server answered {} with an error response: server does not support RFC 5780",
                match test {
                    Test::Primary => "a plain Binding request",
                    Test::FilterChangeIpPort | Test::FilterChangePort => "a CHANGE-REQUEST",
                    Test::MapOtherIp | Test::MapOtherAddress => "at its other address",
                }
            ));
            return;
        }
        let Some(mapped) = a.mapped else {
            self.unsupported("Binding answer without XOR-MAPPED-ADDRESS".into());
            return;
        };
        match test {
            Test::Primary => {
                self.report.udp_ok = true;
                self.report.mapped = Some(mapped);
                self.report.response_origin = a.response_origin;
                self.report.behind_nat = self.report.local.map(|l| l != mapped);
                match a.other_address {
                    None => self.unsupported(
                        "server does not support RFC 5780 (no OTHER-ADDRESS in its Binding answer)"
                            .into(),
                    ),
                    Some(o) if o.ip() == server.ip() || o.port() == server.port() => self
                        .unsupported(format!(
                            "server does not support RFC 5780 (its OTHER-ADDRESS {o} does not \
                             differ from {server} in both IP and port)"
                        )),
                    Some(o) => {
                        self.report.other_address = Some(o);
                        self.begin(Test::FilterChangeIpPort, now);
                    }
                }
            }
            Test::FilterChangeIpPort | Test::FilterChangePort => {
                let Some(other) = self.report.other_address else {
                    self.finish();
                    return;
                };
                let expected = if test == Test::FilterChangeIpPort {
                    other
                } else {
                    SocketAddr::new(server.ip(), other.port())
                };
                if from != expected {
                    self.unsupported(format!(
                        "server does not support RFC 5780 (a CHANGE-REQUEST was answered from \
                         {from}, not {expected})"
                    ));
                    return;
                }
                if test == Test::FilterChangeIpPort {
                    self.report.filtering = Some(Behaviour::EndpointIndependent);
                } else {
                    self.report.filtering = Some(Behaviour::AddressDependent);
                }
                self.begin(Test::MapOtherIp, now);
            }
            Test::MapOtherIp => {
                if Some(mapped) == self.report.mapped {
                    self.report.mapping = Some(Behaviour::EndpointIndependent);
                    self.finish();
                } else {
                    self.mapped_other_ip = Some(mapped);
                    self.begin(Test::MapOtherAddress, now);
                }
            }
            Test::MapOtherAddress => {
                self.report.mapping = Some(if Some(mapped) == self.mapped_other_ip {
                    Behaviour::AddressDependent
                } else {
                    Behaviour::AddressAndPortDependent
                });
                self.finish();
            }
        }
    }
}

/// Which path a call would likely take, from the discovered behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Host candidates work: no NAT, nothing filters.
    Direct,
    /// Server-reflexive candidates and ICE hole punching.
    HolePunching,
    /// Direct only with some peers; a relay (TURN) for the rest.
    RelayNeeded,
    /// Not enough known.
    Unknown,
}

impl PathKind {
    /// `direct`, `srflx-hole-punching`, `relay-needed`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::HolePunching => "srflx-hole-punching",
            Self::RelayNeeded => "relay-needed",
            Self::Unknown => "unknown",
        }
    }
}

/// The likely path and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikelyPath {
    /// The kind.
    pub kind: PathKind,
    /// One line for people.
    pub detail: String,
}

/// Derives the likely call path from `r` and whether a TURN server is configured.
pub fn likely_path(r: &NatReport, turn_configured: bool) -> LikelyPath {
    let relay = if turn_configured {
        "the configured TURN server relays those calls"
    } else {
        "those calls fail (no TURN server configured)"
    };
    let (kind, detail) = if !r.udp_ok {
        (
            PathKind::Unknown,
            format!("unknown: UDP does not get out to the STUN server; if it is blocked, {relay}"),
        )
    } else {
        match (r.behind_nat, r.mapping, r.filtering) {
            (Some(false), _, Some(Behaviour::EndpointIndependent)) => (
                PathKind::Direct,
                "direct: public address, nothing filters (host candidates reach us)".into(),
            ),
            (Some(false), _, _) => (
                PathKind::HolePunching,
                "direct: public address behind a filtering firewall; ICE checks from both \
                 sides open it"
                    .into(),
            ),
            (_, Some(Behaviour::EndpointIndependent), Some(Behaviour::EndpointIndependent)) => (
                PathKind::Direct,
                "direct: endpoint-independent mapping and filtering (full cone): any peer, \
                 even one behind a symmetric NAT, reaches our server-reflexive address"
                    .into(),
            ),
            (_, Some(Behaviour::EndpointIndependent), _) => (
                PathKind::HolePunching,
                format!(
                    "via srflx hole punching: endpoint-independent mapping, so ICE checks from \
                     both sides open the NAT; a peer behind a symmetric NAT needs a relay: {relay}"
                ),
            ),
            (_, Some(_), Some(Behaviour::EndpointIndependent)) => (
                PathKind::HolePunching,
                "via hole punching: the mapping changes per destination, but anything may come \
                 in once a mapping exists (peer-reflexive candidates)"
                    .into(),
            ),
            (_, Some(_), _) => (
                PathKind::RelayNeeded,
                format!(
                    "relay needed with peers behind NATs (our mapping changes per destination \
                     and our NAT filters); direct only with peers on public addresses; {relay}"
                ),
            ),
            (_, None, _) => (
                PathKind::Unknown,
                "unknown: NAT behaviour not determined".into(),
            ),
        }
    };
    LikelyPath { kind, detail }
}

/// Why [`discover`] could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// No port of the range could be bound.
    #[error("no free UDP port in {range}: {reason}")]
    Bind {
        /// The range.
        range: crate::PortRange,
        /// The last error.
        reason: String,
    },
    /// Sending or receiving failed.
    #[error("UDP socket: {0}")]
    Io(String),
}

/// Runs the RFC 5780 tests against `server` from a UDP socket bound inside `ports` (on the
/// wildcard address of the server's family). Bounded: at most five tests, each at most
/// `config.test_timeout`.
pub async fn discover(
    server: SocketAddr,
    ports: crate::PortRange,
    config: NatProbeConfig,
) -> Result<NatReport, DiscoverError> {
    let wildcard: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let mut range = ports;
    let mut last = String::from("empty range");
    let mut socket = None;
    for port in range.candidates() {
        match tokio::net::UdpSocket::bind(SocketAddr::new(wildcard, port)).await {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let socket = socket.ok_or(DiscoverError::Bind {
        range: ports,
        reason: last,
    })?;
    let port = socket
        .local_addr()
        .map_err(|e| DiscoverError::Io(e.to_string()))?
        .port();
    // Our address toward the server: the kernel's route choice (a connected UDP socket
    // sends nothing).
    let local = match std::net::UdpSocket::bind(SocketAddr::new(wildcard, 0)) {
        Ok(s) => s
            .connect(server)
            .and_then(|()| s.local_addr())
            .ok()
            .map(|a| SocketAddr::new(a.ip(), port)),
        Err(_) => None,
    };
    let ids: [[u8; 12]; 5] = std::array::from_fn(|_| rand::random());
    let mut probe = NatProbe::new(server, local, ids, config);
    probe.start(Instant::now());
    let mut buf = [0u8; 1500];
    while !probe.is_done() {
        while let Some(t) = probe.poll_transmit() {
            // A send error (no route) is a test without an answer.
            let _ = socket.send_to(&t.payload, t.dest).await;
        }
        let Some(deadline) = probe.poll_timeout() else {
            break;
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                probe.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default())
            }
            // ICMP unreachable surfaces as a receive error on some systems: keep waiting.
            Ok(Err(_)) => {}
            Err(_) => probe.handle_timeout(Instant::now()),
        }
    }
    Ok(probe.report().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::addr::MappedAddress;
    use stun::message::Setter;

    const SERVER: &str = "203.0.113.1:3478";
    const OTHER: &str = "203.0.113.2:3479";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ids() -> [[u8; 12]; 5] {
        std::array::from_fn(|i| [u8::try_from(i).unwrap() + 1; 12])
    }

    /// A success answer to the request `req`, mapping `mapped`, with OTHER-ADDRESS
    /// `other` if any.
    fn answer(req: &[u8], mapped: &str, other: Option<&str>) -> Vec<u8> {
        let mut r = Message::new();
        r.unmarshal_binary(req).unwrap();
        let mut m = Message::new();
        m.build(&[Box::new(BINDING_SUCCESS), Box::new(r.transaction_id)])
            .unwrap();
        let a = sa(mapped);
        XorMappedAddress {
            ip: a.ip(),
            port: a.port(),
        }
        .add_to(&mut m)
        .unwrap();
        if let Some(o) = other {
            let o = sa(o);
            MappedAddress {
                ip: o.ip(),
                port: o.port(),
            }
            .add_to_as(&mut m, ATTR_OTHER_ADDRESS)
            .unwrap();
        }
        m.raw
    }

    fn change_flags(req: &[u8]) -> u32 {
        let mut m = Message::new();
        m.unmarshal_binary(req).unwrap();
        m.get(ATTR_CHANGE_REQUEST)
            .map(|v| u32::from_be_bytes(v.try_into().unwrap()))
            .unwrap_or(0)
    }

    /// A simulated RFC 5780 server behind a simulated NAT: `map(dest)` is the mapping the
    /// NAT uses toward `dest`; answers get in per `filtering` and the destinations sent to
    /// so far (`None`: no filtering at all). Without `rfc5780` the server has no other
    /// address and ignores CHANGE-REQUEST.
    fn run(
        local: &str,
        map: impl Fn(SocketAddr) -> SocketAddr,
        filtering: Option<Behaviour>,
        rfc5780: bool,
    ) -> NatReport {
        let server = sa(SERVER);
        let other = sa(OTHER);
        let mut p = NatProbe::new(server, Some(sa(local)), ids(), NatProbeConfig::default());
        let mut now = Instant::now();
        let mut sent: Vec<SocketAddr> = Vec::new();
        p.start(now);
        for _ in 0..100 {
            while let Some(t) = p.poll_transmit() {
                sent.push(t.dest);
                if !rfc5780 && t.dest != server {
                    continue;
                }
                let flags = if rfc5780 { change_flags(&t.payload) } else { 0 };
                let src_ip = if flags & CHANGE_IP != 0 {
                    other.ip()
                } else {
                    t.dest.ip()
                };
                let src_port = if flags & CHANGE_PORT != 0 {
                    other.port()
                } else {
                    t.dest.port()
                };
                let src = SocketAddr::new(src_ip, src_port);
                let gets_in = match filtering {
                    None | Some(Behaviour::EndpointIndependent) => true,
                    Some(Behaviour::AddressDependent) => sent.iter().any(|d| d.ip() == src.ip()),
                    Some(Behaviour::AddressAndPortDependent) => sent.contains(&src),
                };
                if gets_in {
                    let mapped = map(t.dest).to_string();
                    let a = answer(&t.payload, &mapped, rfc5780.then_some(OTHER));
                    p.handle_datagram(now, src, &a);
                }
            }
            if p.is_done() {
                return p.report().clone();
            }
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
        }
        panic!("probe did not finish");
    }

    const EIM: fn(SocketAddr) -> SocketAddr = |_| "203.0.113.11:40000".parse().unwrap();

    /// A port per destination address and port.
    fn sym(d: SocketAddr) -> SocketAddr {
        let o = d.ip().to_string().ends_with(".2");
        SocketAddr::new(
            sa("203.0.113.11:0").ip(),
            50000 + u16::from(o) * 10 + d.port() % 10,
        )
    }

    /// A port per destination address.
    fn adm(d: SocketAddr) -> SocketAddr {
        let o = d.ip().to_string().ends_with(".2");
        SocketAddr::new(sa("203.0.113.11:0").ip(), 50000 + u16::from(o))
    }

    #[test]
    fn no_nat_open() {
        let r = run(
            "203.0.113.12:40000",
            |_| sa("203.0.113.12:40000"),
            None,
            true,
        );
        assert!(r.udp_ok);
        assert_eq!(r.behind_nat, Some(false));
        assert_eq!(r.mapping, Some(Behaviour::EndpointIndependent));
        assert_eq!(r.filtering, Some(Behaviour::EndpointIndependent));
        assert_eq!(r.other_address, Some(sa(OTHER)));
        assert_eq!(likely_path(&r, false).kind, PathKind::Direct);
    }

    #[test]
    fn port_restricted_cone() {
        let r = run(
            "10.0.1.2:40000",
            EIM,
            Some(Behaviour::AddressAndPortDependent),
            true,
        );
        assert_eq!(r.behind_nat, Some(true));
        assert_eq!(r.mapping, Some(Behaviour::EndpointIndependent));
        assert_eq!(r.filtering, Some(Behaviour::AddressAndPortDependent));
        assert_eq!(r.unsupported, None);
        assert_eq!(likely_path(&r, false).kind, PathKind::HolePunching);
    }

    #[test]
    fn address_restricted_and_full_cone() {
        let r = run(
            "10.0.1.2:40000",
            EIM,
            Some(Behaviour::AddressDependent),
            true,
        );
        assert_eq!(r.filtering, Some(Behaviour::AddressDependent));
        assert_eq!(r.mapping, Some(Behaviour::EndpointIndependent));
        let r = run(
            "10.0.1.2:40000",
            EIM,
            Some(Behaviour::EndpointIndependent),
            true,
        );
        assert_eq!(r.filtering, Some(Behaviour::EndpointIndependent));
        assert_eq!(r.mapping, Some(Behaviour::EndpointIndependent));
    }

    #[test]
    fn symmetric_and_address_dependent_mapping() {
        let r = run(
            "10.0.1.2:40000",
            sym,
            Some(Behaviour::AddressAndPortDependent),
            true,
        );
        assert_eq!(r.mapping, Some(Behaviour::AddressAndPortDependent));
        assert_eq!(r.filtering, Some(Behaviour::AddressAndPortDependent));
        assert_eq!(likely_path(&r, false).kind, PathKind::RelayNeeded);
        assert!(likely_path(&r, false)
            .detail
            .contains("fail (no TURN server"));
        assert!(likely_path(&r, true).detail.contains("configured TURN"));
        let r = run(
            "10.0.1.2:40000",
            adm,
            Some(Behaviour::AddressDependent),
            true,
        );
        assert_eq!(r.mapping, Some(Behaviour::AddressDependent));
        assert_eq!(r.filtering, Some(Behaviour::AddressDependent));
        let r = run("10.0.1.2:40000", sym, None, true);
        assert_eq!(likely_path(&r, false).kind, PathKind::HolePunching);
    }

    #[test]
    fn a_full_cone_nat_is_a_direct_path() {
        let r = NatReport {
            udp_ok: true,
            behind_nat: Some(true),
            mapping: Some(Behaviour::EndpointIndependent),
            filtering: Some(Behaviour::EndpointIndependent),
            ..NatReport::default()
        };
        let p = likely_path(&r, false);
        assert_eq!(p.kind, PathKind::Direct);
        assert!(p.detail.contains("full cone"), "{}", p.detail);
        let port_restricted = NatReport {
            filtering: Some(Behaviour::AddressAndPortDependent),
            ..r
        };
        assert_eq!(
            likely_path(&port_restricted, false).kind,
            PathKind::HolePunching
        );
    }

    #[test]
    fn server_without_rfc5780_is_said_so() {
        let r = run("10.0.1.2:40000", EIM, None, false);
        assert!(r.udp_ok);
        assert_eq!(r.mapped, Some(sa("203.0.113.11:40000")));
        assert_eq!(r.mapping, None);
        assert_eq!(r.filtering, None);
        assert!(r
            .unsupported
            .unwrap()
            .starts_with("server does not support RFC 5780"));
    }

    #[test]
    fn change_request_ignored_is_not_a_guess() {
        let server = sa(SERVER);
        let mut p = NatProbe::new(server, None, ids(), NatProbeConfig::default());
        let now = Instant::now();
        p.start(now);
        let t = p.poll_transmit().unwrap();
        p.handle_datagram(
            now,
            server,
            &answer(&t.payload, "198.51.100.1:1", Some(OTHER)),
        );
        let t = p.poll_transmit().unwrap();
        assert_eq!(change_flags(&t.payload), CHANGE_IP | CHANGE_PORT);
        // Answered from the primary address anyway.
        p.handle_datagram(
            now,
            server,
            &answer(&t.payload, "198.51.100.1:1", Some(OTHER)),
        );
        assert!(p.is_done());
        assert_eq!(p.report().filtering, None);
        assert!(p
            .report()
            .unsupported
            .as_ref()
            .unwrap()
            .contains("CHANGE-REQUEST"));
        assert_eq!(p.report().behind_nat, None);
    }

    #[test]
    fn udp_blocked_retransmits_then_gives_up() {
        let cfg = NatProbeConfig::default();
        let mut p = NatProbe::new(sa(SERVER), None, ids(), cfg);
        let start = Instant::now();
        p.start(start);
        let mut sent = 0;
        while !p.is_done() {
            while p.poll_transmit().is_some() {
                sent += 1;
            }
            let t = p.poll_timeout().unwrap();
            assert!(t <= start + cfg.test_timeout);
            p.handle_timeout(t);
        }
        // 0, 200, 600 ms (1400 ms is the 4th), then given up at 1600 ms.
        assert_eq!(sent, 4);
        assert!(!p.report().udp_ok);
        assert_eq!(likely_path(p.report(), true).kind, PathKind::Unknown);
    }

    #[test]
    fn stray_and_garbage_datagrams_are_ignored() {
        let mut p = NatProbe::new(sa(SERVER), None, ids(), NatProbeConfig::default());
        let now = Instant::now();
        p.start(now);
        let t = p.poll_transmit().unwrap();
        p.handle_datagram(now, sa(SERVER), b"garbage");
        let other_id = binding_request([9; 12], 0);
        p.handle_datagram(now, sa(SERVER), &answer(&other_id, "198.51.100.1:1", None));
        assert_eq!(p.report().ignored, 2);
        assert!(!p.is_done());
        p.handle_datagram(now, sa(SERVER), &answer(&t.payload, "198.51.100.1:1", None));
        assert!(p.is_done());
    }

    #[test]
    fn request_encoding() {
        let req = binding_request([7; 12], CHANGE_PORT);
        assert_eq!(&req[0..2], &[0x00, 0x01]);
        assert_eq!(&req[4..8], &[0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&req[8..20], &[7; 12]);
        // CHANGE-REQUEST, length 4, flags.
        assert_eq!(&req[20..], &[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([req[2], req[3]]), 8);
        assert_eq!(binding_request([7; 12], 0).len(), 20);
    }

    #[test]
    fn address_attributes_are_strictly_sized() {
        assert_eq!(
            decode_address(&[0, 1, 0x0d, 0x97, 203, 0, 113, 2]),
            Some(sa("203.0.113.2:3479"))
        );
        assert_eq!(decode_address(&[0, 1, 0x0d, 0x97, 203, 0, 113]), None);
        assert_eq!(decode_address(&[0, 3, 0x0d, 0x97, 203, 0, 113, 2]), None);
        assert_eq!(decode_address(&[0, 2, 0, 1, 0, 0, 0, 0]), None);
        assert_eq!(decode_address(&[]), None);
    }
}
