#!/usr/bin/env python3
"""Self-test of tests/oracle/scapy_ipsec.py.

    python3 tests/oracle/selftest.py

Builds cases with scapy (`make`), checks them back (`check`), checks that
broken cases (wrong key, wrong plain text, wrong ESN high bits) fail, that
unsupported and malformed cases are reported as such, and checks a few
packets built by hand here with `cryptography` alone (not scapy) so the
oracle is not only compared with itself.  Exit status 0 when all pass.
"""

import hmac
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, "scapy_ipsec.py")

from scapy.compat import raw  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP, ICMP  # noqa: E402
from scapy.layers.inet6 import IPv6, ICMPv6EchoRequest  # noqa: E402
from cryptography.hazmat.primitives.ciphers import (  # noqa: E402
    Cipher, algorithms, modes, aead)

K16 = bytes(range(0x10, 0x20))
K20 = bytes(range(0x20, 0x34))
K24 = bytes(range(0x30, 0x48))
K32 = bytes(range(0x40, 0x60))
K36 = bytes(range(0x60, 0x84))
K48 = bytes(range(0x80, 0xB0))
K64 = bytes(range(0xA0, 0xE0))


def v4_tcp():
    return raw(IP(src="192.0.2.1", dst="198.51.100.7", id=0x1234, ttl=61,
                  flags="DF") /
               TCP(sport=40000, dport=443, flags="PA", seq=1) /
               (b"hello ipsec oracle " * 3))


def v4_icmp():
    return raw(IP(src="10.1.0.1", dst="10.2.0.1", id=7) /
               ICMP(id=9, seq=3) / b"ping-payload-0123456789")


def v6_udp():
    return raw(IPv6(src="2001:db8::1", dst="2001:db8:1::2", hlim=33) /
               UDP(sport=5353, dport=53) / b"v6 datagram payload!")


def v6_icmp():
    return raw(IPv6(src="2001:db8::a", dst="2001:db8::b") /
               ICMPv6EchoRequest(id=1, seq=2, data=b"echo" * 5))


def case(name, proto, plain, crypt="NULL", ckey=b"", auth="NULL", akey=b"",
         spi=0x1000, seq=1, esn=False, mode="transport", tsrc=None,
         tdst=None, nat_t=None):
    c = {"name": name, "proto": proto, "spi": spi, "seq": seq, "esn": esn,
         "mode": mode, "crypt_alg": crypt, "crypt_key": ckey.hex(),
         "auth_alg": auth, "auth_key": akey.hex(), "nat_t": nat_t,
         "plain": plain.hex()}
    if mode == "tunnel":
        c["tunnel_src"], c["tunnel_dst"] = tsrc, tdst
    return c


