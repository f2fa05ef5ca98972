//! Datagram -> [`rsip::SipMessage`] with a strict validation layer.
//!
//! rsip's own tokenizer does not handle line folding, compact header names,
//! Content-Length framing or most RFC 4475 corner cases, so this module frames
//! the message itself, validates it, and then builds the rsip types from the parts.

use crate::error::ParseError;
use crate::message::{canonical_header_name, make_header};
use crate::syntax::{self, is_token};
use rsip::{Headers, Method, SipMessage};

/// Size limits applied by [`parse_message_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum datagram size in bytes (default 64 KiB).
    pub max_message_size: usize,
    /// Maximum number of header fields (default 256).
    pub max_headers: usize,
    /// Maximum length of one (unfolded) header field (default 8 KiB).
    pub max_header_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 256,
            max_header_line: 8 * 1024,
        }
    }
}

/// Parse and validate one SIP message received as a datagram, with default [`Limits`].
///
/// Leading CRLFs are skipped; bytes beyond `Content-Length` are ignored (UDP framing,
/// RFC 3261 §18.3). Requests must carry Via, From, To, Call-ID, CSeq and Max-Forwards,
/// and the CSeq method must equal the request method. On error,
/// [`error_response`] builds the answer to send back.
pub fn parse_message(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    parse_message_with(bytes, &Limits::default())
}

/// [`parse_message`] with explicit limits.
pub fn parse_message_with(bytes: &[u8], limits: &Limits) -> Result<SipMessage, ParseError> {
    if bytes.len() > limits.max_message_size {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            max: limits.max_message_size,
        });
    }
    let framed = frame(bytes, limits)?;
    validate_and_build(framed)
}

/// A message split into start line, unfolded headers and body.
pub(crate) struct Framed<'a> {
    pub start_line: String,
    /// (name as received, canonical name, value)
    pub headers: Vec<(String, String, String)>,
    pub after_headers: &'a [u8],
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Split the datagram. With `lenient`, invalid UTF-8 is replaced and limits ignored
/// (used only to salvage headers for an error response).
pub(crate) fn frame_impl<'a>(
    bytes: &'a [u8],
    limits: &Limits,
    lenient: bool,
) -> Result<Framed<'a>, ParseError> {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Empty)?;
    let bytes = &bytes[start..];
    let crlf = find_subslice(bytes, b"\r\n\r\n").map(|i| (i, 4));
    let lf = find_subslice(bytes, b"\n\n").map(|i| (i, 2));
    let (head_end, sep_len) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) if lenient => (bytes.len(), 0),
        (None, None) => return Err(ParseError::NoHeaderEnd),
    };
    let head = &bytes[..head_end];
    let after_headers = &bytes[head_end + sep_len..];
    let head: String = if lenient {
        String::from_utf8_lossy(head).into_owned()
    } else {
        std::str::from_utf8(head)
            .map_err(|_| ParseError::NotUtf8)?
            .to_string()
    };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or("").to_string();
    let mut unfolded: Vec<String> = Vec::new();
    for line in lines {
        if !lenient && line.len() > limits.max_header_line {
            return Err(ParseError::HeaderLineTooLong {
                max: limits.max_header_line,
            });
        }
        if line.starts_with([' ', '\t']) {
            match unfolded.last_mut() {
                Some(last) => {
                    last.push(' ');
                    last.push_str(line.trim_start_matches([' ', '\t']));
                    if !lenient && last.len() > limits.max_header_line {
                        return Err(ParseError::HeaderLineTooLong {
                            max: limits.max_header_line,
                        });
                    }
                }
                None if lenient => {}
                None => return Err(ParseError::HeaderLine),
            }
        } else {
            if !lenient && unfolded.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
            unfolded.push(line.to_string());
        }
    }
    let mut headers = Vec::with_capacity(unfolded.len());
    for line in unfolded {
        let Some((name, value)) = line.split_once(':') else {
            if lenient {
                continue;
            }
            return Err(ParseError::HeaderLine);
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            if lenient {
                continue;
            }
            return Err(ParseError::HeaderLine);
        }
        let canonical = canonical_header_name(name);
        headers.push((
            name.to_string(),
            canonical,
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok(Framed {
        start_line,
        headers,
        after_headers,
    })
}

fn frame<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Framed<'a>, ParseError> {
    frame_impl(bytes, limits, false)
}

enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

fn starts_with_sip(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
}

fn parse_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let rest = v.get(4..).unwrap_or("");
    let looks_like_version = starts_with_sip(v)
        && rest.split('.').count() == 2
        && rest
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if looks_like_version {
        Err(ParseError::UnsupportedVersion(v.to_string()))
    } else {
        Err(ParseError::StartLine("invalid SIP version"))
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if starts_with_sip(line) {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().unwrap_or("");
        let reason = parts.next().unwrap_or("");
        parse_version(version)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode(code.chars().take(16).collect()));
        }
        let code: u16 = code
            .parse()
            .map_err(|_| ParseError::StatusCode(code.to_string()))?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode(code.to_string()));
        }
        if reason.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(ParseError::StartLine(
            "Request-Line must be 'Method SP Request-URI SP SIP-Version'",
        ));
    };
    if method.is_empty() || uri.is_empty() || version.is_empty() {
        return Err(ParseError::StartLine(
            "Request-Line must be 'Method SP Request-URI SP SIP-Version'",
        ));
    }
    if !is_token(method) {
        return Err(ParseError::StartLine("invalid method token"));
    }
    parse_version(version)?;
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// Methods we represent (rsip's `Method` is a closed enum; the match is case-sensitive,
/// as SIP methods are).
pub(crate) fn known_method(token: &str) -> Option<Method> {
    Some(match token {
        "INVITE" => Method::Invite,
        "ACK" => Method::Ack,
        "BYE" => Method::Bye,
        "CANCEL" => Method::Cancel,
        "OPTIONS" => Method::Options,
        "REGISTER" => Method::Register,
        "INFO" => Method::Info,
        "MESSAGE" => Method::Message,
        "NOTIFY" => Method::Notify,
        "PRACK" => Method::PRack,
        "PUBLISH" => Method::Publish,
        "REFER" => Method::Refer,
        "SUBSCRIBE" => Method::Subscribe,
        "UPDATE" => Method::Update,
        _ => return None,
    })
}

