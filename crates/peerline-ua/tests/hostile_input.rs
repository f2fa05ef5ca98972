//! Hostile input against a running phone (issue 10), on loopback only, through real UDP
//! sockets: malformed SIP gets an error response with a reason (where it has a Via to
//! answer), SDP with absurd counts, ports and payload types is refused or negotiated
//! safely, and malformed RTP/RTCP in the middle of a call is counted and dropped while the
//! audio keeps arriving. After each barrage a normal call between two phones still works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{tone, wait_within};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peerline_media::{AudioEncoder, Codec, RtpSender, ToneGenerator};
use peerline_sip::MessageExt;
use peerline_ua::{Config, EndReason, Event, Events, MediaReport, Phone};
use tokio::net::UdpSocket;

fn config(user: &str, srtp: &str) -> Config {
    let text = format!(
        "[identity]\nuser = \"{user}\"\n[network]\nsip_listen = \"127.0.0.1:0\"\n\
         [media]\nsrtp = \"{srtp}\"\n"
    );
    Config::parse(&text, Path::new("<hostile test>")).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peerline-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Everything that arrives on `sock` within `wait`, stopping early after a final response.
async fn responses(sock: &UdpSocket, wait: Duration) -> Vec<String> {
    responses_to(sock, None, wait).await
}

/// Like [`responses`], keeping only answers to our request number `n` (retransmitted
/// answers to earlier requests are skipped).
async fn responses_to(sock: &UdpSocket, want: Option<u32>, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if want.is_some() && branch_no(text.as_bytes()) != want {
            continue;
        }
        let fin = status(&text).is_some_and(|(c, _)| c >= 200);
        out.push(text);
        if fin {
            break;
        }
    }
    out
}

/// Waits for a BYE on `sock` and answers it with 200.
async fn answer_bye(sock: &UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Ok((len, src))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await
    {
        if let Ok(rsip::SipMessage::Request(req)) = peerline_sip::parse_message(&buf[..len]) {
            if req.method == rsip::Method::Bye {
                let ok = peerline_sip::message::make_response(&req, 200, None);
                let bytes = peerline_sip::serialize(&ok.into());
                sock.send_to(&bytes, src).await.unwrap();
                return;
            }
        }
    }
    panic!("no BYE");
}

