//! Dialog state (RFC 3261 §12): creation on the UAC side from a 1xx/2xx with a
//! To tag, on the UAS side from the INVITE; in-dialog request construction with
//! loose/strict routing; remote CSeq ordering; forked early dialogs.

use crate::message::{MessageExt, RequestBuilder};
use crate::syntax::{self, NameAddr};
use rsip::{Method, Request, Response};
use std::collections::HashMap;
use thiserror::Error;

/// Dialog errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialogError {
    /// A header needed to build the dialog is missing or unparsable.
    #[error("missing or invalid {0} header")]
    Header(&'static str),
    /// The response has no To tag (cannot create a dialog).
    #[error("response without To tag")]
    NoToTag,
    /// The message does not belong to this dialog.
    #[error("message does not match the dialog")]
    Mismatch,
    /// Remote CSeq lower than (or equal to) a previous one: answer 500.
    #[error("out-of-order CSeq {got} (last {last})")]
    OutOfOrder {
        /// Last remote CSeq seen.
        last: u32,
        /// CSeq of the rejected request.
        got: u32,
    },
    /// The response cannot create a dialog (100 or >= 300).
    #[error("status {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// Building the request failed.
    #[error(transparent)]
    Build(#[from] crate::BuildError),
}

impl DialogError {
    /// Status to answer an offending in-dialog request with (500 for out-of-order,
    /// 481 for mismatch, 400 otherwise).
    pub fn status_code(&self) -> u16 {
        match self {
            DialogError::OutOfOrder { .. } => 500,
            DialogError::Mismatch => 481,
            _ => 400,
        }
    }
}

/// Dialog identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Early (after 1xx with tag) or confirmed (after 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// One dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Identifier.
    pub id: DialogId,
    /// Early or confirmed.
    pub state: DialogState,
    /// Our URI with our tag (From of our requests).
    pub local: NameAddr,
    /// Peer URI with its tag (To of our requests).
    pub remote: NameAddr,
    /// Peer's Contact URI: Request-URI of our requests.
    pub remote_target: String,
    /// Route set, in the order Route headers are written (each `<uri;params>`).
    pub route_set: Vec<String>,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Last CSeq number received from the peer.
    pub remote_seq: Option<u32>,
    /// Our Contact URI, put in target-refreshing requests.
    pub local_contact: Option<String>,
    /// True if the dialog was created by the peer (we are UAS).
    pub is_uas: bool,
}

fn record_routes<M: rsip::message::HasHeaders>(m: &M) -> Vec<String> {
    crate::message::header_values(m, "Record-Route")
        .into_iter()
        .flat_map(syntax::split_list)
        .map(str::to_string)
        .collect()
}

fn contact_target<M: MessageExt>(m: &M) -> Option<String> {
    m.contact().map(|c| c.uri)
}

