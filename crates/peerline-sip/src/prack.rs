//! Reliable provisional responses (RFC 3262, `100rel` and PRACK), sans-IO: UAS side
//! ([`ReliableProvisionals`]) and UAC side ([`PrackTracker`]).
//!
//! A UAS that sends a provisional response reliably adds `Require: 100rel` and an `RSeq`
//! (§3), retransmits it with T1 doubling until a PRACK carrying the matching `RAck`
//! arrives, and rejects the INVITE with a 5xx if none arrives within 64*T1. It sends no
//! second reliable provisional before the first is acknowledged. [`ReliableProvisionals`]
//! is that state for one INVITE server transaction; the TU sends what it returns and
//! calls [`ReliableProvisionals::handle_timeout`] at
//! [`ReliableProvisionals::poll_timeout`]. Time is passed in.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use peerline_sip::prack::{Rack, ReliableProvisionals, Timeout};
//! # use peerline_sip::message::{make_response, RequestBuilder};
//! # let invite = RequestBuilder::new(rsip::Method::Invite, "sip:bob@192.0.2.1")
//! #     .via("UDP", "192.0.2.2:5060", "z9hG4bK1").from("sip:a@192.0.2.2", None, "t")
//! #     .to("sip:bob@192.0.2.1", None).call_id("c").cseq(1).build().unwrap();
//! let t0 = Instant::now();
//! let mut rel = ReliableProvisionals::new(7, Duration::from_millis(500));
//! let ringing = rel.send(t0, make_response(&invite, 180, Some("b"))).unwrap();
//! assert_eq!(peerline_sip::message::header_value(&ringing, "RSeq"), Some("7"));
//! assert!(matches!(rel.handle_timeout(t0 + Duration::from_millis(500)), Some(Timeout::Retransmit(_))));
//! assert!(rel.acknowledge(&Rack { rseq: 7, cseq: 1, method: "INVITE".into() }, 1));
//! assert_eq!(rel.poll_timeout(), None);
//! ```

use std::time::{Duration, Instant};

use rsip::{Request, Response};

use crate::message::{header_value, header_values, make_header, MessageExt};

/// How a request asks for reliable provisional responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want100rel {
    /// `Require: 100rel`: provisional responses must be reliable.
    Required,
    /// `Supported: 100rel`: the UAS may send them reliably.
    Supported,
    /// Neither: provisional responses must not be reliable.
    No,
}

fn lists_100rel<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values
        .into_iter()
        .flat_map(crate::syntax::split_list)
        .any(|t| t.trim().eq_ignore_ascii_case("100rel"))
}

/// Whether `request` requires, supports or does not know `100rel` (RFC 3262 §3).
pub fn wants_100rel(request: &Request) -> Want100rel {
    if lists_100rel(header_values(request, "Require")) {
        Want100rel::Required
    } else if lists_100rel(header_values(request, "Supported")) {
        Want100rel::Supported
    } else {
        Want100rel::No
    }
}

/// A parsed `RAck` header: `response-num CSeq-num Method` (RFC 3262 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rack {
    /// The RSeq of the provisional response acknowledged.
    pub rseq: u32,
    /// The CSeq number of the request it answered.
    pub cseq: u32,
    /// The method of that request.
    pub method: String,
}

impl Rack {
    /// Parses an `RAck` value; `None` when it is not three well-formed fields.
    pub fn parse(value: &str) -> Option<Self> {
        let mut it = value.split_ascii_whitespace();
        let rseq = it.next()?.parse().ok()?;
        let cseq = it.next()?.parse().ok()?;
        let method = it.next()?;
        if it.next().is_some() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        Some(Self {
            rseq,
            cseq,
            method: method.to_ascii_uppercase(),
        })
    }

    /// The `RAck` of `request` (a PRACK), if it has a well-formed one.
    pub fn of(request: &Request) -> Option<Self> {
        header_value(request, "RAck").and_then(Self::parse)
    }
}

/// Why a reliable provisional response cannot be sent now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrackError {
    /// RFC 3262 §3: not before the previous one is acknowledged.
    #[error("a reliable provisional response is still unacknowledged")]
    Unacknowledged,
    /// Only 101-199 can be sent reliably.
    #[error("status {0} cannot be sent reliably")]
    NotProvisional(u16),
}

