#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Capture and playback through cpal on REAL ALSA devices that this test defines in
//! its own ALSA configuration (no sound card needed, runs as root in CI):
//!
//! * `peerline_out`: a `file` PCM plugin over the `null` PCM; what we play is written
//!   to a raw file, which the test reads back and checks for the 1 kHz tone.
//! * `peerline_in`: a `file` PCM plugin whose `infile` is a raw 440 Hz tone the test
//!   wrote; capture from it must deliver that tone.
//!
//! ALSA reads its configuration once per process from `ALSA_CONFIG_PATH` (a list of
//! files); we point it at the system `alsa.conf` plus our file before anything touches
//! ALSA. That is process-global, so everything runs in one test function in this
//! test binary of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use peerline_audio::{list_devices, InputStream, OutputStream};
use peerline_media::{detect_tone, dominant_frequency, sine};

fn system_alsa_conf() -> Option<PathBuf> {
    ["/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn play_into_file_plugin_and_capture_from_infile_plugin() {
    let Some(system) = system_alsa_conf() else {
        eprintln!("SKIP: no alsa.conf (libasound2-data not installed)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("peerline-alsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_raw = dir.join("played.raw");
    let in_raw = dir.join("capture.raw");
    // 2 s of 440 Hz, 16-bit little-endian mono at 16 kHz, for the capture device.
    let capture_tone = sine(440.0, 0.5, 16000, 32000);
    let bytes: Vec<u8> = capture_tone.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&in_raw, bytes).unwrap();
    let conf = dir.join("asoundrc");
    std::fs::write(
        &conf,
        format!(
            r#"
pcm.peerline_out {{
    type file
    slave.pcm "null"
    file "{out}"
    format "raw"
    hint {{ show on description "Peerline test output (file)" }}
}}
pcm.peerline_in {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{inp}"
    format "raw"
    hint {{ show on description "Peerline test input (file)" }}
}}
"#,
            out = out_raw.display(),
            inp = in_raw.display()
        ),
    )
    .unwrap();
    std::env::set_var(
        "ALSA_CONFIG_PATH",
        format!("{}:{}", system.display(), conf.display()),
    );

    let devices = list_devices().unwrap();
    eprintln!("devices: {devices:#?}");
    assert!(
        devices.iter().any(|d| d.id.ends_with("peerline_out")),
        "our ALSA device is listed"
    );

    // Playback: 1 s of 1 kHz at 16 kHz mono into the file plugin. The `null` slave
    // has no clock: it consumes as fast as the callback fills, so the ring is filled
    // in one write (all of it becomes visible to the callback at once) and every
    // callback before and after plays silence, counted as underrun.
    {
        let out = OutputStream::open(Some("peerline_out"), 16000, 1500).unwrap();
        eprintln!("{out:?}");
        let tone = sine(1000.0, 0.5, 16000, 16000);
        assert_eq!(
            out.write(&tone),
            tone.len(),
            "the ring takes the whole tone"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let stats = out.stats();
        eprintln!("output stats {stats:?}, error {:?}", out.last_error());
        assert_eq!(stats.samples, 16000, "{stats:?}");
        assert!(stats.callbacks > 0 && stats.underruns > 0, "{stats:?}");
        assert_eq!(stats.errors, 0);
    }
    let raw = std::fs::read(&out_raw).unwrap();
    let channels = 1; // opened mono when the device allows it (the null/file plugins do)
    let written: Vec<i16> = raw
        .chunks_exact(2 * channels)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    eprintln!("file plugin wrote {} samples", written.len());
    assert!(
        written.len() >= 16000,
        "{} samples in the file",
        written.len()
    );
    let loud: Vec<i16> = written
        .iter()
        .copied()
        .skip_while(|&s| s == 0)
        .take(16000)
        .collect();
    assert_eq!(loud.len(), 16000);
    let f = dominant_frequency(&loud, 16000);
    assert!((f - 1000.0).abs() < 2.0, "the file holds {f} Hz");
    assert!(detect_tone(&loud, 16000, 1000.0) > 0.9);

    // Capture: frames arrive, and they are the infile's 440 Hz tone.
    let input = InputStream::open(Some("peerline_in"), 16000, 500).unwrap();
    eprintln!("{input:?}");
    let mut got = Vec::new();
    let mut buf = [0i16; 320];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 8000 && Instant::now() < deadline {
        let n = input.read(&mut buf);
        got.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = input.stats();
    eprintln!("input stats {stats:?}, error {:?}", input.last_error());
    assert!(got.len() >= 8000, "captured {} samples", got.len());
    let f = dominant_frequency(&got[..8000], 16000);
    assert!((f - 440.0).abs() < 2.0, "captured {f} Hz");
    drop(input);
    let _ = std::fs::remove_dir_all(&dir);
}
