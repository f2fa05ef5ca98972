//! The `Replaces` header (RFC 3891), sans-IO: parse and format it, carry it inside a
//! `Refer-To` URI as an escaped URI header (RFC 3261 §19.1.1, RFC 5589 §7), and decide
//! what a UAS answers when an INVITE's `Replaces` names one of its dialogs (§3).
//!
//! The tags are seen from the side that receives the INVITE: `to-tag` is its local tag
//! of the dialog to replace, `from-tag` its remote tag.

use crate::syntax::is_token;

/// A `Replaces` value: `callid;to-tag=…;from-tag=…[;early-only]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// The Call-ID of the dialog to replace.
    pub call_id: String,
    /// Its tag at the receiver of the INVITE (the receiver's local tag).
    pub to_tag: String,
    /// Its tag at the other end (the receiver's remote tag).
    pub from_tag: String,
    /// Replace the dialog only while it is early (a confirmed one answers 486).
    pub early_only: bool,
}

/// Why a `Replaces` value is refused (the INVITE gets a 400 naming it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplacesError {
    /// No Call-ID before the parameters, or one with characters a Call-ID cannot hold.
    #[error("Replaces has no valid Call-ID")]
    CallId,
    /// RFC 3891 §6.1: exactly one `to-tag` and exactly one `from-tag`.
    #[error("Replaces needs exactly one {0}")]
    Tag(&'static str),
    /// A parameter that is not `name[=value]` with token characters.
    #[error("Replaces has a malformed parameter")]
    Param,
}

/// Characters a Call-ID may hold (RFC 3261 §25.1 `word`, with one `@`).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~()<>:\\\"/[]?{}".contains(c)
}

impl Replaces {
    /// Parses a header value.
    pub fn parse(value: &str) -> Result<Self, ReplacesError> {
        let mut parts = value.split(';');
        let call_id = parts.next().unwrap_or("").trim();
        let valid_call_id = match call_id.split_once('@') {
            Some((a, b)) => {
                !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(is_word_char)
            }
            None => !call_id.is_empty() && call_id.chars().all(is_word_char),
        };
        if !valid_call_id {
            return Err(ReplacesError::CallId);
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, v) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            if !is_token(name) || v.is_some_and(|v| !is_token(v)) {
                return Err(ReplacesError::Param);
            }
            let slot = if name.eq_ignore_ascii_case("to-tag") {
                &mut to_tag
            } else if name.eq_ignore_ascii_case("from-tag") {
                &mut from_tag
            } else {
                early_only |= name.eq_ignore_ascii_case("early-only");
                continue;
            };
            let label = if name.eq_ignore_ascii_case("to-tag") {
                "to-tag"
            } else {
                "from-tag"
            };
            match (slot.is_some(), v) {
                (false, Some(v)) => *slot = Some(v.to_string()),
                _ => return Err(ReplacesError::Tag(label)),
            }
        }
        Ok(Self {
            call_id: call_id.to_string(),
            to_tag: to_tag.ok_or(ReplacesError::Tag("to-tag"))?,
            from_tag: from_tag.ok_or(ReplacesError::Tag("from-tag"))?,
            early_only,
        })
    }

    /// The header value.
    pub fn to_header_value(&self) -> String {
        let mut v = format!(
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        );
        if self.early_only {
            v.push_str(";early-only");
        }
        v
    }

    /// `Replaces=<escaped value>`, the URI header a `Refer-To` URI carries.
    pub fn to_uri_header(&self) -> String {
        format!("Replaces={}", escape_hvalue(&self.to_header_value()))
    }

    /// Whether this names the dialog `call_id` with our `local_tag` and the peer's
    /// `remote_tag`. A tag of `0` also matches an empty one (RFC 3891 §6.1, for dialogs
    /// of RFC 2543 peers).
    pub fn matches(&self, call_id: &str, local_tag: &str, remote_tag: &str) -> bool {
        fn tag_eq(ours: &str, theirs: &str) -> bool {
            ours == theirs || (theirs == "0" && ours.is_empty())
        }
        self.call_id == call_id
            && tag_eq(local_tag, &self.to_tag)
            && tag_eq(remote_tag, &self.from_tag)
    }
}

