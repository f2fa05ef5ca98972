//! Message helpers: header access without unwrap, serialization, and builders for
//! the requests and responses a UA sends.

use crate::error::BuildError;
use crate::syntax::{self, CSeqValue, NameAddr, ViaValue};
use rand::RngCore;
use rsip::message::HasHeaders;
use rsip::{Header, Method, Request, Response, SipMessage};

/// Methods listed in `Allow` of our 501 responses.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE";

/// RFC 3261 magic cookie that starts every branch we generate.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Expand compact forms and normalise the case of well-known header names.
/// Unknown names are returned unchanged.
pub fn canonical_header_name(name: &str) -> String {
    const KNOWN: &[&str] = &[
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "CSeq",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Refer-To",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    ];
    let compact = match name.to_ascii_lowercase().as_str() {
        "i" => Some("Call-ID"),
        "m" => Some("Contact"),
        "e" => Some("Content-Encoding"),
        "l" => Some("Content-Length"),
        "c" => Some("Content-Type"),
        "f" => Some("From"),
        "s" => Some("Subject"),
        "k" => Some("Supported"),
        "t" => Some("To"),
        "v" => Some("Via"),
        "o" => Some("Event"),
        "r" => Some("Refer-To"),
        "u" => Some("Allow-Events"),
        _ => None,
    };
    if let Some(c) = compact {
        return c.to_string();
    }
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Build an rsip header from a (canonical) name and a value.
pub fn make_header(name: &str, value: &str) -> Header {
    use rsip::headers::*;
    let v = value.to_string();
    match name {
        "Via" => Header::Via(Via::new(v)),
        "From" => Header::From(From::new(v)),
        "To" => Header::To(To::new(v)),
        "Call-ID" => Header::CallId(CallId::new(v)),
        "CSeq" => Header::CSeq(CSeq::new(v)),
        "Max-Forwards" => Header::MaxForwards(MaxForwards::new(v)),
        "Contact" => Header::Contact(Contact::new(v)),
        "Content-Length" => Header::ContentLength(ContentLength::new(v)),
        "Content-Type" => Header::ContentType(ContentType::new(v)),
        "Route" => Header::Route(Route::new(v)),
        "Record-Route" => Header::RecordRoute(RecordRoute::new(v)),
        "Authorization" => Header::Authorization(Authorization::new(v)),
        "Proxy-Authorization" => Header::ProxyAuthorization(ProxyAuthorization::new(v)),
        "WWW-Authenticate" => Header::WwwAuthenticate(WwwAuthenticate::new(v)),
        "Proxy-Authenticate" => Header::ProxyAuthenticate(ProxyAuthenticate::new(v)),
        "Expires" => Header::Expires(Expires::new(v)),
        "Allow" => Header::Allow(Allow::new(v)),
        "Supported" => Header::Supported(Supported::new(v)),
        "Require" => Header::Require(Require::new(v)),
        "User-Agent" => Header::UserAgent(UserAgent::new(v)),
        "Server" => Header::Server(Server::new(v)),
        "Subject" => Header::Subject(Subject::new(v)),
        "Date" => Header::Date(Date::new(v)),
        "Accept" => Header::Accept(Accept::new(v)),
        "Min-Expires" => Header::MinExpires(MinExpires::new(v)),
        "Event" => Header::Event(Event::new(v)),
        "Retry-After" => Header::RetryAfter(RetryAfter::new(v)),
        "Warning" => Header::Warning(Warning::new(v)),
        other => Header::Other(other.to_string(), v),
    }
}

/// Name (canonical spelling) and value of an rsip header.
pub fn header_name_value(h: &Header) -> (&str, &str) {
    use rsip::headers::UntypedHeader;
    macro_rules! nv {
        ($($var:ident => $name:expr),* $(,)?) => {
            match h {
                $(Header::$var(x) => ($name, x.value()),)*
                Header::Other(n, v) => (n.as_str(), v.as_str()),
            }
        };
    }
    nv!(
        Accept => "Accept", AcceptEncoding => "Accept-Encoding", AcceptLanguage => "Accept-Language",
        AlertInfo => "Alert-Info", Allow => "Allow", AuthenticationInfo => "Authentication-Info",
        Authorization => "Authorization", CSeq => "CSeq", CallId => "Call-ID", CallInfo => "Call-Info",
        Contact => "Contact", ContentDisposition => "Content-Disposition",
        ContentEncoding => "Content-Encoding", ContentLanguage => "Content-Language",
        ContentLength => "Content-Length", ContentType => "Content-Type", Date => "Date",
        ErrorInfo => "Error-Info", Event => "Event", Expires => "Expires", From => "From",
        InReplyTo => "In-Reply-To", MaxForwards => "Max-Forwards", MimeVersion => "MIME-Version",
        MinExpires => "Min-Expires", Organization => "Organization", Priority => "Priority",
        ProxyAuthenticate => "Proxy-Authenticate", ProxyAuthorization => "Proxy-Authorization",
        ProxyRequire => "Proxy-Require", RecordRoute => "Record-Route", ReplyTo => "Reply-To",
        Require => "Require", RetryAfter => "Retry-After", Route => "Route", Server => "Server",
        Subject => "Subject", SubscriptionState => "Subscription-State", Supported => "Supported",
        Timestamp => "Timestamp", To => "To", Unsupported => "Unsupported",
        UserAgent => "User-Agent", Via => "Via", Warning => "Warning",
        WwwAuthenticate => "WWW-Authenticate",
    )
}

/// All values of a header (case-insensitive name, compact forms accepted), in order.
pub fn header_values<'a, M: HasHeaders>(m: &'a M, name: &str) -> Vec<&'a str> {
    let canonical = canonical_header_name(name);
    m.headers()
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| n.eq_ignore_ascii_case(&canonical))
        .map(|(_, v)| v)
        .collect()
}

