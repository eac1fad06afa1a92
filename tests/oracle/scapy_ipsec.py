#!/usr/bin/env python3
"""Independent IPsec oracle built on scapy's IPsec layer.

    python3 tests/oracle/scapy_ipsec.py check CASES.json
    python3 tests/oracle/scapy_ipsec.py make  CASES.json

CASES.json is {"cases": [CASE, ...]}; see tests/oracle/README.md for the
fields.  One JSON object {"results": [...]} is printed on stdout.

Exit status: 0 when it ran (whatever the per-case verdicts), 2 on bad input
(usage, unreadable file, malformed JSON or case), 3 when scapy or the
`cryptography` package cannot be imported.

`check` decrypts/verifies `protected` with a scapy SecurityAssociation built
from the case, compares the result with `plain`, then flips single bytes in
the protected region and confirms scapy rejects them.  `make` builds
`protected` from `plain` with scapy (and round-trips it through `check`
before handing it out).
"""

import ipaddress
import json
import sys
import traceback

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NO_DEPS = 3

# Our algorithm names -> how scapy does them.
#   scapy:  key of scapy.layers.ipsec.CRYPT_ALGOS
#   salt:   bytes at the end of crypt_key that are the salt / nonce prefix
#   aead:   combined mode (no separate auth_alg allowed)
#   icv:    ICV length, passed to scapy as crypt_icv_size (None: scapy default)
#   custom: not one of scapy's built-in entries; registered below from
#           scapy's own CryptAlgo class (see _register_custom_algos)
CRYPT_MAP = {
    "NULL": dict(scapy="NULL", salt=0, aead=False, icv=None),
    "DES-CBC": dict(scapy="DES", salt=0, aead=False, icv=None),
    "3DES-CBC": dict(scapy="3DES", salt=0, aead=False, icv=None),
    "Blowfish-CBC": dict(scapy="Blowfish", salt=0, aead=False, icv=None),
    "AES-CBC": dict(scapy="AES-CBC", salt=0, aead=False, icv=None),
    "AES-CTR": dict(scapy="AES-CTR", salt=4, aead=False, icv=None),
    "AES-GCM-8": dict(scapy="AES-GCM-TRUNCATED-ICV", salt=4, aead=True,
                      icv=8, custom=True),
    "AES-GCM-12": dict(scapy="AES-GCM-TRUNCATED-ICV", salt=4, aead=True,
                       icv=12, custom=True),
    "AES-GCM-16": dict(scapy="AES-GCM", salt=4, aead=True, icv=16),
    "AES-GMAC": dict(scapy="AES-NULL-GMAC", salt=4, aead=True, icv=16),
    "ChaCha20-Poly1305": dict(scapy="CHACHA20-POLY1305", salt=4, aead=True,
                              icv=16),
    "AES-CCM-16": dict(scapy="AES-CCM", salt=3, aead=True, icv=16),
}

AUTH_MAP = {
    "NULL": "NULL",
    "HMAC-MD5-96": "HMAC-MD5-96",
    "HMAC-SHA1-96": "HMAC-SHA1-96",
    "SHA2-256-128": "SHA2-256-128",
    "SHA2-384-192": "SHA2-384-192",
    "SHA2-512-256": "SHA2-512-256",
}

CUSTOM_GCM_NOTE = ("scapy's built-in 'AES-GCM' always emits a 16-byte tag "
                   "(crypt_icv_size is ignored on its AEAD path), so the "
                   "truncated-ICV GCM is scapy.layers.ipsec.CryptAlgo with "
                   "cryptography's AES + modes.GCM, scapy's legacy path that "
                   "honours crypt_icv_size")


class BadInput(Exception):
    pass


S = None  # namespace of scapy names, filled by load_scapy()


class _NS(object):
    pass