/// What a timer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timeout {
    /// Send this reliable provisional response again.
    Retransmit(Response),
    /// 64*T1 without a PRACK: reject the INVITE with a 5xx (RFC 3262 §3).
    GiveUp,
}

#[derive(Debug, Clone)]
struct Pending {
    rseq: u32,
    response: Response,
    retransmit_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

/// Reliable provisional responses of one INVITE server transaction (see module docs).
#[derive(Debug, Clone)]
pub struct ReliableProvisionals {
    next_rseq: u32,
    t1: Duration,
    pending: Option<Pending>,
}

impl ReliableProvisionals {
    /// `first_rseq` should be random in 1..2^31 (RFC 3262 §3); `t1` is the RTT estimate.
    pub fn new(first_rseq: u32, t1: Duration) -> Self {
        Self {
            next_rseq: first_rseq.clamp(1, 1 << 31),
            t1,
            pending: None,
        }
    }

    /// Makes `response` (101-199) reliable: adds `Require: 100rel` and the next `RSeq`,
    /// and keeps it for retransmission. Returns what to send.
    pub fn send(&mut self, now: Instant, mut response: Response) -> Result<Response, PrackError> {
        let code = response.status_code.code();
        if !(101..=199).contains(&code) {
            return Err(PrackError::NotProvisional(code));
        }
        if self.pending.is_some() {
            return Err(PrackError::Unacknowledged);
        }
        let rseq = self.next_rseq;
        self.next_rseq = self.next_rseq.wrapping_add(1).max(1);
        response.headers.push(make_header("Require", "100rel"));
        response
            .headers
            .push(make_header("RSeq", &rseq.to_string()));
        self.pending = Some(Pending {
            rseq,
            response: response.clone(),
            retransmit_at: now + self.t1,
            interval: self.t1,
            give_up_at: now + 64 * self.t1,
        });
        Ok(response)
    }

    /// Whether a reliable provisional response awaits its PRACK.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A PRACK arrived for the INVITE with CSeq number `invite_cseq`: `true` when its
    /// RAck acknowledges the pending response (retransmissions stop; answer the PRACK
    /// with 200), `false` otherwise (answer 481, RFC 3262 §3). A PRACK for a response
    /// already acknowledged is also answered 200 (a retransmitted PRACK whose 200 was
    /// lost), which `acknowledged_before` tells.
    pub fn acknowledge(&mut self, rack: &Rack, invite_cseq: u32) -> bool {
        if rack.cseq != invite_cseq || rack.method != "INVITE" {
            return false;
        }
        match &self.pending {
            Some(p) if p.rseq == rack.rseq => {
                self.pending = None;
                true
            }
            Some(_) => false,
            None => self.acknowledged_before(rack.rseq),
        }
    }

    /// Whether `rseq` belongs to a response sent and acknowledged already.
    pub fn acknowledged_before(&self, rseq: u32) -> bool {
        let pending_rseq = self.pending.as_ref().map(|p| p.rseq);
        rseq < self.next_rseq && Some(rseq) != pending_rseq && rseq >= 1
    }

    /// The final response went out: nothing more to retransmit.
    pub fn finish(&mut self) {
        self.pending = None;
    }

    /// When [`ReliableProvisionals::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .map(|p| p.retransmit_at.min(p.give_up_at))
    }

    /// Retransmits (T1 doubling, RFC 3262 §3 says "doubling", with no cap at T2) or
    /// gives up after 64*T1.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timeout> {
        let p = self.pending.as_mut()?;
        if now >= p.give_up_at {
            self.pending = None;
            return Some(Timeout::GiveUp);
        }
        if now < p.retransmit_at {
            return None;
        }
        p.interval *= 2;
        p.retransmit_at = now + p.interval;
        Some(Timeout::Retransmit(p.response.clone()))
    }
}

/// Parses an `RSeq` value: `1*DIGIT` in 1..=2^32-1 (RFC 3262 §7.1); `None` otherwise.
pub fn parse_rseq(value: &str) -> Option<u32> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|&n| n >= 1)
}

