//! The media IO driver of one call: its own UDP socket from the configured RTP port range,
//! a 20 ms clock that sends one frame per tick from the call's source, and a receive path
//! through the sans-IO [`RtpReceiver`] (jitter buffer, concealment) into the call's sink.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use peerline_media::{
    AudioDecoder, AudioEncoder, Codec, DtmfReceiver, Received, ReceiverStats, RtpReceiver,
    RtpReceiverConfig, RtpSender, SenderStats, ToneGenerator,
};
use peerline_net::{
    Connected, Direction as LedgerDirection, IceError, IceSession, Ledger, PathReport, PortRange,
    TrafficClass,
};
use peerline_sdp::RemoteIce;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::media_socket::MediaSocket;
use crate::rtcp_component::{rtcp_checked, RtcpComponent};

/// What a call plays to the remote party.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    /// Digital silence.
    Silence,
    /// A sine tone at this frequency in Hz.
    Tone(f32),
    /// A WAV file (any rate, mixed down to mono), looped.
    Wav(PathBuf),
    /// The sound card, as a person talks: the call captures from `input` and plays what
    /// it receives to `output` (device names as `peerline devices` lists them; `None`:
    /// the config's `[audio]` device, else the system default).
    Device {
        /// The capture device.
        input: Option<String>,
        /// The playback device.
        output: Option<String>,
    },
    /// Nothing: the call sends no RTP and no RTCP (not even the final BYE), and its
    /// media task keeps no 20 ms clock (for load tests at thousands of calls, where the
    /// packets would cost more than the signalling). What arrives is still counted, but
    /// not played, recorded or checked for the RTP timeout, and no DTMF can be sent. A
    /// DTLS-SRTP handshake still completes when the peer starts it (its retransmissions
    /// run on the clock, so a lost flight is not repeated).
    NoRtp,
}

/// How much a device stream buffers, in ms: enough for scheduling jitter of the media
/// task, little enough to keep the mouth-to-ear delay low.
const DEVICE_BUFFER_MS: u32 = 200;

/// What a call does with the remote party's audio, and what it plays to it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaOptions {
    /// What we send.
    pub source: AudioSource,
    /// Record what we receive (decoded, mono, at the codec's rate) to this WAV file.
    pub record: Option<PathBuf>,
}

impl MediaOptions {
    /// The options of call `new` that replaces a call with these (RFC 3891): the same
    /// source; a recording goes to a file of its own beside the replaced call's, named
    /// with the new call's id (`talk.wav` → `talk.call7.wav`), so neither overwrites the
    /// other.
    pub fn replacement(&self, new: u64) -> Self {
        let record = self.record.as_ref().map(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            let ext = p.extension().map(|e| e.to_string_lossy().into_owned());
            let name = format!(
                "{}.call{new}.{}",
                stem.unwrap_or_else(|| "recording".into()),
                ext.unwrap_or_else(|| "wav".into())
            );
            p.with_file_name(name)
        });
        Self {
            source: self.source.clone(),
            record,
        }
    }
}

impl Default for MediaOptions {
    fn default() -> Self {
        Self {
            source: AudioSource::Silence,
            record: None,
        }
    }
}

/// What the media path did during a call.
#[derive(Debug, Clone, Default)]
pub struct MediaReport {
    /// Our RTP address.
    pub local: Option<SocketAddr>,
    /// Where our RTP went (after symmetric-RTP latching, if the peer sent from elsewhere).
    pub remote: Option<SocketAddr>,
    /// With ICE: the selected candidate pair at the end of the call (RTT from RTCP).
    pub path: Option<PathReport>,
    /// The codec used.
    pub codec: Option<&'static str>,
    /// Sender counters.
    pub sent: SenderStats,
    /// Receiver counters (loss, jitter, malformed, foreign SSRC …).
    pub received: ReceiverStats,
    /// RFC 3550 interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Frames played by concealment.
    pub concealed_frames: u64,
    /// The jitter buffer's counters at the end of the call (frames that arrived too late
    /// to play, frames missing at their playout time, …).
    pub jitter: peerline_media::JitterStats,
    /// Round-trip time from RTCP (RFC 3550 LSR/DLSR), when the peer sent reports.
    pub rtt_ms: Option<f64>,
    /// RTCP compound packets received.
    pub rtcp_received: u64,
    /// Of those, the ones that came on RTCP's own port rather than multiplexed with RTP:
    /// the separate RTCP socket, or with ICE the selected pair of component 2.
    pub rtcp_received_apart: u64,
    /// With ICE and without rtcp-mux: component 2's selected pair (RTCP), if it connected.
    pub rtcp_path: Option<PathReport>,
    /// RTCP compound packets sent (reports and the final BYE).
    pub rtcp_sent: u64,
    /// The jitter buffer's playout delay at the end of the call.
    pub playout_delay_ms: f64,
    /// E-model (ITU-T G.107) MOS estimate from codec, loss and one-way delay.
    pub mos: Option<f32>,
    /// The SRTP keying and suite, or `None` for plain RTP.
    pub srtp: Option<String>,
    /// SRTP/SRTCP packets dropped because authentication failed (tampered or wrong key).
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP packets dropped as replays.
    pub srtp_replays: u64,
    /// SRTP packets dropped because they arrived before the keys were agreed.
    pub srtp_early_drops: u64,
    /// Times the SDES keys changed in a re-INVITE and the media switched to them.
    pub srtp_rekeys: u32,
    /// Datagrams from addresses other than the call's peer, dropped.
    pub foreign_source_drops: u64,
    /// DTMF digits received (RFC 4733).
    pub dtmf: String,
    /// Every datagram of this call's media socket.
    pub ledger: Ledger,
    /// Samples recorded (when recording).
    pub recorded_samples: usize,
    /// Why media stopped, if not because the call ended.
    pub error: Option<String>,
    /// ICE restarts that moved the media to a new pair during the call.
    pub ice_restarts: u32,
}