impl Dialog {
    /// UAC side: dialog from a 101-199 (with To tag) or 2xx response to `request`.
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let code = response.status_code.code();
        if !(101..300).contains(&code) {
            return Err(DialogError::NotDialogCreating(code));
        }
        let local = request.from_addr().ok_or(DialogError::Header("From"))?;
        let remote = response.to_addr().ok_or(DialogError::Header("To"))?;
        let local_tag = local.tag().ok_or(DialogError::Header("From"))?.to_string();
        let remote_tag = remote.tag().ok_or(DialogError::NoToTag)?.to_string();
        let call_id = request.call_id().ok_or(DialogError::Header("Call-ID"))?;
        let cseq = request.cseq().ok_or(DialogError::Header("CSeq"))?;
        let mut route_set = record_routes(response);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag,
                remote_tag,
            },
            state: if code >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local,
            remote,
            remote_target: contact_target(response).unwrap_or_else(|| request.uri.to_string()),
            route_set,
            local_seq: cseq.seq,
            remote_seq: None,
            local_contact: request.contact().map(|c| c.uri),
            is_uas: false,
        })
    }

    /// UAS side: dialog from a received dialog-creating request, with our To tag and
    /// Contact. `state` is Early until we send a 2xx ([`Dialog::confirm`]).
    pub fn uas(
        request: &Request,
        local_tag: &str,
        local_contact: &str,
    ) -> Result<Dialog, DialogError> {
        let mut local = request.to_addr().ok_or(DialogError::Header("To"))?;
        if local.tag().is_none() {
            local.params.push(syntax::Param {
                name: "tag".into(),
                value: Some(local_tag.to_string()),
            });
        }
        let remote = request.from_addr().ok_or(DialogError::Header("From"))?;
        let remote_tag = remote.tag().ok_or(DialogError::Header("From"))?.to_string();
        let call_id = request.call_id().ok_or(DialogError::Header("Call-ID"))?;
        let cseq = request.cseq().ok_or(DialogError::Header("CSeq"))?;
        let remote_target = contact_target(request).ok_or(DialogError::Header("Contact"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_string(),
                local_tag: local.tag().unwrap_or(local_tag).to_string(),
                remote_tag,
            },
            state: DialogState::Early,
            local,
            remote,
            remote_target,
            route_set: record_routes(request),
            local_seq: 0,
            remote_seq: Some(cseq.seq),
            local_contact: Some(local_contact.to_string()),
            is_uas: true,
        })
    }

    /// Our requests so far in the dialog used CSeq numbers up to `used` (e.g. a PRACK
    /// sent in the early dialog before the 2xx created this one): the next request
    /// continues after it. Never lowers the local CSeq.
    pub fn continue_local_seq(&mut self, used: u32) {
        self.local_seq = self.local_seq.max(used);
    }

    /// Mark confirmed (UAS sent 2xx).
    pub fn confirm(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// UAC: apply a later response of the dialog-creating transaction (1xx/2xx with
    /// our tags). A 2xx confirms the dialog and recomputes the route set; both refresh
    /// the remote target from Contact.
    pub fn update_from_response(&mut self, response: &Response) -> Result<(), DialogError> {
        if response.to_tag().as_deref() != Some(self.id.remote_tag.as_str())
            || response.call_id() != Some(self.id.call_id.as_str())
        {
            return Err(DialogError::Mismatch);
        }
        let code = response.status_code.code();
        if let Some(t) = contact_target(response) {
            self.remote_target = t;
        }
        if (200..300).contains(&code) && self.state == DialogState::Early {
            let is_invite = response.cseq().is_some_and(|c| c.method == "INVITE");
            if is_invite {
                let mut rs = record_routes(response);
                rs.reverse();
                self.route_set = rs;
                self.state = DialogState::Confirmed;
            }
        }
        Ok(())
    }

    /// Does this in-dialog request (received) belong to us?
    pub fn matches_request(&self, req: &Request) -> bool {
        req.call_id() == Some(self.id.call_id.as_str())
            && req.to_tag().as_deref() == Some(self.id.local_tag.as_str())
            && req.from_tag().as_deref() == Some(self.id.remote_tag.as_str())
    }

    /// Check a received in-dialog request: it must match and its CSeq must be
    /// higher than the last one (RFC 3261 §12.2.2; violation -> 500). Updates the
    /// remote CSeq and, for target-refresh requests (re-INVITE, UPDATE), the remote
    /// target. ACK and CANCEL reuse the INVITE's CSeq and are not ordered.
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if !self.matches_request(req) {
            return Err(DialogError::Mismatch);
        }
        let cseq = req.cseq().ok_or(DialogError::Header("CSeq"))?;
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_seq {
            if cseq.seq <= last {
                return Err(DialogError::OutOfOrder {
                    last,
                    got: cseq.seq,
                });
            }
        }
        self.remote_seq = Some(cseq.seq);
        if matches!(req.method, Method::Invite | Method::Update) {
            if let Some(t) = contact_target(req) {
                self.remote_target = t;
            }
        }
        Ok(())
    }

    /// Request-URI, Route headers, and next-hop URI per RFC 3261 §12.2.1.1
    /// (loose routing when the first route has `;lr`, strict routing otherwise).
    pub fn routing(&self) -> (String, Vec<String>, String) {
        let Some(first) = self.route_set.first() else {
            return (
                self.remote_target.clone(),
                Vec::new(),
                self.remote_target.clone(),
            );
        };
        let first_addr = syntax::parse_name_addr(first).ok();
        let first_uri = first_addr
            .as_ref()
            .map(|a| a.uri.clone())
            .unwrap_or_default();
        let loose = first_uri
            .split(';')
            .skip(1)
            .any(|p| p.eq_ignore_ascii_case("lr") || p.to_ascii_lowercase().starts_with("lr="));
        if loose {
            (
                self.remote_target.clone(),
                self.route_set.clone(),
                first_uri,
            )
        } else {
            let mut routes: Vec<String> = self.route_set[1..].to_vec();
            routes.push(format!("<{}>", self.remote_target));
            (first_uri.clone(), routes, first_uri)
        }
    }

    fn build(
        &self,
        method: Method,
        seq: u32,
        via: (&str, &str, &str),
    ) -> Result<RequestBuilder, DialogError> {
        let (ruri, routes, _) = self.routing();
        let mut b = RequestBuilder::new(method, ruri)
            .via(via.0, via.1, via.2)
            .from_addr(self.local.clone())
            .to_addr(self.remote.clone())
            .call_id(&self.id.call_id)
            .cseq(seq);
        for r in &routes {
            b = b.route(r);
        }
        if matches!(method, Method::Invite | Method::Update) {
            if let Some(c) = &self.local_contact {
                b = b.contact(c);
            }
        }
        Ok(b)
    }

    /// A new in-dialog request (BYE, re-INVITE, INFO, MESSAGE, UPDATE, ...): increments
    /// the local CSeq. `transport`/`sent_by`/`branch` form the top Via. Add a body with
    /// [`RequestBuilder::body`] on the returned builder, then `build()`.
    pub fn request(
        &mut self,
        method: Method,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<RequestBuilder, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::Build(crate::BuildError::Invalid {
                what: "method",
                problem: "use ack() / make_cancel() for ACK and CANCEL".into(),
            }));
        }
        self.local_seq = self.local_seq.wrapping_add(1).max(1);
        self.build(method, self.local_seq, (transport, sent_by, branch))
    }

    /// ACK for a 2xx to the INVITE with CSeq number `invite_seq` (same number,
    /// new branch; the caller sends it with `Endpoint::send_stateless`).
    pub fn ack(
        &self,
        invite_seq: u32,
        transport: &str,
        sent_by: &str,
        branch: &str,
    ) -> Result<Request, DialogError> {
        Ok(self
            .build(Method::Ack, invite_seq, (transport, sent_by, branch))?
            .build()?)
    }

    /// The next hop to send in-dialog requests to (first route or remote target).
    pub fn next_hop_uri(&self) -> String {
        self.routing().2
    }
}

