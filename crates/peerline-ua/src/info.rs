//! SIP INFO (RFC 6086) carrying DTMF, as PBXes send it when RFC 4733 events are off:
//! `application/dtmf-relay` (`Signal=5\r\nDuration=160`) and `application/dtmf` (`5`).

/// The digit an INFO body carries, for the DTMF content types; `None` for other types
/// or a body without a valid digit.
pub(crate) fn dtmf_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let value = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    digit(value)
}

/// One DTMF key: `0-9 * # A-D` (case-insensitive), or the RFC 4733 event numbers 10/11
/// that some senders use for `*` and `#`.
fn digit(value: &str) -> Option<char> {
    match value {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && "0123456789*#ABCD".contains(c)).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_and_dtmf_bodies() {
        assert_eq!(
            dtmf_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            dtmf_digit("Application/DTMF-Relay; charset=x", b"signal= #\r\n"),
            Some('#')
        );
        assert_eq!(dtmf_digit("application/dtmf", b"11"), Some('#'));
        assert_eq!(dtmf_digit("application/dtmf", b"a\r\n"), Some('A'));
    }

    #[test]
    fn other_types_and_garbage_carry_no_digit() {
        assert_eq!(dtmf_digit("text/plain", b"5"), None);
        assert_eq!(dtmf_digit("application/dtmf-relay", b"Duration=160"), None);
        assert_eq!(dtmf_digit("application/dtmf-relay", b"Signal=55"), None);
        assert_eq!(dtmf_digit("application/dtmf", b"\xff"), None);
        assert_eq!(dtmf_digit("application/dtmf", b"E"), None);
    }
}