/// Escapes a URI header value (RFC 3261 `hvalue`: unreserved, `hnv-unreserved`, escaped).
pub fn escape_hvalue(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for b in value.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-_.!~*'()[]/?:+$".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes `%XX` escapes; `None` on a bad escape or a result that is not UTF-8.
pub fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits `uri?h1=v1&h2=v2` into the URI and its headers, names as written and values
/// unescaped; `None` when an escape is malformed.
pub fn split_uri_headers(uri: &str) -> Option<(&str, Vec<(String, String)>)> {
    let Some((base, headers)) = uri.split_once('?') else {
        return Some((uri, Vec::new()));
    };
    let mut out = Vec::new();
    for h in headers.split('&').filter(|h| !h.is_empty()) {
        let (name, value) = h.split_once('=').unwrap_or((h, ""));
        out.push((unescape(name)?, unescape(value)?));
    }
    Some((base, out))
}

/// The state of the dialog a `Replaces` matched, as the UAS sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedDialog {
    /// Confirmed (2xx exchanged).
    Confirmed,
    /// Early, and we sent its INVITE.
    EarlyOutgoing,
    /// Early, and the peer sent its INVITE (we have not answered).
    EarlyIncoming,
    /// Already ended (BYE or CANCEL sent or received).
    Terminated,
}

/// What a UAS does with an INVITE carrying `Replaces` (RFC 3891 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacesVerdict {
    /// Accept the INVITE, then end the replaced dialog (BYE, or CANCEL when early).
    Replace,
    /// Refuse with this status and reason phrase.
    Refuse(u16, &'static str),
}

