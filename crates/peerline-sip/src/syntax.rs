//! Small, strict parsers for the header grammars the stack relies on
//! (RFC 3261 §25): comma lists, `name-addr`/`addr-spec`, `Via`, `CSeq`, parameters.
//!
//! They work on unfolded header values (line folding already replaced by a space)
//! and never panic.

/// RFC 3261 `token` character.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// True if `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Split a header value on commas that are outside quoted strings and `<...>`.
/// Elements are trimmed; empty elements are kept (so callers can reject them).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            ',' if !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out
}

/// A generic parameter `;name[=value]`. Names are kept as received; compare
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// Value, without surrounding quotes if it was a quoted string.
    pub value: Option<String>,
}

/// Find a parameter value by case-insensitive name. `Some(None)` = present without value.
pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// Parse `*( SEMI generic-param )`. `s` must be empty or start with `;` (after LWS).
pub fn parse_params(s: &str) -> Result<Vec<Param>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = s.strip_prefix(';') else {
        return Err(format!("unexpected text {:?}", truncate(s)));
    };
    let mut params = Vec::new();
    for part in split_outside_quotes(rest, ';') {
        let part = part.trim();
        if part.is_empty() {
            return Err("empty parameter".into());
        }
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (part, None),
        };
        if !is_token(name) {
            return Err(format!("invalid parameter name {:?}", truncate(name)));
        }
        let value = match value {
            None => None,
            Some(v) if v.starts_with('"') => {
                let (q, rest) = parse_quoted(v)?;
                if !rest.trim().is_empty() {
                    return Err("text after quoted parameter value".into());
                }
                Some(q)
            }
            Some(v) => {
                if v.is_empty() || !v.chars().all(|c| is_token_char(c) || "[]:".contains(c)) {
                    return Err(format!("invalid value for parameter {name}"));
                }
                Some(v.to_string())
            }
        };
        params.push(Param {
            name: name.to_string(),
            value,
        });
    }
    Ok(params)
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quote = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
        } else if c == '"' {
            in_quote = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + sep.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

/// Parse a quoted string at the start of `s`; returns (unescaped content, rest).
pub fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err("expected quoted string".into()),
    }
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok((out, &s[i + 1..]));
        } else {
            out.push(c);
        }
    }
    Err("unterminated quoted string".into())
}

/// A parsed `name-addr` / `addr-spec` with header parameters
/// (From, To, Contact, Route, Record-Route values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name (unquoted), if any.
    pub display_name: Option<String>,
    /// The URI text, exactly as received (without `<>`).
    pub uri: String,
    /// True if the URI was enclosed in `<>`.
    pub bracketed: bool,
    /// Header parameters (after the URI).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// The `tag` parameter, if present.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").flatten()
    }

    /// The URI as an [`rsip::Uri`].
    pub fn rsip_uri(&self) -> Result<rsip::Uri, String> {
        rsip::Uri::try_from(self.uri.as_str()).map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for NameAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.display_name {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        for p in &self.params {
            match &p.value {
                Some(v) if v.chars().all(|c| is_token_char(c) || "[]:".contains(c)) => {
                    write!(f, ";{}={}", p.name, v)?
                }
                Some(v) => write!(f, ";{}=\"{}\"", p.name, v.replace('"', "\\\""))?,
                None => write!(f, ";{}", p.name)?,
            }
        }
        Ok(())
    }
}

fn check_uri_text(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("empty URI".into());
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace inside URI".into());
    }
    let Some((scheme, _)) = uri.split_once(':') else {
        return Err("URI without scheme".into());
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err("invalid URI scheme".into());
    }
    Ok(())
}

/// Parse a `name-addr` or `addr-spec` followed by header parameters.
pub fn parse_name_addr(value: &str) -> Result<NameAddr, String> {
    let s = value.trim();
    let (display_name, after_display) = if s.starts_with('"') {
        let (d, rest) = parse_quoted(s)?;
        let rest = rest.trim_start();
        if !rest.starts_with('<') {
            return Err("quoted display name not followed by <URI>".into());
        }
        (Some(d), rest)
    } else if let Some(lt) = s.find('<') {
        let disp = s[..lt].trim();
        if !disp.split(is_lws).filter(|t| !t.is_empty()).all(is_token) {
            return Err("display name must be tokens or a quoted string".into());
        }
        (
            if disp.is_empty() {
                None
            } else {
                Some(disp.to_string())
            },
            &s[lt..],
        )
    } else {
        (None, s)
    };
    if let Some(inner) = after_display.strip_prefix('<') {
        let Some(gt) = inner.find('>') else {
            return Err("missing '>'".into());
        };
        let uri = &inner[..gt];
        check_uri_text(uri)?;
        let params = parse_params(&inner[gt + 1..])?;
        Ok(NameAddr {
            display_name,
            uri: uri.to_string(),
            bracketed: true,
            params,
        })
    } else {
        // addr-spec: URI parameters would be ambiguous, so everything after ';'
        // is a header parameter; '?' and ',' require <>.
        let (uri, rest) = match after_display.find(';') {
            Some(i) => (&after_display[..i], &after_display[i..]),
            None => (after_display, ""),
        };
        let uri = uri.trim();
        check_uri_text(uri)?;
        if uri.contains('?') || uri.contains(',') {
            return Err("URI with '?' or ',' must be enclosed in <>".into());
        }
        let params = parse_params(rest)?;
        Ok(NameAddr {
            display_name,
            uri: uri.to_string(),
            bracketed: false,
            params,
        })
    }
}

/// One parsed `via-parm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaValue {
    /// Protocol name, normally `SIP`.
    pub protocol: String,
    /// Protocol version, normally `2.0`.
    pub version: String,
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or an unknown token).
    pub transport: String,
    /// Host of sent-by (IPv6 references keep their brackets).
    pub host: String,
    /// Port of sent-by, if present.
    pub port: Option<u16>,
    /// Via parameters.
    pub params: Vec<Param>,
}

