//! Replays every fuzz corpus/artifact file through the parser: none may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn replay_fuzz_corpus_and_artifacts() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for sub in ["corpus/sip_message", "artifacts/sip_message"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let data = std::fs::read(&path).unwrap();
                peerline_sip::fuzz_parse(&data);
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 30, "seed corpus missing? replayed {replayed}");
}

#[test]
fn replay_stream_corpus_and_artifacts() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for sub in [
        "corpus/sip_stream",
        "artifacts/sip_stream",
        "corpus/sip_message",
    ] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let data = std::fs::read(&path).unwrap();
                peerline_sip::fuzz_stream(&data);
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 35, "stream corpus missing? replayed {replayed}");
}

#[test]
fn truncations_and_mutations_of_seeds_do_not_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sip") {
            let data = std::fs::read(&path).unwrap();
            for cut in (0..data.len()).step_by(7) {
                peerline_sip::fuzz_parse(&data[..cut]);
                let mut m = data.clone();
                m[cut] ^= 0x5a;
                peerline_sip::fuzz_parse(&m);
            }
        }
    }
}

#[test]
fn multibyte_start_lines_do_not_panic() {
    for s in [
        "SIé/2.0 200 OK\r\n\r\n",
        "SIPé 200\r\n\r\n",
        "INVITE sip:a@b SIé/2.0\r\n\r\n",
        "é\r\n\r\n",
    ] {
        peerline_sip::fuzz_parse(s.as_bytes());
        assert!(peerline_sip::parse_message(s.as_bytes()).is_err());
    }
}
