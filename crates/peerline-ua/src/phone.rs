//! The phone's public, async API: a cheap [`Phone`] handle that sends commands to one driver
//! task, and a stream of [`Event`]s.

use std::net::SocketAddr;
use std::path::Path;

use peerline_net::Ledger;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::driver::Driver;
use crate::media::{MediaOptions, MediaReport};

/// Identifies a call within one phone.
pub type CallId = u64;

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up.
    LocalHangup,
    /// The remote party sent BYE.
    RemoteHangup,
    /// The call was refused with this final status and reason phrase.
    Rejected(u16, String),
    /// We rejected an incoming call with this status.
    RejectedLocally(u16),
    /// The caller cancelled before we answered, or we did.
    Cancelled,
    /// No final response (Timer B) or no ACK (Timer H).
    Timeout,
    /// The request could not be sent: the connection to the next hop failed (refused,
    /// unreachable, TLS handshake), with the transport's reason.
    Unreachable(String),
    /// No RTP for the configured timeout.
    RtpTimeout,
    /// We transferred the call (REFER) and the transfer target answered.
    Transferred,
    /// A new call took this one's place (an INVITE with `Replaces`, RFC 3891: the other
    /// end of an attended transfer).
    Replaced,
    /// The session timer ran out without a refresh (RFC 4028).
    SessionExpired,
    /// SDP offer/answer failed.
    Negotiation(String),
    /// The media path failed (socket, codec).
    Media(String),
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalHangup => write!(f, "local hangup"),
            Self::RemoteHangup => write!(f, "remote hangup"),
            Self::Rejected(code, reason) => write!(f, "rejected: {code} {reason}"),
            Self::RejectedLocally(code) => write!(f, "rejected locally with {code}"),
            Self::Cancelled => write!(f, "cancelled"),
            Self::Timeout => write!(f, "SIP transaction timeout"),
            Self::Unreachable(why) => write!(f, "next hop unreachable: {why}"),
            Self::RtpTimeout => write!(f, "no RTP received for the configured timeout"),
            Self::Transferred => write!(f, "transferred"),
            Self::Replaced => write!(f, "replaced by a new call (attended transfer)"),
            Self::SessionExpired => write!(f, "session expired (no session refresh)"),
            Self::Negotiation(e) => write!(f, "SDP negotiation failed: {e}"),
            Self::Media(e) => write!(f, "media failed: {e}"),
        }
    }
}

