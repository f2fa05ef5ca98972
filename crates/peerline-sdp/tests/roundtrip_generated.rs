//! Property-style round trip over generated descriptions (seeded xorshift, no extra
//! dependency): whatever parses must serialize, re-parse to an equal value, and
//! serialize identically again; answering it must not break that either.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerline_sdp::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn token(&mut self) -> String {
        const CH: &[u8] = b"abcXYZ019-_.+/=!~*";
        (0..1 + self.below(8))
            .map(|_| CH[self.below(CH.len() as u64) as usize] as char)
            .collect()
    }
    fn text(&mut self) -> String {
        const CH: &[u8] = b"ab Z:;/=,.-_09 \t";
        let mut s: String = (0..self.below(20))
            .map(|_| CH[self.below(CH.len() as u64) as usize] as char)
            .collect();
        s.push('x');
        s
    }
}

fn attribute(r: &mut Rng) -> String {
    let pt = r.below(128);
    match r.below(22) {
        0 => format!(
            "rtpmap:{pt} {}/{}",
            r.pick(&["PCMU", "opus", "telephone-event", "G722"]),
            r.pick(&["8000", "48000", "16000"])
        ),
        1 => format!("rtpmap:{pt} opus/48000/{}", r.below(3)),
        2 => format!("fmtp:{pt} {}", r.text()),
        3 => format!("ptime:{}", r.below(200)),
        4 => format!("maxptime:{}", r.below(200)),
        5 => r
            .pick(&["sendrecv", "sendonly", "recvonly", "inactive"])
            .to_string(),
        6 => format!("rtcp:{}", r.below(65536)),
        7 => format!(
            "rtcp:{} IN IP4 10.0.{}.{}",
            r.below(65536),
            r.below(256),
            r.below(256)
        ),
        8 => "rtcp-mux".into(),
        9 => format!(
            "crypto:{} {} inline:{}{}{}",
            1 + r.below(9),
            r.pick(&[
                "AES_CM_128_HMAC_SHA1_80",
                "AES_CM_128_HMAC_SHA1_32",
                "AES_256_CM_HMAC_SHA1_80"
            ]),
            r.token(),
            r.pick(&["", "|2^31", "|1048576"]),
            r.pick(&["", "|1:4"])
        ),
        10 => format!(
            "fingerprint:sha-256 {:02x}:{:02X}",
            r.below(256),
            r.below(256)
        ),
        11 => format!(
            "setup:{}",
            r.pick(&["active", "passive", "actpass", "holdconn"])
        ),
        12 => format!("ice-ufrag:{}", r.token()),
        13 => format!("ice-pwd:{}", r.token()),
        14 => format!("ice-options:{} {}", r.token(), r.token()),
        15 => format!(
            "candidate:{} {} UDP {} 192.0.2.{} {} typ {}{}",
            r.token(),
            1 + r.below(2),
            r.below(1 << 31),
            r.below(256),
            r.below(65536),
            r.pick(&["host", "srflx", "relay", "prflx", "weird"]),
            r.pick(&[
                "",
                " raddr 0.0.0.0 rport 9",
                " generation 0",
                " rport 1 foo bar raddr x"
            ])
        ),
        16 => format!(
            "remote-candidates:1 192.0.2.{} {}",
            r.below(256),
            r.below(65536)
        ),
        17 => "end-of-candidates".into(),
        18 => "ice-lite".into(),
        19 => format!("x-{}", r.token()),
        20 => format!("x-{}:{}", r.token(), r.text()),
        _ => format!(
            "{}:{}",
            r.pick(&["ssrc", "mid", "rtcpxr", "label", "group"]),
            r.text()
        ),
    }
}

fn generate(r: &mut Rng) -> String {
    let nl = if r.below(2) == 0 { "\n" } else { "\r\n" };
    let mut lines = vec![
        "v=0".to_string(),
        format!(
            "o={} {} {} IN IP4 10.0.0.{}",
            r.token(),
            r.below(1 << 40),
            r.below(1 << 40),
            r.below(256)
        ),
        format!("s={}", r.text()),
    ];
    if r.below(2) == 0 {
        lines.push(format!("i={}", r.text()));
    }
    if r.below(3) == 0 {
        lines.push(format!("c=IN IP6 2001:db8::{:x}", r.below(65536)));
    } else {
        lines.push(format!("c=IN IP4 198.51.100.{}", r.below(256)));
    }
    if r.below(3) == 0 {
        lines.push(format!("b=AS:{}", r.below(10000)));
    }
    lines.push(format!("t={} {}", r.below(100), r.below(100)));
    if r.below(4) == 0 {
        lines.push("r=604800 3600 0 90000".into());
    }
    for _ in 0..r.below(4) {
        lines.push(format!("a={}", attribute(r)));
    }
    for _ in 0..r.below(4) {
        let kind = r.pick(&["audio", "audio", "video", "image", "application"]);
        let proto = r.pick(&["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udptl"]);
        let fmts: Vec<String> = (0..1 + r.below(6))
            .map(|_| {
                if proto == "udptl" {
                    "t38".into()
                } else {
                    r.below(128).to_string()
                }
            })
            .collect();
        let port = if r.below(5) == 0 { 0 } else { r.below(65536) };
        let count = if r.below(6) == 0 { "/2" } else { "" };
        lines.push(format!("m={kind} {port}{count} {proto} {}", fmts.join(" ")));
        if r.below(3) == 0 {
            lines.push(format!("c=IN IP4 203.0.113.{}", r.below(256)));
        }
        for _ in 0..r.below(10) {
            lines.push(format!("a={}", attribute(r)));
        }
    }
    let mut out = lines.join(nl);
    out.push_str(nl);
    out
}

#[test]
fn generated_descriptions_round_trip() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for _ in 0..5000 {
        let text = generate(&mut r);
        let sdp = match SessionDescription::parse(&text) {
            Ok(s) => s,
            Err(e) => panic!("generated SDP rejected: {e}\n{text}"),
        };
        parsed += 1;
        let out = sdp.to_string();
        let again = SessionDescription::parse(&out).unwrap();
        assert_eq!(sdp, again, "\n{text}\n---\n{out}");
        assert_eq!(out, again.to_string());
        assert!(peerline_sdp::fuzz_check(text.as_bytes()).is_ok(), "{text}");
    }
    assert_eq!(parsed, 5000);
}

#[test]
fn random_bytes_never_panic() {
    let mut r = Rng(12345);
    for _ in 0..3000 {
        let len = r.below(300) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| r.below(256) as u8).collect();
        if r.below(2) == 0 {
            data.splice(
                0..0,
                b"v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 1 RTP/AVP 0\n"
                    .iter()
                    .copied(),
            );
        }
        assert!(peerline_sdp::fuzz_check(&data).is_ok());
    }
}