/// UAC dialogs of one INVITE, keyed by To tag (forking creates several early dialogs).
#[derive(Debug, Clone, Default)]
pub struct DialogSet {
    dialogs: HashMap<String, Dialog>,
}

impl DialogSet {
    /// Empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed a response to the dialog-creating `request`. Creates a dialog for a new To
    /// tag, updates an existing one otherwise. Returns the affected dialog, or `None`
    /// for responses that cannot create a dialog (100, no To tag, >= 300).
    pub fn on_response(
        &mut self,
        request: &Request,
        response: &Response,
    ) -> Result<Option<&mut Dialog>, DialogError> {
        let code = response.status_code.code();
        let Some(tag) = response.to_tag() else {
            return Ok(None);
        };
        if !(101..300).contains(&code) {
            return Ok(None);
        }
        match self.dialogs.entry(tag) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let d = e.into_mut();
                d.update_from_response(response)?;
                Ok(Some(d))
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                Ok(Some(v.insert(Dialog::uac(request, response)?)))
            }
        }
    }

    /// Dialog by remote (To) tag.
    pub fn get(&self, remote_tag: &str) -> Option<&Dialog> {
        self.dialogs.get(remote_tag)
    }

    /// Number of dialogs.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// True if no dialog.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// Confirmed dialogs (several if more than one fork answered 2xx).
    pub fn confirmed(&self) -> impl Iterator<Item = &Dialog> {
        self.dialogs
            .values()
            .filter(|d| d.state == DialogState::Confirmed)
    }

    /// Remove the early dialogs (e.g. once one fork is confirmed or on a final error).
    pub fn drop_early(&mut self) {
        self.dialogs
            .retain(|_, d| d.state == DialogState::Confirmed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{make_header, make_response, serialize};
    use crate::parse::parse_message;

    fn invite() -> Request {
        RequestBuilder::new(Method::Invite, "sip:bob@example.com")
            .via("UDP", "192.0.2.1:5060", "z9hG4bKd1")
            .from("sip:alice@example.com", Some("Alice"), "atag")
            .to("sip:bob@example.com", None)
            .call_id("dlg1@192.0.2.1")
            .cseq(10)
            .contact("sip:alice@192.0.2.1:5060")
            .build()
            .unwrap()
    }

    fn answer(req: &Request, code: u16, tag: &str, contact: &str, rr: &[&str]) -> Response {
        let mut r = make_response(req, code, Some(tag));
        for x in rr {
            r.headers.push(make_header("Record-Route", x));
        }
        r.headers
            .push(make_header("Contact", &format!("<{contact}>")));
        r
    }

    #[test]
    fn local_seq_continues_after_early_requests() {
        let inv = invite();
        let ok = answer(&inv, 200, "btag", "sip:bob@192.0.2.9", &[]);
        let mut d = Dialog::uac(&inv, &ok).unwrap();
        assert_eq!(d.local_seq, 10);
        // A PRACK went out with CSeq 12 in the early dialog: the BYE takes 13.
        d.continue_local_seq(12);
        let bye = d
            .request(Method::Bye, "UDP", "192.0.2.1:5060", "z9hG4bKb")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(bye.cseq().map(|c| c.seq), Some(13));
        // Never goes back.
        d.continue_local_seq(11);
        assert_eq!(d.local_seq, 13);
    }

    #[test]
    fn uac_dialog_loose_routing_and_bye() {
        let inv = invite();
        let ok = answer(
            &inv,
            200,
            "btag",
            "sip:bob@192.0.2.9",
            &["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"],
        );
        let mut d = Dialog::uac(&inv, &ok).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.id.remote_tag, "btag");
        assert_eq!(
            d.route_set,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(d.next_hop_uri(), "sip:p1.example.com;lr");
        let bye = d
            .request(Method::Bye, "UDP", "192.0.2.1:5060", "z9hG4bKbye")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.9");
        assert_eq!(bye.cseq().unwrap().seq, 11);
        assert_eq!(bye.to_tag().as_deref(), Some("btag"));
        assert_eq!(bye.from_tag().as_deref(), Some("atag"));
        assert_eq!(
            crate::message::header_values(&bye, "Route"),
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        // ACK for the 2xx keeps the INVITE CSeq number
        let ack = d.ack(10, "UDP", "192.0.2.1:5060", "z9hG4bKack").unwrap();
        assert_eq!(ack.cseq().unwrap().seq, 10);
        assert_eq!(ack.cseq().unwrap().method, "ACK");
        // round trip through our own parser
        assert!(parse_message(&serialize(&bye.into())).is_ok());
        let reinvite = d
            .request(Method::Invite, "UDP", "192.0.2.1:5060", "z9hG4bKre")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(reinvite.cseq().unwrap().seq, 12);
        assert_eq!(
            reinvite.contact_uri().unwrap().to_string(),
            "sip:alice@192.0.2.1:5060"
        );
    }

    #[test]
    fn strict_routing_puts_remote_target_last() {
        let inv = invite();
        let ok = answer(
            &inv,
            200,
            "b",
            "sip:bob@192.0.2.9",
            &["<sip:strict.example.com>"],
        );
        let mut d = Dialog::uac(&inv, &ok).unwrap();
        let info = d
            .request(Method::Info, "UDP", "192.0.2.1", "z9hG4bKi")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(info.uri.to_string(), "sip:strict.example.com");
        assert_eq!(
            crate::message::header_values(&info, "Route"),
            vec!["<sip:bob@192.0.2.9>"]
        );
    }

    #[test]
    fn uas_dialog_orders_remote_cseq() {
        let mut inv = invite();
        inv.headers
            .push(make_header("Record-Route", "<sip:p1.example.com;lr>"));
        let mut d = Dialog::uas(&inv, "btag", "sip:bob@192.0.2.9").unwrap();
        assert_eq!(d.route_set, vec!["<sip:p1.example.com;lr>"]);
        assert_eq!(d.remote_target, "sip:alice@192.0.2.1:5060");
        d.confirm();
        let mut alice =
            Dialog::uac(&inv, &answer(&inv, 200, "btag", "sip:bob@192.0.2.9", &[])).unwrap();
        let bye = alice
            .request(Method::Bye, "UDP", "192.0.2.1", "z9hG4bKb")
            .unwrap()
            .build()
            .unwrap();
        assert!(d.matches_request(&bye));
        d.on_request(&bye).unwrap();
        assert_eq!(d.remote_seq, Some(11));
        let err = d.on_request(&bye).unwrap_err();
        assert_eq!(err, DialogError::OutOfOrder { last: 11, got: 11 });
        assert_eq!(err.status_code(), 500);
        // our own requests start at 1
        let msg = d
            .request(Method::Message, "UDP", "192.0.2.9", "z9hG4bKm")
            .unwrap()
            .body("text/plain", b"hi".to_vec())
            .build()
            .unwrap();
        assert_eq!(msg.cseq().unwrap().seq, 1);
        assert_eq!(msg.uri.to_string(), "sip:alice@192.0.2.1:5060");
        assert_eq!(msg.to_tag().as_deref(), Some("atag"));
        assert_eq!(msg.from_tag().as_deref(), Some("btag"));
    }

    #[test]
    fn forking_creates_early_dialogs_per_tag() {
        let inv = invite();
        let mut set = DialogSet::new();
        assert!(set
            .on_response(&inv, &make_response(&inv, 100, None))
            .unwrap()
            .is_none());
        set.on_response(&inv, &answer(&inv, 180, "f1", "sip:bob@phone1", &[]))
            .unwrap();
        set.on_response(&inv, &answer(&inv, 183, "f2", "sip:bob@phone2", &[]))
            .unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("f1").unwrap().state, DialogState::Early);
        let d = set
            .on_response(
                &inv,
                &answer(&inv, 200, "f2", "sip:bob@phone2b", &["<sip:p;lr>"]),
            )
            .unwrap()
            .unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.remote_target, "sip:bob@phone2b");
        assert_eq!(d.route_set, vec!["<sip:p;lr>"]);
        set.drop_early();
        assert_eq!(set.len(), 1);
        assert_eq!(set.confirmed().count(), 1);
        assert!(set
            .on_response(&inv, &answer(&inv, 486, "f3", "sip:x@y", &[]))
            .unwrap()
            .is_none());
    }
}
