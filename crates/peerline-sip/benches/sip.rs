//! Micro-benchmarks: parse + serialize of a typical INVITE with SDP, and the
//! transaction layer handling one request/response pair (UDP, client + server).
//! Run: `cargo bench -p peerline-sip --bench sip -- --warm-up-time 1 --measurement-time 3`

// Benchmark harness code, not network input: panicking on a broken fixture is fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use peerline_sip::message::{make_response, RequestBuilder};
use peerline_sip::transport::{Frame, StreamFramer};
use peerline_sip::{parse_message, serialize, Config, Endpoint, Event};
use rsip::Method;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const HEAD: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Peerline/0.1\r\n\
Content-Type: application/sdp\r\n";

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n";

fn invite() -> Vec<u8> {
    format!("{HEAD}Content-Length: {}\r\n\r\n{SDP}", SDP.len()).into_bytes()
}

fn parse_serialize(c: &mut Criterion) {
    let bytes = invite();
    let invite_bytes: &[u8] = &bytes;
    let msg = parse_message(invite_bytes).unwrap();
    c.bench_function("parse INVITE+SDP", |b| {
        b.iter(|| parse_message(black_box(invite_bytes)).unwrap())
    });
    c.bench_function("serialize INVITE+SDP", |b| {
        b.iter(|| serialize(black_box(&msg)))
    });
    c.bench_function("parse+serialize INVITE+SDP", |b| {
        b.iter(|| serialize(&parse_message(black_box(invite_bytes)).unwrap()))
    });
    c.bench_function("stream framer INVITE+SDP", |b| {
        let mut f = StreamFramer::default();
        b.iter(|| {
            f.push(black_box(invite_bytes));
            match f.poll() {
                Some(Ok(Frame::Message(m))) => m.len(),
                _ => 0,
            }
        })
    });
}

fn transaction_pair(c: &mut Criterion) {
    let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:5060".parse().unwrap();
    c.bench_function("transaction OPTIONS/200 (client+server, UDP)", |bench| {
        let mut uac = Endpoint::new(Config::default());
        let mut uas = Endpoint::new(Config::default());
        let mut now = Instant::now();
        let mut n: u64 = 0;
        bench.iter(|| {
            n += 1;
            now += Duration::from_millis(50);
            let req = RequestBuilder::new(Method::Options, "sip:bob@192.0.2.2")
                .via("UDP", "192.0.2.1:5060", &format!("z9hG4bKbench{n}"))
                .from("sip:alice@example.com", None, "t1")
                .to("sip:bob@example.com", None)
                .call_id("bench@192.0.2.1")
                .cseq((n % 1_000_000) as u32 + 1)
                .build()
                .unwrap();
            uac.send_request(now, req, b).unwrap();
            let t = uac.poll_transmit().unwrap();
            uas.handle_datagram(now, a, &t.bytes);
            let Some(Event::IncomingRequest { key, request, .. }) = uas.poll_event() else {
                panic!("no request")
            };
            uas.send_response(now, &key, make_response(&request, 200, Some("t2")))
                .unwrap();
            let t = uas.poll_transmit().unwrap();
            uac.handle_datagram(now, b, &t.bytes);
            let ev = uac.poll_event();
            uac.handle_timeout(now);
            uas.handle_timeout(now);
            ev
        })
    });
}

criterion_group!(benches, parse_serialize, transaction_pair);
criterion_main!(benches);