fn check_request_uri(uri: &str) -> Result<rsip::Uri, ParseError> {
    if uri.starts_with('<') {
        return Err(ParseError::RequestUri("enclosed in <>".into()));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(ParseError::RequestUri("no scheme".into()));
    };
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        // '?' after the host part introduces URI headers, not allowed in a Request-URI.
        let host_part = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        if host_part.contains('?') {
            return Err(ParseError::RequestUri("contains escaped headers".into()));
        }
    }
    rsip::Uri::try_from(uri).map_err(|e| ParseError::RequestUri(e.to_string()))
}

fn single<'a>(
    headers: &'a [(String, String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    let mut it = headers.iter().filter(|h| h.1 == name);
    let first = it.next();
    if it.next().is_some() {
        return Err(ParseError::DuplicateHeader(name));
    }
    Ok(first.map(|h| h.2.as_str()))
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ParseError {
    ParseError::InvalidHeader {
        name,
        problem: problem.into(),
    }
}

fn validate_and_build(framed: Framed<'_>) -> Result<SipMessage, ParseError> {
    let start = parse_start_line(&framed.start_line)?;
    let hs = &framed.headers;
    let is_request = matches!(start, StartLine::Request { .. });

    // Content-Length (all occurrences must agree).
    let mut content_length: Option<usize> = None;
    for h in hs.iter().filter(|h| h.1 == "Content-Length") {
        let v = syntax::parse_bounded_int(&h.2, u32::MAX as u64)
            .ok_or_else(|| invalid("Content-Length", "not a non-negative integer"))?
            as usize;
        if content_length.is_some_and(|c| c != v) {
            return Err(ParseError::DuplicateHeader("Content-Length"));
        }
        content_length = Some(v);
    }
    let body = match content_length {
        Some(cl) if cl > framed.after_headers.len() => {
            return Err(ParseError::ContentLengthMismatch {
                declared: cl,
                available: framed.after_headers.len(),
            })
        }
        Some(cl) => framed.after_headers[..cl].to_vec(),
        None => framed.after_headers.to_vec(),
    };

    // Mandatory headers.
    let vias: Vec<&str> = hs
        .iter()
        .filter(|h| h.1 == "Via")
        .flat_map(|h| syntax::split_list(&h.2))
        .collect();
    if vias.is_empty() {
        return Err(ParseError::MissingHeader("Via"));
    }
    for v in &vias {
        let via = syntax::parse_via(v).map_err(|p| invalid("Via", p))?;
        if !via.protocol.eq_ignore_ascii_case("SIP") || via.version != "2.0" {
            return Err(ParseError::UnsupportedVersion(format!(
                "{}/{}",
                via.protocol, via.version
            )));
        }
    }
    let from = single(hs, "From")?.ok_or(ParseError::MissingHeader("From"))?;
    syntax::parse_name_addr(from).map_err(|p| invalid("From", p))?;
    let to = single(hs, "To")?.ok_or(ParseError::MissingHeader("To"))?;
    syntax::parse_name_addr(to).map_err(|p| invalid("To", p))?;
    let call_id = single(hs, "Call-ID")?.ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() || call_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("Call-ID", "empty or contains whitespace"));
    }
    let cseq = single(hs, "CSeq")?.ok_or(ParseError::MissingHeader("CSeq"))?;
    let cseq = syntax::parse_cseq(cseq).map_err(|p| invalid("CSeq", p))?;
    match single(hs, "Max-Forwards")? {
        Some(mf) => {
            syntax::parse_bounded_int(mf, 255)
                .ok_or_else(|| invalid("Max-Forwards", "not 0..=255"))?;
        }
        None if is_request => return Err(ParseError::MissingHeader("Max-Forwards")),
        None => {}
    }
    for h in hs.iter().filter(|h| h.1 == "Contact") {
        if h.2.trim() == "*" {
            continue;
        }
        for c in syntax::split_list(&h.2) {
            syntax::parse_name_addr(c).map_err(|p| invalid("Contact", p))?;
        }
    }
    for name in ["Route", "Record-Route"] {
        for h in hs.iter().filter(|h| h.1 == name) {
            for c in syntax::split_list(&h.2) {
                let na = syntax::parse_name_addr(c).map_err(|p| invalid_owned(name, p))?;
                if !na.bracketed {
                    return Err(invalid_owned(name, "URI must be enclosed in <>".into()));
                }
            }
        }
    }
    if let Some(date) = single(hs, "Date")? {
        if !date.ends_with(" GMT") {
            return Err(invalid("Date", "time zone must be GMT"));
        }
    }

    let headers = build_headers(hs);
    match start {
        StartLine::Response { code, reason } => Ok(SipMessage::Response(rsip::Response {
            status_code: rsip::StatusCode::Other(code, reason),
            version: rsip::Version::V2,
            headers,
            body,
        })),
        StartLine::Request { method, uri } => {
            let Some(m) = known_method(&method) else {
                return Err(ParseError::UnknownMethod(method));
            };
            if cseq.method != method {
                return Err(ParseError::CSeqMethodMismatch {
                    method,
                    cseq: cseq.method,
                });
            }
            let uri = check_request_uri(&uri)?;
            Ok(SipMessage::Request(rsip::Request {
                method: m,
                uri,
                version: rsip::Version::V2,
                headers,
                body,
            }))
        }
    }
}

