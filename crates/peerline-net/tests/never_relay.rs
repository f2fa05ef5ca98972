//! The never-a-relay invariant at the ICE level: an outsider who finds our ICE socket gets
//! no TURN allocation, no answer to checks with wrong credentials, and cannot make us
//! forward anything to a third party. A correct check (the peer's credentials) does get
//! an answer from the same socket, so "no answer" means "refused", not "unreachable".

// Helpers outside #[test] fns are not covered by allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use peerline_net::{IceConfig, IceSession, PortRange};
use peerline_sdp::{IceParams, RemoteIce};
use stun::attributes::{
    ATTR_DATA, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_REQUESTED_TRANSPORT, ATTR_USERNAME,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Message, MessageType, Setter, BINDING_REQUEST, CLASS_INDICATION, CLASS_REQUEST,
    CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_SEND,
};
use tokio::net::UdpSocket;

/// XOR-PEER-ADDRESS (RFC 8656 §18.3).
const ATTR_XOR_PEER_ADDRESS: stun::attributes::AttrType = stun::attributes::AttrType(0x0012);
const ATTR_CHANNEL_NUMBER: stun::attributes::AttrType = stun::attributes::AttrType(0x000C);

fn cfg(controlling: bool, range: &str) -> IceConfig {
    IceConfig {
        controlling,
        include_loopback: true,
        host_ips: vec!["127.0.0.1".parse().unwrap()],
        port_range: PortRange::parse(range).unwrap(),
        gather_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(5),
        ..IceConfig::default()
    }
}

fn as_remote(p: &IceParams) -> RemoteIce {
    RemoteIce {
        ufrag: p.ufrag.clone(),
        pwd: p.pwd.clone(),
        options: vec![],
        candidates: p.candidates.clone(),
        remote_candidates: vec![],
        end_of_candidates: true,
        lite: false,
    }
}

fn xor_addr(a: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = a else {
        panic!("v4 only")
    };
    let mut v = vec![0, 1];
    v.extend_from_slice(&(v4.port() ^ 0x2112).to_be_bytes());
    let ip = v4.ip().octets();
    let magic = 0x2112_A442u32.to_be_bytes();
    for i in 0..4 {
        v.push(ip[i] ^ magic[i]);
    }
    v
}

fn msg(typ: MessageType, attrs: &[(stun::attributes::AttrType, Vec<u8>)]) -> Vec<u8> {
    let mut m = Message::new();
    m.set_type(typ);
    m.new_transaction_id().unwrap();
    for (t, v) in attrs {
        m.add(*t, v);
    }
    m.write_header();
    m.raw.clone()
}

fn binding(username: &str, pwd: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.set_type(BINDING_REQUEST);
    m.new_transaction_id().unwrap();
    m.add(ATTR_USERNAME, username.as_bytes());
    // The role and priority an ICE check carries (RFC 8445 §7.1.1), then integrity.
    m.add(ATTR_ICE_CONTROLLING, &7u64.to_be_bytes());
    m.add(ATTR_PRIORITY, &1_845_501_695u32.to_be_bytes());
    m.write_header();
    MessageIntegrity::new_short_term_integrity(pwd.to_owned())
        .add_to(&mut m)
        .unwrap();
    FINGERPRINT.add_to(&mut m).unwrap();
    m.raw.clone()
}

async fn reply(sock: &UdpSocket, within: Duration) -> Option<Vec<u8>> {
    let mut buf = [0u8; 1500];
    match tokio::time::timeout(within, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_get_no_allocation_no_answer_and_nothing_is_forwarded() {
    // A (controlled) in a call with B (controlling).
    let a = IceSession::gather(cfg(false, "41400-41499")).await.unwrap();
    let b = IceSession::gather(cfg(true, "41500-41599")).await.unwrap();
    let (ra, rb) = (as_remote(b.local_params()), as_remote(a.local_params()));
    let (ca, cb) = tokio::join!(a.connect(&ra), b.connect(&rb));
    let (ca, _cb) = (ca.unwrap(), cb.unwrap());
    let target: SocketAddr = ca.path.local_addr; // A's ICE socket, as an attacker would find it
    let a_ufrag = a.local_params().ufrag.clone();
    let a_pwd = a.local_params().pwd.clone();
    let b_ufrag = b.local_params().ufrag.clone();

    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim_addr = victim.local_addr().unwrap();
    let quiet = Duration::from_millis(400);

    // 1. TURN Allocate: we are not a TURN server.
    let allocate = msg(
        MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST),
        &[(ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])],
    );
    attacker.send_to(&allocate, target).await.unwrap();
    assert_eq!(reply(&attacker, quiet).await, None, "Allocate was answered");

    // 2. Send indication and ChannelBind toward a third party: nothing may reach it.
    let send = msg(
        MessageType::new(METHOD_SEND, CLASS_INDICATION),
        &[
            (ATTR_XOR_PEER_ADDRESS, xor_addr(victim_addr)),
            (ATTR_DATA, b"forward me".to_vec()),
        ],
    );
    attacker.send_to(&send, target).await.unwrap();
    let bind = msg(
        MessageType::new(METHOD_CHANNEL_BIND, CLASS_REQUEST),
        &[
            (ATTR_CHANNEL_NUMBER, vec![0x40, 0x00, 0, 0]),
            (ATTR_XOR_PEER_ADDRESS, xor_addr(victim_addr)),
        ],
    );
    attacker.send_to(&bind, target).await.unwrap();
    // ChannelData framing (0x4000) with a payload.
    attacker
        .send_to(&[0x40, 0x00, 0x00, 0x04, b'd', b'a', b't', b'a'], target)
        .await
        .unwrap();
    assert_eq!(
        reply(&attacker, quiet).await,
        None,
        "ChannelBind was answered"
    );

    // 3. Connectivity checks with unknown credentials get no answer.
    for (user, pwd) in [
        (
            "wrongufrag:attacker".to_owned(),
            "attackerpasswordattacker".to_owned(),
        ),
        // Right ufrags, wrong password: MESSAGE-INTEGRITY fails.
        (
            format!("{a_ufrag}:{b_ufrag}"),
            "notthepasswordnotthepassword".to_owned(),
        ),
        // Our password, but a ufrag pair of another session.
        (format!("{a_ufrag}:someoneelse"), a_pwd.clone()),
    ] {
        attacker
            .send_to(&binding(&user, &pwd), target)
            .await
            .unwrap();
        assert_eq!(
            reply(&attacker, quiet).await,
            None,
            "check as {user} was answered"
        );
    }

    // 4. Media from an address that is not a validated candidate is not delivered.
    attacker.send_to(&[0x80; 172], target).await.unwrap();
    let mut buf = [0u8; 1500];
    let got = tokio::time::timeout(quiet, ca.conn.recv(&mut buf)).await;
    assert!(got.is_err(), "media from an outsider reached the call");

    // Nothing reached the third party, by any of the above.
    assert_eq!(reply(&victim, quiet).await, None, "something was forwarded");
    assert_eq!(a.media_bytes().1, 0);

    // Positive control: the same socket answers a check carrying the call's credentials.
    attacker
        .send_to(&binding(&format!("{a_ufrag}:{b_ufrag}"), &a_pwd), target)
        .await
        .unwrap();
    let r = reply(&attacker, Duration::from_secs(2))
        .await
        .expect("a correct check is answered");
    let mut m = Message::new();
    m.unmarshal_binary(&r).unwrap();
    assert_eq!(
        m.typ,
        MessageType::new(METHOD_BINDING, CLASS_SUCCESS_RESPONSE)
    );

    a.close().await;
    b.close().await;
}
