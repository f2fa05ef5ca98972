//! Feeds arbitrary bytes through the RTP receive path: parser, SSRC/sequence
//! tracking, jitter buffer, decoder with concealment, DTMF and RTCP parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peerline_media::fuzz::rtp_input(std::time::Instant::now(), data);
});
