use super::*;
use crate::message::RequestBuilder;
use crate::parse::parse_message;
use crate::transport::{ConnectionId, Transport};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PEER: &str = "192.0.2.9:5060";

fn request(method: Method, branch: &str) -> Request {
    RequestBuilder::new(method, "sip:bob@192.0.2.9")
        .via("UDP", "192.0.2.1:5060", branch)
        .from("sip:alice@example.com", None, "atag")
        .to("sip:bob@example.com", None)
        .call_id("call-1@192.0.2.1")
        .cseq(1)
        .build()
        .unwrap()
}

fn drain(ep: &mut Endpoint) -> Vec<SipMessage> {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        out.push(parse_message(&t.bytes).unwrap());
    }
    out
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// Run timers until `until`, recording the offsets (ms from `t0`) of every transmit.
fn run(ep: &mut Endpoint, t0: Instant, until: Duration) -> Vec<u128> {
    let mut sent = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        if at > t0 + until {
            break;
        }
        ep.handle_timeout(at);
        while ep.poll_transmit().is_some() {
            sent.push((at - t0).as_millis());
        }
    }
    sent
}

fn response_bytes(req: &Request, code: u16, tag: Option<&str>) -> Vec<u8> {
    serialize(&make_response(req, code, tag).into())
}

#[test]
fn invite_client_timer_a_doubles_and_timer_b_fires_at_64_t1() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let key = ep
        .send_request(t0, request(Method::Invite, "z9hG4bKa1"), addr(PEER))
        .unwrap();
    assert_eq!(drain(&mut ep).len(), 1);
    let sent = run(&mut ep, t0, Duration::from_secs(40));
    // A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (intervals 500ms, 1s, 2s, 4s, 8s, 16s)
    assert_eq!(sent, vec![500, 1500, 3500, 7500, 15500, 31500]);
    let ev = events(&mut ep);
    assert_eq!(ev, vec![Event::TransactionTimeout { key }]);
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn non_invite_client_timer_e_capped_at_t2_and_f_at_32s() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let key = ep
        .send_request(t0, request(Method::Options, "z9hG4bKo1"), addr(PEER))
        .unwrap();
    drain(&mut ep);
    let sent = run(&mut ep, t0, Duration::from_secs(40));
    assert_eq!(
        sent,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(events(&mut ep), vec![Event::TransactionTimeout { key }]);
}

#[test]
fn non_invite_client_proceeding_retransmits_every_t2_then_completes() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Register, "z9hG4bKr1");
    let key = ep.send_request(t0, req.clone(), addr(PEER)).unwrap();
    drain(&mut ep);
    ep.handle_datagram(
        t0 + Duration::from_millis(100),
        addr(PEER),
        &response_bytes(&req, 100, None),
    );
    assert!(matches!(&events(&mut ep)[..], [Event::Response { .. }]));
    let sent = run(&mut ep, t0, Duration::from_millis(9000));
    assert_eq!(sent, vec![500, 4500, 8500]);
    let t = t0 + Duration::from_secs(10);
    ep.handle_datagram(t, addr(PEER), &response_bytes(&req, 200, Some("b")));
    let ev = events(&mut ep);
    let [Event::Response { key: k, response }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!((k, response.status_code.code()), (&key, 200));
    // Retransmitted final absorbed; Timer K (T4) ends the transaction.
    ep.handle_datagram(t, addr(PEER), &response_bytes(&req, 200, Some("b")));
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.poll_timeout(), Some(t + Duration::from_secs(5)));
    ep.handle_timeout(t + Duration::from_secs(5));
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn invite_client_acks_non_2xx_and_reacks_retransmissions() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKi2");
    ep.send_request(t0, req.clone(), addr(PEER)).unwrap();
    drain(&mut ep);
    ep.handle_datagram(t0, addr(PEER), &response_bytes(&req, 180, Some("b")));
    ep.handle_datagram(t0, addr(PEER), &response_bytes(&req, 486, Some("b")));
    let out = drain(&mut ep);
    let [SipMessage::Request(ack)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.branch().as_deref(), Some("z9hG4bKi2"));
    assert_eq!(ack.to_tag().as_deref(), Some("b"));
    let codes: Vec<u16> = events(&mut ep)
        .iter()
        .map(|e| match e {
            Event::Response { response, .. } => response.status_code.code(),
            _ => 0,
        })
        .collect();
    assert_eq!(codes, vec![180, 486]);
    ep.handle_datagram(t0, addr(PEER), &response_bytes(&req, 486, Some("b")));
    assert_eq!(drain(&mut ep).len(), 1, "ACK retransmitted");
    assert!(events(&mut ep).is_empty());
    // Timer D: 32 s.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(32)));
}

