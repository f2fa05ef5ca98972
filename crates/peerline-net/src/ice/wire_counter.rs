//! Counting the STUN traffic the ICE agent exchanges on its own sockets.
//!
//! webrtc-ice binds its candidates' sockets itself and counts nothing per remote address.
//! The vendored webrtc-util (vendor/PATCHES.md) lets us wrap every socket it binds: each is
//! wrapped in a [`CountingConn`] that looks at the first bytes of each datagram and counts
//! STUN Binding traffic (requests to STUN servers, ICE connectivity checks, consent
//! keep-alives, and their responses) by remote address, as [`TrafficClass::Stun`].
//!
//! Everything else on those sockets is counted where it is understood, so nothing is counted
//! twice: RTP, RTCP and DTLS by the media path (which reads them from the agent's
//! connection), TURN (allocations, permissions, relayed data: other STUN methods and
//! ChannelData) by the TURN bridge.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use webrtc_util::Conn;

use crate::ledger::{Direction, Ledger, TrafficClass};

/// STUN's magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// The Binding method (RFC 5389 §18.1).
const BINDING: u16 = 0x001;

/// Which ledger class a datagram on an agent's socket belongs to, when it is this module's
/// to count: a STUN Binding request, indication, success or error response. `None` for
/// everything else (media, DTLS, TURN methods, ChannelData, garbage).
pub fn classify(datagram: &[u8]) -> Option<TrafficClass> {
    if datagram.len() < 20 || datagram[0] & 0xc0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let message_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    // The method is the type with the two class bits (0x0110) taken out (RFC 5389 §6).
    let method =
        (message_type & 0x000f) | ((message_type & 0x00e0) >> 1) | ((message_type & 0x3e00) >> 2);
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    (method == BINDING && length % 4 == 0 && length + 20 == datagram.len())
        .then_some(TrafficClass::Stun)
}

/// Installs the wrapping once per process (before the first agent gathers).
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if !webrtc_util::vnet::net::set_bind_hook(wrap) {
            tracing::warn!("a webrtc-util bind hook was already set: STUN traffic not counted");
        }
    });
}

fn wrap(conn: Arc<dyn Conn + Send + Sync>) -> Arc<dyn Conn + Send + Sync> {
    Arc::new(CountingConn::new(conn))
}

/// A socket of the agent's, counting its STUN Binding traffic.
pub struct CountingConn {
    inner: Arc<dyn Conn + Send + Sync>,
    counts: Counts,
}

/// One socket's counts, shared with whoever keeps them past the socket (an ICE session
/// keeps its sockets' counts, not the sockets, so a closed agent's ports are released).
pub type Counts = Arc<Mutex<Ledger>>;

impl CountingConn {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Conn + Send + Sync>) -> Self {
        Self {
            inner,
            counts: Arc::new(Mutex::new(Ledger::new())),
        }
    }

    /// This socket's counts.
    pub fn counts(&self) -> Counts {
        Arc::clone(&self.counts)
    }

    fn count(&self, datagram: &[u8], remote: Option<SocketAddr>, direction: Direction) {
        let (Some(class), Some(remote)) = (classify(datagram), remote) else {
            return;
        };
        if let Ok(mut l) = self.counts.lock() {
            l.record(remote, class, direction, datagram.len());
        }
    }
}

/// The counts of every counting socket behind `conns`, each socket once (several
/// candidates may share one socket).
fn counts_of<'a>(conns: impl IntoIterator<Item = &'a Arc<dyn Conn + Send + Sync>>) -> Vec<Counts> {
    let mut all: Vec<Counts> = Vec::new();
    for conn in conns {
        if let Some(c) = conn.as_any().downcast_ref::<CountingConn>() {
            if !all.iter().any(|k| Arc::ptr_eq(k, &c.counts)) {
                all.push(c.counts());
            }
        }
    }
    all
}

/// The counts of one ICE session's sockets, kept apart from the session (cheap to clone),
/// so a call can read them after the session was closed or handed to another task.
#[derive(Clone, Default)]
pub struct StunCounter {
    counts: Vec<Counts>,
    /// Our own loopback TURN bridges: what the agent says to them is counted as TURN by
    /// the bridge (to the real server), not here.
    bridges: Vec<SocketAddr>,
}

impl std::fmt::Debug for StunCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StunCounter({} sockets)", self.counts.len())
    }
}

