#!/usr/bin/env python3
"""Builds the PF_KEY v2 fixtures in this folder from the layouts in the
reference notes (pfkey-v2-wire.md 1.2, 2.2-2.5; ipseckey-behaviour.md 6),
independently of the Rust codec: Python's struct module, little-endian host
order (x86), network order for SPIs, ports and addresses.

Run it to regenerate the .hex files; the Rust tests decode each file and
re-emit it bit for bit. The fixtures are committed, so the tests do not
need Python.
"""
import socket
import struct
import sys

HOST = "<"  # host order of the x86 kernels these fixtures stand for


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def _ext(t, payload):
    # payload excludes the 4-byte generic header
    raw = pad8(struct.pack(HOST + "HH", 0, t) + payload)
    return struct.pack(HOST + "HH", len(raw) // 8, t) + raw[4:]


def msg(mtype, satype, seq, pid, exts, errno=0, reserved=0):
    body = b"".join(exts)
    return struct.pack(HOST + "BBBBHHII", 2, mtype, errno, satype, (16 + len(body)) // 8, reserved, seq, pid) + body


def sa(spi, replay=0, state=1, auth=0, encr=0, flags=0):
    return _ext(1, struct.pack(">I", spi) + struct.pack(HOST + "BBBBI", replay, state, auth, encr, flags))


def lifetime(t, alloc=0, bytes_=0, add=0, use=0):
    return _ext(t, struct.pack(HOST + "IQQQ", alloc, bytes_, add, use))


def sin(ip, port=0):
    return struct.pack(HOST + "H", 2) + struct.pack(">H", port) + socket.inet_aton(ip) + b"\0" * 8


def sin6(ip, port=0, af=26, size=32, flow=0, scope=0):
    s = struct.pack(HOST + "H", af) + struct.pack(">H", port) + struct.pack(HOST + "I", flow)
    s += socket.inet_pton(socket.AF_INET6, ip) + struct.pack(HOST + "I", scope)
    return s + b"\0" * (size - len(s))


def address(t, sockaddr, proto=0, prefix=0):
    return _ext(t, struct.pack(HOST + "BBH", proto, prefix, 0) + sockaddr)


def key(t, hexkey, bits=None, reserved=0):
    k = bytes.fromhex(hexkey)
    return _ext(t, struct.pack(HOST + "HH", bits if bits is not None else len(k) * 8, reserved) + k)


def ident(t, idtype, text, id_=0):
    return _ext(t, struct.pack(HOST + "HHQ", idtype, 0, id_) + text.encode() + b"\0")


def write(name, comment, data):
    with open(name, "w") as f:
        for line in comment.strip().splitlines():
            f.write("# " + line + "\n")
        for i in range(0, len(data), 16):
            f.write(" ".join("%02x" % b for b in data[i:i + 16]) + "\n")


ILLUMOS_SRC = "Layouts: pfkey-v2-wire.md 1.2 (base), 2.2 (SA, lifetime, address, key),\n2.3 (illumos sockaddr_in6 = 32 bytes, AF_INET6 = 26), ipseckey-behaviour.md 6."

def main():
    # 1. What ipseckey sends for Example 10's first add: every address as a
    # v4-mapped AF_INET6 sockaddr, HMAC-MD5 + DES, hard_usetime 28800.
    write("illumos-add-esp-mapped.hex",
          "dialect: illumos\nSADB_ADD, ESP, seq 1, pid 4242: spi 0x2112, src 10.0.0.1 dst 10.0.0.2 (v4-mapped),\n"
          "auth md5 bde359723576fdea08e56cbe876e24ad, encr des be02938e7def2839, hard_usetime 28800.\n" + ILLUMOS_SRC,
          msg(3, 3, 1, 4242, [
              sa(0x2112, state=1, auth=2, encr=2),
              lifetime(3, use=28800),
              address(5, sin6("::ffff:10.0.0.1")),
              address(6, sin6("::ffff:10.0.0.2")),
              key(8, "bde359723576fdea08e56cbe876e24ad"),
              key(9, "be02938e7def2839"),
          ]))
    # 2. A GET reply as the illumos kernel builds it (3.1): AF_INET
    # sockaddrs, CURRENT lifetime, keys, salt bits in the encr key reserved.
    write("illumos-get-reply-gcm.hex",
          "dialect: illumos\nSADB_GET reply, ESP, seq 7, pid 99: spi 0x1000, replay 32, mature, aes-gcm16 (20),\n"
          "flags X_OUTBOUND|X_USED; CURRENT bytes 1500 add 1700000000 use 1700000100; HARD addtime 3600;\n"
          "SRC 192.0.2.1 DST 192.0.2.2 (AF_INET); KEY_ENCRYPT 128 bits + 32 salt bits (reserved=32);\n"
          "X_PAIR spi 0x1001; X_REPLAY_VALUE 5.\n" + ILLUMOS_SRC,
          msg(5, 3, 7, 99, [
              sa(0x1000, replay=32, state=1, auth=0, encr=20, flags=0x80008000),
              lifetime(2, bytes_=1500, add=1700000000, use=1700000100),
              lifetime(3, add=3600),
              address(5, sin("192.0.2.1")),
              address(6, sin("192.0.2.2")),
              key(9, "000102030405060708090a0b0c0d0e0f" + "cafebabe", bits=128, reserved=32),
              _ext(23, struct.pack(">I", 0x1001)),
              _ext(24, struct.pack(HOST + "IQ", 5, 0)),
          ]))
    # 3. An illumos error reply: base header only, EINVAL with diagnostic
    # 73 in the reserved field.
    write("illumos-error-reply.hex",
          "dialect: illumos\nSADB_ADD error reply, ESP, errno EINVAL (22), diagnostic 73 (PAIR_INAPPROPRIATE), seq 3 pid 10.\n"
          "pfkey-v2-wire.md 1.6 and 6.4.",
          msg(3, 3, 3, 10, [], errno=22, reserved=73))
    # 4. Tunnel mode with inner prefixes, NAT-T addresses, identities, idle
    # lifetime, KM cookie and an extension type the simulator does not know
    # (kept verbatim by the codec; refused by keysock).
    write("illumos-tunnel-natt.hex",
          "dialect: illumos\nSADB_ADD, ESP, seq 2 pid 1: spi 0xabcd flags X_TUNNEL|X_NATT_LOC|X_NATT_REM; SRC/DST proto 4;\n"
          "INNER_SRC 10.1.0.0/16 port 0 proto 6, INNER_DST 10.2.0.0/24 port 80 proto 6 (AF_INET);\n"
          "NATT_LOC 198.51.100.7 port 4500, NATT_REM 10.9.9.9 port 4500; IDENTITY_SRC fqdn 'a.example';\n"
          "X_LIFETIME_IDLE add 100 use 50; X_KM_COOKIE proto 1 cookie 0x1122334455667788.\n" + ILLUMOS_SRC,
          msg(3, 3, 2, 1, [
              sa(0xabcd, state=1, auth=3, encr=12, flags=0x00020000 | 0x00100000 | 0x00080000),
              address(5, sin("203.0.113.1"), proto=4),
              address(6, sin("203.0.113.2"), proto=4),
              address(7, sin("10.1.0.0"), proto=6, prefix=16),
              address(22, sin("10.2.0.0", 80), proto=6, prefix=24),
              address(20, sin("198.51.100.7", 4500)),
              address(21, sin("10.9.9.9", 4500)),
              ident(10, 2, "a.example"),
              lifetime(26, add=100, use=50),
              _ext(19, struct.pack(HOST + "IQ", 1, 0x1122334455667788)),
          ]))
    # 5. The same SA type/SPI as a Linux ADD: AF_INET6 = 10, 28-byte
    # sockaddr_in6 (extension padded to 40 bytes), X_SA2 tunnel mode,
    # X_NAT_T_TYPE/SPORT/DPORT.
    write("linux-add-esp-v6-natt.hex",
          "dialect: linux\nSADB_ADD, ESP, seq 5 pid 77: spi 0x3000 auth sha1 (3) encr aes-cbc (12), flags 0;\n"
          "SRC 2001:db8::1 DST 2001:db8::2 (AF_INET6 = 10, 28-byte sockaddr); HARD/SOFT lifetimes;\n"
          "keys; X_SA2 mode 2 (tunnel) reqid 7; X_NAT_T_TYPE 2; SPORT 4500; DPORT 4501.\n"
          "Layouts: pfkey-v2-wire.md 2.2, 2.3 (Linux), 2.4.",
          msg(3, 3, 5, 77, [
              sa(0x3000, replay=32, state=1, auth=3, encr=12),
              lifetime(3, bytes_=0, add=28800),
              lifetime(4, add=25200),
              address(5, sin6("2001:db8::1", af=10, size=28)),
              address(6, sin6("2001:db8::2", af=10, size=28)),
              key(8, "0102030405060708090a0b0c0d0e0f1011121314"),
              key(9, "f0e0d0c0b0a090807060504030201000"),
              _ext(19, struct.pack(HOST + "BBHII", 2, 0, 0, 0, 7)),
              _ext(20, struct.pack(HOST + "B", 2) + b"\0\0\0"),
              _ext(21, struct.pack(">H", 4500) + b"\0\0"),
              _ext(22, struct.pack(">H", 4501) + b"\0\0"),
          ]))
    # 6. Linux DUMP request and the illumos DUMP terminator.
    write("linux-dump-request.hex", "dialect: linux\nSADB_DUMP request, satype 0 (all), seq 9 pid 300. pfkey-v2-wire.md 1.8.",
          msg(10, 0, 9, 300, []))
    # 7. A REGISTER reply with SUPPORTED_AUTH / SUPPORTED_ENCRYPT (illumos
    # sadb_alg with increment and salt bits).
    def alg(i, iv, lo, hi, inc, salt):
        return struct.pack(HOST + "BBHHBB", i, iv, lo, hi, inc, salt)
    write("illumos-register-reply.hex",
          "dialect: illumos\nSADB_REGISTER reply, ESP, seq 1 pid 5: SUPPORTED_AUTH md5 128, sha1 160;\n"
          "SUPPORTED_ENCRYPT aes-cbc 128..256 step 64, aes-gcm16 with 32 salt bits.\n"
          "Layouts: pfkey-v2-wire.md 2.2 (sadb_supported, sadb_alg with illumos increment/saltbits).",
          msg(7, 3, 1, 5, [
              _ext(14, b"\0\0\0\0" + alg(2, 0, 128, 128, 0, 0) + alg(3, 0, 160, 160, 0, 0)),
              _ext(15, b"\0\0\0\0" + alg(12, 16, 128, 256, 64, 0) + alg(20, 8, 128, 256, 64, 32)),
          ]))
    # 8. GETSPI request with an illumos SPI range (network order).
    write("illumos-getspi.hex",
          "dialect: illumos\nSADB_GETSPI, AH, seq 4 pid 8: SRC 10.0.0.2 DST 10.0.0.1, SPIRANGE 0x100..0x1ff (network order).\n"
          "pfkey-v2-wire.md 2.2 (SPI range byte order differs per kernel).",
          msg(1, 2, 4, 8, [
              address(5, sin("10.0.0.2")),
              address(6, sin("10.0.0.1")),
              _ext(16, struct.pack(">II", 0x100, 0x1ff) + b"\0\0\0\0"),
          ]))


if __name__ == "__main__":
    sys.exit(main())