#[test]
fn invite_client_accepted_state_passes_2xx_retransmissions() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKi3");
    ep.send_request(t0, req.clone(), addr(PEER)).unwrap();
    drain(&mut ep);
    ep.handle_datagram(t0, addr(PEER), &response_bytes(&req, 200, Some("b")));
    ep.handle_datagram(t0, addr(PEER), &response_bytes(&req, 200, Some("b")));
    assert_eq!(events(&mut ep).len(), 2);
    assert!(
        drain(&mut ep).is_empty(),
        "no ACK for 2xx from the transaction"
    );
    // Timer M = 64*T1, no timeout event.
    ep.handle_timeout(t0 + Duration::from_secs(32));
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.transaction_count(), 0);
    ep.handle_datagram(t0, addr(PEER), &response_bytes(&req, 200, Some("b")));
    assert_eq!(ep.stats().stray_responses, 1);
}

fn incoming(ep: &mut Endpoint, now: Instant, req: &Request) -> Vec<Event> {
    ep.handle_datagram(now, addr(PEER), &serialize(&req.clone().into()));
    events(ep)
}

#[test]
fn invite_server_sends_100_after_200ms_and_absorbs_retransmissions() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKs1");
    let ev = incoming(&mut ep, t0, &req);
    let [Event::IncomingRequest {
        key,
        request,
        source,
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(source, &addr(PEER));
    // received= stamped because 192.0.2.1 != 192.0.2.9
    assert_eq!(request.top_via().unwrap().received(), Some("192.0.2.9"));
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(200)));
    ep.handle_timeout(t0 + Duration::from_millis(200));
    let out = drain(&mut ep);
    let [SipMessage::Response(trying)] = &out[..] else {
        panic!()
    };
    assert_eq!(trying.status_code.code(), 100);
    // retransmitted INVITE: absorbed, 100 repeated
    assert!(incoming(&mut ep, t0 + Duration::from_millis(500), &req).is_empty());
    assert_eq!(drain(&mut ep).len(), 1);
    assert_eq!(ep.stats().retransmissions_absorbed, 1);
    // TU answers 486: Timer G retransmits 500ms,1s,2s,4s,4s... until ACK
    let t1 = t0 + Duration::from_secs(1);
    ep.send_response(t1, key, make_response(request, 486, Some("b")))
        .unwrap();
    assert_eq!(drain(&mut ep).len(), 1);
    let sent = run(&mut ep, t1, Duration::from_millis(8000));
    assert_eq!(sent, vec![500, 1500, 3500, 7500]);
    let ack = make_ack_non2xx(request, &make_response(request, 486, Some("b"))).unwrap();
    let now = t1 + Duration::from_millis(8000);
    assert!(incoming(&mut ep, now, &ack).is_empty(), "ACK absorbed");
    assert!(run(&mut ep, now, Duration::from_secs(4)).is_empty());
    ep.handle_timeout(now + Duration::from_secs(5)); // Timer I
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn invite_server_timer_h_reports_missing_ack() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKs2");
    let ev = incoming(&mut ep, t0, &req);
    let [Event::IncomingRequest { key, request, .. }] = &ev[..] else {
        panic!()
    };
    ep.send_response(t0, key, make_response(request, 603, Some("b")))
        .unwrap();
    drain(&mut ep);
    let sent = run(&mut ep, t0, Duration::from_secs(33));
    assert_eq!(sent.first(), Some(&500));
    assert_eq!(*sent.last().unwrap(), 31500);
    assert_eq!(
        events(&mut ep),
        vec![Event::TransactionTimeout { key: key.clone() }]
    );
}