def load_scapy():
    """Import scapy + cryptography; exit 3 with a clear message if missing."""
    global S
    try:
        import cryptography  # noqa: F401
        from cryptography.hazmat.primitives.ciphers import algorithms, modes
        import scapy
        from scapy.config import conf
        from scapy.compat import raw
        from scapy.packet import NoPayload, Raw
        from scapy.layers.inet import IP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.layers import ipsec
    except Exception as exc:  # ImportError and broken installs alike
        sys.stderr.write(
            "scapy_ipsec.py: cannot import scapy and/or cryptography (%s: %s)."
            "\nInstall them with: pip install -r tests/oracle/requirements.txt"
            "\n" % (type(exc).__name__, exc))
        sys.exit(EXIT_NO_DEPS)
    if not conf.crypto_valid:
        sys.stderr.write(
            "scapy_ipsec.py: scapy imported but its crypto support is off "
            "(scapy.config.conf.crypto_valid is False): the `cryptography` "
            "package is missing or too old.\nInstall it with: pip install "
            "-r tests/oracle/requirements.txt\n")
        sys.exit(EXIT_NO_DEPS)
    ns = _NS()
    ns.scapy_version = scapy.VERSION
    ns.cryptography_version = cryptography.__version__
    ns.algorithms, ns.modes = algorithms, modes
    ns.raw, ns.Raw, ns.NoPayload = raw, Raw, NoPayload
    ns.IP, ns.UDP, ns.IPv6 = IP, UDP, IPv6
    ns.ipsec = ipsec
    ns.ESP, ns.AH = ipsec.ESP, ipsec.AH
    ns.SA = ipsec.SecurityAssociation
    ns.IntegrityError = ipsec.IPSecIntegrityError
    S = ns
    _register_custom_algos()
    return ns


def _register_custom_algos():
    """Add GCM with a truncatable ICV to scapy's algorithm table.

    scapy's 'AES-GCM' entry uses cryptography's one-shot AESGCM object,
    whose tag is always 16 bytes, so RFC 4106's 8- and 12-byte ICVs cannot
    be produced or checked with it.  scapy's CryptAlgo also has a
    Cipher/mode path that truncates the tag to crypt_icv_size when
    encrypting and accepts a short tag (min_tag_length) when decrypting:
    we instantiate that with AES + GCM.  Salt handling, IV size, AAD (SPI,
    [ESN high,] seq) and ESP framing stay scapy's own code.
    """
    name = CRYPT_MAP["AES-GCM-8"]["scapy"]
    if name in S.ipsec.CRYPT_ALGOS:
        return
    S.ipsec.CRYPT_ALGOS[name] = S.ipsec.CryptAlgo(
        name,
        cipher=S.algorithms.AES,
        mode=S.modes.GCM,
        key_size=(16, 24, 32),
        block_size=1,
        iv_size=8,
        salt_size=4,
        icv_size=16,
        format_mode_iv=lambda sa, iv, **kw: sa.crypt_salt + iv)


# --------------------------------------------------------------------------
# input handling

def _hex(case, field, required=True):
    v = case.get(field)
    if v is None:
        if required:
            raise BadInput("case %r: missing %r" % (case.get("name"), field))
        return b""
    if not isinstance(v, str):
        raise BadInput("case %r: %r must be a hex string"
                       % (case.get("name"), field))
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise BadInput("case %r: %r is not valid hex" % (case.get("name"), field))


