//! Sound-card capture and playback usable from async tasks. A cpal stream is not `Send`,
//! so each one lives on a thread of its own that opens it, keeps it running and drops it
//! when the handle is dropped; the handle (`Send`) shares the stream's sample ring and
//! counters, so a call's media task reads the microphone and writes the speaker without
//! blocking.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::stream::{Counters, DeviceStream, InputStream, OutputStream, SampleRing, StreamStats};
use crate::AudioError;

/// What the stream thread hands back once the device is open.
struct Opened {
    ring: Arc<SampleRing>,
    device: String,
    counters: Arc<Counters>,
}

/// A stream kept alive on its own thread until the handle is dropped.
struct DeviceThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    opened: Opened,
}

impl DeviceThread {
    /// Runs `open` on a new thread; returns once the device is open (or failed).
    fn spawn<S: 'static>(
        name: &str,
        open: impl FnOnce() -> Result<(S, Opened), AudioError> + Send + 'static,
    ) -> Result<Self, AudioError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("peerline-{name}"))
            .spawn(move || match open() {
                Ok((stream, opened)) => {
                    let _ = ready_tx.send(Ok(opened));
                    // Keep the stream until the handle goes (or is dropped).
                    let _ = stop_rx.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| AudioError::Device(format!("cannot start the {name} thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(opened)) => Ok(Self {
                stop: Some(stop_tx),
                thread: Some(thread),
                opened,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(AudioError::Device(format!("the {name} thread ended")))
            }
        }
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl DeviceStream {
    /// What a [`DeviceThread`] shares with the stream it keeps.
    fn opened(&self) -> Opened {
        Opened {
            ring: self.ring_handle(),
            device: self.device_name().to_string(),
            counters: self.counters_handle(),
        }
    }
}

impl DeviceThread {
    /// Opens a stream with `open` on its own thread and shares its ring.
    fn stream<S: std::ops::Deref<Target = DeviceStream> + 'static>(
        name: &str,
        open: impl FnOnce() -> Result<S, AudioError> + Send + 'static,
    ) -> Result<Self, AudioError> {
        Self::spawn(name, move || {
            let s = open()?;
            let opened = s.opened();
            Ok((s, opened))
        })
    }

    fn device_name(&self) -> &str {
        &self.opened.device
    }

    fn stats(&self) -> StreamStats {
        self.opened.counters.snapshot()
    }
}

impl std::fmt::Debug for DeviceThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.opened.device)
    }
}

/// Capture from a sound card: mono i16 at the rate asked for.
#[derive(Debug)]
pub struct Capture(DeviceThread);

impl Capture {
    /// Opens `device` (by name, or the default) for capture at `sample_rate`, buffering
    /// up to `buffer_ms`.
    pub fn start(
        device: Option<&str>,
        sample_rate: u32,
        buffer_ms: u32,
    ) -> Result<Self, AudioError> {
        let device = device.map(str::to_string);
        DeviceThread::stream("capture", move || {
            InputStream::open(device.as_deref(), sample_rate, buffer_ms)
        })
        .map(Self)
    }

    /// Fills `out` with what was captured; what is missing (the device is late) is
    /// silence. Returns how many samples came from the device.
    pub fn read_or_silence(&self, out: &mut [i16]) -> usize {
        let n = self.0.opened.ring.pop(out);
        out[n..].fill(0);
        n
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        self.0.device_name()
    }

    /// The stream's counters.
    pub fn stats(&self) -> StreamStats {
        self.0.stats()
    }
}

/// Playback to a sound card: mono i16 at the rate asked for.
#[derive(Debug)]
pub struct Playback(DeviceThread);

impl Playback {
    /// Opens `device` (by name, or the default) for playback at `sample_rate`,
    /// buffering up to `buffer_ms`.
    pub fn start(
        device: Option<&str>,
        sample_rate: u32,
        buffer_ms: u32,
    ) -> Result<Self, AudioError> {
        let device = device.map(str::to_string);
        DeviceThread::stream("playback", move || {
            OutputStream::open(device.as_deref(), sample_rate, buffer_ms)
        })
        .map(Self)
    }

    /// Queues samples; returns how many fit (the rest is dropped by the caller: the
    /// device is behind).
    pub fn write(&self, pcm: &[i16]) -> usize {
        self.0.opened.ring.push(pcm.iter().copied())
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        self.0.device_name()
    }

    /// The stream's counters.
    pub fn stats(&self) -> StreamStats {
        self.0.stats()
    }
}
