//! Capture and playback streams on real devices via cpal, as mono i16 at a requested
//! rate, decoupled from the device callback by a lock-free single-producer /
//! single-consumer ring buffer with overrun/underrun counters.
//!
//! The device is chosen by name (see [`find_device`]) or the host default. The stream is
//! opened at the requested rate with a 16-bit integer or 32-bit float format and the
//! fewest channels the device offers (channels are averaged on capture and duplicated
//! on playback). Devices that cannot run at the requested rate are refused with
//! [`AudioError::Unsupported`]; resample with [`crate::Resampler`] and open at a rate
//! the device supports (on ALSA, the `default`/`plug` devices convert any rate).
//!
//! A ring that the application does not drain in time overwrites nothing: new capture
//! samples are dropped and counted as `overruns`; a playback callback that finds the
//! ring empty plays silence and counts `underruns` (in samples).

use std::sync::atomic::{AtomicI16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig, SupportedStreamConfigRange};

use crate::AudioError;

/// Lock-free SPSC ring of i16 samples (one slot kept free).
#[derive(Debug)]
pub struct SampleRing {
    slots: Box<[AtomicI16]>,
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl SampleRing {
    /// A ring holding up to `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(1) + 1;
        Self {
            slots: (0..n).map(|_| AtomicI16::new(0)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }
    pub fn capacity(&self) -> usize {
        self.slots.len() - 1
    }
    /// Samples ready to read.
    pub fn len(&self) -> usize {
        let h = self.head.load(Ordering::Acquire);
        let t = self.tail.load(Ordering::Acquire);
        (t + self.slots.len() - h) % self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Producer side: appends as many samples as fit, returns how many.
    pub fn push(&self, samples: impl IntoIterator<Item = i16>) -> usize {
        let n = self.slots.len();
        let head = self.head.load(Ordering::Acquire);
        let mut tail = self.tail.load(Ordering::Relaxed);
        let mut written = 0;
        for s in samples {
            let next = (tail + 1) % n;
            if next == head {
                break;
            }
            self.slots[tail].store(s, Ordering::Relaxed);
            tail = next;
            written += 1;
        }
        self.tail.store(tail, Ordering::Release);
        written
    }
    /// Consumer side: fills `out` from the ring, returns how many samples were read.
    pub fn pop(&self, out: &mut [i16]) -> usize {
        let n = self.slots.len();
        let tail = self.tail.load(Ordering::Acquire);
        let mut head = self.head.load(Ordering::Relaxed);
        let mut read = 0;
        for o in out.iter_mut() {
            if head == tail {
                break;
            }
            *o = self.slots[head].load(Ordering::Relaxed);
            head = (head + 1) % n;
            read += 1;
        }
        self.head.store(head, Ordering::Release);
        read
    }
}

/// Counters of one device stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Mono samples moved between the device and the ring.
    pub samples: u64,
    /// Device callbacks run.
    pub callbacks: u64,
    /// Capture: samples dropped because the ring was full.
    pub overruns: u64,
    /// Playback: samples of silence played because the ring was empty.
    pub underruns: u64,
    /// Errors the device reported (xruns, disconnects).
    pub errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    samples: AtomicU64,
    callbacks: AtomicU64,
    overruns: AtomicU64,
    underruns: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StreamStats {
        StreamStats {
            samples: self.samples.load(Ordering::Relaxed),
            callbacks: self.callbacks.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            underruns: self.underruns.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

fn device_names(device: &cpal::Device) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(id) = device.id() {
        let full = id.to_string();
        if let Some((_, short)) = full.split_once(':') {
            names.push(short.to_string());
        }
        names.push(full);
    }
    if let Ok(d) = device.description() {
        names.push(d.name().to_string());
    }
    names.push(device.to_string());
    names
}

/// Finds a device by name: its id with or without the host prefix (`alsa:null` or
/// `null`), its description name, or its display name, exact match first, then a
/// case-insensitive match. `None` picks the host's default device for the direction.
pub fn find_device(name: Option<&str>, input: bool) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let Some(name) = name else {
        let d = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return d.ok_or_else(|| AudioError::Device("no default device".into()));
    };
    let devices: Vec<cpal::Device> = host
        .devices()
        .map_err(|e| AudioError::Device(e.to_string()))?
        .collect();
    let exact = devices
        .iter()
        .find(|d| device_names(d).iter().any(|n| n == name));
    let found = exact.or_else(|| {
        devices
            .iter()
            .find(|d| device_names(d).iter().any(|n| n.eq_ignore_ascii_case(name)))
    });
    found
        .cloned()
        .ok_or_else(|| AudioError::Device(format!("no device named {name:?}")))
}

fn pick_config(
    ranges: Vec<SupportedStreamConfigRange>,
    rate: u32,
) -> Result<(StreamConfig, SampleFormat), AudioError> {
    let mut best: Option<(u16, u8, SampleFormat)> = None;
    for r in &ranges {
        if rate < r.min_sample_rate() || rate > r.max_sample_rate() {
            continue;
        }
        let pref = match r.sample_format() {
            SampleFormat::I16 => 0u8,
            SampleFormat::F32 => 1,
            _ => continue,
        };
        let cand = (r.channels(), pref, r.sample_format());
        if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
            best = Some(cand);
        }
    }
    let (channels, _, format) = best.ok_or_else(|| {
        AudioError::Unsupported(format!(
            "device offers no i16/f32 configuration at {rate} Hz ({} ranges)",
            ranges.len()
        ))
    })?;
    Ok((
        StreamConfig {
            channels: channels.max(1),
            sample_rate: rate,
            buffer_size: cpal::BufferSize::Default,
        },
        format,
    ))
}

fn open_timeout() -> Option<Duration> {
    Some(Duration::from_secs(2))
}

/// What a running capture or playback stream holds: the cpal stream, the ring and
/// counters it shares with the device callback, the callback's last error, and what it
/// was opened with. [`InputStream`] and [`OutputStream`] dereference to it.
pub struct DeviceStream {
    _stream: cpal::Stream,
    ring: Arc<SampleRing>,
    counters: Arc<Counters>,
    last_error: Arc<Mutex<Option<String>>>,
    device: String,
    rate: u32,
    channels: u16,
}

/// What a stream's data callback is built from.
struct CallbackParts {
    ring: Arc<SampleRing>,
    counters: Arc<Counters>,
    channels: usize,
}

impl DeviceStream {
    /// Finds the device, picks a configuration at `sample_rate`, builds the stream with
    /// `build` (which adds the data callback for `format`) and starts it.
    fn open(
        device: Option<&str>,
        input: bool,
        sample_rate: u32,
        buffer_ms: u32,
        build: impl FnOnce(
            &cpal::Device,
            StreamConfig,
            SampleFormat,
            CallbackParts,
            Box<dyn FnMut(cpal::Error) + Send + 'static>,
        ) -> Result<cpal::Stream, cpal::Error>,
    ) -> Result<Self, AudioError> {
        if sample_rate == 0 {
            return Err(AudioError::BadRate(sample_rate));
        }
        let dev = find_device(device, input)?;
        let ranges = if input {
            dev.supported_input_configs().map(Iterator::collect)
        } else {
            dev.supported_output_configs().map(Iterator::collect)
        }
        .map_err(|e| AudioError::Device(e.to_string()))?;
        let (config, format) = pick_config(ranges, sample_rate)?;
        let capacity = (sample_rate as usize * buffer_ms.max(10) as usize / 1000).max(64);
        let ring = Arc::new(SampleRing::new(capacity));
        let counters = Arc::new(Counters::default());
        let last_error = Arc::new(Mutex::new(None));
        let parts = CallbackParts {
            ring: ring.clone(),
            counters: counters.clone(),
            channels: usize::from(config.channels),
        };
        let err_fn = Box::new(error_callback(counters.clone(), last_error.clone()));
        let stream = build(&dev, config, format, parts, err_fn)
            .map_err(|e| AudioError::Device(e.to_string()))?;
        stream
            .play()
            .map_err(|e| AudioError::Device(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            ring,
            counters,
            last_error,
            device: device_names(&dev).pop().unwrap_or_default(),
            rate: sample_rate,
            channels: config.channels,
        })
    }

    pub fn stats(&self) -> StreamStats {
        self.counters.snapshot()
    }
    /// The ring shared with the device callback (for [`crate::device_io`]).
    pub(crate) fn ring_handle(&self) -> Arc<SampleRing> {
        self.ring.clone()
    }
    /// The counters shared with the device callback.
    pub(crate) fn counters_handle(&self) -> Arc<Counters> {
        self.counters.clone()
    }
    /// The last error the device reported, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
    pub fn device_name(&self) -> &str {
        &self.device
    }
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }
    /// Channels of the device stream (mixed down to mono on capture, duplicated on
    /// playback).
    pub fn device_channels(&self) -> u16 {
        self.channels
    }
}

impl std::fmt::Debug for DeviceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStream")
            .field("device", &self.device)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish()
    }
}

