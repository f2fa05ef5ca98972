//! RFC 3264 offer/answer for one audio stream.
//!
//! Codecs are matched by encoding name, clock rate and channel count, never by payload
//! type number. An answer reuses the offerer's payload type numbers; streams we do not
//! take are answered with port 0. [`Negotiated`] keeps the payload type per direction:
//! we *send* with the number the remote side put in its description and *receive* with
//! the number we put in ours.

use std::net::{IpAddr, SocketAddr};

use crate::attribute::{Attribute, Candidate, Crypto, Direction, Fingerprint, Fmtp, Rtcp, Setup};
use crate::codec::{payload_encoding, Codec};
use crate::model::{
    AddrType, Connection, MediaDescription, MediaKind, Origin, SessionDescription, Timing,
};

/// Whether and how SRTP is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only; offered keys are ignored.
    Off,
    /// Offer keys on `RTP/AVP` (best effort); accept plain RTP.
    Optional,
    /// Offer `RTP/SAVP` (or DTLS); reject plain RTP.
    #[default]
    Mandatory,
}

/// Which side's order decides the codec when answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecPreference {
    /// Our [`LocalCapabilities::codecs`] order.
    #[default]
    Local,
    /// The order of the offer's `m=` line.
    Remote,
}

/// Our ICE parameters, produced by the ICE agent (peerline-net).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IceParams {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
    /// `a=ice-options` (e.g. `trickle`).
    pub options: Vec<String>,
    /// Gathered candidates.
    pub candidates: Vec<Candidate>,
    /// Add `a=end-of-candidates`.
    pub end_of_candidates: bool,
    /// We are an ICE-lite agent.
    pub lite: bool,
    /// The RTCP component's default candidate (`a=rtcp`, RFC 3605 / RFC 8839 §5.1.1),
    /// when `candidates` has component-2 candidates (for a peer without rtcp-mux).
    pub rtcp: Option<SocketAddr>,
}

impl IceParams {
    /// Whether there are candidates for the RTCP component (component 2).
    pub fn has_rtcp_component(&self) -> bool {
        self.candidates.iter().any(|c| c.component == 2)
    }

    /// The same parameters with only the RTP component (component 1): what an answer that
    /// accepts rtcp-mux carries (RFC 5761 §5.1.3).
    pub fn rtp_component_only(&self) -> IceParams {
        IceParams {
            candidates: self
                .candidates
                .iter()
                .filter(|c| c.component == 1)
                .cloned()
                .collect(),
            rtcp: None,
            ..self.clone()
        }
    }
}

/// What we can do, in preference order. Keys, fingerprints and ICE credentials are
/// generated elsewhere (this crate has no randomness) and passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCapabilities {
    /// Audio codecs in preference order (`TelephoneEvent` here is ignored; see `dtmf`).
    pub codecs: Vec<Codec>,
    /// Offer/accept RFC 4733 telephone-event.
    pub dtmf: bool,
    /// `a=ptime` we want to receive.
    pub ptime: Option<u32>,
    /// `a=maxptime` we can receive.
    pub maxptime: Option<u32>,
    /// Direction we want (normally `SendRecv`).
    pub direction: Direction,
    /// Offer/accept `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Codec choice order when answering.
    pub preference: CodecPreference,
    /// SRTP policy.
    pub srtp: SrtpPolicy,
    /// Our SDES keys, one per suite, in preference order (tags are assigned on output).
    pub crypto: Vec<Crypto>,
    /// Our DTLS certificate fingerprint; when set (and SRTP is not `Off`) offers use
    /// `UDP/TLS/RTP/SAVP`.
    pub fingerprint: Option<Fingerprint>,
    /// Our ICE parameters, if ICE is used.
    pub ice: Option<IceParams>,
    /// `o=` username.
    pub username: String,
    /// `s=` session name.
    pub session_name: String,
    /// Extra attributes appended to our audio section.
    pub extra_attributes: Vec<Attribute>,
}

impl Default for LocalCapabilities {
    fn default() -> Self {
        LocalCapabilities {
            codecs: vec![Codec::opus(), Codec::G722, Codec::Pcmu, Codec::Pcma],
            dtmf: true,
            ptime: Some(20),
            maxptime: None,
            direction: Direction::SendRecv,
            rtcp_mux: true,
            preference: CodecPreference::Local,
            srtp: SrtpPolicy::Mandatory,
            crypto: Vec::new(),
            fingerprint: None,
            ice: None,
            username: "peerline".into(),
            session_name: "peerline".into(),
            extra_attributes: Vec::new(),
        }
    }
}