/// First value of a header.
pub fn header_value<'a, M: HasHeaders>(m: &'a M, name: &str) -> Option<&'a str> {
    header_values(m, name).into_iter().next()
}

/// Read accessors for any rsip message type. None of them panic; `None` means
/// absent or unparsable.
// `from_*` here refers to the SIP From header, not a conversion.
#[allow(clippy::wrong_self_convention)]
pub trait MessageExt: HasHeaders {
    /// First value of a header.
    fn header(&self, name: &str) -> Option<&str>
    where
        Self: Sized,
    {
        header_value(self, name)
    }
    /// Topmost Via, parsed.
    fn top_via(&self) -> Option<ViaValue>
    where
        Self: Sized,
    {
        syntax::parse_via(header_value(self, "Via")?).ok()
    }
    /// Branch of the topmost Via.
    fn branch(&self) -> Option<String>
    where
        Self: Sized,
    {
        self.top_via()?.branch().map(str::to_string)
    }
    /// Call-ID value.
    fn call_id(&self) -> Option<&str>
    where
        Self: Sized,
    {
        header_value(self, "Call-ID")
    }
    /// CSeq, parsed.
    fn cseq(&self) -> Option<CSeqValue>
    where
        Self: Sized,
    {
        syntax::parse_cseq(header_value(self, "CSeq")?).ok()
    }
    /// From, parsed.
    fn from_addr(&self) -> Option<NameAddr>
    where
        Self: Sized,
    {
        syntax::parse_name_addr(header_value(self, "From")?).ok()
    }
    /// To, parsed.
    fn to_addr(&self) -> Option<NameAddr>
    where
        Self: Sized,
    {
        syntax::parse_name_addr(header_value(self, "To")?).ok()
    }
    /// From tag.
    fn from_tag(&self) -> Option<String>
    where
        Self: Sized,
    {
        self.from_addr()?.tag().map(str::to_string)
    }
    /// To tag.
    fn to_tag(&self) -> Option<String>
    where
        Self: Sized,
    {
        self.to_addr()?.tag().map(str::to_string)
    }
    /// First Contact, parsed (`None` for `*`).
    fn contact(&self) -> Option<NameAddr>
    where
        Self: Sized,
    {
        syntax::parse_name_addr(header_value(self, "Contact")?).ok()
    }
    /// URI of the first Contact.
    fn contact_uri(&self) -> Option<rsip::Uri>
    where
        Self: Sized,
    {
        self.contact()?.rsip_uri().ok()
    }
}

impl<T: HasHeaders> MessageExt for T {}

/// Standard reason phrase for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => match code / 100 {
            1 => "Progress",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

fn status_line_reason(sc: &rsip::StatusCode) -> String {
    match sc {
        rsip::StatusCode::Other(code, r) if r != "Other" || *code == 0 => r.clone(),
        other => reason_phrase(other.code()).to_string(),
    }
}

