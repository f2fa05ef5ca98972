//! Audio devices (cpal: listing, capture and playback streams), WAV files (hound) and resampling.
//!
//! Tone generation and analysis live in `peerline-media::tone` (they are used on
//! decoded RTP audio); this crate deals with files, devices and sample rates.

pub mod device_io;
pub mod devices;
pub mod recorder;
pub mod resample;
pub mod stream;
pub mod wav;

pub use device_io::{Capture, Playback};
pub use devices::{list_devices, DeviceInfo};
pub use recorder::{RecordError, Recorder};
pub use resample::{resample, Resampler};
pub use stream::{find_device, DeviceStream, InputStream, OutputStream, SampleRing, StreamStats};
pub use wav::{read_wav, read_wav_from, write_wav, write_wav_to, Audio};

/// Errors from this crate.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("wav: {0}")]
    Wav(#[from] hound::Error),
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("audio device: {0}")]
    Device(String),
    #[error("invalid sample rate {0}")]
    BadRate(u32),
}
