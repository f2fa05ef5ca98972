//! Line-oriented SDP parser. Accepts CRLF or LF line endings, tolerates trailing
//! whitespace, blank lines and session-level lines out of RFC order; rejects everything
//! else with the line number and the problem.

use crate::attribute::{parse_num, Attribute};
use crate::error::{invalid, snippet, ParseError, Problem};
use crate::model::{
    AddrType, Bandwidth, Connection, Limits, MediaDescription, MediaKind, Origin,
    SessionDescription, Timing,
};

impl SessionDescription {
    /// Parse with the default [`Limits`].
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_with_limits(text, &Limits::default())
    }

    /// Parse raw bytes (e.g. a SIP body) with the default [`Limits`].
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Self::parse(s),
            Err(e) => {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                Err(ParseError::new(line, Problem::NotUtf8))
            }
        }
    }

    /// Parse with explicit limits.
    pub fn parse_with_limits(text: &str, limits: &Limits) -> Result<Self, ParseError> {
        if text.len() > limits.max_bytes {
            return Err(ParseError::new(
                1,
                Problem::TooLarge {
                    limit: limits.max_bytes,
                },
            ));
        }
        let mut p = Parser {
            limits,
            sdp: None,
            seen: Seen::default(),
            last_line: 0,
        };
        for (idx, raw) in text.split('\n').enumerate() {
            let lineno = idx + 1;
            if idx >= limits.max_lines {
                return Err(ParseError::new(
                    lineno,
                    Problem::TooManyLines {
                        limit: limits.max_lines,
                    },
                ));
            }
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let line = line.trim_end_matches([' ', '\t']);
            if line.is_empty() {
                continue;
            }
            p.last_line = lineno;
            p.line(line)
                .map_err(|problem| ParseError::new(lineno, problem))?;
        }
        p.finish()
    }
}

#[derive(Default)]
struct Seen {
    o: bool,
    s: bool,
    i: bool,
    u: bool,
    c: bool,
    z: bool,
    k: bool,
}

struct Parser<'l> {
    limits: &'l Limits,
    sdp: Option<SessionDescription>,
    seen: Seen,
    last_line: usize,
}

impl Parser<'_> {
    fn line(&mut self, line: &str) -> Result<(), Problem> {
        if line.len() > self.limits.max_line_len {
            return Err(Problem::LineTooLong {
                limit: self.limits.max_line_len,
            });
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(Problem::ControlCharacter);
        }
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
            return Err(Problem::NotTypeValue(snippet(line)));
        }
        let typ = char::from(b[0]);
        let value = line.get(2..).unwrap_or_default();

        let Some(sdp) = self.sdp.as_mut() else {
            if typ != 'v' {
                return Err(Problem::NoVersion);
            }
            if value != "0" {
                return Err(Problem::BadVersion(snippet(value)));
            }
            self.sdp = Some(SessionDescription {
                origin: Origin {
                    username: "-".into(),
                    session_id: 0,
                    session_version: 0,
                    addr_type: AddrType::Ip4,
                    address: "0.0.0.0".into(),
                },
                session_name: "-".into(),
                session_info: None,
                uri: None,
                emails: Vec::new(),
                phones: Vec::new(),
                connection: None,
                bandwidths: Vec::new(),
                timings: Vec::new(),
                time_zones: None,
                key: None,
                attributes: Vec::new(),
                media: Vec::new(),
            });
            return Ok(());
        };

        if typ == 'm' {
            if sdp.media.len() >= self.limits.max_media {
                return Err(Problem::TooManyMedia {
                    limit: self.limits.max_media,
                });
            }
            let m = parse_media(value, self.limits.max_formats)?;
            sdp.media.push(m);
            return Ok(());
        }

        if let Some(m) = sdp.media.last_mut() {
            match typ {
                'i' if m.title.is_none() => m.title = Some(value.to_owned()),
                'i' => return Err(Problem::Duplicate('i')),
                'c' => m.connections.push(parse_connection(value)?),
                'b' => m.bandwidths.push(parse_bandwidth(value)?),
                'k' if m.key.is_none() => m.key = Some(value.to_owned()),
                'k' => return Err(Problem::Duplicate('k')),
                'a' => m.attributes.push(Attribute::parse(value)?),
                'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
                    return Err(Problem::Misplaced(typ))
                }
                _ => return Err(Problem::UnknownType(typ)),
            }
            return Ok(());
        }

        let seen = &mut self.seen;
        let once = |flag: &mut bool| {
            if std::mem::replace(flag, true) {
                Err(Problem::Duplicate(typ))
            } else {
                Ok(())
            }
        };
        match typ {
            'v' => return Err(Problem::Duplicate('v')),
            'o' => {
                once(&mut seen.o)?;
                sdp.origin = parse_origin(value)?;
            }
            's' => {
                once(&mut seen.s)?;
                sdp.session_name = value.to_owned();
            }
            'i' => {
                once(&mut seen.i)?;
                sdp.session_info = Some(value.to_owned());
            }
            'u' => {
                once(&mut seen.u)?;
                sdp.uri = Some(value.to_owned());
            }
            'e' => sdp.emails.push(value.to_owned()),
            'p' => sdp.phones.push(value.to_owned()),
            'c' => {
                once(&mut seen.c)?;
                sdp.connection = Some(parse_connection(value)?);
            }
            'b' => sdp.bandwidths.push(parse_bandwidth(value)?),
            't' => sdp.timings.push(parse_timing(value)?),
            'r' => match sdp.timings.last_mut() {
                Some(t) => t.repeats.push(value.to_owned()),
                None => return Err(Problem::Misplaced('r')),
            },
            'z' => {
                once(&mut seen.z)?;
                sdp.time_zones = Some(value.to_owned());
            }
            'k' => {
                once(&mut seen.k)?;
                sdp.key = Some(value.to_owned());
            }
            'a' => sdp.attributes.push(Attribute::parse(value)?),
            _ => return Err(Problem::UnknownType(typ)),
        }
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, ParseError> {
        let next = self.last_line + 1;
        let Some(mut sdp) = self.sdp else {
            return Err(ParseError::new(1, Problem::NoVersion));
        };
        if !self.seen.o {
            return Err(ParseError::new(next, Problem::Missing('o')));
        }
        if sdp.timings.is_empty() {
            sdp.timings.push(Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            });
        }
        Ok(sdp)
    }
}