/// Serialize to wire bytes. Content-Length is always recomputed from the body and
/// the body is written verbatim (rsip's `Display` would mangle binary bodies).
pub fn serialize(msg: &SipMessage) -> Vec<u8> {
    let mut out = String::new();
    match msg {
        SipMessage::Request(r) => {
            out.push_str(&format!("{} {} SIP/2.0\r\n", r.method, r.uri));
        }
        SipMessage::Response(r) => {
            out.push_str(&format!(
                "SIP/2.0 {} {}\r\n",
                r.status_code.code(),
                status_line_reason(&r.status_code)
            ));
        }
    }
    for h in msg.headers().iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        let (n, v) = header_name_value(h);
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", msg.body().len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(msg.body());
    bytes
}

fn random_token(rng: &mut dyn RngCore, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A fresh RFC 3261 branch (`z9hG4bK` + 16 random characters).
pub fn new_branch(rng: &mut dyn RngCore) -> String {
    format!("{MAGIC_COOKIE}{}", random_token(rng, 16))
}

/// A fresh From/To tag (10 random characters).
pub fn new_tag(rng: &mut dyn RngCore) -> String {
    random_token(rng, 10)
}

/// A fresh Call-ID `random@host`.
pub fn new_call_id(rng: &mut dyn RngCore, host: &str) -> String {
    format!("{}@{}", random_token(rng, 20), host)
}

/// Builder for out-of-dialog and in-dialog requests.
///
/// ```
/// # use peerline_sip::message::RequestBuilder;
/// let req = RequestBuilder::new(rsip::Method::Options, "sip:bob@example.com")
///     .via("UDP", "192.0.2.1:5060", "z9hG4bKx1")
///     .from("sip:alice@example.com", Some("Alice"), "t1")
///     .to("sip:bob@example.com", None)
///     .call_id("c1@192.0.2.1")
///     .cseq(1)
///     .build()
///     .unwrap();
/// assert_eq!(req.method, rsip::Method::Options);
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: Method,
    uri: String,
    via: Option<String>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    call_id: Option<String>,
    cseq: Option<u32>,
    max_forwards: u8,
    contact: Option<String>,
    routes: Vec<String>,
    headers: Vec<Header>,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn name_addr(uri: &str, display: Option<&str>, tag: Option<&str>) -> NameAddr {
    NameAddr {
        display_name: display.map(str::to_string),
        uri: uri.to_string(),
        bracketed: true,
        params: tag
            .map(|t| {
                vec![syntax::Param {
                    name: "tag".into(),
                    value: Some(t.to_string()),
                }]
            })
            .unwrap_or_default(),
    }
}

impl RequestBuilder {
    /// Start a request with a method and Request-URI.
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        RequestBuilder {
            method,
            uri: uri.into(),
            via: None,
            from: None,
            to: None,
            call_id: None,
            cseq: None,
            max_forwards: 70,
            contact: None,
            routes: Vec::new(),
            headers: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }
    /// Top Via: `SIP/2.0/{transport} {sent_by};branch={branch};rport`.
    pub fn via(mut self, transport: &str, sent_by: &str, branch: &str) -> Self {
        self.via = Some(format!(
            "SIP/2.0/{transport} {sent_by};branch={branch};rport"
        ));
        self
    }
    /// From with a tag.
    pub fn from(mut self, uri: &str, display: Option<&str>, tag: &str) -> Self {
        self.from = Some(name_addr(uri, display, Some(tag)));
        self
    }
    /// From as a full name-addr (used by dialogs).
    pub fn from_addr(mut self, addr: NameAddr) -> Self {
        self.from = Some(addr);
        self
    }
    /// To, optionally with a tag.
    pub fn to(mut self, uri: &str, tag: Option<&str>) -> Self {
        self.to = Some(name_addr(uri, None, tag));
        self
    }
    /// To as a full name-addr (used by dialogs).
    pub fn to_addr(mut self, addr: NameAddr) -> Self {
        self.to = Some(addr);
        self
    }
    /// Call-ID.
    pub fn call_id(mut self, call_id: &str) -> Self {
        self.call_id = Some(call_id.to_string());
        self
    }
    /// CSeq number (the method is the request method).
    pub fn cseq(mut self, seq: u32) -> Self {
        self.cseq = Some(seq);
        self
    }
    /// Max-Forwards (default 70).
    pub fn max_forwards(mut self, mf: u8) -> Self {
        self.max_forwards = mf;
        self
    }
    /// Contact URI (written as `<uri>`).
    pub fn contact(mut self, uri: &str) -> Self {
        self.contact = Some(format!("<{uri}>"));
        self
    }
    /// Append a Route header value (a full `<uri>;params` string).
    pub fn route(mut self, route: &str) -> Self {
        self.routes.push(route.to_string());
        self
    }
    /// Append any header.
    pub fn header(mut self, h: Header) -> Self {
        self.headers.push(h);
        self
    }
    /// Body with its Content-Type.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.content_type = Some(content_type.to_string());
        self.body = body;
        self
    }
    /// Build the request; fails if Via/From/To/Call-ID/CSeq is missing or the URI is invalid.
    pub fn build(self) -> Result<Request, BuildError> {
        let uri = rsip::Uri::try_from(self.uri.as_str()).map_err(|e| BuildError::Invalid {
            what: "Request-URI",
            problem: e.to_string(),
        })?;
        let via = self.via.ok_or(BuildError::Missing("Via"))?;
        let from = self.from.ok_or(BuildError::Missing("From"))?;
        let to = self.to.ok_or(BuildError::Missing("To"))?;
        let call_id = self.call_id.ok_or(BuildError::Missing("Call-ID"))?;
        let cseq = self.cseq.ok_or(BuildError::Missing("CSeq"))?;
        let mut headers: Vec<Header> = vec![make_header("Via", &via)];
        for r in &self.routes {
            headers.push(make_header("Route", r));
        }
        headers.push(make_header("Max-Forwards", &self.max_forwards.to_string()));
        headers.push(make_header("From", &from.to_string()));
        headers.push(make_header("To", &to.to_string()));
        headers.push(make_header("Call-ID", &call_id));
        headers.push(make_header("CSeq", &format!("{cseq} {}", self.method)));
        if let Some(c) = &self.contact {
            headers.push(make_header("Contact", c));
        }
        headers.extend(self.headers);
        if let Some(ct) = &self.content_type {
            headers.push(make_header("Content-Type", ct));
        }
        headers.push(make_header("Content-Length", &self.body.len().to_string()));
        Ok(Request {
            method: self.method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: self.body,
        })
    }
}