/// The negotiated telephone-event format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// PT to send events with (from the remote description).
    pub send_pt: u8,
    /// PT we receive events with (from our description).
    pub recv_pt: u8,
    /// RTP clock rate of the events.
    pub clock_rate: u32,
}

/// How the media is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Plain RTP.
    None,
    /// SDES-SRTP (RFC 4568): our key (we send with it) and the remote key (we receive with it).
    Sdes {
        /// Our crypto line as sent (encrypts what we send).
        local: Crypto,
        /// The remote crypto line (decrypts what we receive).
        remote: Crypto,
    },
    /// DTLS-SRTP (RFC 5763/5764).
    Dtls {
        /// Remote certificate fingerprints.
        remote_fingerprints: Vec<Fingerprint>,
        /// Our role: `Active` = DTLS client, `Passive` = DTLS server.
        local_setup: Setup,
    },
}

/// Remote ICE attributes (media level, falling back to session level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteIce {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd` (empty if missing).
    pub pwd: String,
    /// `a=ice-options`.
    pub options: Vec<String>,
    /// `a=candidate` lines.
    pub candidates: Vec<Candidate>,
    /// `a=remote-candidates`.
    pub remote_candidates: Vec<crate::attribute::RemoteCandidate>,
    /// `a=end-of-candidates` seen.
    pub end_of_candidates: bool,
    /// `a=ice-lite` seen.
    pub lite: bool,
}

/// The outcome of offer/answer for the first accepted audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the stream among the `m=` lines.
    pub media_index: usize,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP (`None` with rtcp-mux: use `remote_rtp`).
    pub remote_rtcp: Option<SocketAddr>,
    /// The chosen codec (our configuration of it).
    pub codec: Codec,
    /// PT to send the codec with.
    pub send_pt: u8,
    /// PT we receive the codec with.
    pub recv_pt: u8,
    /// The remote `a=fmtp` for the codec (what the remote wants to receive).
    pub remote_fmtp: Option<Fmtp>,
    /// Telephone-event, if both sides support it.
    pub telephone_event: Option<TelephoneEvent>,
    /// Remote `a=ptime` (packetization the remote wants to receive).
    pub ptime: Option<u32>,
    /// Remote `a=maxptime`.
    pub maxptime: Option<u32>,
    /// Direction from our point of view.
    pub direction: Direction,
    /// RTP and RTCP share one port.
    pub rtcp_mux: bool,
    /// Media protection.
    pub security: Security,
    /// Remote ICE attributes, if the remote does ICE.
    pub remote_ice: Option<RemoteIce>,
}

/// Why offer/answer failed. All map to SIP `488 Not Acceptable Here` except where noted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No usable audio stream (none present, or all with port 0).
    #[error("no audio stream to negotiate")]
    NoAudioStream,
    /// No codec in common.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// Plain RTP offered while SRTP is mandatory, or SRTP required by the peer while ours is off.
    #[error("media security mismatch: {0}")]
    Security(&'static str),
    /// No offered crypto suite is one we have a key for.
    #[error("no common SRTP crypto suite")]
    NoCommonCryptoSuite,
    /// The answer's crypto tag/suite is not one we offered.
    #[error("answer crypto tag {0} does not match an offered crypto line")]
    CryptoTagMismatch(u32),
    /// The answer has a different number of `m=` lines than the offer.
    #[error("answer has {answer} m= lines, offer has {offer}")]
    MediaCountMismatch {
        /// m= lines in the offer.
        offer: usize,
        /// m= lines in the answer.
        answer: usize,
    },
    /// The answer changed the transport protocol.
    #[error("answer changed transport from {offer} to {answer}")]
    ProtoMismatch {
        /// Offered proto.
        offer: String,
        /// Answered proto.
        answer: String,
    },
    /// The stream has no `c=` line at either level.
    #[error("m= line {0} has no connection address")]
    MissingConnection(usize),
    /// The connection address is not an IP literal (FQDNs are not resolved here).
    #[error("connection address `{0}` is not an IP address")]
    UnsupportedAddress(String),
    /// The answer picked a codec we did not offer.
    #[error("answer uses payload types we did not offer")]
    AnswerNotSubset,
}