/// Things the media task (or a call timer) tells the phone's driver.
#[derive(Debug)]
pub(crate) enum Notice {
    /// No RTP for the configured timeout.
    Timeout,
    /// A DTMF digit arrived.
    Dtmf(char),
    /// The glare back-off (RFC 3261 §14.1) ran out: send the re-INVITE again.
    RetryReinvite,
    /// The media path cannot work (DTLS failed, fingerprint mismatch …): end the call.
    Failed(String),
    /// ICE connectivity checks selected this pair; media flows on it from now on.
    IceConnected {
        path: PathReport,
        codec: &'static str,
    },
}

/// Changes to a running media task.
/// A running call's media, as a live display shows it ([`crate::Phone::call_stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    /// The codec.
    pub codec: &'static str,
    /// Where our RTP goes now (after latching).
    pub remote: Option<SocketAddr>,
    /// RTP packets sent and received so far.
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Packets lost, and as a percentage of those expected.
    pub packets_lost: u64,
    pub loss_percent: f32,
    /// Frames that arrived after their playout time (the jitter buffer's `late`).
    pub late_frames: u64,
    /// RFC 3550 interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Round-trip time from RTCP, once the peer sent a report.
    pub rtt_ms: Option<f64>,
    /// E-model MOS estimate (once packets were expected).
    pub mos: Option<f32>,
    /// The SRTP keying and suite, or `None` for plain RTP.
    pub srtp: Option<String>,
    /// Sending silence instead of the source.
    pub muted: bool,
}

/// Loss percentage and E-model MOS of a stream so far: one-way delay estimated as half
/// the RTT (0 on a LAN without reports), the playout delay and one packet.
fn quality(
    codec: peerline_media::Codec,
    rx: &peerline_media::ReceiverStats,
    rtt_ms: Option<f64>,
    playout_ms: f64,
    ptime_ms: u32,
) -> (f32, Option<f32>) {
    let expected = rx.packets_received + rx.packets_lost;
    if expected == 0 {
        return (0.0, None);
    }
    let loss = rx.packets_lost as f32 * 100.0 / expected as f32;
    let one_way = rtt_ms.unwrap_or(0.0) / 2.0 + playout_ms + f64::from(ptime_ms);
    (
        loss,
        Some(peerline_media::mos(codec, one_way as f32, loss, 1.0)),
    )
}

#[derive(Debug)]
pub(crate) enum MediaCommand {
    /// Send these digits as RFC 4733 events (100 ms each, 60 ms apart).
    Dtmf(String),
    /// Send silence instead of the source (true) or the source again (false).
    Mute(bool),
    /// After a re-INVITE: where to send, and whether to send and to play.
    Update {
        remote: SocketAddr,
        send: bool,
        receive: bool,
    },
    /// The call's quality so far ([`LiveStats`]), for a live display.
    Snapshot(tokio::sync::oneshot::Sender<LiveStats>),
    /// After a re-INVITE that changed the SDES keys (RFC 4568 §7.1.4): protect with the
    /// new outbound key from now on; the old inbound key stays usable for packets
    /// already in flight.
    Rekey(Box<peerline_srtp::SrtpPair>),
    /// ICE restart (RFC 8445 §9): run checks on a freshly gathered agent against the
    /// peer's new credentials and candidates; media keeps flowing on the old pair until
    /// the new one is selected, then moves to it (keys and DTLS association unchanged).
    IceRestart {
        session: Box<IceSession>,
        remote: RemoteIce,
        /// Component 2's fresh agent, when RTCP has its own component.
        rtcp: Option<Box<IceSession>>,
    },
}

/// How the call's media is protected.
pub(crate) enum MediaSecurity {
    /// Plain RTP (policy allowed it).
    None,
    /// SDES keys from the SDP.
    Sdes(Box<peerline_srtp::SrtpPair>),
    /// Keys from a DTLS handshake on the media path.
    Dtls {
        cert: std::sync::Arc<peerline_srtp::DtlsCert>,
        role: peerline_srtp::DtlsRole,
        remote_fingerprints: Vec<peerline_sdp::Fingerprint>,
    },
}

impl std::fmt::Debug for MediaSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.write_str(match self {
            Self::None => "None",
            Self::Sdes(_) => "Sdes",
            Self::Dtls { .. } => "Dtls",
        })
    }
}

/// The media path's crypto state: plain, keyed, or still shaking hands.
struct Crypto {
    plain: bool,
    pair: Option<peerline_srtp::SrtpPair>,
    /// The inbound context before the last SDES rekey (packets still in flight).
    old_inbound: Option<peerline_srtp::SrtpContext>,
    /// Counters of the contexts replaced by rekeys (auth failures, replays).
    retired: (u64, u64),
    dtls: Option<peerline_srtp::DtlsEndpoint>,
    failed: bool,
    /// SRTP packets that arrived before the keys.
    early_drops: u64,
}

impl Crypto {
    fn protect(&mut self, packet: &[u8], rtcp: bool) -> Option<Vec<u8>> {
        if self.plain {
            return Some(packet.to_vec());
        }
        let pair = self.pair.as_mut()?;
        let r = if rtcp {
            pair.outbound.protect_rtcp(packet)
        } else {
            pair.outbound.protect_rtp(packet)
        };
        r.ok()
    }