/// What happened on the phone.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// An account's registration succeeded (or was refreshed).
    Registered {
        /// The account's AOR.
        aor: String,
        /// Seconds the registrar granted.
        expires: u32,
    },
    /// An account's registration failed (it is retried with back-off).
    RegistrationFailed {
        /// The account's AOR.
        aor: String,
        /// The final status (0 when no response: resolution or transport failure).
        code: u16,
        /// Why.
        reason: String,
    },
    /// An account's binding was removed (at shutdown).
    Unregistered {
        /// The account's AOR.
        aor: String,
    },
    /// A call arrives; answer with [`Phone::answer`] or refuse with [`Phone::reject`].
    Incoming {
        /// The call.
        call: CallId,
        /// The From header.
        from: String,
        /// The Request-URI.
        to: String,
    },
    /// The remote party is ringing (180) or sent early media (183).
    Ringing {
        /// The call.
        call: CallId,
        /// 180 or 183.
        status: u16,
    },
    /// The call is answered and confirmed.
    Answered {
        /// The call.
        call: CallId,
    },
    /// Media flows.
    MediaUp {
        /// The call.
        call: CallId,
        /// Our RTP address.
        local: SocketAddr,
        /// The remote RTP address from SDP (with ICE: the selected pair's remote candidate).
        remote: SocketAddr,
        /// The codec.
        codec: &'static str,
        /// With ICE: the selected candidate pair (host/srflx/prflx/relay on each side, both
        /// addresses). `None` for plain RTP to the SDP address.
        path: Option<peerline_net::PathReport>,
    },
    /// Our hold or resume re-INVITE was accepted.
    Hold {
        /// The call.
        call: CallId,
        /// True when the call is now on hold.
        held: bool,
    },
    /// The remote party changed the media (re-INVITE): whether we now send and receive.
    RemoteUpdate {
        /// The call.
        call: CallId,
        /// We send audio.
        send: bool,
        /// We receive audio.
        receive: bool,
    },
    /// An RFC 4733 digit arrived.
    Dtmf {
        /// The call.
        call: CallId,
        /// The digit.
        digit: char,
    },
    /// An instant message (RFC 3428 MESSAGE) arrived; it was answered `200 OK`.
    Message {
        /// The sender (From), as a name-addr.
        from: String,
        /// The recipient (To).
        to: String,
        /// Its Content-Type (`text/plain` when it has none).
        content_type: String,
        /// Its body as text (invalid UTF-8 replaced).
        body: String,
    },
    /// A blind transfer in progress. As transferor: the status of the transferee's
    /// call to the target (from the NOTIFYs), or a REFER refused (its status); a 2xx
    /// ends our call with [`EndReason::Transferred`]. As transferee (`target` set): we
    /// were asked to call `target` and did so as call `new_call`.
    Transfer {
        /// The call being transferred.
        call: CallId,
        /// The latest status (100 Trying, 180, 200, 486…).
        status: u16,
        /// Transferee: where we were referred.
        target: Option<String>,
        /// Transferee: our new call to the target.
        new_call: Option<CallId>,
    },
    /// An incoming call replaced one of ours (INVITE with `Replaces`, RFC 3891): it was
    /// answered at once with the replaced call's media options, and `replaced` ends with
    /// [`EndReason::Replaced`]. This is the target's side of an attended transfer.
    Replaced {
        /// The new call.
        call: CallId,
        /// The call it replaces.
        replaced: CallId,
        /// Who is now on the line (the new INVITE's From).
        from: String,
    },
    /// The call is over.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
        /// What the media path did (empty if media never started).
        media: Box<MediaReport>,
    },
}

impl Event {
    /// The call the event is about, if it is about one.
    pub fn call(&self) -> Option<CallId> {
        match self {
            Self::Incoming { call, .. }
            | Self::Ringing { call, .. }
            | Self::Answered { call }
            | Self::MediaUp { call, .. }
            | Self::Hold { call, .. }
            | Self::RemoteUpdate { call, .. }
            | Self::Dtmf { call, .. }
            | Self::Transfer { call, .. }
            | Self::Replaced { call, .. }
            | Self::Ended { call, .. } => Some(*call),
            Self::Registered { .. }
            | Self::RegistrationFailed { .. }
            | Self::Unregistered { .. }
            | Self::Message { .. } => None,
        }
    }
}

