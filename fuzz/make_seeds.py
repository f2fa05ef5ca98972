#!/usr/bin/env python3
"""Writes the hand-made seed corpora of the rtcp, dtmf, srtp_unprotect, stun_ice, turn_stream,
nat_behaviour and config fuzz targets into fuzz/corpus/<target>/ (run from fuzz/). Seeds are valid
messages plus one of each malformation class; libFuzzer grows the corpus from them."""
import hashlib
import hmac
import os
import struct
import zlib


def w(d, name, data):
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"{d}/{name}", "wb") as f:
        f.write(data)


def pad4(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


# ---- RTCP (RFC 3550 §6) ----
def hdr(count, pt, body, pad=0):
    if pad:
        body = body + b"\0" * (pad - 1) + bytes([pad])
    assert len(body) % 4 == 0
    return bytes([0x80 | (0x20 if pad else 0) | count, pt]) + struct.pack("!H", len(body) // 4) + body


def block(ssrc, lost=0x01000005, ext=0x00010064, jit=12, lsr=0x12345678, dlsr=0x8000):
    return struct.pack("!IIIIII", ssrc, lost, ext, jit, lsr, dlsr)


sr = hdr(1, 200, struct.pack("!IQIII", 0x11111111, 0xE7A1B2C300000000, 160, 50, 8000) + block(0x22222222))
rr = hdr(2, 201, struct.pack("!I", 0x22222222) + block(0x11111111) + block(0x33333333, lost=0x00FFFFFF))
cname = b"alice@192.0.2.1"
sdes = hdr(1, 202, pad4(struct.pack("!I", 0x11111111) + bytes([1, len(cname)]) + cname + bytes([6, 3]) + b"pl!" + b"\0"))
reason = b"call ended"
bye = hdr(1, 203, pad4(struct.pack("!I", 0x11111111) + bytes([len(reason)]) + reason))
app = hdr(1, 204, struct.pack("!I", 0x11111111) + b"NAME" + b"data")
fb = hdr(1, 205, struct.pack("!II", 0x11111111, 0x22222222) + struct.pack("!HH", 5, 0))
d = "corpus/rtcp"
w(d, "sr", sr)
w(d, "rr", rr)
w(d, "sr_sdes_bye", sr + sdes + bye)
w(d, "rr_app_fb", rr + app + fb)
w(d, "rr_padded", hdr(0, 201, struct.pack("!I", 7), pad=4) + sdes)
w(d, "sdes_first", sdes + rr)
w(d, "bad_version", b"\x40" + sr[1:])
w(d, "count_past_end", bytes([0x9F]) + sr[1:])
w(d, "len_past_end", sr[:2] + b"\x00\xff" + sr[4:])
w(d, "truncated", sr[:10])
w(d, "bye_reason_past_end", hdr(1, 203, struct.pack("!I", 1) + b"\xff\x41\x42\x43"))
w(d, "sdes_unterminated", bytes([0x81, 202, 0, 3]) + struct.pack("!I", 1) + b"\x01\x08abcdef")
w(d, "zero_pad", bytes([0xA0, 201, 0, 1]) + b"\0\0\0\0")
w(d, "pad_too_big", bytes([0xA0, 201, 0, 1]) + b"\0\0\0\x09")

# ---- DTMF (RFC 4733) ----
d = "corpus/dtmf"
for key, code in [("1", 1), ("star", 10), ("hash", 11), ("A", 12), ("flash", 16)]:
    w(d, f"event_{key}", bytes([code, 10, 0x03, 0x20]))
w(d, "end_bit", bytes([5, 0x80 | 10, 0x06, 0x40]))
w(d, "reserved_bit", bytes([5, 0x40 | 63, 0xFF, 0xFF]))
w(d, "short", bytes([5, 0x80]))
w(d, "multi_event", bytes([1, 10, 0, 160, 2, 10, 0, 160, 3, 0x8A, 1, 64]))


def rec(ts, marker, payload):
    return struct.pack("!HBB", ts, marker, len(payload)) + payload


stream = rec(100, 1, bytes([1, 10, 0, 160])) + rec(100, 0, bytes([1, 10, 1, 64]))
stream += rec(100, 0, bytes([1, 0x8A, 3, 32])) * 3
stream += rec(900, 1, bytes([11, 0x8A, 3, 32])) + rec(50, 0, bytes([1, 10, 0, 160]))
stream += rec(901, 0, bytes([99, 10, 0, 1]))
w(d, "stream", stream)


# ---- SRTP: first byte = suite (and bit 7: round trip as RTCP) ----
def rtp(pt=0, seq=1, ts=160, ssrc=0x1234ABCD, payload=b"\xff" * 160, cc=0, x=False, p=False, ext=b"", csrc=b""):
    b0 = 0x80 | (0x20 if p else 0) | (0x10 if x else 0) | cc
    return bytes([b0, pt]) + struct.pack("!HII", seq, ts, ssrc) + csrc + ext + payload


d = "corpus/srtp_unprotect"
for i in range(8):
    w(d, f"rtp_suite{i}", bytes([i]) + rtp())
w(d, "rtp_ext_csrc", bytes([1]) + rtp(cc=2, csrc=b"\0\0\0\1\0\0\0\2", x=True, ext=b"\xbe\xde\x00\x01\x10\xaa\x00\x00"))
w(d, "rtp_padding", bytes([3]) + rtp(p=True, payload=b"\x11" * 20 + b"\0\0\0\4"))
w(d, "rtp_cc_past_end", bytes([2]) + bytes([0x8F, 0]) + b"\0" * 10)
w(d, "rtcp_sr", bytes([0x80]) + sr + sdes)
w(d, "rtcp_rr_gcm", bytes([0x81]) + rr)
w(d, "srtcp_like", bytes([0x82]) + sr + b"\x80\x00\x00\x01" + b"\xaa" * 10)
w(d, "short", bytes([0, 0x80, 0]))
w(d, "dtls_hello", bytes([4, 22, 0xFE, 0xFD, 0, 0]) + b"\0" * 20)
w(d, "stun_first", bytes([5, 0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]) + b"\1" * 12)

# ---- STUN (RFC 8489, ICE RFC 8445 attributes) and a=candidate lines ----
d = "corpus/stun_ice"
MAGIC = 0x2112A442
TID = b"peerlinefuzz"


def attr(t, v):
    return struct.pack("!HH", t, len(v)) + pad4(v)


def msg(mtype, attrs, integrity_key=None, fingerprint=False):
    body = b"".join(attrs)
    if integrity_key is not None:
        head = struct.pack("!HHI", mtype, len(body) + 24, MAGIC) + TID
        body += attr(0x0008, hmac.new(integrity_key, head + body, hashlib.sha1).digest())
    if fingerprint:
        head = struct.pack("!HHI", mtype, len(body) + 8, MAGIC) + TID
        crc = (zlib.crc32(head + body) & 0xFFFFFFFF) ^ 0x5354554E
        body += attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", mtype, len(body), MAGIC) + TID + body


check = [
    attr(0x0006, b"abcd:efgh"),
    attr(0x0024, struct.pack("!I", 1862270975)),
    attr(0x802A, struct.pack("!Q", 0x0102030405060708)),
    attr(0x0025, b""),
]
w(d, "binding_request_check", msg(0x0001, check, integrity_key=b"fuzzpassword", fingerprint=True))
w(d, "binding_request_controlled", msg(0x0001, [attr(0x0006, b"x:y"), attr(0x8029, b"\0" * 8)], fingerprint=True))
xv4 = struct.pack("!BBH", 0, 1, 40000 ^ (MAGIC >> 16)) + bytes(a ^ b for a, b in zip(bytes([198, 51, 100, 7]), struct.pack("!I", MAGIC)))
w(d, "binding_success_v4", msg(0x0101, [attr(0x0020, xv4), attr(0x8022, b"coturn")], fingerprint=True))
xv6 = bytes(a ^ b for a, b in zip(bytes(range(16)), struct.pack("!I", MAGIC) + TID))
mapped = struct.pack("!BBH", 0, 1, 3478) + bytes([192, 0, 2, 1])
w(d, "binding_success_v6", msg(0x0101, [attr(0x0020, struct.pack("!BBH", 0, 2, 3478 ^ 0x2112) + xv6), attr(0x0001, mapped)]))
w(d, "error_401", msg(0x0113, [attr(0x0009, struct.pack("!HBB", 0, 4, 1) + b"Unauthorized"), attr(0x0014, b"example.org"), attr(0x0015, b"nonce123")]))
w(d, "error_420_unknown", msg(0x0111, [attr(0x0009, struct.pack("!HBB", 0, 4, 20) + b"Unknown Attribute"), attr(0x000A, struct.pack("!HH", 0x0019, 0x0022))]))
w(d, "turn_allocate", msg(0x0003, [attr(0x0019, bytes([17, 0, 0, 0])), attr(0x000D, struct.pack("!I", 600))], fingerprint=True))
good = msg(0x0001, check, fingerprint=True)
w(d, "bad_fingerprint", good[:-1] + bytes([good[-1] ^ 1]))
w(d, "length_past_end", good[:2] + b"\x04\x00" + good[4:])
w(d, "attr_length_past_end", struct.pack("!HHI", 1, 8, MAGIC) + TID + struct.pack("!HH", 0x0006, 200) + b"abcd")
w(d, "bad_cookie", good[:4] + b"\0\0\0\0" + good[8:])
w(d, "integrity_not_last", msg(0x0001, [attr(0x0008, b"\0" * 20), attr(0x0006, b"a:b")]))
w(d, "short_priority", msg(0x0001, [attr(0x0024, b"\1\2")]))
w(d, "cand_host", "candidate:1 1 UDP 2130706431 192.0.2.10 16384 typ host")
w(d, "cand_srflx", "a=candidate:2 1 UDP 1694498815 198.51.100.7 40000 typ srflx raddr 192.0.2.10 rport 16384")
w(d, "cand_relay_v6", "candidate:3 1 udp 16777215 2001:db8::1 50000 typ relay raddr 198.51.100.7 rport 40000 generation 0")
w(d, "cand_tcp", "candidate:4 1 TCP 1518280447 192.0.2.10 9 typ host tcptype active")
w(d, "cand_mdns", "candidate:5 1 UDP 2130706431 3f1a-uuid.local 16384 typ host")
w(d, "cand_huge_prio", "candidate:6 1 UDP 99999999999 192.0.2.10 65535 typ prflx raddr 0.0.0.0 rport 0")


# ---- RFC 5780 NAT behaviour: Binding answers with OTHER-ADDRESS / RESPONSE-ORIGIN ----
d = "corpus/nat_behaviour"


def xaddr4(ip, port):
    return struct.pack("!BBH", 0, 1, port ^ (MAGIC >> 16)) + bytes(a ^ b for a, b in zip(bytes(ip), struct.pack("!I", MAGIC)))


def addr4(ip, port):
    return struct.pack("!BBH", 0, 1, port) + bytes(ip)


other = attr(0x802C, addr4([203, 0, 113, 2], 3479))
origin = attr(0x802B, addr4([203, 0, 113, 1], 3478))
w(d, "rfc5780_answer", msg(0x0101, [attr(0x0020, xaddr4([203, 0, 113, 11], 31000)), attr(0x0001, addr4([203, 0, 113, 11], 31000)), origin, other, attr(0x8022, b"Coturn-4.6.1")], fingerprint=True))
w(d, "rfc5780_answer_v6", msg(0x0101, [attr(0x0020, struct.pack("!BBH", 0, 2, 3478 ^ 0x2112) + xv6), attr(0x802C, struct.pack("!BBH", 0, 2, 3479) + bytes(range(16))), attr(0x802B, struct.pack("!BBH", 0, 2, 3478) + bytes(range(16)))]))
w(d, "plain_answer_no_other", msg(0x0101, [attr(0x0020, xaddr4([203, 0, 113, 11], 31000))]))
w(d, "mapped_only", msg(0x0101, [attr(0x0001, addr4([203, 0, 113, 11], 31000)), other]))
w(d, "other_short", msg(0x0101, [attr(0x0020, xaddr4([203, 0, 113, 11], 31000)), attr(0x802C, addr4([203, 0, 113, 2], 3479)[:7])]))
w(d, "other_bad_family", msg(0x0101, [attr(0x0020, xaddr4([203, 0, 113, 11], 31000)), attr(0x802C, struct.pack("!BBH", 0, 3, 3479) + bytes(4))]))
w(d, "origin_v6_len_v4", msg(0x0101, [attr(0x0020, xaddr4([203, 0, 113, 11], 31000)), attr(0x802B, struct.pack("!BBH", 0, 2, 3478) + bytes(4))]))
w(d, "other_same_as_server", msg(0x0101, [attr(0x0020, xaddr4([203, 0, 113, 11], 31000)), attr(0x802C, addr4([203, 0, 113, 1], 3478))]))
w(d, "error_420_change_request", msg(0x0111, [attr(0x0009, struct.pack("!HBB", 0, 4, 20) + b"Unknown Attribute"), attr(0x000A, struct.pack("!H", 0x0003) + b"\0\0")]))
w(d, "binding_request_change", msg(0x0001, [attr(0x0003, struct.pack("!I", 6))]))
w(d, "xor_mapped_short", msg(0x0101, [attr(0x0020, b"\0\1\0"), other]))

# ---- the phone's TOML config ----
d = "corpus/config"
w(d, "default.toml", "")
w(d, "full.toml", """[identity]
user = "alice"
display_name = "Alice Example"

[network]
sip_listen = "127.0.0.1:5070"
rtp_ports = "20000-20100"

[media]
codecs = ["opus", "G722", "PCMU", "PCMA"]
ptime = 20
dtmf = true
rtp_timeout_secs = 30
""")
w(d, "ipv6.toml", '[network]\nsip_listen = "[::1]:5060"\nrtp_ports = "16384-32767"\n')
w(d, "bad_ptime.toml", "[media]\nptime = 25\n")
w(d, "bad_codec.toml", '[media]\ncodecs = ["GSM"]\n')
w(d, "no_codecs.toml", "[media]\ncodecs = []\n")
w(d, "bad_user.toml", '[identity]\nuser = "a b@c"\n')
w(d, "unknown_key.toml", "[network]\nsip_port = 5060\n")
w(d, "bad_range.toml", '[network]\nrtp_ports = "30000-20000"\n')
w(d, "odd_range.toml", '[network]\nrtp_ports = "65535-65535"\n')
w(d, "huge_numbers.toml", "[media]\nptime = 4294967296\nrtp_timeout_secs = -1\n")
w(d, "not_toml.toml", "[[[media\n= = =\n")
w(d, "multibyte.toml", '[identity]\nuser = "é"\ndisplay_name = "\\u00e9"\n')
w(d, "srtp.toml", '[media]\nsrtp = "mandatory"\nsrtp_keying = "sdes"\n')
w(d, "srtp_bad.toml", '[media]\nsrtp = "maybe"\nsrtp_keying = "zrtp"\n')
w(d, "dns.toml", '[network]\ndns_server = "127.0.0.1:5353"\n')
w(d, "account.toml", """[[account]]
aor = "sip:alice@example.com"
username = "alice"
password_env = "PEERLINE_PASSWORD"
registrar = "sip:registrar.example.com;transport=udp"
outbound_proxy = "sip:proxy.example.com:5061;lr"
register = true
expires = 3600

[[account]]
aor = "sips:bob@[2001:db8::1]:5061"
password = "secret"
""")
w(d, "account_bad.toml", """[[account]]
aor = "alice"
password = "a"
password_env = "B"
expires = 0
""")

# ---- TURN over TCP/TLS streams (RFC 8656 §12.5): STUN and padded ChannelData back to back ----
d = "corpus/turn_stream"
alloc_req = msg(0x0003, [attr(0x0019, bytes([17, 0, 0, 0]))], fingerprint=True)
e401 = msg(0x0113, [attr(0x0009, struct.pack("!HBB", 0, 4, 1) + b"Unauthorized"), attr(0x0014, b"peerline.test"), attr(0x0015, b"nonce123")])
xrel = struct.pack("!BBH", 0, 1, 50000 ^ (MAGIC >> 16)) + bytes(a ^ b for a, b in zip(bytes([203, 0, 113, 1]), struct.pack("!I", MAGIC)))
alloc_ok = msg(0x0103, [attr(0x0016, xrel), attr(0x0020, xrel), attr(0x000D, struct.pack("!I", 600))], integrity_key=b"k" * 16, fingerprint=True)


def chan(n, data, padded=True):
    m = struct.pack("!HH", n, len(data)) + data
    return pad4(m) if padded else m


w(d, "allocate_request", alloc_req)
w(d, "error_401_then_success", e401 + alloc_ok)
w(d, "channel_data_padded", chan(0x4000, b"\x80\x00" + b"rtp!!"))
w(d, "channel_data_unpadded", chan(0x4001, b"abcde", padded=False))
w(d, "channel_data_empty", chan(0x7FFF, b""))
w(d, "coalesced_mix", alloc_ok + chan(0x4000, b"x" * 7) + chan(0x4002, b"y" * 160) + e401)
w(d, "data_indication", msg(0x0017, [attr(0x0012, xrel), attr(0x0013, b"ping 1")]))
w(d, "split_header", alloc_ok[:3])
w(d, "garbage_first_bits_10", b"\x80\x60\x00\x00" + b"\0" * 8)
w(d, "stun_without_cookie", alloc_req[:4] + b"\0\0\0\0" + alloc_req[8:])
w(d, "stun_odd_length", alloc_req[:2] + b"\x00\x03" + alloc_req[4:])
w(d, "channel_length_past_end", struct.pack("!HH", 0x4000, 65535) + b"z" * 20)
w(d, "tls_record_by_mistake", b"\x16\x03\x01\x00\x2a" + b"\x01" * 42)
