//! SDP model and RFC 3264 offer/answer.