#[test]
fn invite_server_2xx_retransmitted_until_ack_then_ack_event() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKs3");
    let ev = incoming(&mut ep, t0, &req);
    let [Event::IncomingRequest { key, request, .. }] = &ev[..] else {
        panic!()
    };
    ep.send_response(t0, key, make_response(request, 200, Some("b")))
        .unwrap();
    drain(&mut ep);
    assert_eq!(
        run(&mut ep, t0, Duration::from_millis(3600)),
        vec![500, 1500, 3500]
    );
    // retransmitted INVITE is absorbed silently in Accepted (RFC 6026)
    assert!(incoming(&mut ep, t0 + Duration::from_secs(3), &req).is_empty());
    assert!(drain(&mut ep).is_empty());
    let ack = RequestBuilder::new(Method::Ack, "sip:bob@192.0.2.9")
        .via("UDP", "192.0.2.1:5060", "z9hG4bKnewbranch")
        .from("sip:alice@example.com", None, "atag")
        .to("sip:bob@example.com", Some("b"))
        .call_id("call-1@192.0.2.1")
        .cseq(1)
        .build()
        .unwrap();
    let ev = incoming(&mut ep, t0 + Duration::from_secs(4), &ack);
    assert!(matches!(&ev[..], [Event::Ack { .. }]));
    assert!(run(
        &mut ep,
        t0 + Duration::from_secs(4),
        Duration::from_secs(40)
    )
    .is_empty());
    assert!(events(&mut ep).is_empty(), "acked 2xx: no timeout");
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn non_invite_server_absorbs_and_repeats_final_until_timer_j() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Options, "z9hG4bKn1");
    let ev = incoming(&mut ep, t0, &req);
    let [Event::IncomingRequest { key, request, .. }] = &ev[..] else {
        panic!()
    };
    assert!(incoming(&mut ep, t0, &req).is_empty());
    assert!(
        drain(&mut ep).is_empty(),
        "Trying: retransmission absorbed silently"
    );
    ep.send_response(t0, key, make_response(request, 200, Some("b")))
        .unwrap();
    assert_eq!(drain(&mut ep).len(), 1);
    assert!(incoming(&mut ep, t0 + Duration::from_secs(1), &req).is_empty());
    let out = drain(&mut ep);
    let [SipMessage::Response(r)] = &out[..] else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 200);
    assert_eq!(
        ep.send_response(t0, key, make_response(request, 500, None)),
        Err(TransactionError::AlreadyCompleted)
    );
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    ep.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn cancel_matches_invite_server_transaction() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKc1");
    let ev = incoming(&mut ep, t0, &req);
    let [Event::IncomingRequest { key, .. }] = &ev[..] else {
        panic!()
    };
    let cancel = crate::message::make_cancel(&req).unwrap();
    let ev = incoming(&mut ep, t0, &cancel);
    assert_eq!(ev.len(), 1);
    let Event::Cancelled {
        invite_key,
        cancel: c,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(invite_key, key);
    assert_eq!(c.method, Method::Cancel);
    let out = drain(&mut ep);
    let [SipMessage::Response(ok)] = &out[..] else {
        panic!()
    };
    assert_eq!(
        (ok.status_code.code(), ok.cseq().unwrap().method.as_str()),
        (200, "CANCEL")
    );
    // CANCEL for an unknown INVITE gets 481
    let mut unknown = request(Method::Invite, "z9hG4bKzz");
    unknown
        .headers
        .retain(|h| !matches!(h, rsip::Header::CallId(_)));
    unknown
        .headers
        .push(crate::message::make_header("Call-ID", "other@192.0.2.1"));
    let other = crate::message::make_cancel(&unknown).unwrap();
    assert!(incoming(&mut ep, t0, &other).is_empty());
    let out = drain(&mut ep);
    let [SipMessage::Response(r)] = &out[..] else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 481);
}

