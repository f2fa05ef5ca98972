//! RTP/RTCP, SRTP, jitter buffer, codecs, DTMF, tone analysis.