/// A running capture stream: read mono i16 samples at `sample_rate()`.
#[derive(Debug)]
pub struct InputStream(DeviceStream);

impl std::ops::Deref for InputStream {
    type Target = DeviceStream;
    fn deref(&self) -> &DeviceStream {
        &self.0
    }
}

impl InputStream {
    /// Opens and starts capture on `device` (by name, or the default), delivering
    /// mono i16 at `sample_rate` into a ring of `buffer_ms`.
    pub fn open(
        device: Option<&str>,
        sample_rate: u32,
        buffer_ms: u32,
    ) -> Result<Self, AudioError> {
        DeviceStream::open(
            device,
            true,
            sample_rate,
            buffer_ms,
            |dev, config, format, p, err_fn| {
                let CallbackParts {
                    ring,
                    counters,
                    channels,
                } = p;
                match format {
                    SampleFormat::I16 => dev.build_input_stream(
                        config,
                        move |data: &[i16], _: &cpal::InputCallbackInfo| {
                            deliver(&ring, &counters, data, channels, f32::from);
                        },
                        err_fn,
                        open_timeout(),
                    ),
                    _ => dev.build_input_stream(
                        config,
                        move |data: &[f32], _: &cpal::InputCallbackInfo| {
                            deliver(&ring, &counters, data, channels, |s| s * 32768.0);
                        },
                        err_fn,
                        open_timeout(),
                    ),
                }
            },
        )
        .map(Self)
    }