#[test]
fn client_cancel_builds_cancel_transaction() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let inv = ep
        .send_request(t0, request(Method::Invite, "z9hG4bKcc"), addr(PEER))
        .unwrap();
    drain(&mut ep);
    let ck = ep.cancel(t0, &inv).unwrap();
    assert_eq!(ck.method, "CANCEL");
    assert_eq!(ck.branch, "z9hG4bKcc");
    let out = drain(&mut ep);
    let [SipMessage::Request(c)] = &out[..] else {
        panic!()
    };
    assert_eq!(c.method, Method::Cancel);
}

#[test]
fn merged_request_gets_482() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let a = request(Method::Invite, "z9hG4bKm1");
    let b = request(Method::Invite, "z9hG4bKm2"); // same From tag/Call-ID/CSeq, other branch
    assert_eq!(incoming(&mut ep, t0, &a).len(), 1);
    assert!(incoming(&mut ep, t0, &b).is_empty());
    let out = drain(&mut ep);
    let [SipMessage::Response(r)] = &out[..] else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 482);
    assert_eq!(r.branch().as_deref(), Some("z9hG4bKm2"));
    assert_eq!(ep.stats().merged_requests, 1);
}

#[test]
fn rfc2543_requests_match_without_magic_cookie() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Options, "oldbranch1");
    assert_eq!(incoming(&mut ep, t0, &req).len(), 1);
    assert!(
        incoming(&mut ep, t0, &req).is_empty(),
        "retransmission matched"
    );
    assert_eq!(ep.stats().retransmissions_absorbed, 1);
}

#[test]
fn malformed_request_gets_400_and_is_counted() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let bytes = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n";
    ep.handle_datagram(t0, addr(PEER), bytes);
    let t = ep.poll_transmit().unwrap();
    assert_eq!(t.dest, addr(PEER));
    assert!(t
        .bytes
        .starts_with(b"SIP/2.0 400 Missing Call-ID header\r\n"));
    assert!(events(&mut ep).is_empty());
    ep.handle_datagram(t0, addr(PEER), b"garbage");
    assert!(ep.poll_transmit().is_none());
    ep.handle_datagram(t0, addr(PEER), b"\r\n\r\n");
    assert_eq!(ep.stats().parse_errors, 2);
    assert_eq!(ep.stats().error_responses_sent, 1);
}

#[test]
fn send_request_rejects_ack_and_missing_branch() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    assert_eq!(
        ep.send_request(t0, request(Method::Ack, "z9hG4bKq"), addr(PEER)),
        Err(TransactionError::AckNotTransaction)
    );
    assert_eq!(
        ep.send_request(t0, request(Method::Bye, "nocookie"), addr(PEER)),
        Err(TransactionError::MissingBranch)
    );
}

#[test]
fn custom_t1_scales_timers() {
    let cfg = Config {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        ..Config::default()
    };
    let mut ep = Endpoint::new(cfg);
    let t0 = Instant::now();
    ep.send_request(t0, request(Method::Options, "z9hG4bKt1"), addr(PEER))
        .unwrap();
    drain(&mut ep);
    let sent = run(&mut ep, t0, Duration::from_secs(10));
    assert_eq!(&sent[..5], &[100, 300, 700, 1100, 1500]);
    assert_eq!(*sent.last().unwrap(), 6300);
    assert_eq!(events(&mut ep).len(), 1); // timeout at 6.4 s
}

// ---- reliable transports (RFC 3261 §17 with TCP/TLS) ----

const CONN: ConnectionId = ConnectionId(7);

fn tcp() -> Target {
    Target::stream(addr(PEER), Transport::Tcp, Some(CONN))
}