/// Why a phone command failed.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    /// A socket could not be bound or used.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The target is not a usable SIP URI.
    #[error("bad target {0:?}: {1}")]
    BadTarget(String, String),
    /// No such call, or not in a state where this command applies.
    #[error("call {0}: {1}")]
    Call(CallId, &'static str),
    /// The DNS resolver could not be set up.
    #[error("dns: {0}")]
    Dns(String),
    /// The phone's DTLS certificate could not be made.
    #[error("crypto: {0}")]
    Crypto(String),
    /// Not a DTMF digit.
    #[error("{0:?} is not a DTMF digit (0-9, *, #, A-D)")]
    BadDigit(char),
    /// The phone's driver is gone.
    #[error("the phone has shut down")]
    Closed,
    /// A request got a final error response (status and reason phrase).
    #[error("refused: {0} {1}")]
    Refused(u16, String),
    /// A request got no final response (Timer F), or could not be sent (the reason).
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

pub(crate) enum Command {
    Call {
        target: String,
        media: MediaOptions,
        /// The AOR of the account to call from (`None`: the first).
        account: Option<String>,
        reply: oneshot::Sender<Result<CallId, PhoneError>>,
    },
    Answer {
        call: CallId,
        media: MediaOptions,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Reject {
        call: CallId,
        status: u16,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Hangup {
        call: CallId,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Ledger {
        reply: oneshot::Sender<Ledger>,
    },
    SecurityStats {
        reply: oneshot::Sender<crate::SecurityStats>,
    },
    Dtmf {
        call: CallId,
        digits: String,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Message {
        target: String,
        content_type: String,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<u16, PhoneError>>,
    },
    Transfer {
        call: CallId,
        target: String,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    AttendedTransfer {
        call: CallId,
        consultation: CallId,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Mute {
        call: CallId,
        mute: bool,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Stats {
        call: CallId,
        stats: oneshot::Sender<crate::media::LiveStats>,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Hold {
        call: CallId,
        hold: bool,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    RestartIce {
        call: CallId,
        reply: oneshot::Sender<Result<(), PhoneError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle to a running phone. Cloning it is cheap; the phone stops on [`Phone::shutdown`].
#[derive(Debug, Clone)]
pub struct Phone {
    commands: mpsc::UnboundedSender<Command>,
    sip_addr: SocketAddr,
    /// The SIP-over-TLS listener, when `[tls] listen_port` is set.
    tls_addr: Option<SocketAddr>,
}

/// The phone's events; `recv` returns `None` after shutdown.
#[derive(Debug)]
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    /// The next event.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }
}

fn tls_config_error(e: String) -> PhoneError {
    PhoneError::Io(std::io::Error::other(format!("[tls]: {e}")))
}

/// The TLS listener of `[tls]`: none without `listen_port`; with it, the certificate
/// and key are required.
fn tls_server(
    tls: &crate::config::TlsConfig,
) -> Result<Option<peerline_transport::TlsServerConfig>, PhoneError> {
    let Some(port) = tls.listen_port else {
        return Ok(None);
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Ok(Some(peerline_transport::TlsServerConfig {
            port,
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca_file: None,
        })),
        _ => Err(PhoneError::Io(std::io::Error::other(
            "[tls] listen_port needs cert_file and key_file",
        ))),
    }
}

impl Phone {
    /// Starts a phone: binds the SIP socket and spawns the driver on the current tokio runtime.
    pub async fn start(config: Config) -> Result<(Phone, Events), PhoneError> {
        let cert = peerline_srtp::DtlsCert::generate(&mut rand::rngs::OsRng)
            .map_err(|e| PhoneError::Crypto(e.to_string()))?;
        // UDP and TCP on the same port (RFC 3261 §18: a UA listens on both).
        let transports =
            peerline_transport::SipTransports::bind(peerline_transport::TransportConfig {
                bind: config.network.sip_listen,
                max_connections: config.network.tcp_max_connections.max(1),
                message_timeout: std::time::Duration::from_secs(
                    config.network.tcp_message_timeout_secs.max(1),
                ),
                idle_timeout: std::time::Duration::from_secs(
                    config.network.tcp_idle_timeout_secs.max(1),
                ),
                tls_server: tls_server(&config.tls)?,
                tls_client: peerline_transport::TlsClientConfig {
                    ca_file: config.tls.ca_file.clone(),
                    pins: config.tls.parsed_pins().map_err(tls_config_error)?,
                    client_cert: config.tls.client_cert().map_err(tls_config_error)?,
                },
                ..peerline_transport::TransportConfig::default()
            })
            .await
            .map_err(|e| PhoneError::Io(std::io::Error::other(e.to_string())))?;
        let sip_addr = transports
            .local_addr(peerline_sip::Transport::Udp)
            .ok_or_else(|| PhoneError::Io(std::io::Error::other("no UDP socket")))?;
        let tls_addr = transports.local_addr(peerline_sip::Transport::Tls);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let locator = crate::location::locator(&config.network)
            .map_err(|e| PhoneError::Dns(e.to_string()))?;
        let driver = Driver::new(
            config,
            transports,
            sip_addr,
            ev_tx,
            std::sync::Arc::new(cert),
            locator,
        );
        tokio::spawn(driver.run(cmd_rx));
        Ok((
            Phone {
                commands: cmd_tx,
                sip_addr,
                tls_addr,
            },
            Events(ev_rx),
        ))
    }

    /// Starts a phone from a config file.
    pub async fn from_file(path: &Path) -> Result<(Phone, Events), PhoneError> {
        Self::start(Config::load(path)?).await
    }

    /// The address the SIP socket is bound to.
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// The address of the SIP-over-TLS listener, if `[tls]` has one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Our SIP URI for a user name, as a peer on the same network would dial it.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.sip_addr)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, PhoneError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| PhoneError::Closed)?;
        rx.await.map_err(|_| PhoneError::Closed)
    }

    /// Calls a SIP URI (`sip:user@host[:port]`).
    pub async fn call(&self, target: &str, media: MediaOptions) -> Result<CallId, PhoneError> {
        let target = target.to_string();
        self.ask(|reply| Command::Call {
            target,
            media,
            account: None,
            reply,
        })
        .await?
    }

    /// Like [`Phone::call`], from the account whose AOR is `aor` (its outbound proxy,
    /// credentials and profile) instead of the first one.
    pub async fn call_from(
        &self,
        aor: &str,
        target: &str,
        media: MediaOptions,
    ) -> Result<CallId, PhoneError> {
        let (account, target) = (Some(aor.to_string()), target.to_string());
        self.ask(|reply| Command::Call {
            target,
            media,
            account,
            reply,
        })
        .await?
    }

    /// Answers an incoming call.
    pub async fn answer(&self, call: CallId, media: MediaOptions) -> Result<(), PhoneError> {
        self.ask(|reply| Command::Answer { call, media, reply })
            .await?
    }

    /// Refuses an incoming call with a final status (e.g. 486 Busy Here, 603 Decline).
    pub async fn reject(&self, call: CallId, status: u16) -> Result<(), PhoneError> {
        self.ask(|reply| Command::Reject {
            call,
            status,
            reply,
        })
        .await?
    }

    /// Ends a call: BYE when established, CANCEL while ringing out, 486 while ringing in.
    pub async fn hangup(&self, call: CallId) -> Result<(), PhoneError> {
        self.ask(|reply| Command::Hangup { call, reply }).await?
    }

    /// Sends DTMF digits (`0-9 * # A-D`) as RFC 4733 telephone-events.
    pub async fn send_dtmf(&self, call: CallId, digits: &str) -> Result<(), PhoneError> {
        if let Some(bad) = digits
            .chars()
            .find(|c| !"0123456789*#ABCDabcd".contains(*c))
        {
            return Err(PhoneError::BadDigit(bad));
        }
        let digits = digits.to_ascii_uppercase();
        self.ask(|reply| Command::Dtmf {
            call,
            digits,
            reply,
        })
        .await?
    }

    /// Sends an instant message (RFC 3428 MESSAGE, `text/plain; charset=UTF-8`) to
    /// `target` outside any call, through the account's outbound proxy like a call, with
    /// its credentials on a 401/407. Returns the final 2xx status; an error response is
    /// [`PhoneError::Refused`], no answer [`PhoneError::NoAnswer`].
    pub async fn send_message(&self, target: &str, text: &str) -> Result<u16, PhoneError> {
        self.send_message_as(target, "text/plain;charset=UTF-8", text.as_bytes().to_vec())
            .await
    }

    /// [`Phone::send_message`] with any content type and body.
    pub async fn send_message_as(
        &self,
        target: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, PhoneError> {
        let (target, content_type) = (target.to_string(), content_type.to_string());
        self.ask(|reply| Command::Message {
            target,
            content_type,
            body,
            reply,
        })
        .await?
    }

    /// Blind transfer (RFC 3515 REFER): asks the remote party to call `target`. Progress
    /// comes as [`Event::Transfer`]; when the target answers, this call ends with
    /// [`EndReason::Transferred`]. If the transfer fails the call stays up.
    pub async fn transfer(&self, call: CallId, target: &str) -> Result<(), PhoneError> {
        let target = target.to_string();
        self.ask(|reply| Command::Transfer {
            call,
            target,
            reply,
        })
        .await?
    }

    /// Attended transfer (RFC 5589 §7): asks the remote party of `call` to call the remote
    /// party of `consultation` with `Replaces` naming the consultation call, so the two
    /// end up talking to each other. Both calls must be answered. Progress comes as
    /// [`Event::Transfer`] on `call`; when the target accepts, `call` ends with
    /// [`EndReason::Transferred`] and the target ends `consultation` (remote hangup).
    /// If the transfer fails both calls stay up.
    pub async fn transfer_attended(
        &self,
        call: CallId,
        consultation: CallId,
    ) -> Result<(), PhoneError> {
        self.ask(|reply| Command::AttendedTransfer {
            call,
            consultation,
            reply,
        })
        .await?
    }

    /// The call's media quality so far (codec, packets, loss, jitter, RTT, MOS, SRTP),
    /// for a live display. Fails when the call has no media running (yet).
    pub async fn call_stats(&self, call: CallId) -> Result<crate::media::LiveStats, PhoneError> {
        let (tx, rx) = oneshot::channel();
        self.ask(|reply| Command::Stats {
            call,
            stats: tx,
            reply,
        })
        .await??;
        match tokio::time::timeout(std::time::Duration::from_secs(2), rx).await {
            Ok(Ok(s)) => Ok(s),
            _ => Err(PhoneError::Call(call, "media did not report")),
        }
    }

    /// Sends silence instead of the call's source (`true`), or the source again.
    pub async fn mute(&self, call: CallId, mute: bool) -> Result<(), PhoneError> {
        self.ask(|reply| Command::Mute { call, mute, reply })
            .await?
    }

    /// Puts the call on hold with a re-INVITE (`a=sendonly`, RFC 6337); [`Event::Hold`]
    /// follows when the peer accepts.
    pub async fn hold(&self, call: CallId) -> Result<(), PhoneError> {
        self.ask(|reply| Command::Hold {
            call,
            hold: true,
            reply,
        })
        .await?
    }

    /// Restarts ICE (RFC 8445 §9): gathers new candidates and offers them with new
    /// credentials in a re-INVITE; media moves to the new pair once its checks pass
    /// ([`Event::MediaUp`] again, with the new path). The phone does this by itself when an
    /// address under the call's candidates goes away.
    pub async fn restart_ice(&self, call: CallId) -> Result<(), PhoneError> {
        self.ask(|reply| Command::RestartIce { call, reply })
            .await?
    }

    /// Takes the call off hold (`a=sendrecv`).
    pub async fn resume(&self, call: CallId) -> Result<(), PhoneError> {
        self.ask(|reply| Command::Hold {
            call,
            hold: false,
            reply,
        })
        .await?
    }

    /// The process-wide traffic ledger: every datagram this phone sent or received.
    pub async fn ledger(&self) -> Result<Ledger, PhoneError> {
        self.ask(|reply| Command::Ledger { reply }).await
    }

    /// Counters of the incoming gate: authentications, failures, blocks by the
    /// failed-authentication guard, `[policy]` refusals.
    pub async fn security_stats(&self) -> Result<crate::SecurityStats, PhoneError> {
        self.ask(|reply| Command::SecurityStats { reply }).await
    }

    /// Ends every call and stops the driver.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}