/// Build a response to `request`: copies all Via (in order), From, To, Call-ID, CSeq
/// (and Record-Route for 1xx/2xx to INVITE), adds `to_tag` to To if it has none
/// (never for 100), and uses the standard reason phrase.
pub fn make_response(request: &Request, code: u16, to_tag: Option<&str>) -> Response {
    make_response_with_reason(request, code, reason_phrase(code), to_tag)
}

/// [`make_response`] with an explicit reason phrase.
pub fn make_response_with_reason(
    request: &Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Response {
    let mut headers: Vec<Header> = Vec::new();
    for h in request.headers.iter() {
        let (n, v) = header_name_value(h);
        match n {
            "Via" | "From" | "Call-ID" | "CSeq" => headers.push(h.clone()),
            "Record-Route" if request.method == Method::Invite && (101..300).contains(&code) => {
                headers.push(h.clone())
            }
            "To" => {
                let has_tag = syntax::parse_name_addr(v)
                    .map(|a| a.tag().is_some())
                    .unwrap_or(false);
                match to_tag {
                    Some(t) if !has_tag && code != 100 => {
                        headers.push(make_header("To", &format!("{v};tag={t}")))
                    }
                    _ => headers.push(h.clone()),
                }
            }
            _ => {}
        }
    }
    Response {
        status_code: rsip::StatusCode::Other(code, crate::error::sanitize_reason(reason)),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

fn copy_headers(req: &Request, names: &[&str], only_first_via: bool) -> Vec<Header> {
    let mut out = Vec::new();
    let mut via_done = false;
    for h in req.headers.iter() {
        let (n, _) = header_name_value(h);
        if n == "Via" {
            if only_first_via && via_done {
                continue;
            }
            via_done = true;
        }
        if names.contains(&n) {
            out.push(h.clone());
        }
    }
    out
}

/// CANCEL for a pending INVITE (RFC 3261 §9.1): same Request-URI, top Via, From,
/// To, Call-ID, CSeq number and Route headers.
pub fn make_cancel(invite: &Request) -> Result<Request, BuildError> {
    let cseq = invite.cseq().ok_or(BuildError::Missing("CSeq"))?;
    let mut headers = copy_headers(invite, &["Via", "Route", "From", "To", "Call-ID"], true);
    headers.push(make_header("CSeq", &format!("{} CANCEL", cseq.seq)));
    headers.push(make_header("Max-Forwards", "70"));
    headers.push(make_header("Content-Length", "0"));
    Ok(Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    })
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3), built by the client transaction.
pub fn make_ack_non2xx(invite: &Request, response: &Response) -> Result<Request, BuildError> {
    let cseq = invite.cseq().ok_or(BuildError::Missing("CSeq"))?;
    let mut headers = copy_headers(invite, &["Via", "Route", "From", "Call-ID"], true);
    let to = header_value(response, "To").ok_or(BuildError::Missing("To"))?;
    headers.push(make_header("To", to));
    headers.push(make_header("CSeq", &format!("{} ACK", cseq.seq)));
    headers.push(make_header("Max-Forwards", "70"));
    headers.push(make_header("Content-Length", "0"));
    Ok(Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_message;
    use rand::SeedableRng;

    fn invite() -> Request {
        RequestBuilder::new(Method::Invite, "sip:bob@example.com")
            .via("UDP", "192.0.2.1:5060", "z9hG4bKinv1")
            .from("sip:alice@example.com", Some("Alice A"), "atag")
            .to("sip:bob@example.com", None)
            .call_id("call1@192.0.2.1")
            .cseq(7)
            .contact("sip:alice@192.0.2.1:5060")
            .route("<sip:proxy.example.com;lr>")
            .body("application/sdp", b"v=0\r\n".to_vec())
            .build()
            .unwrap()
    }

    #[test]
    fn built_request_roundtrips_through_parser() {
        let req = invite();
        let bytes = serialize(&req.clone().into());
        let parsed = parse_message(&bytes).unwrap();
        let SipMessage::Request(p) = parsed else {
            panic!("not a request")
        };
        assert_eq!(p.method, Method::Invite);
        assert_eq!(p.branch().as_deref(), Some("z9hG4bKinv1"));
        assert_eq!(p.from_tag().as_deref(), Some("atag"));
        assert_eq!(p.to_tag(), None);
        assert_eq!(p.cseq().unwrap().seq, 7);
        assert_eq!(p.body, b"v=0\r\n");
        assert_eq!(
            p.from_addr().unwrap().display_name.as_deref(),
            Some("Alice A")
        );
        assert_eq!(
            p.contact_uri().unwrap().to_string(),
            "sip:alice@192.0.2.1:5060"
        );
    }

    #[test]
    fn response_mirrors_request() {
        let req = invite();
        let r = make_response(&req, 180, Some("btag"));
        assert_eq!(r.status_code.code(), 180);
        assert_eq!(r.to_tag().as_deref(), Some("btag"));
        assert_eq!(r.call_id(), Some("call1@192.0.2.1"));
        assert_eq!(r.branch().as_deref(), Some("z9hG4bKinv1"));
        let wire = String::from_utf8(serialize(&r.into())).unwrap();
        assert!(wire.starts_with("SIP/2.0 180 Ringing\r\n"));
        let trying = make_response(&req, 100, Some("btag"));
        assert_eq!(trying.to_tag(), None);
    }

    #[test]
    fn cancel_and_ack() {
        let req = invite();
        let c = make_cancel(&req).unwrap();
        assert_eq!(
            c.cseq().unwrap(),
            CSeqValue {
                seq: 7,
                method: "CANCEL".into()
            }
        );
        assert_eq!(c.branch(), req.branch());
        assert_eq!(
            header_value(&c, "Route"),
            Some("<sip:proxy.example.com;lr>")
        );
        let resp = make_response(&req, 486, Some("btag"));
        let ack = make_ack_non2xx(&req, &resp).unwrap();
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.to_tag().as_deref(), Some("btag"));
        assert_eq!(ack.cseq().unwrap().method, "ACK");
        assert_eq!(ack.branch(), req.branch());
    }

    #[test]
    fn generated_ids_are_deterministic_with_seed() {
        let mut a = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = rand::rngs::StdRng::seed_from_u64(1);
        let br = new_branch(&mut a);
        assert!(br.starts_with(MAGIC_COOKIE));
        assert_eq!(br.len(), 23);
        assert_eq!(br, new_branch(&mut b));
        assert_ne!(new_tag(&mut a), new_tag(&mut a));
    }

    #[test]
    fn binary_body_survives_serialization() {
        let mut req = invite();
        req.body = vec![0, 0xff, 0x80, b'\r', b'\n'];
        let bytes = serialize(&req.into());
        assert!(bytes.ends_with(&[0, 0xff, 0x80, b'\r', b'\n']));
        assert!(String::from_utf8_lossy(&bytes).contains("Content-Length: 5\r\n"));
    }
}