#[test]
fn reliable_invite_client_no_timer_a_b_still_fires() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let key = ep
        .send_request_to(t0, request(Method::Invite, "z9hG4bKt1"), tcp())
        .unwrap();
    let t = ep.poll_transmit().unwrap();
    assert_eq!(
        (t.transport, t.conn, t.dest),
        (Transport::Tcp, Some(CONN), addr(PEER))
    );
    // Only Timer B (64*T1 = 32 s) is armed; nothing is retransmitted.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    assert!(run(&mut ep, t0, Duration::from_secs(40)).is_empty());
    assert_eq!(events(&mut ep), vec![Event::TransactionTimeout { key }]);
}

#[test]
fn reliable_invite_client_timer_d_is_zero() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKt2");
    ep.send_request_to(t0, req.clone(), tcp()).unwrap();
    drain(&mut ep);
    let t = t0 + Duration::from_millis(300);
    ep.handle_stream_message(
        t,
        CONN,
        Transport::Tcp,
        addr(PEER),
        &response_bytes(&req, 486, Some("b")),
    );
    // ACK goes out on the same connection.
    let ack = ep.poll_transmit().unwrap();
    assert_eq!(ack.conn, Some(CONN));
    assert!(ack.bytes.starts_with(b"ACK "));
    assert_eq!(ep.poll_timeout(), Some(t), "Timer D = 0");
    ep.handle_timeout(t);
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn reliable_non_invite_client_no_timer_e_and_timer_k_zero() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Register, "z9hG4bKt3");
    ep.send_request_to(t0, req.clone(), tcp()).unwrap();
    drain(&mut ep);
    assert_eq!(
        ep.poll_timeout(),
        Some(t0 + Duration::from_secs(32)),
        "only F"
    );
    let t = t0 + Duration::from_secs(2);
    ep.handle_stream_message(
        t,
        CONN,
        Transport::Tcp,
        addr(PEER),
        &response_bytes(&req, 200, Some("b")),
    );
    assert_eq!(events(&mut ep).len(), 1);
    assert_eq!(ep.poll_timeout(), Some(t), "Timer K = 0");
    ep.handle_timeout(t);
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn reliable_invite_server_no_timer_g_and_timer_i_zero() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Invite, "z9hG4bKt4");
    ep.handle_stream_message(
        t0,
        CONN,
        Transport::Tcp,
        addr(PEER),
        &serialize(&req.clone().into()),
    );
    let ev = events(&mut ep);
    let [Event::IncomingRequest { key, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(ep.target_of(key), Some(tcp()));
    ep.send_response(t0, key, make_response(&req, 486, Some("x")))
        .unwrap();
    let r = ep.poll_transmit().unwrap();
    assert_eq!((r.transport, r.conn), (Transport::Tcp, Some(CONN)));
    // Timer H (32 s) only: no Timer G retransmissions.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    let t = t0 + Duration::from_secs(1);
    let ack = make_ack_non2xx(&req, &make_response(&req, 486, Some("x"))).unwrap();
    ep.handle_stream_message(t, CONN, Transport::Tcp, addr(PEER), &serialize(&ack.into()));
    assert_eq!(ep.poll_timeout(), Some(t), "Timer I = 0");
    ep.handle_timeout(t);
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.poll_transmit().is_none());
}

#[test]
fn reliable_non_invite_server_timer_j_zero() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let req = request(Method::Options, "z9hG4bKt5");
    ep.handle_stream_message(
        t0,
        CONN,
        Transport::Tls,
        addr(PEER),
        &serialize(&req.clone().into()),
    );
    let ev = events(&mut ep);
    let [Event::IncomingRequest { key, .. }] = &ev[..] else {
        panic!("{ev:?}")
    };
    ep.send_response(t0, key, make_response(&req, 200, Some("x")))
        .unwrap();
    assert_eq!(ep.poll_transmit().unwrap().transport, Transport::Tls);
    assert_eq!(ep.poll_timeout(), Some(t0), "Timer J = 0");
    ep.handle_timeout(t0);
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn connection_loss_fails_pending_client_transactions() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let key = ep
        .send_request_to(t0, request(Method::Options, "z9hG4bKt6"), tcp())
        .unwrap();
    let other = ep
        .send_request(t0, request(Method::Options, "z9hG4bKt7"), addr(PEER))
        .unwrap();
    drain(&mut ep);
    ep.connection_closed(CONN);
    assert_eq!(events(&mut ep), vec![Event::TransactionTimeout { key }]);
    assert_eq!(ep.stats().transport_errors, 1);
    assert!(ep.target_of(&other).is_some());
    assert_eq!(ep.transaction_count(), 1);
}