def _int(case, field, lo, hi, default=None):
    v = case.get(field, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise BadInput("case %r: %r must be an integer in [%d, %d], got %r"
                       % (case.get("name"), field, lo, hi, v))
    return v


def _addr(case, field):
    v = case.get(field)
    try:
        return ipaddress.ip_address(v)
    except (ValueError, TypeError):
        raise BadInput("case %r: %r must be an IPv4 or IPv6 address, got %r"
                       % (case.get("name"), field, v))


def parse_case(case, need_protected):
    """Validate one case and return a normalised dict.  Raises BadInput."""
    if not isinstance(case, dict):
        raise BadInput("each case must be a JSON object")
    name = case.get("name")
    if not isinstance(name, str):
        raise BadInput("case without a string 'name': %r" % (case,))
    c = {"name": name}
    c["proto"] = case.get("proto")
    if c["proto"] not in ("esp", "ah"):
        raise BadInput("case %r: proto must be 'esp' or 'ah'" % name)
    c["spi"] = _int(case, "spi", 0, 0xFFFFFFFF)
    c["seq"] = _int(case, "seq", 0, 0xFFFFFFFFFFFFFFFF)
    esn = case.get("esn", False)
    if not isinstance(esn, bool):
        raise BadInput("case %r: esn must be a boolean" % name)
    c["esn"] = esn
    if not esn and c["seq"] > 0xFFFFFFFF:
        raise BadInput("case %r: seq %d needs esn=true" % (name, c["seq"]))
    c["mode"] = case.get("mode")
    if c["mode"] not in ("transport", "tunnel"):
        raise BadInput("case %r: mode must be 'transport' or 'tunnel'" % name)
    if c["mode"] == "tunnel":
        c["tunnel_src"] = _addr(case, "tunnel_src")
        c["tunnel_dst"] = _addr(case, "tunnel_dst")
        if c["tunnel_src"].version != c["tunnel_dst"].version:
            raise BadInput("case %r: tunnel_src and tunnel_dst are of "
                           "different address families" % name)
    c["crypt_alg"] = case.get("crypt_alg", "NULL")
    if c["crypt_alg"] not in CRYPT_MAP:
        raise BadInput("case %r: unknown crypt_alg %r (known: %s)"
                       % (name, c["crypt_alg"], ", ".join(CRYPT_MAP)))
    c["auth_alg"] = case.get("auth_alg", "NULL")
    if c["auth_alg"] not in AUTH_MAP:
        raise BadInput("case %r: unknown auth_alg %r (known: %s)"
                       % (name, c["auth_alg"], ", ".join(AUTH_MAP)))
    c["crypt_key"] = _hex(case, "crypt_key", required=False)
    c["auth_key"] = _hex(case, "auth_key", required=False)
    nat_t = case.get("nat_t")
    if nat_t is not None:
        if not isinstance(nat_t, dict):
            raise BadInput("case %r: nat_t must be null or an object" % name)
        nat_t = {"sport": _int(nat_t, "sport", 0, 0xFFFF),
                 "dport": _int(nat_t, "dport", 0, 0xFFFF)}
    c["nat_t"] = nat_t
    c["plain"] = _hex(case, "plain")
    if not c["plain"] or c["plain"][0] >> 4 not in (4, 6):
        raise BadInput("case %r: plain must start with an IPv4 or IPv6 "
                       "header" % name)
    if need_protected:
        c["protected"] = _hex(case, "protected")
        if not c["protected"]:
            raise BadInput("case %r: protected is empty" % name)
    return c


def unsupported_reason(c):
    """Return 'unsupported: ...' if scapy cannot do this case, else None."""
    cm = CRYPT_MAP[c["crypt_alg"]]
    if c["proto"] == "ah":
        if c["crypt_alg"] != "NULL":
            return ("unsupported: AH with crypt_alg %s: scapy's AH only takes "
                    "an integrity algorithm (AH-GMAC of RFC 4543 is not in "
                    "scapy)" % c["crypt_alg"])
        if c["auth_alg"] == "NULL":
            return "unsupported: AH with auth_alg NULL has no ICV to check"
        if c["nat_t"] is not None:
            return ("unsupported: AH over UDP (NAT-T): RFC 3948 encapsulates "
                    "ESP only and scapy refuses nat_t_header for AH")
    if cm["aead"] and c["auth_alg"] != "NULL":
        return ("unsupported: combined-mode %s with a separate auth_alg %s: "
                "scapy computes the ESP ICV length from one algorithm only"
                % (c["crypt_alg"], c["auth_alg"]))
    if cm["scapy"] not in S.ipsec.CRYPT_ALGOS:
        return ("unsupported: this scapy/cryptography build has no %r "
                "cipher" % cm["scapy"])
    if AUTH_MAP[c["auth_alg"]] not in S.ipsec.AUTH_ALGOS:
        return ("unsupported: this scapy/cryptography build has no %r "
                "integrity algorithm" % AUTH_MAP[c["auth_alg"]])
    return None


# --------------------------------------------------------------------------
# scapy helpers

def parse_ip(data):
    v = data[0] >> 4 if data else None
    if v == 4:
        return S.IP(data)
    if v == 6:
        return S.IPv6(data)
    raise ValueError("not an IP packet (version nibble %r)" % v)


def build_sa(c):
    cm = CRYPT_MAP[c["crypt_alg"]]
    kw = dict(spi=c["spi"], seq_num=c["seq"] & 0xFFFFFFFF,
              esn_en=c["esn"], esn=c["seq"] >> 32)
    if c["proto"] == "esp":
        proto = S.ESP
        kw["crypt_algo"] = cm["scapy"]
        kw["crypt_key"] = c["crypt_key"] or None
        if cm["icv"] is not None:
            kw["crypt_icv_size"] = cm["icv"]
        if c["nat_t"] is not None:
            kw["nat_t_header"] = S.UDP(sport=c["nat_t"]["sport"],
                                       dport=c["nat_t"]["dport"])
    else:
        proto = S.AH
    kw["auth_algo"] = AUTH_MAP[c["auth_alg"]]
    kw["auth_key"] = c["auth_key"]
    if c["mode"] == "tunnel":
        hdr = S.IP if c["tunnel_src"].version == 4 else S.IPv6
        kw["tunnel_header"] = hdr(src=str(c["tunnel_src"]),
                                  dst=str(c["tunnel_dst"]))
    sa = S.SA(proto, **kw)
    if proto is S.ESP and sa.crypt_key is not None:
        # scapy does not check the key length itself; cryptography would
        # fail later with a less helpful message.
        sa.crypt_algo.check_key(sa.crypt_key)
        if len(c["crypt_key"]) <= cm["salt"]:
            raise ValueError("crypt_key is not longer than its %d-byte salt"
                             % cm["salt"])
    return sa


def parse_protected(c, data):
    """Parse the protected packet, making sure scapy sees the ESP/AH layer."""
    pkt = parse_ip(data)
    if c["proto"] == "esp" and c["nat_t"] is not None and pkt.haslayer(S.UDP):
        udp = pkt[S.UDP]
        if not isinstance(udp.payload, S.ESP):
            # scapy only binds UDP/4500 to ESP; other ports need this.
            udp.decode_payload_as(S.ESP)
    return pkt


def layer_offset(pkt, layer):
    return len(S.raw(pkt)) - len(S.raw(pkt[layer]))


def normalise(data):
    """Parse, drop length/checksum fields of the IP header, rebuild."""
    p = parse_ip(data)
    if p.version == 4:
        del p.len
        del p.chksum
    else:
        del p.plen
    return S.raw(p)


def _layers(pkt):
    out = []
    while pkt is not None and not isinstance(pkt, S.NoPayload):
        out.append(pkt)
        pkt = pkt.payload
    return out


def describe_diff(got, want, limit=8):
    """Human-readable difference between two IP packets (bytes)."""
    parts = []
    if len(got) != len(want):
        parts.append("length %d != %d" % (len(got), len(want)))
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                 None)
    if first is not None:
        parts.append("first differing byte at offset %d (0x%02x != 0x%02x)"
                     % (first, got[first], want[first]))
    try:
        lg, lw = _layers(parse_ip(got)), _layers(parse_ip(want))
        fields = []
        for a, b in zip(lg, lw):
            if type(a) is not type(b):
                fields.append("layer %s != %s" % (a.name, b.name))
                break
            for f in a.fields_desc:
                va, vb = a.getfieldval(f.name), b.getfieldval(f.name)
                if f.name in ("load", "data") and va != vb:
                    fields.append("%s.%s differs" % (a.name, f.name))
                elif va != vb and not hasattr(va, "fields_desc"):
                    fields.append("%s.%s %r != %r" % (a.name, f.name, va, vb))
        if len(lg) != len(lw):
            fields.append("layers %s != %s"
                          % ("/".join(x.name for x in lg),
                             "/".join(x.name for x in lw)))
        if fields:
            more = len(fields) - limit
            parts.append("fields (got != want): " + "; ".join(fields[:limit])
                         + ("; +%d more" % more if more > 0 else ""))
    except Exception as exc:  # diagnostics only
        parts.append("(could not parse for a field diff: %s)" % exc)
    return ", ".join(parts)