/// What the UAC does with a provisional response to its INVITE ([`PrackTracker`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisional {
    /// Not sent reliably (no `Require: 100rel`): nothing to acknowledge.
    Unreliable,
    /// `Require: 100rel` but unusable (reason given): treated as unreliable, the call
    /// goes on.
    Invalid(&'static str),
    /// A retransmission of one already acknowledged: no new PRACK (RFC 3262 §4).
    Retransmission,
    /// Not one higher than the last acknowledged RSeq of its early dialog: neither
    /// acknowledged nor processed (RFC 3262 §4).
    OutOfOrder,
    /// The next reliable provisional response of its early dialog: send a PRACK with
    /// this `RAck`.
    Prack(Rack),
}

/// UAC side of RFC 3262 for one INVITE: which reliable provisional responses to PRACK,
/// with RSeq ordering per early dialog (To tag), and the CSeq numbers of the PRACKs
/// (after the INVITE's and each other's, so the confirmed dialog continues after them).
///
/// ```
/// use peerline_sip::prack::{PrackTracker, Provisional, Rack};
/// # use peerline_sip::message::{make_header, make_response, RequestBuilder};
/// # let invite = RequestBuilder::new(rsip::Method::Invite, "sip:bob@192.0.2.1")
/// #     .via("UDP", "192.0.2.2:5060", "z9hG4bK1").from("sip:a@192.0.2.2", None, "t")
/// #     .to("sip:bob@192.0.2.1", None).call_id("c").cseq(1).build().unwrap();
/// let mut tracker = PrackTracker::new(1);
/// let mut ringing = make_response(&invite, 180, Some("b"));
/// ringing.headers.push(make_header("Require", "100rel"));
/// ringing.headers.push(make_header("RSeq", "1"));
/// let rack = Rack { rseq: 1, cseq: 1, method: "INVITE".into() };
/// assert_eq!(tracker.on_provisional(&ringing), Provisional::Prack(rack));
/// assert_eq!(tracker.next_cseq(), 2);
/// assert_eq!(tracker.on_provisional(&ringing), Provisional::Retransmission);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrackTracker {
    invite_cseq: u32,
    /// Last RSeq acknowledged, per To tag.
    last_rseq: Vec<(String, u32)>,
    /// Last CSeq number used (the INVITE's, then the PRACKs').
    local_seq: u32,
}

impl PrackTracker {
    /// For the INVITE with CSeq number `invite_cseq`.
    pub fn new(invite_cseq: u32) -> Self {
        Self {
            invite_cseq,
            last_rseq: Vec::new(),
            local_seq: invite_cseq,
        }
    }

    /// The CSeq number of the INVITE tracked.
    pub fn invite_cseq(&self) -> u32 {
        self.invite_cseq
    }

    /// Classifies a response to the INVITE; a [`Provisional::Prack`] is recorded as
    /// acknowledged (its retransmissions become [`Provisional::Retransmission`]).
    pub fn on_provisional(&mut self, response: &Response) -> Provisional {
        let code = response.status_code.code();
        if !(101..=199).contains(&code) || !lists_100rel(header_values(response, "Require")) {
            return Provisional::Unreliable;
        }
        let Some(rseq) = header_value(response, "RSeq").and_then(parse_rseq) else {
            return Provisional::Invalid("RSeq missing or invalid");
        };
        match response.cseq() {
            Some(c) if c.seq == self.invite_cseq && c.method.eq_ignore_ascii_case("INVITE") => {}
            _ => return Provisional::Invalid("CSeq is not the INVITE's"),
        }
        let Some(tag) = response.to_tag() else {
            return Provisional::Invalid("no To tag (no early dialog)");
        };
        match self.last_rseq.iter_mut().find(|(t, _)| *t == tag) {
            None => self.last_rseq.push((tag, rseq)),
            Some((_, last)) if rseq <= *last => return Provisional::Retransmission,
            Some((_, last)) if Some(rseq) != last.checked_add(1) => return Provisional::OutOfOrder,
            Some((_, last)) => *last = rseq,
        }
        Provisional::Prack(Rack {
            rseq,
            cseq: self.invite_cseq,
            method: "INVITE".into(),
        })
    }

    /// The CSeq number for the next PRACK (and records it as used).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_seq = self.local_seq.wrapping_add(1).max(1);
        self.local_seq
    }

    /// The last CSeq number used: the INVITE's or the last PRACK's.
    pub fn last_cseq(&self) -> u32 {
        self.local_seq
    }
}