impl StunCounter {
    /// Counts every counting socket behind `conns`.
    pub fn of<'a>(conns: impl IntoIterator<Item = &'a Arc<dyn Conn + Send + Sync>>) -> Self {
        Self {
            counts: counts_of(conns),
            bridges: Vec::new(),
        }
    }

    /// Leaves out traffic with these addresses (the session's own TURN bridges).
    pub fn excluding(mut self, bridges: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.bridges.extend(bridges);
        self
    }

    /// How many sockets are counted.
    pub fn sockets(&self) -> usize {
        self.counts.len()
    }

    /// What was counted so far, summed over the sockets.
    pub fn ledger(&self) -> Ledger {
        let mut total = Ledger::new();
        for c in &self.counts {
            if let Ok(l) = c.lock() {
                for e in l.entries().filter(|e| !self.bridges.contains(&e.remote)) {
                    total.add(e.remote, e.class, e.direction, e.counter);
                }
            }
        }
        total
    }
}

#[async_trait::async_trait]
impl Conn for CountingConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        let n = self.inner.recv(buf).await?;
        self.count(
            &buf[..n.min(buf.len())],
            self.inner.remote_addr(),
            Direction::Received,
        );
        Ok(n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let (n, from) = self.inner.recv_from(buf).await?;
        self.count(&buf[..n.min(buf.len())], Some(from), Direction::Received);
        Ok((n, from))
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        let n = self.inner.send(buf).await?;
        self.count(buf, self.inner.remote_addr(), Direction::Sent);
        Ok(n)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let n = self.inner.send_to(buf, target).await?;
        self.count(buf, Some(target), Direction::Sent);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(class_bits: u16) -> Vec<u8> {
        let mut m = stun::message::Message::new();
        m.typ = stun::message::MessageType {
            method: stun::message::METHOD_BINDING,
            class: match class_bits {
                0 => stun::message::CLASS_REQUEST,
                1 => stun::message::CLASS_SUCCESS_RESPONSE,
                _ => stun::message::CLASS_ERROR_RESPONSE,
            },
        };
        m.new_transaction_id().expect("transaction id");
        m.write_header();
        m.raw.clone()
    }

    #[test]
    fn binding_messages_are_stun_and_nothing_else_is() {
        for class in 0..3 {
            assert_eq!(classify(&binding(class)), Some(TrafficClass::Stun));
        }
        // A TURN Allocate request (method 0x003) is the TURN bridge's to count.
        let mut allocate = binding(0);
        allocate[1] = 0x03;
        assert_eq!(classify(&allocate), None);
        // RTP (version 2), a DTLS record, ChannelData, a truncated or lying header.
        let mut rtp = vec![0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        rtp.resize(172, 0);
        assert_eq!(classify(&rtp), None);
        assert_eq!(
            classify(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(classify(&[0x40, 0x00, 0, 4, 1, 2, 3, 4]), None);
        assert_eq!(classify(&binding(0)[..19]), None);
        let mut long = binding(0);
        long[3] = 8; // claims 8 attribute bytes that are not there
        assert_eq!(classify(&long), None);
        let mut trailing = binding(0);
        trailing.extend([0; 4]); // 4 bytes the header does not claim
        assert_eq!(classify(&trailing), None);
        assert_eq!(classify(&[]), None);
    }

    #[tokio::test]
    async fn counts_binding_traffic_both_ways_by_remote_and_passes_the_rest() {
        let a = Arc::new(
            tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind a"),
        );
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind b");
        let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
        let inner: Arc<dyn Conn + Send + Sync> = a;
        let conn: Arc<dyn Conn + Send + Sync> = Arc::new(CountingConn::new(inner));
        let request = binding(0);
        conn.send_to(&request, b_addr).await.expect("send check");
        conn.send_to(&[0x80; 172], b_addr).await.expect("send rtp");
        let mut buf = [0u8; 1500];
        for _ in 0..2 {
            b.recv_from(&mut buf).await.expect("b got it");
        }
        let response = binding(1);
        b.send_to(&response, a_addr).await.expect("respond");
        b.send_to(&[0x80; 100], a_addr).await.expect("rtp back");
        for _ in 0..2 {
            conn.recv_from(&mut buf).await.expect("a got it");
        }
        let counter = StunCounter::of([&conn, &conn]);
        assert_eq!(counter.sockets(), 1, "one socket counted once");
        let ledger = counter.ledger();
        let sent = ledger.total(TrafficClass::Stun, Direction::Sent);
        let received = ledger.total(TrafficClass::Stun, Direction::Received);
        assert_eq!((sent.packets, sent.bytes), (1, request.len() as u64));
        assert_eq!(
            (received.packets, received.bytes),
            (1, response.len() as u64)
        );
        assert_eq!(ledger.destinations(), vec![b_addr]);
        assert_eq!(
            ledger.total(TrafficClass::Media, Direction::Sent).packets,
            0
        );
        assert_eq!(conn.local_addr().expect("local"), a_addr);
    }
}