impl NegotiationError {
    /// SIP status to answer an unacceptable offer with.
    pub fn sip_status(&self) -> u16 {
        488
    }
}

/// Kind of re-offer for [`hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMode {
    /// `a=sendonly` (or `inactive` if we were not sending) — music on hold possible.
    SendOnly,
    /// `a=inactive`.
    Inactive,
}

fn base_session(
    caps: &LocalCapabilities,
    ip: IpAddr,
    session_id: u64,
    version: u64,
) -> SessionDescription {
    let conn = Connection::new(ip);
    let mut attributes = Vec::new();
    if caps.ice.as_ref().is_some_and(|i| i.lite) {
        attributes.push(Attribute::IceLite);
    }
    SessionDescription {
        origin: Origin {
            username: if caps.username.is_empty() || caps.username.contains(char::is_whitespace) {
                "-".into()
            } else {
                caps.username.clone()
            },
            session_id,
            session_version: version,
            addr_type: conn.addr_type,
            address: conn.address.clone(),
        },
        session_name: if caps.session_name.is_empty() {
            "-".into()
        } else {
            caps.session_name.clone()
        },
        session_info: None,
        uri: None,
        emails: Vec::new(),
        phones: Vec::new(),
        connection: Some(conn),
        bandwidths: Vec::new(),
        timings: vec![Timing {
            start: 0,
            stop: 0,
            repeats: Vec::new(),
        }],
        time_zones: None,
        key: None,
        attributes,
        media: Vec::new(),
    }
}