def expected_next_header(c, plain_pkt):
    if c["mode"] == "tunnel":
        return 4 if plain_pkt.version == 4 else 41
    proto_num = 50 if c["proto"] == "esp" else 51
    _hdr, nh, _payload = S.ipsec.split_for_transport(plain_pkt, proto_num)
    return nh


def has_integrity(c):
    return CRYPT_MAP[c["crypt_alg"]]["aead"] or c["auth_alg"] != "NULL"


def icv_len(sa):
    if sa.proto is S.AH:
        return sa.auth_algo.icv_size
    return (sa.crypt_icv_size or sa.crypt_algo.icv_size
            or sa.auth_algo.icv_size or 0)


# --------------------------------------------------------------------------
# check

def check_case(c):
    res = {"name": c["name"], "ok": False, "decrypted_ok": False,
           "tamper_rejected": False, "detail": ""}
    why = unsupported_reason(c)
    if why:
        res["detail"] = why
        res["unsupported"] = True
        return res

    notes = []
    problems = []
    plain_pkt = parse_ip(c["plain"])
    proto_layer = S.ESP if c["proto"] == "esp" else S.AH
    protected = c["protected"]

    # -- outer packet: addresses, UDP encapsulation, SPI and sequence number
    outer_ok = True
    try:
        pkt = parse_protected(c, protected)
    except Exception as exc:
        res["detail"] = "protected packet does not parse: %s" % exc
        return res
    if not pkt.haslayer(proto_layer):
        res["detail"] = ("protected packet has no %s layer (scapy sees %s)"
                         % (proto_layer.name, pkt.summary()))
        return res
    if c["mode"] == "tunnel":
        want_src, want_dst = c["tunnel_src"], c["tunnel_dst"]
    else:
        want_src = ipaddress.ip_address(plain_pkt.src)
        want_dst = ipaddress.ip_address(plain_pkt.dst)
    if (ipaddress.ip_address(pkt.src), ipaddress.ip_address(pkt.dst)) != \
            (want_src, want_dst):
        outer_ok = False
        problems.append("outer addresses %s -> %s, expected %s -> %s"
                        % (pkt.src, pkt.dst, want_src, want_dst))
    if c["nat_t"] is not None:
        if not pkt.haslayer(S.UDP):
            outer_ok = False
            problems.append("nat_t set but no UDP header")
        else:
            u = pkt[S.UDP]
            if (u.sport, u.dport) != (c["nat_t"]["sport"], c["nat_t"]["dport"]):
                outer_ok = False
                problems.append("UDP ports %d -> %d, expected %d -> %d"
                                % (u.sport, u.dport, c["nat_t"]["sport"],
                                   c["nat_t"]["dport"]))
            if u.chksum != 0:
                notes.append("UDP checksum 0x%04x (RFC 3948 senders "
                             "usually send 0)" % u.chksum)
    elif pkt.haslayer(S.UDP) and pkt[S.UDP].underlayer is pkt:
        if c["proto"] == "esp" and isinstance(pkt[S.UDP].payload, S.ESP):
            outer_ok = False
            problems.append("packet is UDP-encapsulated but nat_t is null")
    wire = pkt[proto_layer]
    if wire.spi != c["spi"]:
        outer_ok = False
        problems.append("SPI on wire 0x%08x, expected 0x%08x"
                        % (wire.spi, c["spi"]))
    if wire.seq != c["seq"] & 0xFFFFFFFF:
        outer_ok = False
        problems.append("sequence number on wire %d, expected %d"
                        % (wire.seq, c["seq"] & 0xFFFFFFFF))
    res["outer_ok"] = outer_ok

    # -- decrypt / verify and compare with plain
    sa = build_sa(c)
    decrypted = None
    try:
        out = sa.decrypt(parse_protected(c, protected))
        decrypted = S.raw(out)
    except S.IntegrityError as exc:
        problems.append("scapy integrity check failed: %s" % exc)
    except Exception as exc:
        problems.append("scapy could not decrypt: %s: %s"
                        % (type(exc).__name__, exc))
    if decrypted is not None:
        res["decrypted"] = decrypted.hex()
        if decrypted == c["plain"]:
            res["decrypted_ok"] = True
        else:
            try:
                nd, npl = normalise(decrypted), normalise(c["plain"])
            except Exception as exc:
                nd, npl = None, None
                notes.append("normalising failed: %s" % exc)
            if nd is not None and nd == npl:
                res["decrypted_ok"] = True
                notes.append("decrypted differs from plain only in IP "
                             "length/checksum fields (equal after "
                             "normalising both): "
                             + describe_diff(decrypted, c["plain"]))
            else:
                problems.append("decrypted != plain: "
                                + describe_diff(decrypted, c["plain"]))

    # -- next header and (ESP) padding, through scapy's own decoder
    nh_ok = None
    padding_ok = None
    try:
        want_nh = expected_next_header(c, plain_pkt)
        p2 = parse_protected(c, protected)
        if c["proto"] == "esp":
            esp_plain = sa.crypt_algo.decrypt(
                sa, p2[S.ESP], sa.crypt_key, icv_len(sa),
                esn_en=sa.esn_en, esn=sa.esn)
            got_nh = esp_plain.nh
            want_pad = bytes(range(1, esp_plain.padlen + 1))
            padding_ok = esp_plain.padding == want_pad
            if not padding_ok:
                problems.append("ESP padding %s is not the RFC 4303 default "
                                "1, 2, 3, ... (pad length %d)"
                                % (esp_plain.padding.hex(), esp_plain.padlen))
        else:
            got_nh = p2[S.AH].nh
        nh_ok = got_nh == want_nh
        if not nh_ok:
            problems.append("next header %d, expected %d" % (got_nh, want_nh))
    except S.IntegrityError:
        pass  # already reported above
    except Exception as exc:
        problems.append("could not inspect next header/padding: %s: %s"
                        % (type(exc).__name__, exc))
        nh_ok = False
    res["next_header_ok"] = nh_ok
    if c["proto"] == "esp":
        res["padding_ok"] = padding_ok

    # -- tamper: flip one byte in the protected payload, one in the ICV
    if not has_integrity(c):
        res["tamper_rejected"] = None
        notes.append("tamper check not applicable: %s/%s has no integrity "
                     "protection" % (c["crypt_alg"], c["auth_alg"]))
    else:
        rejected_all = True
        p3 = parse_protected(c, protected)
        off = layer_offset(p3, proto_layer)
        if c["proto"] == "esp":
            data_len = len(p3[S.ESP].data)
            icv = icv_len(sa)
            iv = sa.crypt_algo.iv_size
            body = data_len - iv - icv
            targets = [("payload", off + 8 + iv + max(body, 1) // 2),
                       ("ICV", off + 8 + data_len - 1)]
        else:
            ah = p3[S.AH]
            ah_len = (ah.payloadlen + 2) * 4
            pay_len = len(S.raw(ah)) - ah_len
            targets = [("ICV", off + 12),
                       ("payload", off + ah_len + max(pay_len, 1) // 2)]
        for what, pos in targets:
            if pos >= len(protected):
                rejected_all = False
                problems.append("tamper %s: offset %d outside the packet"
                                % (what, pos))
                continue
            bad = bytearray(protected)
            bad[pos] ^= 0x01
            try:
                build_sa(c).decrypt(parse_protected(c, bytes(bad)))
            except S.IntegrityError:
                continue
            except Exception as exc:
                rejected_all = False
                problems.append("tamper %s (byte %d): scapy failed with %s: "
                                "%s instead of an integrity error"
                                % (what, pos, type(exc).__name__, exc))
                continue
            rejected_all = False
            problems.append("tamper %s (byte %d): scapy accepted the altered "
                            "packet" % (what, pos))
        res["tamper_rejected"] = rejected_all

    if CRYPT_MAP[c["crypt_alg"]].get("custom"):
        notes.append("note: " + CUSTOM_GCM_NOTE)
    res["ok"] = bool(res["decrypted_ok"] and outer_ok
                     and res["tamper_rejected"] is not False
                     and nh_ok is not False and padding_ok is not False)
    res["detail"] = "; ".join(problems + notes) or "ok"
    return res


# --------------------------------------------------------------------------
# make

def make_case(c):
    res = {"name": c["name"], "ok": False, "protected": None, "detail": ""}
    why = unsupported_reason(c)
    if why:
        res["detail"] = why
        res["unsupported"] = True
        return res
    sa = build_sa(c)
    pkt = parse_ip(c["plain"])
    out = sa.encrypt(pkt, seq_num=c["seq"] & 0xFFFFFFFF)
    protected = S.raw(out)
    res["protected"] = protected.hex()
    # Round-trip through `check` so a scapy quirk cannot hand out a packet
    # that scapy itself does not accept.
    chk = dict(c)
    chk["protected"] = protected
    verdict = check_case(chk)
    res["ok"] = verdict["ok"]
    res["detail"] = ("made with scapy %s" % S.scapy_version
                     if verdict["ok"] else
                     "scapy round-trip check failed: %s" % verdict["detail"])
    if CRYPT_MAP[c["crypt_alg"]].get("custom"):
        res["detail"] += "; note: " + CUSTOM_GCM_NOTE
    return res


# --------------------------------------------------------------------------

def run(argv, out):
    if len(argv) != 3 or argv[1] not in ("check", "make"):
        sys.stderr.write("usage: %s check|make CASES.json\n" % argv[0])
        return EXIT_BAD_INPUT
    command, path = argv[1], argv[2]
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        sys.stderr.write("scapy_ipsec.py: cannot read %s: %s\n" % (path, exc))
        return EXIT_BAD_INPUT
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        sys.stderr.write("scapy_ipsec.py: %s must hold {\"cases\": [...]}\n"
                         % path)
        return EXIT_BAD_INPUT
    load_scapy()
    try:
        cases = [parse_case(c, need_protected=(command == "check"))
                 for c in doc["cases"]]
    except BadInput as exc:
        sys.stderr.write("scapy_ipsec.py: bad input: %s\n" % exc)
        return EXIT_BAD_INPUT
    results = []
    for c in cases:
        try:
            r = check_case(c) if command == "check" else make_case(c)
        except Exception as exc:
            r = {"name": c["name"], "ok": False,
                 "detail": "error: %s: %s" % (type(exc).__name__, exc)}
            if command == "check":
                r.update(decrypted_ok=False, tamper_rejected=False)
            else:
                r["protected"] = None
            sys.stderr.write("case %r:\n%s" % (c["name"],
                                                traceback.format_exc()))
        results.append(r)
    out.write(json.dumps({"results": results}, indent=1) + "\n")
    out.flush()
    return EXIT_OK


def main():
    # Keep stdout for the one JSON object: anything scapy prints goes to
    # stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        code = run(sys.argv, real_stdout)
    finally:
        sys.stdout = real_stdout
    sys.exit(code)


if __name__ == "__main__":
    main()