#[test]
fn malformed_stream_request_answered_on_its_connection() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKq\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    ep.handle_stream_message(t0, CONN, Transport::Tcp, addr(PEER), bad);
    let t = ep.poll_transmit().unwrap();
    assert_eq!((t.conn, t.transport), (Some(CONN), Transport::Tcp));
    assert!(t.bytes.starts_with(b"SIP/2.0 400"));
}

#[test]
fn udp_api_unchanged_transmits_default_to_udp() {
    let mut ep = Endpoint::new(Config::default());
    ep.send_request(
        Instant::now(),
        request(Method::Options, "z9hG4bKt8"),
        addr(PEER),
    )
    .unwrap();
    let t = ep.poll_transmit().unwrap();
    assert_eq!((t.transport, t.conn), (Transport::Udp, None));
}

/// The timer heap: with many transactions whose deadlines move (a 486 answered, then an
/// ACK), `poll_timeout` is always the earliest real deadline, and `handle_timeout` ends
/// exactly the transactions that are due, leaving no stale timer behind.
#[test]
fn timer_heap_stays_exact_with_many_transactions() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let n: u32 = 300;
    let mut reqs = Vec::new();
    for i in 0..n {
        let t = t0 + Duration::from_millis(u64::from(i));
        let req = RequestBuilder::new(Method::Invite, "sip:bob@192.0.2.9")
            .via("UDP", "192.0.2.1:5060", &format!("z9hG4bKheap{i}"))
            .from("sip:alice@example.com", None, "atag")
            .to("sip:bob@example.com", None)
            .call_id(&format!("heap-{i}@192.0.2.1"))
            .cseq(1)
            .build()
            .unwrap();
        ep.handle_datagram(t, addr(PEER), &serialize(&req.clone().into()));
        let ev = events(&mut ep);
        let [Event::IncomingRequest { key, .. }] = &ev[..] else {
            panic!("{ev:?}")
        };
        // Earlier requests were answered (their 100 Trying timers cancelled, Timer G at
        // 500 ms from t0 or later): the earliest deadline is this request's 100 Trying.
        assert_eq!(
            ep.poll_timeout(),
            Some(t + Config::default().trying_delay),
            "{i}"
        );
        ep.send_response(t, key, make_response(&req, 486, Some("x")))
            .unwrap();
        reqs.push((t, req));
    }
    drain(&mut ep);
    // Every transaction now waits for Timer G (T1) from its own response.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    // The even ones are ACKed at t0 + 400 ms: Timer I (T4 = 5 s) replaces G and H.
    let t_ack = t0 + Duration::from_millis(400);
    for (_, req) in reqs.iter().step_by(2) {
        let ack = make_ack_non2xx(req, &make_response(req, 486, Some("x"))).unwrap();
        ep.handle_datagram(t_ack, addr(PEER), &serialize(&ack.into()));
    }
    // Odd ones still retransmit: the earliest is transaction 1's Timer G at 501 ms.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(501)));
    // Just after Timer I of the ACKed ones: the odd ones (Timer H at 32 s) remain.
    let t_i = t_ack + Duration::from_secs(5);
    while let Some(at) = ep.poll_timeout().filter(|at| *at <= t_i) {
        ep.handle_timeout(at);
    }
    drain(&mut ep);
    assert_eq!(ep.transaction_count(), (n / 2) as usize);
    // Then Timer H ends the rest, at 32 s after each one's 486.
    ep.handle_timeout(t0 + Duration::from_secs(33));
    assert_eq!(ep.transaction_count(), 0);
    assert_eq!(ep.poll_timeout(), None, "no stale timer left");
    assert!(ep.timers.is_empty());
}