    /// Plaintext of an incoming (S)RTP/(S)RTCP packet; `None` when it must be dropped
    /// (tampered, replayed, or before the keys) — libsrtp's counters record why.
    fn unprotect(&mut self, packet: &[u8], rtcp: bool) -> Option<Vec<u8>> {
        if self.plain {
            return Some(packet.to_vec());
        }
        let Some(pair) = self.pair.as_mut() else {
            self.early_drops += 1;
            return None;
        };
        let r = if rtcp {
            pair.inbound.unprotect_rtcp(packet)
        } else {
            pair.inbound.unprotect_rtp(packet)
        };
        match (r, self.old_inbound.as_mut()) {
            (Ok(p), _) => Some(p),
            (Err(_), Some(old)) => if rtcp {
                old.unprotect_rtcp(packet)
            } else {
                old.unprotect_rtp(packet)
            }
            .ok(),
            (Err(_), None) => None,
        }
    }

    /// New SDES keys (see [`MediaCommand::Rekey`]); ignored (`false`) on a plain or DTLS
    /// path.
    fn rekey(&mut self, new: peerline_srtp::SrtpPair) -> bool {
        if self.plain || self.dtls.is_some() {
            return false;
        }
        if let Some(old) = self.pair.take() {
            let st = old.stats();
            self.retired.0 += st.auth_failures;
            self.retired.1 += st.replays;
            if let Some(prev) = self.old_inbound.take() {
                let st = prev.stats();
                self.retired.0 += st.auth_failures;
                self.retired.1 += st.replays;
            }
            self.old_inbound = Some(old.inbound);
        }
        self.pair = Some(new);
        true
    }
}

/// Sends what the DTLS endpoint queued and applies its events. Returns a failure reason.
async fn drive_dtls(
    crypto: &mut Crypto,
    socket: &MediaSocket,
    remote: SocketAddr,
    report: &mut MediaReport,
) -> Option<String> {
    let ep = crypto.dtls.as_mut()?;
    while let Some(out) = ep.poll_transmit() {
        if socket.send_to(&out, remote).await.is_ok() {
            report
                .ledger
                .record(remote, TrafficClass::Dtls, LedgerDirection::Sent, out.len());
        }
    }
    let mut failure = None;
    while let Some(ev) = ep.poll_event() {
        match ev {
            peerline_srtp::DtlsEvent::Connected(keys) => match keys.srtp_pair() {
                Ok(pair) => {
                    report.srtp = Some(format!("DTLS-SRTP {}", keys.suite.sdes_name()));
                    crypto.pair = Some(pair);
                }
                Err(e) => failure = Some(format!("DTLS-SRTP keys: {e}")),
            },
            peerline_srtp::DtlsEvent::Failed { reason } => {
                failure = Some(format!("DTLS-SRTP failed: {reason}"))
            }
            peerline_srtp::DtlsEvent::Closed { .. } => {}
        }
    }
    if failure.is_some() {
        crypto.failed = true;
        crypto.pair = None;
    }
    failure
}

/// Parameters the call hands to the media task.
#[derive(Debug)]
pub(crate) struct MediaParams {
    pub security: MediaSecurity,
    pub codec: Codec,
    pub send_pt: u8,
    pub recv_pt: u8,
    /// Telephone-event PT we receive with.
    pub dtmf_pt: Option<u8>,
    /// Telephone-event PT we send with.
    pub dtmf_send_pt: Option<u8>,
    /// Whether to send and to play at start (from the SDP direction).
    pub send: bool,
    pub receive: bool,
    pub remote: SocketAddr,
    /// Where RTCP goes: `None` with rtcp-mux (same as RTP).
    pub remote_rtcp: Option<SocketAddr>,
    /// Our CNAME for RTCP SDES.
    pub cname: String,
    pub ptime_ms: u32,
    pub rtp_timeout: Duration,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
}

/// A running media task.
#[derive(Debug)]
pub(crate) struct MediaHandle {
    commands: mpsc::UnboundedSender<MediaCommand>,
    stop: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<MediaReport>,
}

impl MediaHandle {
    /// Sends a command; ignored when the task already ended.
    pub(crate) fn command(&self, c: MediaCommand) {
        let _ = self.commands.send(c);
    }

    /// Stops sending and listening now; the report is collected later by [`Self::stop`].
    pub(crate) fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Stops the media and returns its report.
    pub(crate) async fn stop(mut self) -> MediaReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done.await.unwrap_or_else(|_| MediaReport {
            error: Some("media task ended unexpectedly".into()),
            ..MediaReport::default()
        })
    }
}

/// A running ICE restart: the new agent and the outcome of its checks.
type IceRestarting = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Box<IceSession>, Result<Connected, IceError>)> + Send>,
>;

/// The outcome of the restart's checks, or never when none is running (a `select!` arm).
async fn restart_checks(
    r: &mut Option<IceRestarting>,
) -> (Box<IceSession>, Result<Connected, IceError>) {
    match r.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// A call's media sockets: RTP on an even port of the range and RTCP on the odd port
/// above it (used when the peer does not accept rtcp-mux).
#[derive(Debug)]
pub(crate) struct MediaSockets {
    pub rtp: UdpSocket,
    pub rtcp: Option<UdpSocket>,
}

/// Binds the media sockets on `ip` inside `range`.
pub(crate) async fn bind_rtp(
    ip: std::net::IpAddr,
    range: &mut PortRange,
) -> std::io::Result<MediaSockets> {
    let mut last_err = None;
    for port in range.candidates() {
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(rtp) => {
                let rtcp = match port.checked_add(1).filter(|p| range.contains(*p)) {
                    Some(p) => UdpSocket::bind(SocketAddr::new(ip, p)).await.ok(),
                    None => None,
                };
                return Ok(MediaSockets { rtp, rtcp });
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrInUse, "RTP port range is empty")
    }))
}