    /// Reads up to `out.len()` captured samples; returns how many were available.
    pub fn read(&self, out: &mut [i16]) -> usize {
        self.0.ring.pop(out)
    }
    /// Captured samples waiting to be read.
    pub fn available(&self) -> usize {
        self.0.ring.len()
    }
}

/// A running playback stream: write mono i16 samples at `sample_rate()`.
#[derive(Debug)]
pub struct OutputStream(DeviceStream);

impl std::ops::Deref for OutputStream {
    type Target = DeviceStream;
    fn deref(&self) -> &DeviceStream {
        &self.0
    }
}

impl OutputStream {
    /// Opens and starts playback on `device` (by name, or the default), consuming
    /// mono i16 at `sample_rate` from a ring of `buffer_ms`.
    pub fn open(
        device: Option<&str>,
        sample_rate: u32,
        buffer_ms: u32,
    ) -> Result<Self, AudioError> {
        DeviceStream::open(
            device,
            false,
            sample_rate,
            buffer_ms,
            |dev, config, format, p, err_fn| {
                let CallbackParts {
                    ring,
                    counters,
                    channels,
                } = p;
                match format {
                    SampleFormat::I16 => dev.build_output_stream(
                        config,
                        move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                            consume(&ring, &counters, data, channels, |s| s);
                        },
                        err_fn,
                        open_timeout(),
                    ),
                    _ => dev.build_output_stream(
                        config,
                        move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                            consume(&ring, &counters, data, channels, |s| f32::from(s) / 32768.0);
                        },
                        err_fn,
                        open_timeout(),
                    ),
                }
            },
        )
        .map(Self)
    }

    /// Queues samples for playback; returns how many fit (the rest is for the caller
    /// to retry or drop).
    pub fn write(&self, pcm: &[i16]) -> usize {
        self.0.ring.push(pcm.iter().copied())
    }
    /// Samples queued and not yet played.
    pub fn queued(&self) -> usize {
        self.0.ring.len()
    }
    /// Free space in the ring, in samples.
    pub fn free(&self) -> usize {
        self.0.ring.capacity() - self.0.ring.len()
    }
}

fn error_callback(
    counters: Arc<Counters>,
    last: Arc<Mutex<Option<String>>>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e| {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = last.lock() {
            *l = Some(e.to_string());
        }
    }
}