CASES = [
    # required by the brief
    case("esp-aes-cbc-sha1-transport-v4", "esp", v4_tcp(), "AES-CBC", K16,
         "HMAC-SHA1-96", K20, spi=0x11111111, seq=5),
    case("esp-aes-gcm16-tunnel-v6-in-v4", "esp", v6_udp(), "AES-GCM-16",
         K16 + b"salt", spi=0x2222, seq=77, mode="tunnel",
         tsrc="203.0.113.1", tdst="203.0.113.2"),
    case("esp-esn-aes-cbc-sha256", "esp", v4_icmp(), "AES-CBC", K32,
         "SHA2-256-128", K32, seq=(3 << 32) | 9, esn=True),
    case("esp-esn-aes-gcm16-tunnel", "esp", v4_tcp(), "AES-GCM-16",
         K32 + b"\x01\x02\x03\x04", seq=(0xFFFF << 32) | 0, esn=True,
         mode="tunnel", tsrc="198.18.0.1", tdst="198.18.0.2"),
    case("esp-nat-t-4500", "esp", v4_tcp(), "AES-CBC", K16, "HMAC-SHA1-96",
         K20, seq=2, nat_t={"sport": 4500, "dport": 4500}),
    case("esp-nat-t-odd-ports-tunnel", "esp", v4_icmp(), "AES-CBC", K24,
         "SHA2-256-128", K32, seq=3, mode="tunnel", tsrc="192.0.2.100",
         tdst="192.0.2.200", nat_t={"sport": 61000, "dport": 4500}),
    case("ah-sha256-transport-v4", "ah", v4_tcp(), auth="SHA2-256-128",
         akey=K32, spi=0x3333, seq=10),
    case("ah-sha256-transport-v6", "ah", v6_udp(), auth="SHA2-256-128",
         akey=K32, spi=0x3334, seq=11),
    case("esp-chacha20-poly1305-transport-v6", "esp", v6_icmp(),
         "ChaCha20-Poly1305", K32 + b"nonc", seq=12),
    # the rest of the matrix
    case("esp-aes-gcm8", "esp", v4_tcp(), "AES-GCM-8", K16 + b"salt"),
    case("esp-aes-gcm12-esn", "esp", v6_udp(), "AES-GCM-12", K24 + b"salt",
         seq=(1 << 32) | 1, esn=True),
    case("esp-aes-gmac", "esp", v4_tcp(), "AES-GMAC", K16 + b"salt"),
    case("esp-aes-ccm16", "esp", v4_icmp(), "AES-CCM-16", K16 + b"abc"),
    case("esp-aes-ctr-sha512", "esp", v6_udp(), "AES-CTR", K32 + b"ctr!",
         "SHA2-512-256", K64),
    case("esp-3des-md5", "esp", v4_tcp(), "3DES-CBC", K24, "HMAC-MD5-96",
         K16),
    case("esp-des-sha1", "esp", v4_icmp(), "DES-CBC", K16[:8],
         "HMAC-SHA1-96", K20),
    case("esp-blowfish-sha384", "esp", v4_tcp(), "Blowfish-CBC", K16,
         "SHA2-384-192", K48),
    case("esp-null-sha1-tunnel-v4-in-v6", "esp", v4_tcp(), "NULL", b"",
         "HMAC-SHA1-96", K20, mode="tunnel", tsrc="2001:db8::100",
         tdst="2001:db8::200"),
    case("esp-aes-cbc-no-auth", "esp", v4_tcp(), "AES-CBC", K16),
    case("esp-chacha-nat-t-v6", "esp", v6_udp(), "ChaCha20-Poly1305",
         K32 + b"nonc", nat_t={"sport": 4500, "dport": 4500}),
    case("ah-sha1-esn-v4", "ah", v4_icmp(), auth="HMAC-SHA1-96", akey=K20,
         seq=(2 << 32) | 0xFFFFFFFF, esn=True),
    case("ah-sha512-transport-v6", "ah", v6_icmp(), auth="SHA2-512-256",
         akey=K64),
    case("ah-sha384-tunnel-v6-in-v4", "ah", v6_udp(), auth="SHA2-384-192",
         akey=K48, mode="tunnel", tsrc="192.0.2.1", tdst="192.0.2.2"),
    case("ah-md5-tunnel-v4-in-v6", "ah", v4_tcp(), auth="HMAC-MD5-96",
         akey=K16, mode="tunnel", tsrc="2001:db8::1", tdst="2001:db8::2"),
]

UNSUPPORTED = [
    case("ah-nat-t", "ah", v4_tcp(), auth="HMAC-SHA1-96", akey=K20,
         nat_t={"sport": 4500, "dport": 4500}),
    case("ah-gmac", "ah", v4_tcp(), "AES-GMAC", K16 + b"salt"),
    case("esp-gcm-plus-hmac", "esp", v4_tcp(), "AES-GCM-16", K16 + b"salt",
         "HMAC-SHA1-96", K20),
]


def run_oracle(cmd, cases, expect_rc=0):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"cases": cases}, f)
        path = f.name
    try:
        p = subprocess.run([sys.executable, ORACLE, cmd, path],
                           capture_output=True, text=True)
    finally:
        os.unlink(path)
    assert p.returncode == expect_rc, (cmd, p.returncode, p.stderr[-2000:])
    if expect_rc != 0:
        return p
    return {r["name"]: r for r in json.loads(p.stdout)["results"]}


# ---------------------------------------------------------------------------
# packets built by hand with `cryptography` only (no scapy IPsec code)

def _ipv4_hdr(src, dst, proto, total_len, ident=0x4242, ttl=64, tos=0,
              flags_frag=0, chksum=None):
    def csum(h):
        s = sum(struct.unpack("!10H", h))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, total_len, ident, flags_frag,
                    ttl, proto, 0, bytes(map(int, src.split("."))),
                    bytes(map(int, dst.split("."))))
    if chksum is None:
        chksum = csum(h)
    return h[:10] + struct.pack("!H", chksum) + h[12:]


def _esp_trailer(payload, nh, align):
    padlen = -(len(payload) + 2) % align
    return payload + bytes(range(1, padlen + 1)) + bytes([padlen, nh])


def manual_esp_cbc_sha1():
    plain = v4_tcp()
    upper = plain[20:]
    spi, seq = 0xABCD0001, 42
    iv = os.urandom(16)
    enc = Cipher(algorithms.AES(K16), modes.CBC(iv)).encryptor()
    ct = enc.update(_esp_trailer(upper, 6, 16)) + enc.finalize()
    esp = struct.pack("!II", spi, seq) + iv + ct
    esp += hmac.new(K20, esp, hashlib.sha1).digest()[:12]
    ip = _ipv4_hdr("192.0.2.1", "198.51.100.7", 50, 20 + len(esp),
                   ident=0x1234, ttl=61, flags_frag=0x4000)
    c = case("manual-esp-aes-cbc-sha1", "esp", plain, "AES-CBC", K16,
             "HMAC-SHA1-96", K20, spi=spi, seq=seq)
    c["protected"] = (ip + esp).hex()
    return c