impl std::fmt::Display for Rack {
    /// The `RAck` header value: `RSeq CSeq-num Method`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

/// The CSeq number of `request` (0 when it has none).
pub fn cseq_number(request: &Request) -> u32 {
    request.cseq().map(|c| c.seq).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{make_response, RequestBuilder};
    use rsip::Method;

    fn invite(extra: &[(&str, &str)]) -> Request {
        let mut r = RequestBuilder::new(Method::Invite, "sip:bob@192.0.2.1")
            .via("UDP", "192.0.2.2:5060", "z9hG4bK1")
            .from("sip:a@192.0.2.2", None, "t")
            .to("sip:bob@192.0.2.1", None)
            .call_id("c")
            .cseq(4)
            .build()
            .unwrap();
        for (n, v) in extra {
            r.headers.push(make_header(n, v));
        }
        r
    }

    fn rack(rseq: u32, cseq: u32) -> Rack {
        Rack {
            rseq,
            cseq,
            method: "INVITE".into(),
        }
    }

    #[test]
    fn require_supported_or_neither() {
        assert_eq!(wants_100rel(&invite(&[])), Want100rel::No);
        assert_eq!(
            wants_100rel(&invite(&[("Require", "timer, 100REL")])),
            Want100rel::Required
        );
        assert_eq!(
            wants_100rel(&invite(&[("Supported", "replaces,100rel")])),
            Want100rel::Supported
        );
        assert_eq!(
            wants_100rel(&invite(&[("Supported", "100relx")])),
            Want100rel::No
        );
    }

    #[test]
    fn rack_parses_three_fields_only() {
        assert_eq!(Rack::parse("776656 1 INVITE"), Some(rack(776656, 1)));
        assert_eq!(Rack::parse("  5  2  invite "), Some(rack(5, 2)));
        for bad in [
            "",
            "1 INVITE",
            "x 1 INVITE",
            "1 2 INVITE extra",
            "1 2 IN/VITE",
            "1 -2 INVITE",
        ] {
            assert_eq!(Rack::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retransmits_with_doubling_until_prack_then_stops() {
        let t1 = Duration::from_millis(500);
        let t0 = Instant::now();
        let inv = invite(&[("Require", "100rel")]);
        let mut rel = ReliableProvisionals::new(100, t1);
        let sent = rel.send(t0, make_response(&inv, 180, Some("b"))).unwrap();
        assert_eq!(header_value(&sent, "RSeq"), Some("100"));
        assert_eq!(header_value(&sent, "Require"), Some("100rel"));
        // A second reliable provisional must wait for the PRACK.
        assert_eq!(
            rel.send(t0, make_response(&inv, 183, Some("b"))),
            Err(PrackError::Unacknowledged)
        );
        let mut at = Vec::new();
        while let Some(t) = rel.poll_timeout() {
            if t > t0 + Duration::from_secs(4) {
                break;
            }
            assert!(matches!(rel.handle_timeout(t), Some(Timeout::Retransmit(r)) if r == sent));
            at.push((t - t0).as_millis());
        }
        assert_eq!(at, vec![500, 1500, 3500]);
        // A PRACK for another INVITE or another RSeq does not count.
        assert!(!rel.acknowledge(&rack(100, 3), 4));
        assert!(!rel.acknowledge(&rack(99, 4), 4));
        assert!(rel.is_pending());
        assert!(rel.acknowledge(&rack(100, 4), 4));
        assert_eq!(rel.poll_timeout(), None);
        // Its retransmission (our 200 was lost) is answered 200 again.
        assert!(rel.acknowledge(&rack(100, 4), 4));
        // The next reliable provisional takes the next RSeq.
        let next = rel.send(t0, make_response(&inv, 183, Some("b"))).unwrap();
        assert_eq!(header_value(&next, "RSeq"), Some("101"));
    }

    fn provisional(
        inv: &Request,
        code: u16,
        tag: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Response {
        let mut r = make_response(inv, code, tag);
        for (n, v) in extra {
            r.headers.push(make_header(n, v));
        }
        r
    }

    #[test]
    fn rseq_is_digits_in_range() {
        assert_eq!(parse_rseq("1"), Some(1));
        assert_eq!(parse_rseq(" 4294967295 "), Some(u32::MAX));
        for bad in ["", "0", "-1", "+1", "1 2", "4294967296", "x", "1.0"] {
            assert_eq!(parse_rseq(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uac_pracks_each_reliable_provisional_once_in_order() {
        let inv = invite(&[("Supported", "100rel")]);
        let mut t = PrackTracker::new(4);
        let rel = |rseq: &str| {
            provisional(
                &inv,
                183,
                Some("b"),
                &[("Require", "100rel"), ("RSeq", rseq)],
            )
        };
        // Unreliable ones are not acknowledged.
        assert_eq!(
            t.on_provisional(&provisional(&inv, 180, Some("b"), &[("RSeq", "3")])),
            Provisional::Unreliable
        );
        assert_eq!(t.on_provisional(&rel("7")), Provisional::Prack(rack(7, 4)));
        assert_eq!(Rack::parse(&rack(7, 4).to_string()), Some(rack(7, 4)));
        assert_eq!(rack(7, 4).to_string(), "7 4 INVITE");
        assert_eq!(t.next_cseq(), 5);
        // Retransmission: no second PRACK; a gap: not acknowledged.
        assert_eq!(t.on_provisional(&rel("7")), Provisional::Retransmission);
        assert_eq!(t.on_provisional(&rel("6")), Provisional::Retransmission);
        assert_eq!(t.on_provisional(&rel("9")), Provisional::OutOfOrder);
        assert_eq!(t.on_provisional(&rel("8")), Provisional::Prack(rack(8, 4)));
        assert_eq!(t.next_cseq(), 6);
        assert_eq!(t.last_cseq(), 6);
        // Another fork (To tag) has its own RSeq space.
        let other = provisional(
            &inv,
            180,
            Some("c"),
            &[("Require", "100rel"), ("RSeq", "1")],
        );
        assert_eq!(t.on_provisional(&other), Provisional::Prack(rack(1, 4)));
        assert_eq!(t.invite_cseq(), 4);
    }

    #[test]
    fn uac_ignores_unusable_reliability() {
        let inv = invite(&[]);
        let mut t = PrackTracker::new(4);
        for (resp, why) in [
            (
                provisional(&inv, 180, Some("b"), &[("Require", "100rel")]),
                "RSeq missing or invalid",
            ),
            (
                provisional(
                    &inv,
                    180,
                    Some("b"),
                    &[("Require", "100rel"), ("RSeq", "0")],
                ),
                "RSeq missing or invalid",
            ),
            (
                provisional(&inv, 180, None, &[("Require", "100rel"), ("RSeq", "1")]),
                "no To tag (no early dialog)",
            ),
        ] {
            assert_eq!(t.on_provisional(&resp), Provisional::Invalid(why));
        }
        // A response to an earlier INVITE (before a 401 retry) is not ours.
        let mut t = PrackTracker::new(5);
        let old = provisional(
            &inv,
            180,
            Some("b"),
            &[("Require", "100rel"), ("RSeq", "1")],
        );
        assert_eq!(
            t.on_provisional(&old),
            Provisional::Invalid("CSeq is not the INVITE's")
        );
        // Finals are never PRACKed.
        let ok = provisional(
            &inv,
            200,
            Some("b"),
            &[("Require", "100rel"), ("RSeq", "1")],
        );
        assert_eq!(
            PrackTracker::new(4).on_provisional(&ok),
            Provisional::Unreliable
        );
    }

    #[test]
    fn gives_up_after_64_t1_and_refuses_finals() {
        let t1 = Duration::from_millis(500);
        let t0 = Instant::now();
        let inv = invite(&[]);
        let mut rel = ReliableProvisionals::new(0, t1);
        assert_eq!(
            rel.send(t0, make_response(&inv, 200, Some("b"))),
            Err(PrackError::NotProvisional(200))
        );
        let sent = rel.send(t0, make_response(&inv, 180, Some("b"))).unwrap();
        assert_eq!(header_value(&sent, "RSeq"), Some("1"), "RSeq is at least 1");
        let mut last = None;
        for _ in 0..20 {
            let Some(t) = rel.poll_timeout() else { break };
            last = rel.handle_timeout(t);
        }
        assert_eq!(last, Some(Timeout::GiveUp));
        assert_eq!(rel.poll_timeout(), None);
        assert!(!rel.is_pending());
    }
}