fn audio_section(port: u16, proto: &str) -> MediaDescription {
    MediaDescription {
        kind: MediaKind::Audio,
        port,
        port_count: None,
        proto: proto.to_owned(),
        formats: Vec::new(),
        title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}

fn push_codec(m: &mut MediaDescription, codec: &Codec, pt: u8) {
    m.formats.push(pt.to_string());
    m.attributes.push(Attribute::Rtpmap(codec.rtpmap(pt)));
    if let Some(params) = codec.fmtp_params() {
        m.attributes.push(Attribute::Fmtp(Fmtp {
            format: pt.to_string(),
            params,
        }));
    }
}

/// Writes our ICE attributes. `separate_rtcp`: RTCP may get its own component (an offer,
/// or an answer that did not accept rtcp-mux): component-2 candidates and `a=rtcp` for
/// their default go in too. Otherwise only component 1 (RFC 5761 §5.1.3: an answer that
/// multiplexes has no RTCP candidate).
fn push_ice(m: &mut MediaDescription, ice: &IceParams, separate_rtcp: bool) {
    let rtp_only;
    let ice = if separate_rtcp {
        ice
    } else {
        rtp_only = ice.rtp_component_only();
        &rtp_only
    };
    if let Some(rtcp) = ice.rtcp.filter(|_| ice.has_rtcp_component()) {
        m.attributes.push(Attribute::Rtcp(Rtcp {
            port: rtcp.port(),
            address: Some((AddrType::of(rtcp.ip()), rtcp.ip().to_string())),
        }));
    }
    m.attributes.push(Attribute::IceUfrag(ice.ufrag.clone()));
    m.attributes.push(Attribute::IcePwd(ice.pwd.clone()));
    if !ice.options.is_empty() {
        m.attributes
            .push(Attribute::IceOptions(ice.options.clone()));
    }
    for c in &ice.candidates {
        m.attributes.push(Attribute::Candidate(c.clone()));
    }
    if ice.end_of_candidates {
        m.attributes.push(Attribute::EndOfCandidates);
    }
}

fn push_common(m: &mut MediaDescription, caps: &LocalCapabilities, rtcp_mux: bool, dir: Direction) {
    if let Some(p) = caps.ptime {
        m.attributes.push(Attribute::Ptime(p));
    }
    if let Some(p) = caps.maxptime {
        m.attributes.push(Attribute::MaxPtime(p));
    }
    if rtcp_mux {
        m.attributes.push(Attribute::RtcpMux);
    }
    m.attributes.push(Attribute::Direction(dir));
}

/// Build an offer with one audio stream on `local_addr`.
///
/// Dynamic payload types are assigned from 96 in codec order; telephone-event gets 101
/// when free. With [`SrtpPolicy::Mandatory`] and no key material the offer is still
/// `RTP/SAVP`, which no peer will accept: supply `crypto` or `fingerprint`.
pub fn create_offer(
    caps: &LocalCapabilities,
    local_addr: SocketAddr,
    session_id: u64,
    version: u64,
) -> SessionDescription {
    let mut sdp = base_session(caps, local_addr.ip(), session_id, version);
    let dtls = caps.srtp != SrtpPolicy::Off && caps.fingerprint.is_some();
    let sdes = !dtls && caps.srtp != SrtpPolicy::Off && !caps.crypto.is_empty();
    let proto = if dtls {
        "UDP/TLS/RTP/SAVP"
    } else if caps.srtp == SrtpPolicy::Mandatory {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let mut m = audio_section(local_addr.port(), proto);

    let mut used = [false; 128];
    let mut next_dynamic = 96u8;
    let mut alloc = |used: &mut [bool; 128], preferred: Option<u8>| -> Option<u8> {
        if let Some(p) = preferred.filter(|p| !used[usize::from(*p)]) {
            used[usize::from(p)] = true;
            return Some(p);
        }
        while next_dynamic <= 127 {
            let p = next_dynamic;
            next_dynamic += 1;
            if !used[usize::from(p)] {
                used[usize::from(p)] = true;
                return Some(p);
            }
        }
        None
    };
    for c in &caps.codecs {
        if let Some(pt) = c.static_payload_type() {
            used[usize::from(pt)] = true;
        }
    }
    used[101] = caps.dtmf;
    for c in caps.codecs.iter().filter(|c| **c != Codec::TelephoneEvent) {
        let already = m
            .payload_types()
            .any(|pt| Codec::from_media(&m, pt).is_some_and(|k| k.same_encoding(c)));
        if already {
            continue;
        }
        let pt = match c.static_payload_type() {
            Some(pt) => Some(pt),
            None => alloc(&mut used, None),
        };
        if let Some(pt) = pt {
            push_codec(&mut m, c, pt);
        }
    }
    if caps.dtmf {
        used[101] = false;
        if let Some(pt) = alloc(&mut used, Some(101)) {
            push_codec(&mut m, &Codec::TelephoneEvent, pt);
        }
    }
    push_common(&mut m, caps, caps.rtcp_mux, caps.direction);
    if sdes {
        for (i, c) in caps.crypto.iter().enumerate() {
            let mut c = c.clone();
            c.tag = u32::try_from(i + 1).unwrap_or(u32::MAX);
            m.attributes.push(Attribute::Crypto(c));
        }
    }
    if dtls {
        if let Some(fp) = &caps.fingerprint {
            m.attributes.push(Attribute::Fingerprint(fp.clone()));
            m.attributes.push(Attribute::Setup(Setup::ActPass));
        }
    }
    if let Some(ice) = &caps.ice {
        push_ice(&mut m, ice, true);
    }
    m.attributes.extend(caps.extra_attributes.iter().cloned());
    sdp.media.push(m);
    sdp
}

fn rejected(offer_m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        kind: offer_m.kind.clone(),
        port: 0,
        port_count: None,
        proto: offer_m.proto.clone(),
        formats: offer_m.formats.iter().take(1).cloned().collect(),
        title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}

/// Effective direction of a remote section, treating `c=0.0.0.0` (RFC 2543 hold) as
/// "does not want to receive" — except with ICE, where `0.0.0.0` (port 9) is the normal
/// placeholder (RFC 8839 §4.2.4) and the candidates carry the addresses.
fn remote_direction(sdp: &SessionDescription, m: &MediaDescription) -> Direction {
    let d = sdp.media_direction(m);
    let ice = m.ice_ufrag().or(sdp.ice_ufrag()).is_some();
    if !ice
        && sdp
            .connection_for(m)
            .is_some_and(Connection::is_unspecified)
    {
        Direction::from_flags(d.sends(), false)
    } else {
        d
    }
}

fn remote_addrs(
    sdp: &SessionDescription,
    m: &MediaDescription,
    index: usize,
    rtcp_mux: bool,
) -> Result<(SocketAddr, Option<SocketAddr>), NegotiationError> {
    let conn = sdp
        .connection_for(m)
        .ok_or(NegotiationError::MissingConnection(index))?;
    let ip = conn
        .ip()
        .ok_or_else(|| NegotiationError::UnsupportedAddress(conn.address.clone()))?;
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = if rtcp_mux {
        None
    } else if let Some(r) = m.rtcp() {
        Some(SocketAddr::new(r.ip().unwrap_or(ip), r.port))
    } else {
        m.port.checked_add(1).map(|p| SocketAddr::new(ip, p))
    };
    Ok((rtp, rtcp))
}

fn remote_ice(sdp: &SessionDescription, m: &MediaDescription) -> Option<RemoteIce> {
    let ufrag = m.ice_ufrag().or(sdp.ice_ufrag())?;
    let options = if m.ice_options().is_empty() {
        sdp.ice_options()
    } else {
        m.ice_options()
    };
    Some(RemoteIce {
        ufrag: ufrag.to_owned(),
        pwd: m.ice_pwd().or(sdp.ice_pwd()).unwrap_or_default().to_owned(),
        options: options.into_iter().map(str::to_owned).collect(),
        candidates: m.candidates().cloned().collect(),
        remote_candidates: m.remote_candidates().unwrap_or_default().to_vec(),
        end_of_candidates: m.end_of_candidates() || sdp.end_of_candidates(),
        lite: sdp.ice_lite() || m.ice_lite(),
    })
}

fn remote_fingerprints(sdp: &SessionDescription, m: &MediaDescription) -> Vec<Fingerprint> {
    let fps: Vec<Fingerprint> = m.fingerprints().cloned().collect();
    if fps.is_empty() {
        sdp.fingerprints().cloned().collect()
    } else {
        fps
    }
}

/// Find the telephone-event PT in `m`, preferring the clock rate `clock`, else 8000.
fn find_telephone_event(m: &MediaDescription, clock: u32) -> Option<(u8, u32)> {
    let events: Vec<(u8, u32)> = m
        .payload_types()
        .filter_map(|pt| {
            let (name, c, _) = payload_encoding(m, pt)?;
            name.eq_ignore_ascii_case("telephone-event")
                .then_some((pt, c))
        })
        .collect();
    events
        .iter()
        .find(|(_, c)| *c == clock)
        .or_else(|| events.iter().find(|(_, c)| *c == 8000))
        .copied()
}

/// Negotiate one offered audio section. Returns our answer section and the result.
fn answer_audio(
    offer: &SessionDescription,
    om: &MediaDescription,
    index: usize,
    caps: &LocalCapabilities,
    local_port: u16,
) -> Result<(MediaDescription, Negotiated), NegotiationError> {
    // Codec choice.
    let offered: Vec<(u8, Codec)> = om
        .payload_types()
        .filter_map(|pt| Codec::from_media(om, pt).map(|c| (pt, c)))
        .collect();
    let ours = caps.codecs.iter().filter(|c| **c != Codec::TelephoneEvent);
    let chosen = match caps.preference {
        CodecPreference::Local => ours.clone().find_map(|c| {
            offered
                .iter()
                .find(|(_, o)| o.same_encoding(c))
                .map(|(pt, _)| (*pt, c))
        }),
        CodecPreference::Remote => offered
            .iter()
            .find_map(|(pt, o)| ours.clone().find(|c| o.same_encoding(c)).map(|c| (*pt, c))),
    };
    let (pt, codec) = chosen.ok_or(NegotiationError::NoCommonCodec)?;
    let te = if caps.dtmf {
        find_telephone_event(om, codec.clock_rate())
    } else {
        None
    };

    // Security.
    let offer_crypto: Vec<&Crypto> = om.crypto().collect();
    let (security, answer_attrs) = if om.is_dtls() {
        let fp = match (&caps.fingerprint, caps.srtp) {
            (Some(fp), SrtpPolicy::Optional | SrtpPolicy::Mandatory) => fp,
            _ => {
                return Err(NegotiationError::Security(
                    "DTLS-SRTP offered but not enabled",
                ))
            }
        };
        let remote_fingerprints = remote_fingerprints(offer, om);
        if remote_fingerprints.is_empty() {
            return Err(NegotiationError::Security(
                "DTLS offer without a=fingerprint",
            ));
        }
        let local_setup = match om.setup().or(offer.setup()).unwrap_or(Setup::ActPass) {
            Setup::ActPass | Setup::Passive => Setup::Active,
            Setup::Active => Setup::Passive,
            Setup::HoldConn => return Err(NegotiationError::Security("a=setup:holdconn")),
        };
        (
            Security::Dtls {
                remote_fingerprints,
                local_setup,
            },
            vec![
                Attribute::Fingerprint(fp.clone()),
                Attribute::Setup(local_setup),
            ],
        )
    } else {
        let picked = if caps.srtp == SrtpPolicy::Off {
            None
        } else {
            offer_crypto.iter().find_map(|oc| {
                let usable = oc.keys.iter().all(|k| k.method == "inline");
                caps.crypto
                    .iter()
                    .find(|lc| usable && lc.suite == oc.suite)
                    .map(|lc| (*oc, lc))
            })
        };
        match picked {
            Some((remote, local)) => {
                let mut local = local.clone();
                local.tag = remote.tag;
                (
                    Security::Sdes {
                        local: local.clone(),
                        remote: remote.clone(),
                    },
                    vec![Attribute::Crypto(local)],
                )
            }
            None if om.is_secure_profile() => {
                return Err(if caps.srtp == SrtpPolicy::Off || offer_crypto.is_empty() {
                    NegotiationError::Security("secure profile offered without usable SRTP")
                } else {
                    NegotiationError::NoCommonCryptoSuite
                })
            }
            None if caps.srtp == SrtpPolicy::Mandatory => {
                return Err(if offer_crypto.is_empty() {
                    NegotiationError::Security("plain RTP offered but SRTP is mandatory")
                } else {
                    NegotiationError::NoCommonCryptoSuite
                })
            }
            None => (Security::None, Vec::new()),
        }
    };

    let rtcp_mux = caps.rtcp_mux && om.rtcp_mux();
    let (remote_rtp, remote_rtcp) = remote_addrs(offer, om, index, rtcp_mux)?;
    let offer_dir = remote_direction(offer, om);
    let dir = Direction::from_flags(
        caps.direction.sends() && offer_dir.receives(),
        caps.direction.receives() && offer_dir.sends(),
    );

    let mut am = audio_section(local_port, &om.proto);
    push_codec(&mut am, codec, pt);
    if let Some((te_pt, clock)) = te {
        am.formats.push(te_pt.to_string());
        am.attributes
            .push(Attribute::Rtpmap(crate::attribute::Rtpmap {
                payload_type: te_pt,
                encoding: "telephone-event".into(),
                clock_rate: clock,
                channels: None,
            }));
        am.attributes.push(Attribute::Fmtp(Fmtp {
            format: te_pt.to_string(),
            params: "0-16".into(),
        }));
    }
    push_common(&mut am, caps, rtcp_mux, dir);
    am.attributes.extend(answer_attrs);
    let ice = remote_ice(offer, om);
    if let (Some(_), Some(local_ice)) = (&ice, &caps.ice) {
        push_ice(&mut am, local_ice, !rtcp_mux);
    }
    am.attributes.extend(caps.extra_attributes.iter().cloned());

    let negotiated = Negotiated {
        media_index: index,
        remote_rtp,
        remote_rtcp,
        codec: codec.clone(),
        send_pt: pt,
        recv_pt: pt,
        remote_fmtp: om.fmtp(pt).cloned(),
        telephone_event: te.map(|(p, clock_rate)| TelephoneEvent {
            send_pt: p,
            recv_pt: p,
            clock_rate,
        }),
        ptime: om.ptime().or(offer.ptime()),
        maxptime: om.maxptime().or(offer.maxptime()),
        direction: dir,
        rtcp_mux,
        security,
        remote_ice: ice,
    };
    Ok((am, negotiated))
}

/// Whether our answer to `offer` will multiplex RTP and RTCP (RFC 5761 §5.1.1): we accept
/// rtcp-mux (`we_mux`) and the offer's first acceptable audio stream has `a=rtcp-mux`. When
/// not, an ICE answer needs a second component for RTCP, so this is known before the
/// answer's candidates are gathered.
pub fn answer_multiplexes_rtcp(offer: &SessionDescription, we_mux: bool) -> bool {
    we_mux
        && offer
            .media
            .iter()
            .find(|m| m.kind == MediaKind::Audio && m.port != 0 && m.is_rtp())
            .is_some_and(MediaDescription::rtcp_mux)
}

/// Answer `offer` (RFC 3264 §6): the first acceptable audio stream is taken, every other
/// stream gets port 0. Fails (→ SIP 488) when no audio stream is acceptable.
pub fn create_answer(
    offer: &SessionDescription,
    caps: &LocalCapabilities,
    local_addr: SocketAddr,
    session_id: u64,
    version: u64,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let mut sdp = base_session(caps, local_addr.ip(), session_id, version);
    let mut negotiated = None;
    let mut first_err = None;
    for (i, om) in offer.media.iter().enumerate() {
        let candidate =
            negotiated.is_none() && om.kind == MediaKind::Audio && om.port != 0 && om.is_rtp();
        if candidate {
            match answer_audio(offer, om, i, caps, local_addr.port()) {
                Ok((am, n)) => {
                    sdp.media.push(am);
                    negotiated = Some(n);
                    continue;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        sdp.media.push(rejected(om));
    }
    match negotiated {
        Some(n) => Ok((sdp, n)),
        None => Err(first_err.unwrap_or(NegotiationError::NoAudioStream)),
    }
}

/// Process the answer to our `offer` (RFC 3264 §7) and return what was agreed for the
/// first audio stream accepted by both sides.
pub fn process_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offer: offer.media.len(),
            answer: answer.media.len(),
        });
    }
    let (index, om, am) = offer
        .media
        .iter()
        .zip(&answer.media)
        .enumerate()
        .find(|(_, (om, am))| {
            om.kind == MediaKind::Audio && om.port != 0 && am.port != 0 && om.is_rtp()
        })
        .map(|(i, (om, am))| (i, om, am))
        .ok_or(NegotiationError::NoAudioStream)?;
    if !om.proto.eq_ignore_ascii_case(&am.proto) {
        return Err(NegotiationError::ProtoMismatch {
            offer: om.proto.clone(),
            answer: am.proto.clone(),
        });
    }

    // Codec: the first answered format we offered (matched by encoding).
    let offered: Vec<(u8, Codec)> = om
        .payload_types()
        .filter_map(|pt| Codec::from_media(om, pt).map(|c| (pt, c)))
        .collect();
    let chosen = am.payload_types().find_map(|apt| {
        let ac = Codec::from_media(am, apt)?;
        offered
            .iter()
            .find(|(_, oc)| oc.same_encoding(&ac))
            .map(|(opt, oc)| (apt, *opt, oc.clone()))
    });
    let (send_pt, recv_pt, codec) = match chosen {
        Some(c) => c,
        None => {
            let key = |e: (String, u32, u32)| (e.0.to_ascii_lowercase(), e.1, e.2);
            let offered_encodings: Vec<_> = om
                .payload_types()
                .filter_map(|pt| payload_encoding(om, pt).map(key))
                .collect();
            let foreign = am.payload_types().any(|pt| {
                payload_encoding(am, pt)
                    .map(key)
                    .is_none_or(|e| !offered_encodings.contains(&e))
            });
            return Err(if foreign {
                NegotiationError::AnswerNotSubset
            } else {
                NegotiationError::NoCommonCodec
            });
        }
    };
    let telephone_event = find_telephone_event(am, codec.clock_rate()).and_then(|(apt, clock)| {
        find_telephone_event(om, clock)
            .filter(|(_, oc)| *oc == clock)
            .map(|(opt, _)| TelephoneEvent {
                send_pt: apt,
                recv_pt: opt,
                clock_rate: clock,
            })
    });

    // Security.
    let security = if om.is_dtls() {
        let remote_fingerprints = remote_fingerprints(answer, am);
        if remote_fingerprints.is_empty() {
            return Err(NegotiationError::Security(
                "DTLS answer without a=fingerprint",
            ));
        }
        let local_setup = match am.setup().or(answer.setup()).unwrap_or(Setup::Active) {
            Setup::Active => Setup::Passive,
            Setup::Passive => Setup::Active,
            Setup::ActPass | Setup::HoldConn => {
                return Err(NegotiationError::Security(
                    "answer a=setup must be active or passive",
                ))
            }
        };
        Security::Dtls {
            remote_fingerprints,
            local_setup,
        }
    } else {
        match am.crypto().next() {
            Some(remote) => {
                let local = om
                    .crypto()
                    .find(|c| c.tag == remote.tag && c.suite == remote.suite)
                    .ok_or(NegotiationError::CryptoTagMismatch(remote.tag))?;
                Security::Sdes {
                    local: local.clone(),
                    remote: remote.clone(),
                }
            }
            None if om.is_secure_profile() => {
                return Err(NegotiationError::Security(
                    "RTP/SAVP answer without a=crypto",
                ))
            }
            None => Security::None,
        }
    };

    let rtcp_mux = om.rtcp_mux() && am.rtcp_mux();
    let (remote_rtp, remote_rtcp) = remote_addrs(answer, am, index, rtcp_mux)?;
    let ours = offer.media_direction(om);
    let theirs = remote_direction(answer, am);
    let direction = Direction::from_flags(
        ours.sends() && theirs.receives(),
        ours.receives() && theirs.sends(),
    );
    Ok(Negotiated {
        media_index: index,
        remote_rtp,
        remote_rtcp,
        codec,
        send_pt,
        recv_pt,
        remote_fmtp: am.fmtp(send_pt).cloned(),
        telephone_event,
        ptime: am.ptime().or(answer.ptime()),
        maxptime: am.maxptime().or(answer.maxptime()),
        direction,
        rtcp_mux,
        security,
        remote_ice: remote_ice(answer, am),
    })
}

fn reoffer_with(
    previous: &SessionDescription,
    f: impl Fn(&SessionDescription, &MediaDescription) -> Direction,
) -> SessionDescription {
    let mut sdp = previous.clone();
    sdp.origin.session_version = sdp.origin.session_version.wrapping_add(1);
    let dirs: Vec<Option<Direction>> = sdp
        .media
        .iter()
        .map(|m| (m.kind == MediaKind::Audio && m.port != 0).then(|| f(previous, m)))
        .collect();
    for (m, d) in sdp.media.iter_mut().zip(dirs) {
        if let Some(d) = d {
            m.set_direction(d);
        }
    }
    sdp.attributes
        .retain(|a| !matches!(a, Attribute::Direction(_)));
    sdp
}

/// Re-offer putting the call on hold (RFC 6337 §5.3): our previous description with the
/// audio direction lowered and the `o=` version incremented.
pub fn hold(previous: &SessionDescription, mode: HoldMode) -> SessionDescription {
    reoffer_with(previous, |sdp, m| match mode {
        HoldMode::SendOnly => Direction::from_flags(sdp.media_direction(m).sends(), false),
        HoldMode::Inactive => Direction::Inactive,
    })
}

/// Re-offer taking the call off hold: `a=sendrecv` and the `o=` version incremented.
pub fn resume(previous: &SessionDescription) -> SessionDescription {
    reoffer_with(previous, |_, _| Direction::SendRecv)
}

/// Re-offer for an ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1): our previous
/// description with new ICE credentials and candidates, the audio `c=`/`m=` on the new
/// default candidate `addr`, everything else (codecs, keys, `a=setup`, direction) as it
/// was, and the `o=` version incremented.
pub fn ice_restart(
    previous: &SessionDescription,
    ice: &IceParams,
    addr: SocketAddr,
) -> SessionDescription {
    let mut sdp = previous.clone();
    sdp.origin.session_version = sdp.origin.session_version.wrapping_add(1);
    sdp.attributes.retain(|a| !is_ice_attribute(a));
    if sdp.connection.is_some() {
        sdp.connection = Some(Connection::new(addr.ip()));
    }
    for m in sdp
        .media
        .iter_mut()
        .filter(|m| m.kind == MediaKind::Audio && m.port != 0)
    {
        m.port = addr.port();
        if !m.connections.is_empty() || previous.connection.is_none() {
            m.connections = vec![Connection::new(addr.ip())];
        }
        m.attributes
            .retain(|a| !is_ice_attribute(a) && !matches!(a, Attribute::Rtcp(_)));
        push_ice(m, ice, true);
    }
    sdp
}

fn is_ice_attribute(a: &Attribute) -> bool {
    matches!(
        a,
        Attribute::IceUfrag(_)
            | Attribute::IcePwd(_)
            | Attribute::IceOptions(_)
            | Attribute::Candidate(_)
            | Attribute::EndOfCandidates
            | Attribute::RemoteCandidates(_)
    )
}

/// Same description with the `o=` version incremented (for any other re-offer).
pub fn next_version(previous: &SessionDescription) -> SessionDescription {
    let mut sdp = previous.clone();
    sdp.origin.session_version = sdp.origin.session_version.wrapping_add(1);
    sdp
}