fn parse_origin(v: &str) -> Result<Origin, Problem> {
    let t: Vec<&str> = v.split_whitespace().collect();
    if t.len() != 6 {
        return Err(invalid(
            "o= line (expected 6 fields: username sess-id sess-version IN addrtype address)",
            v,
        ));
    }
    let session_id = parse_num::<u64>(t[1]).ok_or_else(|| invalid("o= session id", t[1]))?;
    let session_version =
        parse_num::<u64>(t[2]).ok_or_else(|| invalid("o= session version", t[2]))?;
    if t[3] != "IN" {
        return Err(invalid("o= network type", t[3]));
    }
    let addr_type = AddrType::parse(t[4]).ok_or_else(|| invalid("o= address type", t[4]))?;
    Ok(Origin {
        username: t[0].to_owned(),
        session_id,
        session_version,
        addr_type,
        address: t[5].to_owned(),
    })
}

fn parse_connection(v: &str) -> Result<Connection, Problem> {
    let t: Vec<&str> = v.split_whitespace().collect();
    if t.len() != 3 {
        return Err(invalid("c= line (expected `IN <addrtype> <address>`)", v));
    }
    if t[0] != "IN" {
        return Err(invalid("c= network type", t[0]));
    }
    let addr_type = AddrType::parse(t[1]).ok_or_else(|| invalid("c= address type", t[1]))?;
    let (address, multicast) = match t[2].split_once('/') {
        Some((a, m)) => (a, Some(m.to_owned())),
        None => (t[2], None),
    };
    if address.is_empty() {
        return Err(invalid("c= address", t[2]));
    }
    Ok(Connection {
        addr_type,
        address: address.to_owned(),
        multicast,
    })
}

fn parse_bandwidth(v: &str) -> Result<Bandwidth, Problem> {
    let (bwtype, value) = v
        .split_once(':')
        .ok_or_else(|| invalid("b= line (expected `<type>:<value>`)", v))?;
    if bwtype.is_empty() || bwtype.contains(char::is_whitespace) {
        return Err(invalid("b= type", bwtype));
    }
    let value = parse_num::<u64>(value).ok_or_else(|| invalid("b= value", value))?;
    Ok(Bandwidth {
        bwtype: bwtype.to_owned(),
        value,
    })
}

fn parse_timing(v: &str) -> Result<Timing, Problem> {
    let t: Vec<&str> = v.split_whitespace().collect();
    if t.len() != 2 {
        return Err(invalid("t= line (expected `<start> <stop>`)", v));
    }
    Ok(Timing {
        start: parse_num(t[0]).ok_or_else(|| invalid("t= start time", t[0]))?,
        stop: parse_num(t[1]).ok_or_else(|| invalid("t= stop time", t[1]))?,
        repeats: Vec::new(),
    })
}

fn parse_media(v: &str, max_formats: usize) -> Result<MediaDescription, Problem> {
    let mut it = v.split_whitespace();
    let (Some(kind), Some(port_s), Some(proto)) = (it.next(), it.next(), it.next()) else {
        return Err(invalid(
            "m= line (expected `<media> <port> <proto> <fmt> ...`)",
            v,
        ));
    };
    let (port, port_count) = match port_s.split_once('/') {
        Some((p, n)) => (
            parse_num::<u16>(p).ok_or_else(|| invalid("m= port", port_s))?,
            Some(parse_num::<u16>(n).ok_or_else(|| invalid("m= port count", port_s))?),
        ),
        None => (
            parse_num::<u16>(port_s).ok_or_else(|| invalid("m= port", port_s))?,
            None,
        ),
    };
    let mut m = MediaDescription {
        kind: MediaKind::parse(kind),
        port,
        port_count,
        proto: proto.to_owned(),
        formats: Vec::new(),
        title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    };
    let rtp = m.is_rtp();
    for f in it {
        if m.formats.len() >= max_formats {
            return Err(Problem::TooManyFormats { limit: max_formats });
        }
        if rtp && parse_num::<u8>(f).filter(|pt| *pt <= 127).is_none() {
            return Err(invalid("RTP payload type on m= line", f));
        }
        m.formats.push(f.to_owned());
    }
    Ok(m)
}