/// How a call's media reaches the peer.
pub(crate) enum MediaPath {
    /// Plain UDP to the SDP's `c=`/`m=` address, with symmetric latching.
    Plain(MediaSockets),
    /// ICE: run the connectivity checks against the peer's candidates, then use the
    /// selected pair. `rtcp`: component 2's agent when rtcp-mux was not agreed.
    Ice {
        session: Box<IceSession>,
        remote: RemoteIce,
        rtcp: Option<Box<IceSession>>,
    },
}

impl std::fmt::Debug for MediaPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain",
            Self::Ice { .. } => "Ice",
        })
    }
}

/// Starts the media task on `path`.
pub(crate) fn start(
    socket: MediaPath,
    params: MediaParams,
    options: MediaOptions,
    notices: mpsc::UnboundedSender<(u64, Notice)>,
    call: u64,
) -> MediaHandle {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let report = run(socket, params, options, stop_rx, cmd_rx, notices, call).await;
        let _ = done_tx.send(report);
    });
    MediaHandle {
        commands: cmd_tx,
        stop: Some(stop_tx),
        done: done_rx,
    }
}

enum Source {
    Silence,
    Tone(ToneGenerator),
    Samples {
        samples: crate::wav_cache::Samples,
        pos: usize,
    },
    Device(peerline_audio::Capture),
}

impl Source {
    async fn new(source: &AudioSource, rate: u32) -> Result<Self, String> {
        Ok(match source {
            AudioSource::Silence | AudioSource::NoRtp => Source::Silence,
            AudioSource::Tone(f) => Source::Tone(ToneGenerator::new(*f, 0.5, rate)),
            AudioSource::Wav(path) => {
                // Decoded and resampled once per process and rate, off the runtime thread.
                let samples = crate::wav_cache::shared().load(path, rate).await?;
                if samples.is_empty() {
                    Source::Silence
                } else {
                    Source::Samples { samples, pos: 0 }
                }
            }
            AudioSource::Device { input, .. } => Source::Device(
                peerline_audio::Capture::start(input.as_deref(), rate, DEVICE_BUFFER_MS)
                    .map_err(|e| format!("capture device: {e}"))?,
            ),
        })
    }

    fn fill(&mut self, out: &mut [i16]) {
        match self {
            Source::Silence => out.fill(0),
            Source::Tone(g) => g.fill(out),
            Source::Samples { samples, pos } => {
                for s in out.iter_mut() {
                    *s = samples[*pos];
                    *pos = (*pos + 1) % samples.len();
                }
            }
            Source::Device(capture) => {
                capture.read_or_silence(out);
            }
        }
    }
}

async fn run(
    path: MediaPath,
    params: MediaParams,
    options: MediaOptions,
    stop: oneshot::Receiver<()>,
    commands: mpsc::UnboundedReceiver<MediaCommand>,
    notices: mpsc::UnboundedSender<(u64, Notice)>,
    call: u64,
) -> MediaReport {
    // Every ICE session of the call (component 1 and 2, and those of ICE restarts) leaves
    // its STUN counts here, whichever way the call ends.
    let mut stun = Vec::new();
    let mut report = run_media(
        path, params, options, stop, commands, notices, call, &mut stun,
    )
    .await;
    for counter in &stun {
        report.ledger.merge(&counter.ledger());
    }
    report
}