def manual_esp_gcm8_esn_tunnel():
    plain = v4_icmp()
    spi, seq = 0x00C0FFEE, (7 << 32) | 0x10
    salt, iv = b"\xde\xad\xbe\xef", os.urandom(8)
    aad = struct.pack("!III", spi, seq >> 32, seq & 0xFFFFFFFF)
    full = aead.AESGCM(K16).encrypt(salt + iv, _esp_trailer(plain, 4, 4), aad)
    esp = struct.pack("!II", spi, seq & 0xFFFFFFFF) + iv + full[:-8]
    ip = _ipv4_hdr("203.0.113.9", "203.0.113.10", 50, 20 + len(esp))
    c = case("manual-esp-gcm8-esn-tunnel", "esp", plain, "AES-GCM-8",
             K16 + salt, spi=spi, seq=seq, esn=True, mode="tunnel",
             tsrc="203.0.113.9", tdst="203.0.113.10")
    c["protected"] = (ip + esp).hex()
    return c


def manual_ah_sha256_esn_v4():
    plain = v4_tcp()
    upper = plain[20:]
    spi, seq = 0x0A0A0A0A, (1 << 32) | 3
    ah_len = 12 + 16
    total = 20 + ah_len + len(upper)
    # ICV input: mutable fields (TOS, flags+fragment, TTL, checksum) zeroed,
    # ICV zeroed, ESN high bits appended (RFC 4302 3.3.3.1, 2.5.1)
    zeroed = _ipv4_hdr("192.0.2.1", "198.51.100.7", 51, total, ident=0x1234,
                       ttl=0, chksum=0)
    ah_hdr = struct.pack("!BBHII", 6, ah_len // 4 - 2, 0, spi,
                         seq & 0xFFFFFFFF)
    icv = hmac.new(K32, zeroed + ah_hdr + bytes(16) + upper +
                   struct.pack("!I", seq >> 32),
                   hashlib.sha256).digest()[:16]
    ip = _ipv4_hdr("192.0.2.1", "198.51.100.7", 51, total, ident=0x1234,
                   ttl=61, flags_frag=0x4000)
    c = case("manual-ah-sha256-esn-v4", "ah", plain, auth="SHA2-256-128",
             akey=K32, spi=spi, seq=seq, esn=True)
    c["protected"] = (ip + ah_hdr + icv + upper).hex()
    return c


# ---------------------------------------------------------------------------

class T(object):
    passed = 0
    failed = 0

    @classmethod
    def check(cls, cond, what):
        if cond:
            cls.passed += 1
        else:
            cls.failed += 1
            print("FAIL:", what)