/// Our branch number in a datagram built by [`request`].
fn branch_no(datagram: &[u8]) -> Option<u32> {
    let key = b"branch=z9hG4bKhostile";
    let at = datagram.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: String = datagram[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    digits.parse().ok()
}

/// ACK for a non-2xx final response to INVITE number `n` (same branch: RFC 3261 §17.1.1.3).
async fn ack_failure(sock: &UdpSocket, to: SocketAddr, n: u32, response: &str) {
    let Ok(parsed) = peerline_sip::parse_message(response.as_bytes()) else {
        return;
    };
    let from = sock.local_addr().unwrap();
    let tag = parsed.to_tag().unwrap_or_default();
    let ack = String::from_utf8(request("ACK", from, to, n, "", &[]))
        .unwrap()
        .replace(
            &format!("To: <sip:bob@{to}>"),
            &format!("To: <sip:bob@{to}>;tag={tag}"),
        );
    sock.send_to(ack.as_bytes(), to).await.unwrap();
}

/// Status code and reason phrase of a response.
fn status(text: &str) -> Option<(u16, String)> {
    let line = text.lines().next()?;
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ')?;
    Some((code.parse().ok()?, reason.trim().to_string()))
}

fn final_status(all: &[String]) -> Option<(u16, String)> {
    all.iter()
        .filter_map(|t| status(t))
        .find(|(c, _)| *c >= 200)
}

/// A request from `from` to the phone at `to`, with our own Via branch; `extra` headers
/// are inserted before Content-Length, which is computed unless `extra` sets one.
fn request(
    method: &str,
    from: SocketAddr,
    to: SocketAddr,
    n: u32,
    extra: &str,
    body: &[u8],
) -> Vec<u8> {
    let cl = if extra.contains("Content-Length") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let mut m = format!(
        "{method} sip:bob@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bKhostile{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:mallory@{from}>;tag=m{n}\r\n\
         To: <sip:bob@{to}>\r\n\
         Call-ID: hostile-{n}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:mallory@{from}>\r\n\
         {ct}{extra}{cl}\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

fn sdp(from: SocketAddr, media: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=mallory 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{media}",
        ip = from.ip()
    )
    .into_bytes()
}

/// Alice calls Bob with a 440 Hz tone for `secs`; Bob records. Returns the seconds of tone
/// Bob heard and Bob's media report.
async fn call_works(
    alice: &Phone,
    ae: &mut Events,
    bob: &Phone,
    be: &mut Events,
    rec: &Path,
    secs: f32,
) -> (f32, MediaReport) {
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_within(be, "incoming", 5, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(rec.to_path_buf())))
        .await
        .unwrap();
    wait_within(ae, "answered", 5, |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs_f32(secs)).await;
    alice.hangup(a).await.unwrap();
    let (reason, media) = wait_within(be, "bob's end", 5, |e| match e {
        Event::Ended { reason, media, .. } => Some((reason.clone(), (**media).clone())),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::RemoteHangup);
    let audio = peerline_audio::read_wav(rec).unwrap();
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 440.0, 0.5);
    (heard, media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sip_is_answered_with_a_reason_and_the_phone_keeps_working() {
    let (bob, mut be) = Phone::start(config("bob", "optional")).await.unwrap();
    let to = bob.sip_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = sock.local_addr().unwrap();
    let wait = Duration::from_millis(1500);

    // (name, datagram, acceptable final codes)
    let mut cases: Vec<(&str, Vec<u8>, &[u16])> = Vec::new();
    let full = request("INVITE", from, to, 1, "", &[]);
    cases.push((
        "truncated before the blank line",
        full[..full.len() - 40].to_vec(),
        &[400],
    ));
    let long = format!("Subject: {}\r\n", "x".repeat(20_000));
    cases.push((
        "one 20 kB header line",
        request("OPTIONS", from, to, 2, &long, &[]),
        &[400, 413, 513],
    ));
    let many: String = (0..400).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    cases.push((
        "400 header fields",
        request("OPTIONS", from, to, 3, &many, &[]),
        &[400, 413, 513],
    ));
    let huge = format!("X-Pad: {}\r\n", "y".repeat(7000)).repeat(9);
    cases.push((
        "a 63 kB datagram inside the limits (answered normally, nothing echoed)",
        request("OPTIONS", from, to, 4, &huge, &[]),
        &[200],
    ));
    cases.push((
        "absurd Content-Length",
        request(
            "OPTIONS",
            from,
            to,
            5,
            "Content-Length: 99999999999999999999\r\n",
            &[],
        ),
        &[400],
    ));
    cases.push((
        "Content-Length past the end",
        request(
            "OPTIONS",
            from,
            to,
            6,
            "Content-Length: 5000\r\n",
            b"v=0\r\n",
        ),
        &[400],
    ));
    let text = request("OPTIONS", from, to, 7, "Subject: @@\r\n", &[]);
    let at = text.windows(2).position(|w| w == b"@@").unwrap();
    let mut bin = text[..at].to_vec();
    bin.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x01, 0xC3, 0x28, 0xA0, 0xA1]);
    bin.extend_from_slice(&text[at + 2..]);
    cases.push(("binary in a header", bin, &[400]));
    cases.push((
        "absurd CSeq",
        request("OPTIONS", from, to, 8, "", &[])
            .split(|&b| b == b'\n')
            .map(|l| {
                if l.starts_with(b"CSeq:") {
                    b"CSeq: 99999999999999999999999 OPTIONS\r".to_vec()
                } else {
                    l.to_vec()
                }
            })
            .collect::<Vec<_>>()
            .join(&b'\n'),
        &[400],
    ));
    cases.push((
        "CSeq method differs",
        String::from_utf8(request("OPTIONS", from, to, 9, "", &[]))
            .unwrap()
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
            .into_bytes(),
        &[400],
    ));
    cases.push((
        "no Call-ID",
        String::from_utf8(request("OPTIONS", from, to, 10, "", &[]))
            .unwrap()
            .replace("Call-ID: hostile-10@127.0.0.1\r\n", "")
            .into_bytes(),
        &[400],
    ));
    cases.push((
        "Max-Forwards not a number",
        String::from_utf8(request("OPTIONS", from, to, 11, "", &[]))
            .unwrap()
            .replace("Max-Forwards: 70", "Max-Forwards: -1e9")
            .into_bytes(),
        &[400, 483],
    ));
    cases.push((
        "SIP/7.0",
        String::from_utf8(request("OPTIONS", from, to, 12, "", &[]))
            .unwrap()
            .replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1)
            .into_bytes(),
        &[400, 505],
    ));
    cases.push((
        "a method nobody knows",
        request("XYZZY", from, to, 13, "", &[]),
        &[400, 405, 501],
    ));
    cases.push((
        "Request-URI of 10 kB",
        String::from_utf8(request("OPTIONS", from, to, 14, "", &[]))
            .unwrap()
            .replacen("sip:bob@", &format!("sip:{}@", "b".repeat(10_000)), 1)
            .into_bytes(),
        &[200, 400, 404, 414],
    ));
    cases.push((
        "1000 Via values in one header",
        String::from_utf8(request("OPTIONS", from, to, 15, "", &[]))
            .unwrap()
            .replacen(
                "branch=z9hG4bKhostile15\r\n",
                &format!(
                    "branch=z9hG4bKhostile15{}\r\n",
                    ", SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx".repeat(1000)
                ),
                1,
            )
            .into_bytes(),
        &[400, 413, 513],
    ));
    // SDP the parser refuses: the phone answers 400 naming the SDP problem.
    let bad_sdp: &[(&str, String)] = &[
        ("m= port 99999", "m=audio 99999 RTP/AVP 0\r\n".into()),
        ("300 m= lines", "m=audio 4000 RTP/AVP 0\r\n".repeat(300)),
        (
            "5000 formats",
            format!(
                "m=audio 4000 RTP/AVP {}\r\n",
                (0..5000)
                    .map(|i| (i % 128).to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        (
            "a 40 kB attribute",
            format!(
                "m=audio 4000 RTP/AVP 0\r\na=x-junk:{}\r\n",
                "z".repeat(40_000)
            ),
        ),
        ("no v= line", "m=audio 4000 RTP/AVP 0\r\n".into()),
    ];
    for (i, (name, media)) in bad_sdp.iter().enumerate() {
        let mut body = sdp(from, media);
        if *name == "no v= line" {
            body = body[5..].to_vec();
        }
        let n = 100 + i as u32;
        cases.push((
            name,
            request("INVITE", from, to, n, "", &body),
            &[400, 413, 488, 513],
        ));
    }

    for (name, datagram, codes) in &cases {
        sock.send_to(datagram, to).await.unwrap();
        let n = branch_no(datagram).unwrap();
        let got = responses_to(&sock, Some(n), wait).await;
        let (code, reason) =
            final_status(&got).unwrap_or_else(|| panic!("{name}: no final response (got {got:?})"));
        assert!(codes.contains(&code), "{name}: {code} {reason}");
        assert!(!reason.is_empty() && reason != "-", "{name}: empty reason");
        // Answered to the Via's branch, so the sender can match it.
        let resp = got
            .iter()
            .find(|t| status(t).is_some_and(|(c, _)| c == code))
            .unwrap();
        if let Ok(parsed) = peerline_sip::parse_message(resp.as_bytes()) {
            assert!(
                parsed
                    .branch()
                    .is_some_and(|b| b.starts_with("z9hG4bKhostile")),
                "{name}: {resp}"
            );
        }
        if datagram.starts_with(b"INVITE") {
            ack_failure(&sock, to, n, resp).await;
        }
        eprintln!("{name}: {code} {reason}");
    }
    // Let the INVITE server transactions see their ACKs and stop retransmitting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = responses(&sock, Duration::from_millis(100)).await;

    // Without a Via there is nobody to answer: silence, and no crash.
    let mut noise: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"INVITE".to_vec(),
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        vec![0u8; 1400],
        vec![0xFF; 65_000],
    ];
    let mut x: u32 = 0x1234_5678;
    for len in [1usize, 17, 200, 1500, 9000] {
        noise.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect(),
        );
    }
    for datagram in &noise {
        sock.send_to(datagram, to).await.unwrap();
    }
    let got = responses(&sock, Duration::from_millis(500)).await;
    assert!(got.is_empty(), "answered noise without a Via: {got:?}");

    // SDP that parses but is absurd: PT outside 0..=127, rtpmap rates of 0 and 2^32,
    // port 0 for the only stream. Each either gets a final refusal or, if offered to the
    // user, is refused by the phone itself with a proper status.
    let odd_sdp = [
        "m=audio 4000 RTP/AVP 300 128 999\r\na=rtpmap:300 PCMU/8000\r\n",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/0\r\na=ptime:0\r\n",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/4294967296/255\r\na=fmtp:96 maxplaybackrate=0\r\n",
        "m=audio 0 RTP/AVP 0\r\n",
        "m=audio 0/65535 RTP/AVP 0\r\n",
        "m=audio 4000/65535 RTP/AVP 0 8\r\n",
        "m=video 4000 RTP/AVP 31\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
    ];
    for (i, media) in odd_sdp.iter().enumerate() {
        let n = 200 + i as u32;
        sock.send_to(&request("INVITE", from, to, n, "", &sdp(from, media)), to)
            .await
            .unwrap();
        let got = responses_to(&sock, Some(n), wait).await;
        let fin = match final_status(&got) {
            Some(f) => {
                let resp = got.last().unwrap();
                ack_failure(&sock, to, n, resp).await;
                f
            }
            None => {
                // Offered to the user (ringing): the phone's own answer decides.
                let call = wait_within(&mut be, "incoming absurd offer", 2, |e| match e {
                    Event::Incoming { call, .. } => Some(*call),
                    _ => None,
                })
                .await;
                let answered = bob.answer(call, tone(1000.0, None)).await;
                let got = responses_to(&sock, Some(n), wait).await;
                let fin = final_status(&got)
                    .unwrap_or_else(|| panic!("{media:?}: no final response: {got:?}"));
                let resp = got.last().unwrap();
                if answered.is_ok() {
                    // A usable offer after all: the answer must be sane, then hang up.
                    assert_eq!(fin.0, 200, "{media:?}");
                    let ok = peerline_sip::parse_message(resp.as_bytes()).unwrap();
                    let addr = answer_media_addr(&ok);
                    assert_ne!(addr.port(), 0, "{media:?}: answered on port 0");
                    let tag = ok.to_tag().unwrap();
                    let ack = String::from_utf8(request("ACK", from, to, 900 + n, "", &[]))
                        .unwrap()
                        .replace(&format!("tag=m{}", 900 + n), &format!("tag=m{n}"))
                        .replace(
                            &format!("Call-ID: hostile-{}@", 900 + n),
                            &format!("Call-ID: hostile-{n}@"),
                        )
                        .replace(
                            &format!("To: <sip:bob@{to}>"),
                            &format!("To: <sip:bob@{to}>;tag={tag}"),
                        );
                    sock.send_to(ack.as_bytes(), to).await.unwrap();
                    bob.hangup(call).await.unwrap();
                    answer_bye(&sock).await;
                    wait_within(&mut be, "end of the absurd call", 5, |e| {
                        matches!(e, Event::Ended { .. }).then_some(())
                    })
                    .await;
                    eprintln!("absurd SDP {i}: answered and hung up:\n{resp}");
                    continue;
                }
                ack_failure(&sock, to, n, resp).await;
                fin
            }
        };
        assert!((400..700).contains(&fin.0), "{media:?}: {fin:?}");
        assert!(!fin.1.is_empty(), "{media:?}: empty reason");
        eprintln!("absurd SDP {i}: {} {}", fin.0, fin.1);
    }

    // And the phone still makes calls.
    let (alice, mut ae) = Phone::start(config("alice", "optional")).await.unwrap();
    let rec = temp_dir("hostile-sip").join("bob.wav");
    let (heard, _) = call_works(&alice, &mut ae, &bob, &mut be, &rec, 2.0).await;
    assert!(
        heard >= 1.2,
        "bob heard alice for {heard} s after the barrage"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Datagrams that are not RTP a phone could accept, one of each malformation.
fn malformed_media() -> Vec<(&'static str, Vec<u8>)> {
    let good = {
        let mut p = vec![
            0x80, 0x00, 0x12, 0x34, 0, 0, 0x10, 0, 0xCA, 0xFE, 0xBA, 0xBE,
        ];
        p.extend_from_slice(&[0xFF; 160]);
        p
    };
    let mut v1 = good.clone();
    v1[0] = 0x40;
    let mut pad = good.clone();
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 200; // padding longer than the payload
    let mut csrc = good[..20].to_vec();
    csrc[0] |= 0x0F; // 15 CSRCs = 60 bytes, only 8 present
    let mut ext = good[..24].to_vec();
    ext[0] |= 0x10;
    ext[12..16].copy_from_slice(&[0xBE, 0xDE, 0x40, 0x00]); // 16384 words of extension
                                                            // Compound RTCP: an SR whose length runs past the datagram, and an RR with 31 blocks
                                                            // announced but none present.
    let sr_past_end = vec![0x81, 200, 0x00, 0xFF, 0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 0];
    let rr_count = vec![0x9F, 201, 0x00, 0x01, 0xCA, 0xFE, 0xBA, 0xBE];
    let sdes_first = vec![0x81, 202, 0x00, 0x02, 0xCA, 0xFE, 0xBA, 0xBE, 1, 2, b'a', 0];
    let mut junk = Vec::with_capacity(300);
    let mut x: u32 = 0xDEAD_BEEF;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        junk.push(x as u8);
    }
    junk[0] = 0x00; // version 0: never RTP, RTCP, DTLS or STUN
                    // STUN (RFC 8489) with a length past the end, an attribute running past the message,
                    // and a wrong FINGERPRINT: the media path runs no ICE, so these must be dropped too.
    let stun = |len: u16, attrs: &[u8]| {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(b"hostile-tid!");
        m.extend_from_slice(attrs);
        m
    };
    let stun_len = stun(400, &[0x00, 0x06, 0x00, 0x04, b'a', b':', b'b', b'c']);
    let stun_attr = stun(8, &[0x00, 0x06, 0x01, 0x00, b'a', b':', b'b', b'c']);
    let stun_fp = stun(8, &[0x80, 0x28, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF]);
    vec![
        ("STUN length past the end", stun_len),
        ("STUN attribute past the end", stun_attr),
        ("STUN bad FINGERPRINT", stun_fp),
        ("RTP version 1", v1),
        ("bad padding", pad),
        ("CSRC count past the end", csrc),
        ("extension length past the end", ext),
        ("RTCP SR length past the end", sr_past_end),
        ("RTCP RR count past the end", rr_count),
        ("RTCP SDES first", sdes_first),
        ("random bytes", junk),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_other_addresses_is_dropped_and_the_call_goes_on() {
    let (alice, _ae) = Phone::start(config("alice", "mandatory")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob", "mandatory")).await.unwrap();
    let rec = temp_dir("hostile-foreign").join("bob.wav");
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 5, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(rec.clone())))
        .await
        .unwrap();
    let bob_rtp = wait_within(&mut be, "bob's media", 5, |e| match e {
        Event::MediaUp { local, .. } => Some(*local),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Another port on the peer's address, and another loopback address.
    let other_port = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other_host = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let bad = malformed_media();
    let mut sent = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        for (_, d) in &bad {
            for s in [&other_port, &other_host] {
                if s.send_to(d, bob_rtp).await.is_ok() {
                    sent += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.hangup(a).await.unwrap();
    let media = wait_within(&mut be, "bob's end", 5, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;
    assert!(
        media.foreign_source_drops >= sent,
        "{} of {sent} foreign datagrams counted",
        media.foreign_source_drops
    );
    // Nothing from the attackers reached the decoder or the SRTP layer.
    assert_eq!(media.received.malformed, 0, "{:?}", media.received);
    assert_eq!(media.srtp_auth_failures, 0);
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 440.0, 0.5);
    assert!(
        heard >= 2.0,
        "bob heard alice for only {heard} s during the barrage"
    );
    eprintln!(
        "foreign drops {} (sent {sent}), tone {heard:.1} s, srtp {:?}",
        media.foreign_source_drops, media.srtp
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

struct Barrage {
    /// Malformed datagrams sent from the peer's own RTP address, by kind.
    sent: Vec<&'static str>,
    /// The same datagrams sent from another port.
    sent_foreign: u64,
    reason: EndReason,
    media: MediaReport,
    /// Seconds of the 440 Hz tone in the phone's recording (3 s sent).
    heard: f32,
}

/// The test is the caller (plain RTP, so it can write any packet from the address the SDP
/// names): it sends 3 s of 440 Hz PCMU with the `bad` datagrams mixed in (one every third
/// packet) from the very same address, and again from a second port, plus one packet of
/// an unknown payload type and one of a foreign SSRC; then hangs up.
async fn call_with_bad_media(bad: &[(&'static str, Vec<u8>)]) -> Barrage {
    let (bob, mut be) = Phone::start(config("bob", "off")).await.unwrap();
    let to = bob.sip_addr();
    let sip = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = sip.local_addr().unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_addr = rtp.local_addr().unwrap();
    let body = sdp(
        from,
        &format!(
            "m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n\
             a=rtcp-mux\r\na=sendrecv\r\n",
            rtp_addr.port()
        ),
    );
    sip.send_to(&request("INVITE", from, to, 1, "", &body), to)
        .await
        .unwrap();
    let call = wait_within(&mut be, "incoming", 5, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    let rec = temp_dir("hostile-rtp").join("bob.wav");
    bob.answer(call, tone(1000.0, Some(rec.clone())))
        .await
        .unwrap();
    let got = responses(&sip, Duration::from_secs(3)).await;
    let ok = got
        .iter()
        .find(|t| status(t).is_some_and(|(c, _)| c == 200))
        .unwrap_or_else(|| panic!("no 200: {got:?}"));
    let ok = peerline_sip::parse_message(ok.as_bytes()).unwrap();
    let to_tag = ok.to_tag().unwrap();
    let bob_rtp = answer_media_addr(&ok);
    let ack = String::from_utf8(request("ACK", from, to, 2, "", &[]))
        .unwrap()
        .replace("Call-ID: hostile-2@", "Call-ID: hostile-1@")
        .replace("tag=m2", "tag=m1")
        .replace(
            &format!("To: <sip:bob@{to}>"),
            &format!("To: <sip:bob@{to}>;tag={to_tag}"),
        );
    sip.send_to(ack.as_bytes(), to).await.unwrap();

    let other_port = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut sender = RtpSender::new(0x5EED_0001, 0, 8000, 1000, 160_000);
    let mut encoder = AudioEncoder::new(Codec::Pcmu).unwrap();
    let mut gen = ToneGenerator::new(440.0, 0.5, 8000);
    // Extra well-formed packets the phone must refuse: an unknown payload type and a
    // foreign SSRC (one packet: not enough to take over the stream).
    let mut stranger = RtpSender::new(0x0BAD_0BAD, 0, 8000, 7, 7);
    let mut odd_pt = RtpSender::new(0x5EED_0001, 99, 8000, 1, 1);
    let mut sent = Vec::new();
    let mut sent_foreign = 0u64;
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start, Duration::from_millis(20));
    for i in 0..150u32 {
        tick.tick().await;
        let pcm = gen.samples(160);
        let payload = encoder.encode(&pcm).unwrap();
        let packet = sender.send_frame(&payload, 160).unwrap();
        rtp.send_to(&packet, bob_rtp).await.ok();
        if i % 3 == 1 {
            let (kind, d) = &bad[(i as usize / 3) % bad.len()];
            rtp.send_to(d, bob_rtp).await.unwrap();
            sent.push(*kind);
            other_port.send_to(d, bob_rtp).await.unwrap();
            sent_foreign += 1;
        }
        if i == 40 {
            let p = stranger.send_frame(&payload, 160).unwrap();
            rtp.send_to(&p, bob_rtp).await.unwrap();
            let p = odd_pt.send_frame(&payload, 160).unwrap();
            rtp.send_to(&p, bob_rtp).await.unwrap();
        }
    }
    let bye = String::from_utf8(request("BYE", from, to, 3, "", &[]))
        .unwrap()
        .replace("Call-ID: hostile-3@", "Call-ID: hostile-1@")
        .replace("tag=m3", "tag=m1")
        .replace("CSeq: 1 BYE", "CSeq: 2 BYE")
        .replace(
            &format!("To: <sip:bob@{to}>"),
            &format!("To: <sip:bob@{to}>;tag={to_tag}"),
        );
    sip.send_to(bye.as_bytes(), to).await.unwrap();
    let (reason, media) = wait_within(&mut be, "bob's end", 5, |e| match e {
        Event::Ended { reason, media, .. } => Some((reason.clone(), (**media).clone())),
        _ => None,
    })
    .await;
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 440.0, 0.5);
    bob.shutdown().await;
    Barrage {
        sent,
        sent_foreign,
        reason,
        media,
        heard,
    }
}

fn is_rtcp_kind(kind: &str) -> bool {
    kind.starts_with("RTCP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rtp_and_rtcp_from_the_peer_are_counted_and_the_tone_still_arrives() {
    let bad = malformed_media();
    let b = call_with_bad_media(&bad).await;
    assert_eq!(b.reason, EndReason::RemoteHangup);
    let rx = b.media.received;
    let rtp_bad = b.sent.iter().filter(|k| !is_rtcp_kind(k)).count() as u64;
    eprintln!(
        "sent {} malformed ({rtp_bad} RTP), bob counted {rx:?}, foreign drops {}, tone {:.1} s",
        b.sent.len(),
        b.media.foreign_source_drops,
        b.heard
    );
    // Every malformed RTP datagram is counted (malformed RTCP too once it is kept: see
    // `blocked_malformed_rtcp_is_counted_in_the_report`).
    assert!(rx.malformed >= rtp_bad, "{} of {rtp_bad}", rx.malformed);
    assert!(rx.malformed <= b.sent.len() as u64);
    assert!(b.media.foreign_source_drops >= b.sent_foreign);
    assert_eq!(rx.unknown_payload_type, 1);
    assert_eq!(rx.foreign_ssrc, 1);
    assert_eq!(rx.ssrc_changes, 0);
    assert!(rx.packets_received >= 140, "{rx:?}");
    assert!(
        b.heard >= 2.4,
        "bob heard the tone for only {} s of 3 s",
        b.heard
    );
}

/// Malformed compound RTCP from the peer is dropped (the call goes on), but the media task
/// adds it to `report.received.malformed` and then overwrites `report.received` with the
/// RTP receiver's own counters at the end of the call, so the RTCP part is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rtcp_is_counted_in_the_report() {
    let rtcp: Vec<_> = malformed_media()
        .into_iter()
        .filter(|(k, _)| is_rtcp_kind(k))
        .collect();
    let b = call_with_bad_media(&rtcp).await;
    assert!(
        b.heard >= 2.4,
        "bob heard the tone for only {} s of 3 s",
        b.heard
    );
    assert_eq!(b.media.received.malformed, b.sent.len() as u64);
}

/// The phone's RTP address from the SDP answer in its 200 OK.
fn answer_media_addr(ok: &rsip::SipMessage) -> SocketAddr {
    let sdp = peerline_sdp::SessionDescription::parse_bytes(ok.body()).unwrap();
    let m = &sdp.media[0];
    let ip = m
        .connections
        .first()
        .or(sdp.connection.as_ref())
        .map(|c| c.address.clone())
        .unwrap();
    SocketAddr::new(ip.parse().unwrap(), m.port)
}

/// An offer whose SDES key passes negotiation but cannot key SRTP (`inline:AAAA`, far too
/// short): Bob has answered 200 by then, so the call cannot just be dropped. He waits for
/// the ACK (RFC 3261 §15: no BYE before it), then sends BYE, and the call ends with the
/// key problem named — instead of staying up without media forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_cannot_start_after_the_200_ends_the_call_with_bye_after_the_ack() {
    let mut bob_config = config("bob", "mandatory");
    bob_config.media.allow_sdes_without_tls = true; // the offer comes over UDP
    let (bob, mut be) = Phone::start(bob_config).await.unwrap();
    let to = bob.sip_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = sock.local_addr().unwrap();
    let body = sdp(
        from,
        "m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n",
    );
    sock.send_to(&request("INVITE", from, to, 1, "", &body), to)
        .await
        .unwrap();
    let call = wait_within(&mut be, "incoming", 5, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(call, tone(1000.0, None)).await.unwrap();
    let got = responses_to(&sock, Some(1), Duration::from_secs(3)).await;
    let ok = got.last().cloned().unwrap_or_default();
    assert_eq!(status(&ok).map(|s| s.0), Some(200), "{got:?}");
    // No BYE before our ACK (only 200 retransmissions may arrive meanwhile).
    let early = responses(&sock, Duration::from_millis(700)).await;
    assert!(
        early.iter().all(|m| !m.starts_with("BYE ")),
        "BYE before the ACK: {early:?}"
    );
    let tag = peerline_sip::parse_message(ok.as_bytes())
        .ok()
        .and_then(|m| m.to_tag())
        .unwrap_or_default();
    // The ACK for a 2xx is its own transaction (new branch) in the INVITE's dialog.
    let ack = String::from_utf8(request("ACK", from, to, 1001, "", &[]))
        .unwrap()
        .replace(
            &format!("To: <sip:bob@{to}>"),
            &format!("To: <sip:bob@{to}>;tag={tag}"),
        )
        .replace("Call-ID: hostile-1001@", "Call-ID: hostile-1@")
        .replace(";tag=m1001", ";tag=m1");
    sock.send_to(ack.as_bytes(), to).await.unwrap();
    answer_bye(&sock).await;
    let reason = wait_within(&mut be, "ended", 5, |e| match e {
        Event::Ended {
            call: c, reason, ..
        } if *c == call => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(&reason, EndReason::Negotiation(why) if why.contains("SDES")),
        "{reason:?}"
    );
    bob.shutdown().await;
}

/// UPDATE in the early dialog of a ringing call (RFC 3311): without a body it is
/// accepted (200); with an offer it is refused with 488, since the session cannot change
/// before the user answers; an UPDATE naming a dialog that does not exist gets 481.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_in_an_early_dialog() {
    let (bob, mut be) = Phone::start(config("bob", "off")).await.unwrap();
    let to = bob.sip_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let from = sock.local_addr().unwrap();
    let offer = sdp(from, "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n");
    sock.send_to(&request("INVITE", from, to, 1, "", &offer), to)
        .await
        .unwrap();
    let call = wait_within(&mut be, "incoming", 5, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    // Bob's 180 gives his tag.
    let mut tag = None;
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tag.is_none() {
        let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .expect("no 180")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 180") {
            tag = peerline_sip::parse_message(text.as_bytes())
                .ok()
                .and_then(|m| m.to_tag());
        }
    }
    let tag = tag.unwrap();
    // UPDATEs in the early dialog: same Call-ID and From tag as the INVITE, Bob's tag.
    let update = |n: u32, body: &[u8], to_tag: &str| {
        String::from_utf8(request("UPDATE", from, to, n, "", body))
            .unwrap()
            .replace(
                &format!("To: <sip:bob@{to}>"),
                &format!("To: <sip:bob@{to}>;tag={to_tag}"),
            )
            .replace(&format!("Call-ID: hostile-{n}@"), "Call-ID: hostile-1@")
            .replace(&format!(";tag=m{n}\r\n"), ";tag=m1\r\n")
            .replace("CSeq: 1 UPDATE", &format!("CSeq: {n} UPDATE"))
    };
    for (n, body, to_tag, want) in [
        (2, &b""[..], tag.as_str(), 200),
        (3, &offer[..], tag.as_str(), 488),
        (4, &b""[..], "not-bobs-tag", 481),
    ] {
        sock.send_to(update(n, body, to_tag).as_bytes(), to)
            .await
            .unwrap();
        let got = responses_to(&sock, Some(n), Duration::from_secs(3)).await;
        assert_eq!(
            final_status(&got).map(|s| s.0),
            Some(want),
            "UPDATE {n}: {got:?}"
        );
    }
    bob.reject(call, 486).await.unwrap();
    bob.shutdown().await;
}
