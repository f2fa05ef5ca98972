//! A mandatory-SRTP phone never downgrades to plain RTP (issue 10), on loopback through
//! a raw UDP socket that plays the attacker (or the broken peer): a plain `RTP/AVP`
//! offer cannot be answered (488); once an SRTP call is up, a re-INVITE that
//! offers plain RTP is refused with 488 and the call stays up, encrypted, until a
//! normal hang-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::wait_for;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use peerline_sip::message::RequestBuilder;
use peerline_sip::MessageExt;
use peerline_ua::{AudioSource, Config, Event, MediaOptions, Phone};
use tokio::net::UdpSocket;

/// RFC 4568's example key (30 bytes, base64).
const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

fn sdp(me: SocketAddr, media: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{media}",
        ip = me.ip()
    )
    .into_bytes()
}

fn silence() -> MediaOptions {
    MediaOptions {
        source: AudioSource::Silence,
        record: None,
    }
}

const PLAIN: &str = "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

struct Peer {
    sock: UdpSocket,
    bob: SocketAddr,
    n: u32,
}

impl Peer {
    fn me(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A request from us; `dialog` = (Call-ID, Bob's tag, Request-URI, CSeq).
    fn request(
        &mut self,
        method: rsip::Method,
        call_id: &str,
        dialog: Option<(&str, &str, u32)>,
        body: Option<Vec<u8>>,
    ) -> rsip::Request {
        self.n += 1;
        let me = self.me();
        let bob_uri = format!("sip:bob@{}", self.bob);
        let (uri, tag, cseq) = dialog.unwrap_or((&bob_uri, "", 1));
        let mut b = RequestBuilder::new(method, uri)
            .via("UDP", &me.to_string(), &format!("z9hG4bKsrtp{}", self.n))
            .from(&format!("sip:peer@{me}"), None, "peertag")
            .to(&bob_uri, (!tag.is_empty()).then_some(tag))
            .call_id(call_id)
            .cseq(cseq)
            .contact(&format!("sip:peer@{me}"));
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        b.build().unwrap()
    }

    async fn send(&self, req: &rsip::Request) {
        let bytes = peerline_sip::serialize(&req.clone().into());
        self.sock.send_to(&bytes, self.bob).await.unwrap();
    }

    /// The final response to `req` (ACKed if it is a failure); answers a BYE with 200
    /// on the way (returned as `None`).
    async fn final_response(&self, req: &rsip::Request) -> rsip::Response {
        let mut buf = vec![0u8; 65_536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf))
                .await
                .expect("no final response")
                .unwrap();
            match peerline_sip::parse_message(&buf[..n]) {
                Ok(rsip::SipMessage::Response(r))
                    if r.status_code.code() >= 200 && r.branch() == req.branch() =>
                {
                    if r.status_code.code() >= 300 {
                        let ack = peerline_sip::message::make_ack_non2xx(req, &r).unwrap();
                        self.send(&ack).await;
                    }
                    return r;
                }
                Ok(rsip::SipMessage::Request(r)) if r.method == rsip::Method::Bye => {
                    panic!("Bob hung up: {r}");
                }
                _ => {}
            }
        }
    }

    /// Waits for Bob's BYE and answers it.
    async fn answer_bye(&self) {
        let mut buf = vec![0u8; 65_536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf))
                .await
                .expect("no BYE")
                .unwrap();
            if let Ok(rsip::SipMessage::Request(r)) = peerline_sip::parse_message(&buf[..n]) {
                if r.method == rsip::Method::Bye {
                    let ok = peerline_sip::message::make_response(&r, 200, None);
                    let bytes = peerline_sip::serialize(&ok.into());
                    self.sock.send_to(&bytes, self.bob).await.unwrap();
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_srtp_never_accepts_plain_rtp_not_even_by_re_invite() {
    let text = "[identity]\nuser = \"bob\"\n[network]\nsip_listen = \"127.0.0.1:0\"\n\
                [media]\nsrtp = \"mandatory\"\nallow_sdes_without_tls = true\n";
    let cfg = Config::parse(text, Path::new("<srtp test>")).unwrap();
    let (bob, mut be) = Phone::start(cfg).await.unwrap();
    let mut peer = Peer {
        sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        bob: bob.sip_addr(),
        n: 0,
    };
    let me = peer.me();

    // 1. A plain offer: refused with 488 before ringing (Bob's next event, checked at
    // step 2, is the SDES call, not this one).
    let plain = peer.request(rsip::Method::Invite, "srtp-1", None, Some(sdp(me, PLAIN)));
    peer.send(&plain).await;
    let r = peer.final_response(&plain).await;
    assert_eq!(r.status_code.code(), 488, "{r}");

    // 2. An SDES offer: Bob rings, answers with SRTP.
    let savp = format!(
        "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
    );
    let invite = peer.request(rsip::Method::Invite, "srtp-2", None, Some(sdp(me, &savp)));
    peer.send(&invite).await;
    let call = wait_for(&mut be, "incoming", |e| match e {
        Event::Incoming { call, from, .. } => {
            assert!(!from.is_empty());
            Some(*call)
        }
        _ => None,
    })
    .await;
    assert_eq!(
        call, 1,
        "the refused plain offer must not have rung (call ids start at 1)"
    );
    bob.answer(call, silence()).await.unwrap();
    let ok = peer.final_response(&invite).await;
    assert_eq!(ok.status_code.code(), 200, "{ok}");
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(
        answer.contains("RTP/SAVP") && answer.contains("a=crypto:"),
        "{answer}"
    );
    let tag = ok.to_tag().unwrap();
    let contact = ok.contact_uri().unwrap().to_string();
    let ack = peer.request(rsip::Method::Ack, "srtp-2", Some((&contact, &tag, 1)), None);
    peer.send(&ack).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 3. A re-INVITE offering plain RTP: refused, the call goes on.
    let reinvite = peer.request(
        rsip::Method::Invite,
        "srtp-2",
        Some((&contact, &tag, 2)),
        Some(sdp(me, PLAIN)),
    );
    peer.send(&reinvite).await;
    let r = peer.final_response(&reinvite).await;
    assert_eq!(r.status_code.code(), 488, "{r}");
    // 4. The same with RTP/AVP plus a key the phone could ignore (a "best effort" SRTP
    // offer an attacker would strip the key from): still refused.
    let stripped = peer.request(
        rsip::Method::Invite,
        "srtp-2",
        Some((&contact, &tag, 3)),
        Some(sdp(
            me,
            "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:1 FOO_SUITE inline:AAAA\r\n",
        )),
    );
    peer.send(&stripped).await;
    let r = peer.final_response(&stripped).await;
    assert_eq!(r.status_code.code(), 488, "{r}");
    let early_end = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(ev) = be.recv().await {
            if let Event::Ended { reason, .. } = ev {
                return Some(reason);
            }
        }
        None
    })
    .await;
    assert!(
        !matches!(early_end, Ok(Some(_))),
        "the call ended: {early_end:?}"
    );

    // 5. Bob hangs up; his report says the call was SRTP to the end.
    bob.hangup(call).await.unwrap();
    peer.answer_bye().await;
    let media = wait_for(&mut be, "ended", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    assert!(media.srtp.is_some(), "not SRTP: {:?}", media.srtp);
    bob.shutdown().await;
}
