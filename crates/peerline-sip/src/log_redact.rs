//! Redaction of digest credentials in SIP message text before it is logged.
//!
//! A digest `response` is a hash of the password with a known nonce: anyone reading it
//! can run a dictionary attack offline. [`redact_credentials`] replaces the `response`
//! value of every `Authorization` and `Proxy-Authorization` header line (long or compact
//! header names, any case) with `<redacted>`; everything else is kept as is.

use std::borrow::Cow;

/// `text` with digest responses in credential headers replaced by `<redacted>`.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("authorization") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "authorization" || name == "proxy-authorization" {
            out.push_str(&redact_line(line));
        } else {
            out.push_str(line);
        }
    }
    Cow::Owned(out)
}

/// Replaces the value after each `response=` (quoted or token) in one header line.
fn redact_line(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("response") {
        let key_end = pos + found + "response".len();
        // Only a parameter name: preceded by a separator, followed by `=`.
        let before_ok = lower[..pos + found]
            .chars()
            .next_back()
            .is_none_or(|c| c == ',' || c == ' ' || c == '\t');
        let rest = &line[key_end..];
        let trimmed = rest.trim_start();
        if !before_ok || !trimmed.starts_with('=') {
            out.push_str(&line[pos..key_end]);
            pos = key_end;
            continue;
        }
        let value_start = key_end + (rest.len() - trimmed.len()) + 1;
        let after_eq = &line[value_start..];
        let value_ws = after_eq.len() - after_eq.trim_start().len();
        let v = &after_eq[value_ws..];
        let value_len = if let Some(q) = v.strip_prefix('"') {
            q.find('"').map(|e| e + 2).unwrap_or(v.len())
        } else {
            v.find([',', ' ', '\t', '\r', '\n']).unwrap_or(v.len())
        };
        out.push_str(&line[pos..value_start + value_ws]);
        out.push_str("\"<redacted>\"");
        pos = value_start + value_ws + value_len;
    }
    out.push_str(&line[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_redacted_and_the_rest_is_kept() {
        let msg = "INVITE sip:bob@x SIP/2.0\r\n\
                   Authorization: Digest username=\"alice\", realm=\"r\", nonce=\"n\", uri=\"sip:bob@x\", response=\"6629fae49393a05397450978507c4ef1\", qop=auth\r\n\
                   proxy-authorization: Digest response = abc123,username=\"a\"\r\n\
                   Subject: response=\"keep\"\r\n\r\nresponse=\"body\"";
        let r = redact_credentials(msg);
        assert!(!r.contains("6629fae4"), "{r}");
        assert!(!r.contains("abc123"), "{r}");
        assert!(r.contains("username=\"alice\""), "{r}");
        assert!(r.contains("qop=auth\r\n"), "{r}");
        assert!(r.contains("Subject: response=\"keep\""), "{r}");
        assert!(r.ends_with("response=\"body\""), "{r}");
        assert_eq!(r.matches("<redacted>").count(), 2, "{r}");
        assert!(matches!(redact_credentials("OPTIONS x"), Cow::Borrowed(_)));
        // Truncated and odd input never panics.
        for odd in [
            "Authorization: response=",
            "Authorization: response=\"abc",
            "authorization:response",
            "Authorization: xresponse=1, response",
        ] {
            let _ = redact_credentials(odd);
        }
    }
}