fn invalid_owned(name: &str, problem: String) -> ParseError {
    let name: &'static str = if name == "Route" {
        "Route"
    } else {
        "Record-Route"
    };
    invalid(name, problem)
}

/// Build rsip headers, one entry per list element for Via/Route/Record-Route/Contact.
fn build_headers(hs: &[(String, String, String)]) -> Headers {
    let mut out: Vec<rsip::Header> = Vec::with_capacity(hs.len());
    for (raw, canonical, value) in hs {
        match canonical.as_str() {
            "Via" | "Route" | "Record-Route" => {
                for v in syntax::split_list(value) {
                    out.push(make_header(canonical, v));
                }
            }
            "Contact" if value.trim() != "*" => {
                for v in syntax::split_list(value) {
                    out.push(make_header(canonical, v));
                }
            }
            _ => {
                let name = if canonical.is_empty() { raw } else { canonical };
                out.push(make_header(name, value));
            }
        }
    }
    out.into()
}

/// Build the error response (400/501/505/513) for a datagram that failed to parse.
///
/// Returns `None` when the datagram is not a request or when no Via could be
/// salvaged (there is nowhere to send a response; drop it). Via, From, To, Call-ID
/// and CSeq are copied when they can be extracted; the reason phrase names the
/// problem ([`ParseError::reason`]).
pub fn error_response(bytes: &[u8], err: &ParseError) -> Option<rsip::Response> {
    if matches!(err, ParseError::Empty) {
        return None;
    }
    let framed = frame_impl(bytes, &Limits::default(), true).ok()?;
    let sl = framed.start_line.trim();
    if starts_with_sip(sl) {
        return None;
    }
    let mut headers: Vec<rsip::Header> = Vec::new();
    for (_, canonical, value) in &framed.headers {
        if canonical == "Via" {
            for v in syntax::split_list(value) {
                if !v.is_empty() {
                    headers.push(make_header("Via", v));
                }
            }
        }
    }
    if headers.is_empty() {
        return None;
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some((_, _, v)) = framed.headers.iter().find(|h| h.1 == name) {
            headers.push(make_header(name, v));
        }
    }
    if matches!(err, ParseError::UnknownMethod(_)) {
        headers.push(make_header("Allow", crate::message::ALLOW));
    }
    headers.push(make_header("Content-Length", "0"));
    Some(rsip::Response {
        status_code: rsip::StatusCode::Other(err.status_code(), err.reason()),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{header_value, serialize};

    const OPTIONS: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1@192.0.2.1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn parses_simple_request() {
        let m = parse_message(OPTIONS.as_bytes()).unwrap();
        let SipMessage::Request(r) = &m else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Options);
        assert_eq!(header_value(&m, "Call-ID"), Some("c1@192.0.2.1"));
    }

    #[test]
    fn missing_headers_and_mismatch() {
        let no_callid = OPTIONS.replace("Call-ID: c1@192.0.2.1\r\n", "");
        assert_eq!(
            parse_message(no_callid.as_bytes()),
            Err(ParseError::MissingHeader("Call-ID"))
        );
        let no_mf = OPTIONS.replace("Max-Forwards: 70\r\n", "");
        assert_eq!(
            parse_message(no_mf.as_bytes()),
            Err(ParseError::MissingHeader("Max-Forwards"))
        );
        let mism = OPTIONS.replace("1 OPTIONS", "1 INVITE");
        assert!(matches!(
            parse_message(mism.as_bytes()),
            Err(ParseError::CSeqMethodMismatch { .. })
        ));
    }

    #[test]
    fn limits_enforced() {
        let big = vec![b'a'; 70_000];
        assert!(matches!(
            parse_message(&big),
            Err(ParseError::TooLarge { .. })
        ));
        let mut many = OPTIONS.replace("\r\n\r\n", "\r\n");
        for i in 0..300 {
            many.push_str(&format!("X-H{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            parse_message(many.as_bytes()),
            Err(ParseError::TooManyHeaders { max: 256 })
        );
        let long = OPTIONS.replace(
            "Content-Length: 0",
            &format!("X-Long: {}\r\nContent-Length: 0", "a".repeat(9000)),
        );
        assert!(matches!(
            parse_message(long.as_bytes()),
            Err(ParseError::HeaderLineTooLong { .. })
        ));
    }

    #[test]
    fn content_length_checks() {
        let short = OPTIONS.replace("Content-Length: 0", "Content-Length: 10");
        assert_eq!(
            parse_message(short.as_bytes()),
            Err(ParseError::ContentLengthMismatch {
                declared: 10,
                available: 0
            })
        );
        let extra = format!(
            "{}hello",
            OPTIONS.replace("Content-Length: 0", "Content-Length: 2")
        );
        let m = parse_message(extra.as_bytes()).unwrap();
        assert_eq!(m.body(), b"he");
    }

    #[test]
    fn bad_request_response_copies_headers() {
        let bad = OPTIONS.replace("Max-Forwards: 70\r\n", "");
        let err = parse_message(bad.as_bytes()).unwrap_err();
        assert_eq!(err.reason(), "Missing Max-Forwards header");
        let resp = error_response(bad.as_bytes(), &err).unwrap();
        assert_eq!(resp.status_code.code(), 400);
        let wire = String::from_utf8(serialize(&resp.into())).unwrap();
        assert!(wire.starts_with("SIP/2.0 400 Missing Max-Forwards header\r\n"));
        assert!(wire.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"));
        assert!(wire.contains("Call-ID: c1@192.0.2.1\r\n"));
        assert!(wire.contains("CSeq: 1 OPTIONS\r\n"));
        assert!(wire.ends_with("Content-Length: 0\r\n\r\n"));
        // responses never get an error response
        let resp_bytes = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
        assert!(error_response(resp_bytes, &ParseError::MissingHeader("From")).is_none());
    }

    #[test]
    fn keepalive_is_empty() {
        assert_eq!(parse_message(b"\r\n\r\n"), Err(ParseError::Empty));
        assert!(error_response(b"\r\n\r\n", &ParseError::Empty).is_none());
    }
}
