//! Demultiplexing one UDP port among STUN, DTLS, RTP/RTCP and friends (RFC 7983, RFC 5761).

/// What a datagram on the media port is, by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// 0..=3: STUN (ICE checks, keepalives) → the ICE agent.
    Stun,
    /// 16..=19: ZRTP (not spoken here; drop and count).
    Zrtp,
    /// 20..=63: DTLS → [`crate::DtlsEndpoint::handle_datagram`].
    Dtls,
    /// 64..=79: TURN ChannelData → the TURN client.
    TurnChannel,
    /// 128..=191 with an RTP payload type: (S)RTP.
    Rtp,
    /// 128..=191 with an RTCP packet type 192..=223 (RFC 5761 §4): (S)RTCP.
    Rtcp,
    /// Anything else (including empty datagrams): drop and count.
    Other,
}

/// Classifies by the first byte only (RFC 7983); RTP and RTCP are told apart by
/// [`classify_packet`].
pub fn classify(first_byte: u8) -> PacketKind {
    match first_byte {
        0..=3 => PacketKind::Stun,
        16..=19 => PacketKind::Zrtp,
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::TurnChannel,
        128..=191 => PacketKind::Rtp,
        _ => PacketKind::Other,
    }
}

/// Classifies a whole datagram, separating RTCP from RTP on a muxed port by the second byte
/// (RFC 5761 §4: RTCP packet types 192..=223 = RTP payload types 64..=95 with the marker).
pub fn classify_packet(datagram: &[u8]) -> PacketKind {
    let Some(&first) = datagram.first() else {
        return PacketKind::Other;
    };
    match classify(first) {
        PacketKind::Rtp => match datagram.get(1) {
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) if datagram.len() >= 12 => PacketKind::Rtp,
            _ => PacketKind::Other,
        },
        k => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7983_ranges() {
        assert_eq!(classify(0), PacketKind::Stun);
        assert_eq!(classify(1), PacketKind::Stun);
        assert_eq!(classify(3), PacketKind::Stun);
        assert_eq!(classify(4), PacketKind::Other);
        assert_eq!(classify(16), PacketKind::Zrtp);
        assert_eq!(classify(20), PacketKind::Dtls); // change_cipher_spec
        assert_eq!(classify(22), PacketKind::Dtls); // handshake
        assert_eq!(classify(23), PacketKind::Dtls); // application_data
        assert_eq!(classify(63), PacketKind::Dtls);
        assert_eq!(classify(64), PacketKind::TurnChannel);
        assert_eq!(classify(79), PacketKind::TurnChannel);
        assert_eq!(classify(80), PacketKind::Other);
        assert_eq!(classify(0x80), PacketKind::Rtp);
        assert_eq!(classify(191), PacketKind::Rtp);
        assert_eq!(classify(192), PacketKind::Other);
        assert_eq!(classify(255), PacketKind::Other);
    }

    #[test]
    fn rtp_vs_rtcp() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 0; // PCMU
        assert_eq!(classify_packet(&rtp), PacketKind::Rtp);
        rtp[1] = 0x80 | 8; // PCMA with marker
        assert_eq!(classify_packet(&rtp), PacketKind::Rtp);
        let sr = [0x80, 200, 0, 6, 1, 2, 3, 4];
        assert_eq!(classify_packet(&sr), PacketKind::Rtcp);
        let rr = [0x81, 201, 0, 7, 1, 2, 3, 4];
        assert_eq!(classify_packet(&rr), PacketKind::Rtcp);
        assert_eq!(classify_packet(&[0x80]), PacketKind::Other);
        assert_eq!(classify_packet(&[]), PacketKind::Other);
        assert_eq!(classify_packet(&[0x16, 0xfe, 0xfd]), PacketKind::Dtls);
        assert_eq!(classify_packet(&[0x00, 0x01, 0x00, 0x00]), PacketKind::Stun);
    }
}