/// A refused TCP connect fails the pending client transactions queued for that address
/// and transport at once; others (another address, UDP) keep waiting for their timers.
#[test]
fn unreachable_destination_fails_pending_client_transactions() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let tcp_target = Target::stream(addr(PEER), Transport::Tcp, None);
    let a = ep
        .send_request_to(t0, request(Method::Invite, "z9hG4bKu1"), tcp_target)
        .unwrap();
    let b = ep
        .send_request_to(t0, request(Method::Options, "z9hG4bKu2"), tcp_target)
        .unwrap();
    let other = Target::stream(addr("192.0.2.10:5060"), Transport::Tcp, None);
    ep.send_request_to(t0, request(Method::Options, "z9hG4bKu3"), other)
        .unwrap();
    ep.send_request(t0, request(Method::Options, "z9hG4bKu4"), addr(PEER))
        .unwrap();
    drain(&mut ep);
    let mut returned = ep.unreachable(Transport::Tcp, addr(PEER));
    returned.sort();
    let mut failed: Vec<TransactionKey> = events(&mut ep)
        .into_iter()
        .map(|e| match e {
            Event::TransactionTimeout { key } => key,
            other => panic!("{other:?}"),
        })
        .collect();
    failed.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(failed, want);
    assert_eq!(returned, want);
    assert_eq!(ep.transaction_count(), 2);
    assert_eq!(ep.stats().transport_errors, 2);
}

/// An ACK for a 2xx is matched through the `awaiting_ack` index: of three answered
/// INVITEs (other Call-IDs), only the one it names stops retransmitting its 2xx, and the
/// index forgets every entry when its transaction ends.
#[test]
fn ack_for_2xx_matches_only_its_own_invite_and_the_index_empties() {
    let mut ep = Endpoint::new(Config::default());
    let t0 = Instant::now();
    let invites: Vec<Request> = (1..=3)
        .map(|i| {
            RequestBuilder::new(Method::Invite, "sip:bob@192.0.2.9")
                .via("UDP", "192.0.2.1:5060", &format!("z9hG4bKidx{i}"))
                .from("sip:alice@example.com", None, "atag")
                .to("sip:bob@example.com", None)
                .call_id(&format!("call-{i}@192.0.2.1"))
                .cseq(1)
                .build()
                .unwrap()
        })
        .collect();
    for req in &invites {
        let ev = incoming(&mut ep, t0, req);
        let [Event::IncomingRequest { key, request, .. }] = &ev[..] else {
            panic!()
        };
        ep.send_response(t0, key, make_response(request, 200, Some("b")))
            .unwrap();
    }
    drain(&mut ep);
    assert_eq!(ep.awaiting_ack.len(), 3);
    let ack = RequestBuilder::new(Method::Ack, "sip:bob@192.0.2.9")
        .via("UDP", "192.0.2.1:5060", "z9hG4bKidxack")
        .from("sip:alice@example.com", None, "atag")
        .to("sip:bob@example.com", Some("b"))
        .call_id("call-2@192.0.2.1")
        .cseq(1)
        .build()
        .unwrap();
    let ev = incoming(&mut ep, t0 + Duration::from_millis(100), &ack);
    assert!(matches!(&ev[..], [Event::Ack { .. }]));
    assert_eq!(ep.awaiting_ack.len(), 2);
    // The first retransmission (at T1): the two unacknowledged 2xx only.
    let sent = run(&mut ep, t0, Duration::from_millis(600));
    assert_eq!(sent, vec![500, 500]);
    // After Timer H/L every transaction and index entry is gone.
    let _ = run(&mut ep, t0, Duration::from_secs(70));
    assert_eq!(ep.transaction_count(), 0);
    assert!(ep.awaiting_ack.is_empty());
}
