//! SIP through a NAT, the phone's side, on loopback: a test-owned "registrar" answers
//! each REGISTER as a registrar behind which the phone sits at 198.51.100.7:40000 would
//! (RFC 3581 `received`/`rport` in the top Via). The phone must register again with that
//! public Contact (removing the private one in the same request), report `Registered`
//! only then, send keep-alives (double CRLF) to the registrar every `keepalive_secs`, and
//! put the public Contact in a call's INVITE through it. (The same against Kamailio and
//! real NATs: `interop-tests/tests/sip_nat.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use peerline_ua::{AudioSource, Config, Event, MediaOptions, Phone};
use tokio::net::UdpSocket;

const PUBLIC: &str = "198.51.100.7:40000";

fn phone(registrar: u16, keepalive: u32) -> Config {
    let text = format!(
        "[identity]\nuser = \"alice\"\n[network]\nsip_listen = \"127.0.0.1:0\"\n\
         [media]\nsrtp = \"off\"\n\
         [[account]]\naor = \"sip:alice@example.test\"\nregistrar = \"sip:127.0.0.1:{registrar}\"\n\
         outbound_proxy = \"sip:127.0.0.1:{registrar}\"\nexpires = 600\nkeepalive_secs = {keepalive}\n"
    );
    Config::parse(&text, Path::new("<nat registration test>")).unwrap()
}

/// The next datagram within `wait`, as text, and where it came from.
async fn recv(udp: &UdpSocket, wait: Duration) -> Option<(String, SocketAddr)> {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = tokio::time::timeout(wait, udp.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

/// The next SIP request (skipping keep-alives), with its source.
async fn request(udp: &UdpSocket) -> (String, SocketAddr) {
    loop {
        let (text, from) = recv(udp, Duration::from_secs(5))
            .await
            .expect("no request from the phone");
        if !text.trim().is_empty() {
            return (text, from);
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

/// A 200 to `req` as a registrar that saw it come from PUBLIC.
fn ok_from_public(req: &str) -> String {
    let (ip, port) = PUBLIC.split_once(':').unwrap();
    let via = header(req, "Via").replacen(";rport", &format!(";rport={port};received={ip}"), 1);
    format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {};tag=reg\r\nCall-ID: {}\r\n\
         CSeq: {}\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n",
        header(req, "From"),
        header(req, "To"),
        header(req, "Call-ID"),
        header(req, "CSeq"),
    )
}

async fn registered(events: &mut peerline_ua::Events) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(Event::Registered { .. })) => return,
            Ok(Some(Event::RegistrationFailed { code, reason, .. })) => {
                panic!("registration failed: {code} {reason}")
            }
            Ok(Some(_)) => {}
            _ => panic!("not registered"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_nat_the_phone_registers_its_public_contact_and_keeps_the_binding_alive() {
    let reg = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = reg.local_addr().unwrap().port();
    let (alice, mut events) = Phone::start(phone(port, 1)).await.unwrap();

    let (first, from) = request(&reg).await;
    assert!(first.starts_with("REGISTER "), "{first}");
    let private = format!("sip:alice@{from}");
    assert_eq!(
        header(&first, "Contact"),
        format!("<{private}>;expires=600")
    );
    reg.send_to(ok_from_public(&first).as_bytes(), from)
        .await
        .unwrap();
    // Not registered yet: the public Contact goes in at once, the private one removed.
    let (second, _) = request(&reg).await;
    assert_eq!(
        header(&second, "Contact"),
        format!("<sip:alice@{PUBLIC}>;expires=600, <{private}>;expires=0")
    );
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
        assert!(
            !matches!(e, Event::Registered { .. }),
            "registered before the rewrite: {e:?}"
        );
    }
    reg.send_to(ok_from_public(&second).as_bytes(), from)
        .await
        .unwrap();
    registered(&mut events).await;

    // Keep-alives every second, from the SIP socket, 4 bytes each.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(3500);
    while let Ok(Some((text, src))) =
        tokio::time::timeout_at(until, async { recv(&reg, Duration::from_secs(5)).await }).await
    {
        assert_eq!(src, from);
        assert_eq!(text, "\r\n\r\n", "only keep-alives while idle");
        pings += 1;
    }
    assert!((2..=4).contains(&pings), "{pings} keep-alives in 3.5 s");

    // A call through the registrar (outbound proxy) carries the public Contact.
    alice
        .call(
            "sip:bob@example.test",
            MediaOptions {
                source: AudioSource::Silence,
                record: None,
            },
        )
        .await
        .unwrap();
    let (invite, _) = request(&reg).await;
    assert!(
        invite.starts_with("INVITE sip:bob@example.test"),
        "{invite}"
    );
    assert_eq!(header(&invite, "Contact"), format!("<sip:alice@{PUBLIC}>"));
    alice.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_nat_no_rewrite_and_no_keepalives() {
    let reg = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = reg.local_addr().unwrap().port();
    let (alice, mut events) = Phone::start(phone(port, 1)).await.unwrap();
    let (first, from) = request(&reg).await;
    // Seen where it says it is: rport filled with its own port, no received.
    let via = header(&first, "Via").replacen(";rport", &format!(";rport={}", from.port()), 1);
    let ok = ok_from_public(&first).replacen(
        &header(&ok_from_public(&first), "Via").to_string(),
        &via,
        1,
    );
    reg.send_to(ok.as_bytes(), from).await.unwrap();
    registered(&mut events).await;
    // Nothing more: no second REGISTER, no keep-alive.
    assert!(recv(&reg, Duration::from_millis(2500)).await.is_none());
    alice.shutdown().await;
}