/// Capture callback: mix interleaved frames to mono i16 and push them.
fn deliver<T: Copy>(
    ring: &SampleRing,
    counters: &Counters,
    data: &[T],
    channels: usize,
    to_f32: impl Fn(T) -> f32,
) {
    let channels = channels.max(1);
    let frames = data.len() / channels;
    let mono = data.chunks_exact(channels).map(|frame| {
        let sum: f32 = frame.iter().map(|&s| to_f32(s)).sum();
        (sum / channels as f32).round().clamp(-32768.0, 32767.0) as i16
    });
    let pushed = ring.push(mono);
    counters.callbacks.fetch_add(1, Ordering::Relaxed);
    counters.samples.fetch_add(pushed as u64, Ordering::Relaxed);
    counters
        .overruns
        .fetch_add((frames - pushed) as u64, Ordering::Relaxed);
}

/// Playback callback: pull mono samples, duplicate to every channel, silence when
/// the ring runs dry.
fn consume<T: Copy>(
    ring: &SampleRing,
    counters: &Counters,
    data: &mut [T],
    channels: usize,
    from_i16: impl Fn(i16) -> T,
) {
    let channels = channels.max(1);
    let mut chunk = [0i16; 256];
    let mut played = 0u64;
    let mut missing = 0u64;
    for frames in data.chunks_mut(channels * chunk.len()) {
        let want = frames.len() / channels;
        let got = ring.pop(&mut chunk[..want]);
        chunk[got..want].fill(0);
        played += got as u64;
        missing += (want - got) as u64;
        for (frame, &s) in frames.chunks_mut(channels).zip(&chunk[..want]) {
            frame.fill(from_i16(s));
        }
    }
    counters.callbacks.fetch_add(1, Ordering::Relaxed);
    counters.samples.fetch_add(played, Ordering::Relaxed);
    counters.underruns.fetch_add(missing, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_fifo_bounded_and_counts() {
        let ring = SampleRing::new(4);
        assert_eq!(ring.capacity(), 4);
        assert_eq!(ring.push([1, 2, 3]), 3);
        assert_eq!(ring.push([4, 5, 6]), 1, "only one slot left");
        let mut out = [0i16; 3];
        assert_eq!(ring.pop(&mut out), 3);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(ring.push([7, 8]), 2);
        let mut out = [0i16; 8];
        assert_eq!(ring.pop(&mut out), 3);
        assert_eq!(&out[..3], &[4, 7, 8]);
        assert!(ring.is_empty());
    }

    #[test]
    fn ring_across_threads_keeps_order() {
        let ring = Arc::new(SampleRing::new(100));
        let producer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut next = 0i32;
                while next < 20_000 {
                    let n = ring.push((next..(next + 37).min(20_000)).map(|v| v as i16));
                    next += n as i32;
                    std::thread::yield_now();
                }
            })
        };
        let mut got = Vec::new();
        let mut buf = [0i16; 50];
        while got.len() < 20_000 {
            let n = ring.pop(&mut buf);
            got.extend_from_slice(&buf[..n]);
            std::thread::yield_now();
        }
        producer.join().unwrap();
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as i16));
    }

    #[test]
    fn callbacks_mix_and_count() {
        let ring = SampleRing::new(4);
        let c = Counters::default();
        // Stereo capture: averaged to mono; 3 frames into a ring with room for 4.
        deliver(&ring, &c, &[100i16, 300, -50, -150, 7, 9], 2, f32::from);
        deliver(&ring, &c, &[1i16, 1, 2, 2], 2, f32::from);
        let s = c.snapshot();
        assert_eq!((s.samples, s.overruns, s.callbacks), (4, 1, 2));
        // Playback: the 4 queued samples, then silence counted as underrun.
        let mut out = [9i16; 12];
        consume(&ring, &c, &mut out, 2, |v| v);
        assert_eq!(out, [200, 200, -100, -100, 8, 8, 1, 1, 0, 0, 0, 0]);
        assert_eq!(c.snapshot().underruns, 2);
    }

    #[test]
    fn unknown_device_is_an_error() {
        assert!(InputStream::open(Some("no-such-device-xyz"), 8000, 100).is_err());
        assert!(OutputStream::open(None, 0, 100).is_err());
    }
}