impl ViaValue {
    /// The branch parameter, if present.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").flatten()
    }

    /// The `received` parameter, if present.
    pub fn received(&self) -> Option<&str> {
        find_param(&self.params, "received").flatten()
    }

    /// The `rport` parameter: `None` absent, `Some(None)` present without value.
    pub fn rport(&self) -> Option<Option<u16>> {
        find_param(&self.params, "rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// `sent-by` as `host[:port]`, host lowercased (for transaction matching).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host.to_ascii_lowercase(), p),
            None => self.host.to_ascii_lowercase(),
        }
    }
}

fn take_token(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    if end == 0 {
        None
    } else {
        Some((&s[..end], &s[end..]))
    }
}

/// Parse one `via-parm` (`SIP / 2.0 / UDP host:port;params`), LWS allowed around `/`.
pub fn parse_via(value: &str) -> Result<ViaValue, String> {
    let s = value.trim();
    let bad = |what: &str| format!("malformed sent-protocol ({what})");
    let (protocol, rest) = take_token(s).ok_or_else(|| bad("protocol"))?;
    let rest = rest
        .trim_start()
        .strip_prefix('/')
        .ok_or_else(|| bad("/"))?
        .trim_start();
    let (version, rest) = take_token(rest).ok_or_else(|| bad("version"))?;
    let rest = rest
        .trim_start()
        .strip_prefix('/')
        .ok_or_else(|| bad("/"))?
        .trim_start();
    let (transport, rest) = take_token(rest).ok_or_else(|| bad("transport"))?;
    if !rest.starts_with(is_lws) {
        return Err("missing sent-by".into());
    }
    let rest = rest.trim_start();
    let (sent_by, params) = match rest.find(';') {
        Some(i) => (rest[..i].trim(), &rest[i..]),
        None => (rest.trim(), ""),
    };
    let (host, port) = parse_host_port(sent_by)?;
    let params = parse_params(params)?;
    Ok(ViaValue {
        protocol: protocol.to_string(),
        version: version.to_string(),
        transport: transport.to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

/// Parse `host[:port]` (hostname, IPv4 or `[IPv6]`).
pub fn parse_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(inner) = s.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            return Err("unterminated IPv6 reference".into());
        };
        let host = &s[..end + 2];
        if !inner[..end]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("invalid IPv6 reference".into());
        }
        (host, &inner[end + 1..])
    } else {
        match s.find(':') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    let host_ok = if host.starts_with('[') {
        true
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if !host_ok {
        return Err(format!("invalid host {:?}", truncate(host)));
    }
    let port = if port.is_empty() {
        None
    } else {
        let p = port
            .strip_prefix(':')
            .ok_or_else(|| "invalid port".to_string())?;
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid port".into());
        }
        Some(
            p.parse::<u16>()
                .map_err(|_| "port out of range".to_string())?,
        )
    };
    Ok((host.to_string(), port))
}

/// A parsed CSeq value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeqValue {
    /// Sequence number (< 2^31).
    pub seq: u32,
    /// Method token, case preserved.
    pub method: String,
}

/// Parse `1*DIGIT LWS Method`; the number must be below 2^31 (RFC 3261 §8.1.1.5).
pub fn parse_cseq(value: &str) -> Result<CSeqValue, String> {
    let s = value.trim();
    let mut parts = s.split(is_lws).filter(|p| !p.is_empty());
    let (Some(num), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected 'number method'".into());
    };
    let seq = parse_bounded_int(num, (1u64 << 31) - 1)
        .ok_or_else(|| "sequence number not an integer below 2^31".to_string())?;
    if !is_token(method) {
        return Err("invalid method".into());
    }
    Ok(CSeqValue {
        seq: seq as u32,
        method: method.to_string(),
    })
}

/// Parse a decimal integer (leading zeros allowed) no larger than `max`.
pub fn parse_bounded_int(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 19 {
        return None;
    }
    let v: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    (v <= max).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_list_respects_quotes_and_angles() {
        let v = split_list(r#""a, b" <sip:x@y;p=1,2>;q=1, <sip:z@w>"#);
        assert_eq!(v, vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]);
        assert_eq!(split_list("a,,b"), vec!["a", "", "b"]);
    }

    #[test]
    fn name_addr_forms() {
        let n =
            parse_name_addr(r#""J Rosenberg \\\"" <sip:j@example.com> ; tag = 98asjd8"#).unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.uri, "sip:j@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = parse_name_addr("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = parse_name_addr("sip:a@b;tag=1;x").unwrap();
        assert!(!n.bracketed);
        assert_eq!(n.tag(), Some("1"));
        assert!(parse_name_addr(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(parse_name_addr("\"W\" < sip:t@example.org >").is_err());
        assert!(parse_name_addr("Bell, Alexander <sip:a@example.com>").is_err());
        assert!(parse_name_addr("sip:user@example.com?Route=%3Csip:x%3E").is_err());
        assert!(parse_name_addr("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    }

    #[test]
    fn via_with_lws() {
        let v = parse_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = parse_via("SIP/2.0/UDP [2001:db8::1]:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.sent_by(), "[2001:db8::1]:5070");
        assert_eq!(v.rport(), Some(None));
        assert!(parse_via("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(parse_via("SIP/2.0/UDP").is_err());
        assert!(parse_via("SIP/2.0/UDP host:99999").is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(parse_cseq("0009 INVITE").unwrap().seq, 9);
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert_eq!(parse_cseq("2147483647 INVITE").unwrap().seq, 2147483647);
        assert!(parse_cseq("1").is_err());
    }
}