def main():
    # 1. make everything, then check it back
    made = run_oracle("make", CASES)
    checked_cases = []
    for c in CASES:
        r = made[c["name"]]
        T.check(r["ok"] and r["protected"], "make %s: %s"
                % (c["name"], r["detail"]))
        if r["protected"]:
            checked_cases.append(dict(c, protected=r["protected"]))
    checked = run_oracle("check", checked_cases)
    for c in checked_cases:
        r = checked[c["name"]]
        want_tamper = None if c["name"] == "esp-aes-cbc-no-auth" else True
        T.check(r["ok"] and r["decrypted_ok"]
                and r["tamper_rejected"] is want_tamper,
                "check %s: %s" % (c["name"], r))

    # wire details of a few made packets
    def prot(name):
        return bytes.fromhex(made[name]["protected"])
    p = IP(prot("esp-nat-t-4500"))
    T.check(p.proto == 17 and p[UDP].dport == 4500 and p[UDP].chksum == 0,
            "nat-t packet is UDP/4500 with checksum 0")
    p = IP(prot("esp-esn-aes-cbc-sha256"))
    T.check(raw(p)[24:28] == struct.pack("!I", 9) and p.proto == 50,
            "ESN: low 32 bits on the wire")
    p = IP(prot("esp-aes-gcm16-tunnel-v6-in-v4"))
    T.check(p.src == "203.0.113.1" and p.proto == 50, "tunnel outer header")
    p = IPv6(prot("ah-sha256-transport-v6"))
    T.check(p.nh == 51 and raw(p)[41] == (12 + 16 + 4) // 4 - 2,
            "IPv6 AH is padded to 8 octets")
    p = IP(prot("esp-aes-gcm8"))
    body = len(v4_tcp()) - 20 + 2
    body += -body % 4
    T.check(len(raw(p)) == 20 + 8 + 8 + body + 8,
            "GCM-8 carries an 8-byte ICV (len %d)" % len(raw(p)))

    # 2. broken cases must fail
    bad = []
    for c in checked_cases:
        b = dict(c, name=c["name"] + "/wrong-key")
        if c["proto"] == "esp" and c["crypt_alg"] != "NULL":
            k = bytearray(bytes.fromhex(c["crypt_key"]))
            k[0] ^= 0x80
            b["crypt_key"] = k.hex()
        else:
            k = bytearray(bytes.fromhex(c["auth_key"]))
            k[0] ^= 0x80
            b["auth_key"] = k.hex()
        bad.append(b)
        b = dict(c, name=c["name"] + "/wrong-plain")
        pl = bytearray(bytes.fromhex(c["plain"]))
        pl[-1] ^= 0x01
        b["plain"] = pl.hex()
        bad.append(b)
        if c["esn"]:
            bad.append(dict(c, name=c["name"] + "/wrong-esn-high",
                            seq=c["seq"] + (1 << 32)))
        if c["mode"] == "tunnel":
            bad.append(dict(c, name=c["name"] + "/wrong-tunnel-dst",
                            tunnel_dst=c["tunnel_src"]))
    rs = run_oracle("check", bad)
    for b in bad:
        r = rs[b["name"]]
        if b["name"] == "esp-aes-cbc-no-auth/wrong-key":
            # no integrity: garbage decrypts, but must not match plain
            T.check(not r["ok"], "%s must fail: %s" % (b["name"], r))
            continue
        T.check(not r["ok"] and not r["detail"].startswith("unsupported:"),
                "%s must fail: %s" % (b["name"], r))
        if b["name"].endswith("/wrong-key") or \
                b["name"].endswith("/wrong-esn-high"):
            T.check(not r["decrypted_ok"], "%s: decrypted_ok must be false"
                    % b["name"])

    # 3. unsupported combinations are labelled as such
    rs = run_oracle("check", [dict(c, protected=v4_tcp().hex())
                              for c in UNSUPPORTED])
    for c in UNSUPPORTED:
        r = rs[c["name"]]
        T.check(not r["ok"] and r["detail"].startswith("unsupported:"),
                "%s unsupported: %s" % (c["name"], r))
    rs = run_oracle("make", UNSUPPORTED)
    for c in UNSUPPORTED:
        T.check(rs[c["name"]]["detail"].startswith("unsupported:"),
                "make %s unsupported" % c["name"])

    # 4. bad input -> exit 2
    run_oracle("check", [dict(CASES[0])], expect_rc=2)  # no protected
    run_oracle("make", [dict(CASES[0], crypt_alg="ROT13")], expect_rc=2)
    run_oracle("make", [dict(CASES[0], seq=1 << 32)], expect_rc=2)
    p = subprocess.run([sys.executable, ORACLE, "frobnicate", "x"],
                       capture_output=True, text=True)
    T.check(p.returncode == 2, "bad command exits 2")
    T.passed += 4

    # 5. packets built by hand with cryptography alone
    manual = [manual_esp_cbc_sha1(), manual_esp_gcm8_esn_tunnel(),
              manual_ah_sha256_esn_v4()]
    rs = run_oracle("check", manual)
    for c in manual:
        r = rs[c["name"]]
        T.check(r["ok"] and r["decrypted_ok"] and r["tamper_rejected"],
                "%s: %s" % (c["name"], r))

    # 6. the truncated-ICV GCM registration agrees with scapy's built-in GCM
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True
    import scapy_ipsec as o
    o.load_scapy()
    from scapy.layers.ipsec import SecurityAssociation, ESP
    iv = b"\x11" * 8
    pkt = IP(v4_tcp())
    ref = SecurityAssociation(ESP, spi=5, crypt_algo="AES-GCM",
                              crypt_key=K16 + b"salt")
    full = raw(ref.encrypt(pkt, seq_num=9, iv=iv)[ESP])
    for n in (8, 12, 16):
        sa = SecurityAssociation(ESP, spi=5,
                                 crypt_algo=o.CRYPT_MAP["AES-GCM-8"]["scapy"],
                                 crypt_key=K16 + b"salt", crypt_icv_size=n)
        got = raw(sa.encrypt(pkt, seq_num=9, iv=iv)[ESP])
        T.check(got == full[:len(full) - 16 + n],
                "truncated GCM-%d equals built-in GCM tag prefix" % n)

    print("%d passed, %d failed" % (T.passed, T.failed))
    return 1 if T.failed else 0


if __name__ == "__main__":
    sys.exit(main())
