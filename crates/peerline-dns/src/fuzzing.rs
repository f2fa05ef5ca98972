//! Shared by the cargo-fuzz target `dns_uri` and the corpus replay test.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::records::{Answer, AnswerData, Naptr, QueryKind, Srv};
use crate::rfc3263::{resolve_with, Policy};
use crate::uri::Destination;

/// Parse arbitrary bytes as a URI; a URI that parses must print to text that parses back to
/// the same destination, and must locate (over canned records derived from the input)
/// without panicking. Returns `Err` only when an invariant is broken.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(dest) = Destination::parse(text) else {
        return Ok(());
    };
    let printed = dest.to_string();
    match Destination::parse(&printed) {
        Ok(again) if again == dest => {}
        Ok(again) => return Err(format!("round trip changed: {dest:?} -> {again:?}")),
        Err(e) => return Err(format!("own output {printed:?} does not parse: {e}")),
    }
    // Records built from the input bytes: every name points back at the URI's own host.
    let host = dest.domain().unwrap_or("example.invalid").to_string();
    let seed = data
        .iter()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)));
    let b = |i: usize| data.get(i % data.len().max(1)).copied().unwrap_or(0);
    let lookup = |q: &crate::records::Query| {
        let k = b(q.name.len());
        match q.kind {
            QueryKind::Naptr => Answer::new(
                u32::from(k),
                AnswerData::Naptr(vec![Naptr {
                    order: u16::from(b(1)),
                    preference: u16::from(b(2)),
                    flags: if k % 2 == 0 { "s".into() } else { "u".into() },
                    services: ["SIP+D2U", "SIP+D2T", "SIPS+D2T", "x"][usize::from(k % 4)].into(),
                    regexp: String::new(),
                    replacement: format!("_sip._udp.{host}"),
                }]),
            ),
            QueryKind::Srv => Answer::new(
                60,
                AnswerData::Srv(vec![
                    Srv {
                        priority: u16::from(b(3)),
                        weight: u16::from(b(4)),
                        port: u16::from(b(5)),
                        target: host.clone(),
                    },
                    Srv {
                        priority: 0,
                        weight: 0,
                        port: 5060,
                        target: ".".into(),
                    },
                ]),
            ),
            QueryKind::A if k % 3 != 0 => {
                Answer::new(30, AnswerData::Addrs(vec![[127, 0, 0, k].into()]))
            }
            _ => Answer::empty(10),
        }
    };
    let mut rng = StdRng::seed_from_u64(seed);
    if let Ok(r) = resolve_with(dest.clone(), Policy::default(), lookup, &mut rng) {
        if r.targets.is_empty() {
            return Err("Ok with no targets".into());
        }
    }
    Ok(())
}