#[allow(clippy::too_many_arguments)]
async fn run_media(
    path: MediaPath,
    mut params: MediaParams,
    options: MediaOptions,
    mut stop: oneshot::Receiver<()>,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    notices: mpsc::UnboundedSender<(u64, Notice)>,
    call: u64,
    stun: &mut Vec<peerline_net::ice::wire_counter::StunCounter>,
) -> MediaReport {
    let mut report = MediaReport {
        codec: Some(params.codec.name()),
        ..MediaReport::default()
    };
    // Component 2 (RTCP without rtcp-mux): its checks run beside component 1's.
    let mut rtcp_ice: Option<RtcpComponent> = None;
    let (mut socket, mut rtcp_socket, mut ice) = match path {
        MediaPath::Plain(MediaSockets { rtp, rtcp }) => {
            (MediaSocket::Udp(rtp), rtcp.map(MediaSocket::Udp), None)
        }
        MediaPath::Ice {
            session,
            remote,
            rtcp,
        } => {
            stun.push(session.stun_counter());
            stun.extend(rtcp.as_ref().map(|s| s.stun_counter()));
            rtcp_ice = rtcp.map(|s| RtcpComponent::start(s, remote.clone()));
            let connected = tokio::select! {
                r = session.connect(&remote) => r,
                _ = &mut stop => {
                    session.close().await;
                    if let Some(c) = rtcp_ice.take() {
                        c.close().await;
                    }
                    return report;
                }
            };
            match connected {
                Ok(c) => {
                    params.remote = c.path.remote_addr;
                    report.path = Some(c.path.clone());
                    let _ = notices.send((
                        call,
                        Notice::IceConnected {
                            path: c.path.clone(),
                            codec: params.codec.name(),
                        },
                    ));
                    (MediaSocket::Ice(c), None, Some(session))
                }
                Err(e) => {
                    session.close().await;
                    if let Some(c) = rtcp_ice.take() {
                        c.close().await;
                    }
                    report.error = Some(format!("ICE: {e}"));
                    let _ = notices.send((call, Notice::Failed(format!("ICE: {e}"))));
                    return report;
                }
            }
        }
    };
    report.local = socket.local_addr();
    report.remote = Some(params.remote);
    let now0 = Instant::now();
    let mut crypto = Crypto {
        plain: matches!(params.security, MediaSecurity::None),
        pair: None,
        old_inbound: None,
        retired: (0, 0),
        dtls: None,
        failed: false,
        early_drops: 0,
    };
    match std::mem::replace(&mut params.security, MediaSecurity::None) {
        MediaSecurity::None => {}
        MediaSecurity::Sdes(pair) => {
            report.srtp = Some(format!("SDES {}", pair.outbound.suite().sdes_name()));
            crypto.pair = Some(*pair);
        }
        MediaSecurity::Dtls {
            cert,
            role,
            remote_fingerprints,
        } => match peerline_srtp::DtlsEndpoint::new(&cert, role, remote_fingerprints, now0) {
            Ok(ep) => crypto.dtls = Some(ep),
            Err(e) => {
                report.error = Some(format!("DTLS setup: {e}"));
                let _ = notices.send((call, Notice::Failed(format!("DTLS setup: {e}"))));
                return report;
            }
        },
    }
    if let Some(reason) = drive_dtls(&mut crypto, &socket, params.remote, &mut report).await {
        let _ = notices.send((call, Notice::Failed(reason)));
    }
    let rate = params.codec.clock_rate();
    // The PCM rate (what sources, decoders and recordings run at) differs from the RTP
    // clock for G.722 (16 kHz audio, 8 kHz clock) and Opus (48 kHz).
    let sample_rate = params.codec.pcm_rate();
    let frame = params.codec.samples_per_frame(params.ptime_ms);
    let ticks_per_frame = params.codec.rtp_ticks_per_frame(params.ptime_ms).max(1);
    let mut source = match Source::new(&options.source, sample_rate).await {
        Ok(s) => s,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    // With the sound card as source, what arrives is played to its output device.
    let playback = match &options.source {
        AudioSource::Device { output, .. } => {
            match peerline_audio::Playback::start(output.as_deref(), sample_rate, DEVICE_BUFFER_MS)
            {
                Ok(p) => Some(p),
                Err(e) => {
                    report.error = Some(format!("playback device: {e}"));
                    return report;
                }
            }
        }
        _ => None,
    };
    let (mut encoder, mut decoder) = match (
        AudioEncoder::new(params.codec),
        AudioDecoder::new(params.codec, params.ptime_ms),
    ) {
        (Ok(e), Ok(d)) => (e, d),
        (Err(e), _) | (_, Err(e)) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    let mut sender = RtpSender::new(
        params.ssrc,
        params.send_pt,
        rate,
        params.initial_seq,
        params.initial_timestamp,
    );
    let mut rx_config = RtpReceiverConfig::pcmu(params.dtmf_pt);
    rx_config.clock_rate = rate;
    rx_config.audio_payload_types = vec![params.recv_pt];
    rx_config.jitter = peerline_media::JitterConfig::new(rate, params.ptime_ms);
    let mut receiver = RtpReceiver::new(rx_config);
    let mut dtmf = DtmfReceiver::new();

    let mut remote = params.remote;
    let mut latched = false;
    // Streamed to `<record>.partial` and renamed when the call ends (peerline_audio::Recorder).
    let mut recorder = match &options.record {
        Some(path) => match peerline_audio::Recorder::create(path, sample_rate) {
            Ok(r) => Some(r),
            Err(e) => {
                report.error = Some(format!("{}: {e}", path.display()));
                None
            }
        },
        None => None,
    };
    let mut pcm = vec![0i16; frame];
    let mut playout_pcm: std::collections::VecDeque<i16> = std::collections::VecDeque::new();
    let mut buf = vec![0u8; 2048];
    let mut last_rx = Instant::now();
    let mut timeout_reported = false;
    let mut sending = params.send;
    let mut playing = params.receive;
    let mut muted = false;
    // Digits waiting, and the packets of the digit being sent with its start timestamp.
    let mut digits: std::collections::VecDeque<char> = std::collections::VecDeque::new();
    let mut dtmf_now: Option<(u32, std::collections::VecDeque<peerline_media::DtmfPacket>)> = None;
    let mut dtmf_gap = 0u32;
    let mut rtcp = peerline_media::RtcpState::new(params.cname.clone());
    let mut rtcp_buf = vec![0u8; 2048];
    let mut rtcp_malformed = 0u64;
    // RFC 3550 §6.2/§6.3.5: every 5 s on average, each interval randomised to 0.5–1.5×
    // so that the two sides' reports do not stay in step; the first after half of that.
    let mut jitter_seed = params.ssrc | 1;
    let mut rtcp_interval = move || {
        jitter_seed ^= jitter_seed << 13;
        jitter_seed ^= jitter_seed >> 17;
        jitter_seed ^= jitter_seed << 5;
        Duration::from_millis(2500 + u64::from(jitter_seed % 5000))
    };
    let mut next_rtcp = Instant::now() + rtcp_interval() / 2;
    let mut tick = tokio::time::interval(Duration::from_millis(u64::from(params.ptime_ms)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // An ICE restart's checks, run beside the media on the old pair.
    let mut restarting: Option<IceRestarting> = None;
    // The restart's component 2, taking over when component 1's restart succeeds.
    let mut restarting_rtcp: Option<RtcpComponent> = None;
    let clocked = options.source != AudioSource::NoRtp;

    loop {
        tokio::select! {
            _ = &mut stop => break,
            (session, result) = restart_checks(&mut restarting) => {
                restarting = None;
                match result {
                    Ok(c) => {
                        tracing::info!(call, path = %c.path, "ICE restart: media moves to the new pair");
                        remote = c.path.remote_addr;
                        report.remote = Some(remote);
                        report.path = Some(c.path.clone());
                        report.local = Some(c.path.local_addr);
                        report.ice_restarts += 1;
                        let _ = notices.send((call, Notice::IceConnected { path: c.path.clone(), codec: params.codec.name() }));
                        socket = MediaSocket::Ice(c);
                        if let Some(old) = ice.replace(session) {
                            tokio::spawn(async move { old.close().await });
                        }
                        // RTCP: over the new component 1 until the new component 2 connects.
                        if rtcp_socket.as_ref().is_some_and(MediaSocket::is_ice) {
                            rtcp_socket = None;
                        }
                        if let Some(old) = std::mem::replace(&mut rtcp_ice, restarting_rtcp.take()) {
                            tokio::spawn(old.close());
                        }
                    }
                    Err(e) => {
                        // The old pair stays; if it is dead the RTP timeout ends the call.
                        tracing::warn!(call, "ICE restart failed: {e}");
                        report.error = Some(format!("ICE restart: {e}"));
                        tokio::spawn(async move { session.close().await });
                        if let Some(c) = restarting_rtcp.take() {
                            tokio::spawn(c.close());
                        }
                    }
                }
            }
            r = rtcp_checked(&mut rtcp_ice) => match r {
                Ok(c) => {
                    tracing::info!(call, path = %c.path, "ICE component 2 connected: RTCP moves to it");
                    report.rtcp_path = Some(c.path.clone());
                    rtcp_socket = Some(MediaSocket::Ice(c));
                }
                Err(e) => tracing::info!(call, "ICE component 2 (RTCP): {e}; RTCP stays on component 1"),
            },
            Some(cmd) = commands.recv() => match cmd {
                MediaCommand::Dtmf(keys) => digits.extend(keys.chars()),
                MediaCommand::Mute(m) => muted = m,
                MediaCommand::Snapshot(reply) => {
                    let received = receiver.stats();
                    let rtt_ms = rtcp.rtt().map(|d| d.as_secs_f64() * 1000.0);
                    let playout = receiver.jitter_buffer().playout_delay().as_secs_f64() * 1000.0;
                    let (loss_percent, mos) =
                        quality(params.codec, &received, rtt_ms, playout, params.ptime_ms);
                    let _ = reply.send(LiveStats {
                        codec: params.codec.name(),
                        remote: Some(remote),
                        packets_sent: sender.stats().packets_sent,
                        packets_received: received.packets_received,
                        packets_lost: received.packets_lost,
                        loss_percent,
                        late_frames: receiver.jitter_buffer().stats().late,
                        jitter_ms: received.jitter_ms(rate),
                        rtt_ms,
                        mos,
                        srtp: report.srtp.clone(),
                        muted,
                    });
                }
                MediaCommand::IceRestart { session, remote: r, rtcp } => {
                    if let Some(previous) = restarting.take() {
                        drop(previous); // superseded: its agent closes when dropped
                    }
                    if let Some(previous) = restarting_rtcp.take() {
                        tokio::spawn(previous.close());
                    }
                    stun.push(session.stun_counter());
                    stun.extend(rtcp.as_ref().map(|s| s.stun_counter()));
                    restarting_rtcp = rtcp.map(|s| RtcpComponent::start(s, r.clone()));
                    restarting = Some(Box::pin(async move {
                        let result = session.connect(&r).await;
                        (session, result)
                    }));
                }
                MediaCommand::Rekey(pair) => {
                    if crypto.rekey(*pair) {
                        report.srtp_rekeys += 1;
                    }
                }
                MediaCommand::Update { remote: r, send, receive } => {
                    // With ICE the selected pair decides where media goes, not `c=`/`m=`.
                    if !socket.is_ice() && r != remote && !(latched && r.ip() == remote.ip()) {
                        remote = r;
                        latched = false;
                        report.remote = Some(r);
                    }
                    if send && !sending {
                        sender.start_talkspurt();
                    }
                    sending = send;
                    playing = receive;
                }
            },
            _ = tick.tick(), if clocked => {
                let now = Instant::now();
                source.fill(&mut pcm);
                if muted {
                    pcm.fill(0);
                }
                if dtmf_now.is_none() && dtmf_gap == 0 {
                    if let Some(key) = digits.pop_front() {
                        match (params.dtmf_send_pt, peerline_media::DtmfSender::new(key, 100, 10, rate, params.ptime_ms)) {
                            (Some(_), Ok(d)) => {
                                dtmf_now = Some((sender.next_timestamp(), d.packets().iter().copied().collect()));
                            }
                            (None, _) => report.error = Some("the peer did not accept telephone-event; DTMF not sent".into()),
                            (_, Err(e)) => report.error = Some(format!("DTMF {key:?}: {e}")),
                        }
                    }
                }
                dtmf_gap = dtmf_gap.saturating_sub(1);
                let datagram = match (&mut dtmf_now, params.dtmf_send_pt) {
                    _ if !sending => {
                        sender.skip(ticks_per_frame);
                        None
                    }
                    (Some((start, packets)), Some(pt)) => {
                        let start = *start;
                        let next = packets.pop_front();
                        if packets.is_empty() {
                            dtmf_now = None;
                            dtmf_gap = 60 / params.ptime_ms.max(1) + 1;
                        }
                        // The audio clock runs on under the event (RFC 4733 §2.5.1.2).
                        sender.skip(ticks_per_frame);
                        next.and_then(|p| sender.send_raw(pt, start, p.marker, &p.payload).ok())
                    }
                    _ => match encoder.encode(&pcm) {
                        Ok(payload) => sender.send_frame(&payload, ticks_per_frame).ok(),
                        Err(e) => {
                            report.error = Some(e.to_string());
                            None
                        }
                    },
                };
                // Never plaintext when SRTP was agreed: nothing leaves before the keys.
                if let Some(datagram) = datagram.and_then(|d| crypto.protect(&d, false)) {
                    if socket.send_to(&datagram, remote).await.is_ok() {
                        report.ledger.record(remote, TrafficClass::Media, LedgerDirection::Sent, datagram.len());
                    }
                }
                // Playout runs on our clock, one `frame` per tick, while the peer's packets
                // may hold 10, 20, 30 … ms: frames are popped only as the PCM runs low,
                // so the jitter buffer is asked once per *its* frame period.
                while playout_pcm.len() < frame {
                    // For a missing frame the next packet, if already here, carries Opus
                    // in-band FEC for it.
                    let playout = receiver.pop(now);
                    let next = match &playout {
                        peerline_media::Playout::Missing { timestamp } => receiver.peek_next(*timestamp),
                        _ => None,
                    };
                    let decoded = decoder.play_with_next(&playout, next);
                    if decoded.is_empty() {
                        break;
                    }
                    playout_pcm.extend(decoded);
                }
                let take = frame.min(playout_pcm.len());
                let mut out: Vec<i16> = playout_pcm.drain(..take).collect();
                out.resize(frame, 0);
                if !playing {
                    out.fill(0);
                }
                if let Some(r) = recorder.as_mut() {
                    r.push(&out);
                }
                if let Some(p) = &playback {
                    // A device that falls behind drops what does not fit.
                    p.write(&out);
                }
                if let Some(at) = crypto.dtls.as_ref().and_then(|d| d.poll_timeout()) {
                    if at <= now {
                        if let Some(ep) = crypto.dtls.as_mut() {
                            ep.handle_timeout(now);
                        }
                        if let Some(reason) = drive_dtls(&mut crypto, &socket, remote, &mut report).await {
                            let _ = notices.send((call, Notice::Failed(reason)));
                        }
                    }
                }
                if now >= next_rtcp {
                    next_rtcp = now + rtcp_interval();
                    let ntp = peerline_media::NtpTime::from_system_time(std::time::SystemTime::now());
                    let compound = rtcp.build_report(now, ntp, params.ssrc, Some(&sender), Some(&mut receiver));
                    let (sock, dest) = rtcp_route(&socket, rtcp_socket.as_ref(), params.remote_rtcp, remote);
                    let compound = crypto.protect(&compound, true).unwrap_or_default();
                    if !compound.is_empty() && sock.send_to(&compound, dest).await.is_ok() {
                        report.rtcp_sent += 1;
                        report.ledger.record(dest, TrafficClass::Media, LedgerDirection::Sent, compound.len());
                    }
                }
                if !timeout_reported && now.duration_since(last_rx) > params.rtp_timeout {
                    timeout_reported = true;
                    let _ = notices.send((call, Notice::Timeout));
                }
            }
            r = recv_opt(rtcp_socket.as_ref(), &mut rtcp_buf) => {
                let (n, from) = match r {
                    Ok(r) => r,
                    // Component 2's agent is gone: RTCP falls back to component 1.
                    Err(e) if rtcp_socket.as_ref().is_some_and(MediaSocket::is_ice)
                        && e.kind() != std::io::ErrorKind::InvalidData =>
                    {
                        tracing::info!(call, "ICE component 2 lost ({e}); RTCP over component 1");
                        rtcp_socket = None;
                        continue;
                    }
                    Err(_) => continue,
                };
                // ICE: the agent only delivers datagrams from component 2's validated pairs.
                let ice_rtcp = rtcp_socket.as_ref().is_some_and(MediaSocket::is_ice);
                if !ice_rtcp && from.ip() != remote.ip() {
                    report.foreign_source_drops += 1;
                    report.ledger.record(from, TrafficClass::Dropped, LedgerDirection::Received, n);
                    continue;
                }
                report.ledger.record(from, TrafficClass::Media, LedgerDirection::Received, n);
                let ntp = peerline_media::NtpTime::from_system_time(std::time::SystemTime::now());
                if let Some(plain) = crypto.unprotect(&rtcp_buf[..n], true) {
                    if rtcp.handle(Instant::now(), ntp, params.ssrc, &plain).is_ok() {
                        report.rtcp_received += 1;
                        report.rtcp_received_apart += 1;
                    } else {
                        rtcp_malformed += 1;
                    }
                }
            }
            r = socket.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(r) => r,
                    // ICE: an oversized datagram was dropped; anything else means the pair
                    // is gone (agent closed, no selected pair) and would fail again at once.
                    Err(e) if socket.is_ice() && e.kind() != std::io::ErrorKind::InvalidData => {
                        report.error = Some(format!("ICE path lost: {e}"));
                        let _ = notices.send((call, Notice::Failed(format!("ICE path lost: {e}"))));
                        break;
                    }
                    Err(_) => continue,
                };
                let data = &buf[..n];
                let kind = peerline_srtp::classify_packet(data);
                // ICE: the agent only delivers datagrams of validated pairs; follow the
                // selected pair if the controlling side re-nominates.
                if socket.is_ice() && from != remote {
                    remote = from;
                    report.remote = Some(from);
                }
                // Symmetric RTP (RFC 4961): latch once to the address the peer really sends
                // from, if it is the same host the SDP named; anything else is dropped.
                let latch = !latched
                    && from != remote
                    && from.ip() == remote.ip()
                    && (kind == peerline_srtp::PacketKind::Dtls
                        || (!peerline_media::is_rtcp(data) && peerline_media::parse_rtp(data).is_ok()));
                if latch {
                    remote = from;
                    report.remote = Some(from);
                } else if from != remote {
                    report.foreign_source_drops += 1;
                    report.ledger.record(from, TrafficClass::Dropped, LedgerDirection::Received, n);
                    continue;
                }
                latched = true;
                if kind == peerline_srtp::PacketKind::Dtls {
                    report.ledger.record(from, TrafficClass::Dtls, LedgerDirection::Received, n);
                    if let Some(ep) = crypto.dtls.as_mut() {
                        ep.handle_datagram(Instant::now(), data);
                    }
                    if let Some(reason) = drive_dtls(&mut crypto, &socket, remote, &mut report).await {
                        let _ = notices.send((call, Notice::Failed(reason)));
                    }
                    continue;
                }
                report.ledger.record(from, TrafficClass::Media, LedgerDirection::Received, n);
                let Some(plain) = crypto.unprotect(data, peerline_media::is_rtcp(data)) else {
                    continue;
                };
                let data = &plain[..];
                if peerline_media::is_rtcp(data) {
                    let ntp = peerline_media::NtpTime::from_system_time(std::time::SystemTime::now());
                    if rtcp.handle(Instant::now(), ntp, params.ssrc, data).is_ok() {
                        report.rtcp_received += 1;
                    } else {
                        rtcp_malformed += 1;
                    }
                    continue;
                }
                let now = Instant::now();
                match receiver.receive(now, data) {
                    Ok(Received::TelephoneEvent { timestamp, marker, payload }) => {
                        last_rx = now;
                        let before = dtmf.keys().len();
                        let _ = dtmf.handle(timestamp, marker, &payload);
                        for key in dtmf.keys().chars().skip(before) {
                            let _ = notices.send((call, Notice::Dtmf(key)));
                        }
                    }
                    Ok(Received::Audio { .. }) => last_rx = now,
                    Err(_) => {} // counted in the receiver's stats
                }
            }
        }
    }
    // NoRtp: not even the final RTCP BYE (we never sent a stream to say goodbye to).
    let bye = if clocked {
        crypto
            .protect(&rtcp.build_bye(params.ssrc, Some("call ended")), true)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (sock, dest) = rtcp_route(&socket, rtcp_socket.as_ref(), params.remote_rtcp, remote);
    if !bye.is_empty() && sock.send_to(&bye, dest).await.is_ok() {
        report.rtcp_sent += 1;
        report
            .ledger
            .record(dest, TrafficClass::Media, LedgerDirection::Sent, bye.len());
    }
    report.rtt_ms = rtcp.rtt().map(|d| d.as_secs_f64() * 1000.0);
    if let Some(session) = ice {
        let path = session.path_report().or(report.path.take());
        report.path = match (path, rtcp.rtt()) {
            (Some(p), Some(rtt)) => Some(p.with_rtt(rtt)),
            (p, _) => p,
        };
        session.close().await;
    }
    if let Some(c) = rtcp_ice {
        if let Some(p) = c.path_report() {
            report.rtcp_path = Some(p);
        }
        c.close().await;
    }
    if let Some(c) = restarting_rtcp {
        c.close().await;
    }
    report.playout_delay_ms = receiver.jitter_buffer().playout_delay().as_secs_f64() * 1000.0;
    report.jitter = receiver.jitter_buffer().stats();
    if let Some(pair) = &crypto.pair {
        let st = pair.stats();
        let old = crypto
            .old_inbound
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default();
        report.srtp_auth_failures = st.auth_failures + old.auth_failures + crypto.retired.0;
        report.srtp_replays = st.replays + old.replays + crypto.retired.1;
    }
    report.srtp_early_drops = crypto.early_drops;
    report.sent = sender.stats();
    report.received = receiver.stats();
    // Malformed RTCP is counted with malformed RTP: both are dropped datagrams.
    report.received.malformed += rtcp_malformed;
    report.jitter_ms = report.received.jitter_ms(rate);
    report.mos = quality(
        params.codec,
        &report.received,
        report.rtt_ms,
        report.playout_delay_ms,
        params.ptime_ms,
    )
    .1;
    report.concealed_frames = decoder.concealed();
    report.dtmf = dtmf.keys().to_string();
    if let Some(r) = recorder {
        report.recorded_samples = r.samples();
        if let Err(e) = r.finish() {
            report.error = Some(e.to_string());
        }
    }
    report
}

/// Where RTCP goes and from which socket: the RTP socket with rtcp-mux (or when the odd
/// port could not be bound), else the RTCP socket to the peer's RTCP address (its RTP port
/// + 1 when the SDP named none).
fn rtcp_route<'a>(
    rtp: &'a MediaSocket,
    rtcp: Option<&'a MediaSocket>,
    remote_rtcp: Option<SocketAddr>,
    remote_rtp: SocketAddr,
) -> (&'a MediaSocket, SocketAddr) {
    if rtp.is_ice() {
        // Component 2's pair once it has one; else (rtcp-mux, or component 2 not
        // connected) component 1's, whatever the SDP said.
        return match rtcp {
            Some(sock @ MediaSocket::Ice(c)) => (sock, c.path.remote_addr),
            _ => (rtp, remote_rtp),
        };
    }
    match (remote_rtcp, rtcp) {
        (Some(dest), Some(sock)) => (sock, dest),
        (Some(dest), None) => (rtp, dest),
        (None, _) => (rtp, remote_rtp),
    }
}

/// `recv_from` on an optional socket; never ready when there is none.
async fn recv_opt(
    socket: Option<&MediaSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_call_records_beside_the_replaced_one() {
        let old = MediaOptions {
            source: AudioSource::Tone(500.0),
            record: Some(PathBuf::from("/tmp/x/talk.wav")),
        };
        let new = old.replacement(7);
        assert_eq!(new.source, AudioSource::Tone(500.0));
        assert_eq!(new.record, Some(PathBuf::from("/tmp/x/talk.call7.wav")));
        assert_eq!(MediaOptions::default().replacement(3).record, None);
    }
}