/// RFC 3891 §3 for a `Replaces` that matched `dialog` (`None`: no dialog matched).
pub fn uas_verdict(replaces: &Replaces, dialog: Option<MatchedDialog>) -> ReplacesVerdict {
    match dialog {
        None => ReplacesVerdict::Refuse(481, "Call/Transaction Does Not Exist"),
        Some(MatchedDialog::EarlyIncoming) => {
            ReplacesVerdict::Refuse(481, "Call/Transaction Does Not Exist")
        }
        Some(MatchedDialog::Terminated) => ReplacesVerdict::Refuse(603, "Declined"),
        Some(MatchedDialog::Confirmed) if replaces.early_only => {
            ReplacesVerdict::Refuse(486, "Busy Here")
        }
        Some(MatchedDialog::Confirmed | MatchedDialog::EarlyOutgoing) => ReplacesVerdict::Replace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(v: &str) -> Result<Replaces, ReplacesError> {
        Replaces::parse(v)
    }

    #[test]
    fn parses_the_rfc_example_and_round_trips() {
        let r = rep("425928@bobster.example.org;to-tag=7743;from-tag=6472").unwrap();
        assert_eq!(r.call_id, "425928@bobster.example.org");
        assert_eq!((r.to_tag.as_str(), r.from_tag.as_str()), ("7743", "6472"));
        assert!(!r.early_only);
        assert_eq!(rep(&r.to_header_value()), Ok(r.clone()));
        let e = rep("abc ; from-tag=1 ; To-Tag=2 ; early-only ; x=y").unwrap();
        assert_eq!(
            (e.to_tag.as_str(), e.from_tag.as_str(), e.early_only),
            ("2", "1", true)
        );
        assert_eq!(rep(&e.to_header_value()), Ok(e));
    }

    #[test]
    fn refuses_what_rfc_3891_forbids() {
        assert_eq!(rep(""), Err(ReplacesError::CallId));
        assert_eq!(rep(";to-tag=1;from-tag=2"), Err(ReplacesError::CallId));
        assert_eq!(rep("a b;to-tag=1;from-tag=2"), Err(ReplacesError::CallId));
        assert_eq!(rep("@x;to-tag=1;from-tag=2"), Err(ReplacesError::CallId));
        assert_eq!(rep("id;from-tag=2"), Err(ReplacesError::Tag("to-tag")));
        assert_eq!(rep("id;to-tag=1"), Err(ReplacesError::Tag("from-tag")));
        assert_eq!(
            rep("id;to-tag=1;to-tag=3;from-tag=2"),
            Err(ReplacesError::Tag("to-tag"))
        );
        assert_eq!(
            rep("id;to-tag;from-tag=2"),
            Err(ReplacesError::Tag("to-tag"))
        );
        assert_eq!(rep("id;to-tag=1;from-tag=2;a b"), Err(ReplacesError::Param));
        assert_eq!(rep("id;to-tag=1 2;from-tag=2"), Err(ReplacesError::Param));
    }

    #[test]
    fn travels_escaped_inside_a_refer_to_uri() {
        let r = rep("98asjd8@test.com;to-tag=12345;from-tag=5FFE-3994").unwrap();
        let uri = format!(
            "sip:carol@192.0.2.3:5070;transport=udp?{}",
            r.to_uri_header()
        );
        assert_eq!(
            uri,
            "sip:carol@192.0.2.3:5070;transport=udp?Replaces=\
             98asjd8%40test.com%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994"
        );
        let (base, headers) = split_uri_headers(&uri).unwrap();
        assert_eq!(base, "sip:carol@192.0.2.3:5070;transport=udp");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0, "Replaces");
        assert_eq!(rep(&headers[0].1), Ok(r));
        assert_eq!(
            split_uri_headers("sip:a@b?x=1&Subject=hi%20there")
                .unwrap()
                .1,
            vec![
                ("x".into(), "1".into()),
                ("Subject".into(), "hi there".into())
            ]
        );
        assert_eq!(split_uri_headers("sip:a@b?x=%4"), None);
        assert_eq!(split_uri_headers("sip:a@b?x=%zz"), None);
        assert_eq!(split_uri_headers("sip:a@b?x=%FF"), None);
    }

    #[test]
    fn matches_with_the_receivers_tags() {
        let r = rep("c1;to-tag=mine;from-tag=theirs").unwrap();
        assert!(r.matches("c1", "mine", "theirs"));
        assert!(!r.matches("c1", "theirs", "mine"));
        assert!(!r.matches("C1", "mine", "theirs"));
        let zero = rep("c1;to-tag=0;from-tag=0").unwrap();
        assert!(zero.matches("c1", "", ""));
        assert!(!zero.matches("c1", "x", ""));
    }

    #[test]
    fn uas_verdicts_follow_section_3() {
        let r = rep("c;to-tag=1;from-tag=2").unwrap();
        let early = rep("c;to-tag=1;from-tag=2;early-only").unwrap();
        use MatchedDialog::*;
        assert_eq!(
            uas_verdict(&r, None),
            ReplacesVerdict::Refuse(481, "Call/Transaction Does Not Exist")
        );
        assert_eq!(uas_verdict(&r, Some(Confirmed)), ReplacesVerdict::Replace);
        assert_eq!(
            uas_verdict(&r, Some(EarlyOutgoing)),
            ReplacesVerdict::Replace
        );
        assert_eq!(
            uas_verdict(&early, Some(EarlyOutgoing)),
            ReplacesVerdict::Replace
        );
        assert_eq!(
            uas_verdict(&early, Some(Confirmed)),
            ReplacesVerdict::Refuse(486, "Busy Here")
        );
        assert_eq!(
            uas_verdict(&r, Some(EarlyIncoming)),
            ReplacesVerdict::Refuse(481, "Call/Transaction Does Not Exist")
        );
        assert_eq!(
            uas_verdict(&r, Some(Terminated)),
            ReplacesVerdict::Refuse(603, "Declined")
        );
    }
}
