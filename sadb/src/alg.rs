//! The algorithm table and the kernel's key checks.
//!
//! One place that knows, for every authentication and encryption algorithm
//! the simulator supports: its number on the wire in each PF_KEY dialect
//! (pfkey-v2-wire.md 4.1, 4.2), the names ipseckey accepts and prints
//! (ipseckey-behaviour.md 1.8), its legal key sizes, salt, block, IV and ICV
//! sizes, and the checks the illumos kernel applies to a key before it
//! accepts an SA (ipseckey-behaviour.md 5.8, pfkey-v2-wire.md 4.4).
//!
//! Algorithms beyond the default illumos `ipsecalgs` table are simulator
//! extensions: AES-CTR (13) and AES-GMAC (23) take the numbers Linux and
//! FreeBSD use; ChaCha20-Poly1305 takes 31, a number no PF_KEY dialect
//! assigns (FreeBSD's 15 is illumos's AES-CCM-12, so it cannot be reused).

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

use crate::diag::Diagnostic;
use crate::key::KeyMaterial;
use crate::pfkey::Dialect;

/// Legal sizes of a key in bits: `min..=max` in steps of `step`. `step` 0
/// means `min` is the only size. These are the bits of the key itself; an
/// algorithm's salt ([`EncrAlg::salt_bits`]) comes on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyBits {
    pub min: u16,
    pub max: u16,
    pub step: u16,
}

impl KeyBits {
    /// Exactly `bits` bits.
    pub const fn fixed(bits: u16) -> KeyBits {
        KeyBits {
            min: bits,
            max: bits,
            step: 0,
        }
    }

    /// `min..=max` in steps of `step`.
    pub const fn range(min: u16, max: u16, step: u16) -> KeyBits {
        KeyBits { min, max, step }
    }

    /// Whether a key of `bits` bits (salt excluded) has a legal size.
    pub fn allows(self, bits: u16) -> bool {
        if bits < self.min || bits > self.max {
            return false;
        }
        if self.step == 0 {
            bits == self.min
        } else {
            (bits - self.min).is_multiple_of(self.step)
        }
    }
}

/// Authentication algorithms (AH, and the integrity half of ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAlg {
    /// No authentication: `none`/`any`, printed by ipseckey as `<none>`.
    None,
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl AuthAlg {
    /// Wireshark's name in its `esp_sa` table (`esp_authentication_type_vals`).
    pub fn wireshark_name(self) -> &'static str {
        match self {
            AuthAlg::None => "NULL",
            AuthAlg::HmacMd5 => "HMAC-MD5-96 [RFC2403]",
            AuthAlg::HmacSha1 => "HMAC-SHA-1-96 [RFC2404]",
            AuthAlg::HmacSha256 => "HMAC-SHA-256-128 [RFC4868]",
            AuthAlg::HmacSha384 => "HMAC-SHA-384-192 [RFC4868]",
            AuthAlg::HmacSha512 => "HMAC-SHA-512-256 [RFC4868]",
        }
    }

    /// Every authentication algorithm, `None` included.
    pub const ALL: &'static [AuthAlg] = &[
        AuthAlg::None,
        AuthAlg::HmacMd5,
        AuthAlg::HmacSha1,
        AuthAlg::HmacSha256,
        AuthAlg::HmacSha384,
        AuthAlg::HmacSha512,
    ];

    /// The number in `sadb_sa_auth` and `sadb_alg_id`. illumos and Linux
    /// agree on every authentication algorithm listed here (RFC 2367 for
    /// MD5 and SHA-1; both use 5, 6, 7 for the SHA-2 family).
    pub fn id(self, d: Dialect) -> Option<u8> {
        let id = match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 => 2,
            AuthAlg::HmacSha1 => 3,
            AuthAlg::HmacSha256 => 5,
            AuthAlg::HmacSha384 => 6,
            AuthAlg::HmacSha512 => 7,
        };
        match d {
            Dialect::Illumos | Dialect::Linux => Some(id),
        }
    }

    /// The algorithm with wire number `id` in dialect `d`.
    pub fn from_id(id: u8, d: Dialect) -> Option<AuthAlg> {
        AuthAlg::ALL.iter().copied().find(|a| a.id(d) == Some(id))
    }

    /// The names ipseckey accepts; the first is the one get, dump and save
    /// print (ipseckey-behaviour.md 1.8, plus the manual page's synonyms).
    pub fn names(self) -> &'static [&'static str] {
        match self {
            AuthAlg::None => &["none", "any"],
            AuthAlg::HmacMd5 => &["hmac-md5", "md5"],
            AuthAlg::HmacSha1 => &[
                "hmac-sha1",
                "sha",
                "sha1",
                "sha-1",
                "hmac-sha",
                "hmac-sha-1",
            ],
            AuthAlg::HmacSha256 => &["hmac-sha256", "sha256", "sha-256", "hmac-sha-256"],
            AuthAlg::HmacSha384 => &["hmac-sha384", "sha384", "sha-384", "hmac-sha-384"],
            AuthAlg::HmacSha512 => &["hmac-sha512", "sha512", "sha-512", "hmac-sha-512"],
        }
    }

    /// The canonical name (the first of [`names`](Self::names)).
    pub fn name(self) -> &'static str {
        self.names().first().copied().unwrap_or("")
    }

    /// The algorithm one of whose names is `s`, ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<AuthAlg> {
        AuthAlg::ALL
            .iter()
            .copied()
            .find(|a| a.names().iter().any(|n| n.eq_ignore_ascii_case(s)))
    }

    /// Legal key sizes: each HMAC takes a key as long as its digest, the
    /// only size the illumos table allows.
    pub fn key_bits(self) -> KeyBits {
        match self {
            AuthAlg::None => KeyBits::fixed(0),
            AuthAlg::HmacMd5 => KeyBits::fixed(128),
            AuthAlg::HmacSha1 => KeyBits::fixed(160),
            AuthAlg::HmacSha256 => KeyBits::fixed(256),
            AuthAlg::HmacSha384 => KeyBits::fixed(384),
            AuthAlg::HmacSha512 => KeyBits::fixed(512),
        }
    }

    /// ICV length in bytes: the truncated HMAC (RFC 2403/2404: 96 bits;
    /// RFC 4868: half the digest for SHA-2).
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 | AuthAlg::HmacSha1 => 12,
            AuthAlg::HmacSha256 => 16,
            AuthAlg::HmacSha384 => 24,
            AuthAlg::HmacSha512 => 32,
        }
    }

    /// ICV length in bytes of an SA that Linux created through PF_KEY:
    /// af_key truncates HMAC-SHA-256 to 96 bits (the pre-RFC 4868 draft),
    /// so it does not interoperate with illumos's 128 (pfkey-v2-wire.md 4.1).
    pub fn linux_pfkey_icv_len(self) -> usize {
        match self {
            AuthAlg::HmacSha256 => 12,
            other => other.icv_len(),
        }
    }

    /// Length in bytes of the full hash output.
    pub fn digest_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 => 16,
            AuthAlg::HmacSha1 => 20,
            AuthAlg::HmacSha256 => 32,
            AuthAlg::HmacSha384 => 48,
            AuthAlg::HmacSha512 => 64,
        }
    }

    /// The hash's block length in bytes (RFC 2104's B, the HMAC pad size).
    pub fn block_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 | AuthAlg::HmacSha1 | AuthAlg::HmacSha256 => 64,
            AuthAlg::HmacSha384 | AuthAlg::HmacSha512 => 128,
        }
    }

    /// A human name, as the manual page writes it.
    pub fn display_name(self) -> &'static str {
        match self {
            AuthAlg::None => "none",
            AuthAlg::HmacMd5 => "HMAC-MD5",
            AuthAlg::HmacSha1 => "HMAC-SHA-1",
            AuthAlg::HmacSha256 => "HMAC-SHA-256",
            AuthAlg::HmacSha384 => "HMAC-SHA-384",
            AuthAlg::HmacSha512 => "HMAC-SHA-512",
        }
    }
}

/// Encryption algorithms (ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    /// No algorithm chosen (`any`); ESP refuses it (diagnostic 41).
    None,
    DesCbc,
    TripleDesCbc,
    BlowfishCbc,
    /// ESP NULL (RFC 2410): no key, needs an authentication algorithm.
    Null,
    AesCbc,
    /// Simulator extension (RFC 3686), id 13 as on Linux and FreeBSD.
    AesCtr,
    AesCcm8,
    AesCcm12,
    AesCcm16,
    AesGcm8,
    AesGcm12,
    AesGcm16,
    /// Simulator extension (RFC 4543, ENCR_NULL_AUTH_AES_GMAC), id 23 as on
    /// Linux.
    AesGmac,
    /// Simulator extension (RFC 7634), id 31: no PF_KEY dialect has a
    /// number for it that does not clash with illumos's table.
    ChaCha20Poly1305,
}

impl EncrAlg {
    /// Wireshark's name in its `esp_sa` table (`esp_encryption_type_vals`),
    /// or `None` when Wireshark cannot decrypt this algorithm.
    pub fn wireshark_name(self) -> Option<&'static str> {
        Some(match self {
            EncrAlg::Null => "NULL",
            EncrAlg::DesCbc => "DES-CBC [RFC2405]",
            EncrAlg::TripleDesCbc => "TripleDES-CBC [RFC2451]",
            EncrAlg::BlowfishCbc => "BLOWFISH-CBC [RFC2451]",
            EncrAlg::AesCbc => "AES-CBC [RFC3602]",
            EncrAlg::AesCtr => "AES-CTR [RFC3686]",
            EncrAlg::AesGcm8 => "AES-GCM with 8 octet ICV [RFC4106]",
            EncrAlg::AesGcm12 => "AES-GCM with 12 octet ICV [RFC4106]",
            EncrAlg::AesGcm16 => "AES-GCM with 16 octet ICV [RFC4106]",
            EncrAlg::None
            | EncrAlg::AesCcm8
            | EncrAlg::AesCcm12
            | EncrAlg::AesCcm16
            | EncrAlg::AesGmac
            | EncrAlg::ChaCha20Poly1305 => return None,
        })
    }

    /// Every encryption algorithm, `None` included.
    pub const ALL: &'static [EncrAlg] = &[
        EncrAlg::None,
        EncrAlg::DesCbc,
        EncrAlg::TripleDesCbc,
        EncrAlg::BlowfishCbc,
        EncrAlg::Null,
        EncrAlg::AesCbc,
        EncrAlg::AesCtr,
        EncrAlg::AesCcm8,
        EncrAlg::AesCcm12,
        EncrAlg::AesCcm16,
        EncrAlg::AesGcm8,
        EncrAlg::AesGcm12,
        EncrAlg::AesGcm16,
        EncrAlg::AesGmac,
        EncrAlg::ChaCha20Poly1305,
    ];

    /// The number in `sadb_sa_encrypt` and `sadb_alg_id`.
    ///
    /// `Dialect::Illumos` is the simulator's native numbering: the illumos
    /// table plus the extensions AES-CTR 13, AES-GMAC 23 and
    /// ChaCha20-Poly1305 31.
    ///
    /// `Dialect::Linux` has no number for any AEAD algorithm (CCM, GCM,
    /// GMAC, ChaCha20-Poly1305): Linux keeps them in a separate AEAD list
    /// that af_key never consults, so an ADD naming one fails with ENOSYS
    /// and REGISTER never offers one (pfkey-v2-wire.md 4.2). Such SAs can
    /// only be made through XFRM netlink, and PF_KEY reports them with
    /// encrypt 0.
    pub fn id(self, d: Dialect) -> Option<u8> {
        let id = match self {
            EncrAlg::None => 0,
            EncrAlg::DesCbc => 2,
            EncrAlg::TripleDesCbc => 3,
            EncrAlg::BlowfishCbc => 7,
            EncrAlg::Null => 11,
            EncrAlg::AesCbc => 12,
            EncrAlg::AesCtr => 13,
            EncrAlg::AesCcm8 => 14,
            EncrAlg::AesCcm12 => 15,
            EncrAlg::AesCcm16 => 16,
            EncrAlg::AesGcm8 => 18,
            EncrAlg::AesGcm12 => 19,
            EncrAlg::AesGcm16 => 20,
            EncrAlg::AesGmac => 23,
            EncrAlg::ChaCha20Poly1305 => 31,
        };
        match d {
            Dialect::Illumos => Some(id),
            Dialect::Linux if self.is_aead() => None,
            Dialect::Linux => Some(id),
        }
    }

    /// The algorithm with wire number `id` in dialect `d`.
    pub fn from_id(id: u8, d: Dialect) -> Option<EncrAlg> {
        EncrAlg::ALL.iter().copied().find(|a| a.id(d) == Some(id))
    }

    /// The names ipseckey accepts; the first is the one get, dump and save
    /// print (ipseckey-behaviour.md 1.8; the extensions' names are ours).
    pub fn names(self) -> &'static [&'static str] {
        match self {
            EncrAlg::None => &["any"],
            EncrAlg::DesCbc => &["des-cbc", "des"],
            EncrAlg::TripleDesCbc => &["3des-cbc", "3des"],
            EncrAlg::BlowfishCbc => &["blowfish-cbc", "blowfish"],
            EncrAlg::Null => &["null"],
            EncrAlg::AesCbc => &["aes-cbc", "aes"],
            EncrAlg::AesCtr => &["aes-ctr", "aesctr"],
            EncrAlg::AesCcm8 => &["aes-ccm8"],
            EncrAlg::AesCcm12 => &["aes-ccm12"],
            EncrAlg::AesCcm16 => &["aes-ccm", "aes-ccm16"],
            EncrAlg::AesGcm8 => &["aes-gcm8"],
            EncrAlg::AesGcm12 => &["aes-gcm12"],
            EncrAlg::AesGcm16 => &["aes-gcm", "aes-gcm16"],
            EncrAlg::AesGmac => &["aes-gmac", "null-aes-gmac"],
            EncrAlg::ChaCha20Poly1305 => &["chacha20-poly1305", "chacha20poly1305", "chacha"],
        }
    }

    /// The canonical name (the first of [`names`](Self::names)).
    pub fn name(self) -> &'static str {
        self.names().first().copied().unwrap_or("")
    }

    /// The algorithm one of whose names is `s`, ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<EncrAlg> {
        EncrAlg::ALL
            .iter()
            .copied()
            .find(|a| a.names().iter().any(|n| n.eq_ignore_ascii_case(s)))
    }

    /// Legal key sizes, salt excluded. DES and 3DES count their parity bits;
    /// Blowfish follows the current illumos table (128 only).
    pub fn key_bits(self) -> KeyBits {
        match self {
            EncrAlg::None | EncrAlg::Null => KeyBits::fixed(0),
            EncrAlg::DesCbc => KeyBits::fixed(64),
            EncrAlg::TripleDesCbc => KeyBits::fixed(192),
            EncrAlg::BlowfishCbc => KeyBits::fixed(128),
            EncrAlg::AesCbc
            | EncrAlg::AesCtr
            | EncrAlg::AesCcm8
            | EncrAlg::AesCcm12
            | EncrAlg::AesCcm16
            | EncrAlg::AesGcm8
            | EncrAlg::AesGcm12
            | EncrAlg::AesGcm16
            | EncrAlg::AesGmac => KeyBits::range(128, 256, 64),
            EncrAlg::ChaCha20Poly1305 => KeyBits::fixed(256),
        }
    }

    /// Salt (nonce) bits carried after the key in the key extension:
    /// RFC 4309 (CCM) 24; RFC 3686 (CTR), 4106 (GCM), 4543 (GMAC) and
    /// 7634 (ChaCha20-Poly1305) 32.
    pub fn salt_bits(self) -> u16 {
        match self {
            EncrAlg::AesCcm8 | EncrAlg::AesCcm12 | EncrAlg::AesCcm16 => 24,
            EncrAlg::AesCtr
            | EncrAlg::AesGcm8
            | EncrAlg::AesGcm12
            | EncrAlg::AesGcm16
            | EncrAlg::AesGmac
            | EncrAlg::ChaCha20Poly1305 => 32,
            _ => 0,
        }
    }

    /// ICV length in bytes of the combined-mode algorithms; 0 for the
    /// others (their ICV comes from the authentication algorithm).
    pub fn icv_len(self) -> usize {
        match self {
            EncrAlg::AesCcm8 | EncrAlg::AesGcm8 => 8,
            EncrAlg::AesCcm12 | EncrAlg::AesGcm12 => 12,
            EncrAlg::AesCcm16
            | EncrAlg::AesGcm16
            | EncrAlg::AesGmac
            | EncrAlg::ChaCha20Poly1305 => 16,
            _ => 0,
        }
    }

    /// The payload's alignment unit in bytes: the cipher block for CBC,
    /// 1 for stream-like modes and NULL (RFC 4303 2.4 still pads to 4).
    /// `None` also says 1, so that nobody divides by zero.
    pub fn block_len(self) -> usize {
        match self {
            EncrAlg::DesCbc | EncrAlg::TripleDesCbc | EncrAlg::BlowfishCbc => 8,
            EncrAlg::AesCbc => 16,
            _ => 1,
        }
    }

    /// Bytes of IV carried in each packet: the block for CBC, 8 for the
    /// counter-based modes, none for NULL.
    pub fn iv_len(self) -> usize {
        match self {
            EncrAlg::None | EncrAlg::Null => 0,
            EncrAlg::DesCbc | EncrAlg::TripleDesCbc | EncrAlg::BlowfishCbc => 8,
            EncrAlg::AesCbc => 16,
            EncrAlg::AesCtr
            | EncrAlg::AesCcm8
            | EncrAlg::AesCcm12
            | EncrAlg::AesCcm16
            | EncrAlg::AesGcm8
            | EncrAlg::AesGcm12
            | EncrAlg::AesGcm16
            | EncrAlg::AesGmac
            | EncrAlg::ChaCha20Poly1305 => 8,
        }
    }

    /// Combined-mode (AEAD) algorithms: they authenticate by themselves.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            EncrAlg::AesCcm8
                | EncrAlg::AesCcm12
                | EncrAlg::AesCcm16
                | EncrAlg::AesGcm8
                | EncrAlg::AesGcm12
                | EncrAlg::AesGcm16
                | EncrAlg::AesGmac
                | EncrAlg::ChaCha20Poly1305
        )
    }

    /// Counter-based algorithms, for which ipseckey warns that manual keying
    /// may be insecure (a counter reused under the same key after a reboot
    /// gives the keystream away).
    pub fn is_counter_mode(self) -> bool {
        self == EncrAlg::AesCtr || self.is_aead()
    }

    /// Whether an ESP SA with this algorithm needs an authentication
    /// algorithm as well: every non-AEAD one, ESP NULL included.
    pub fn needs_auth_alg(self) -> bool {
        !self.is_aead()
    }

    /// A human name.
    pub fn display_name(self) -> &'static str {
        match self {
            EncrAlg::None => "none",
            EncrAlg::DesCbc => "DES-CBC",
            EncrAlg::TripleDesCbc => "3DES-CBC",
            EncrAlg::BlowfishCbc => "Blowfish-CBC",
            EncrAlg::Null => "NULL",
            EncrAlg::AesCbc => "AES-CBC",
            EncrAlg::AesCtr => "AES-CTR",
            EncrAlg::AesCcm8 => "AES-CCM-8",
            EncrAlg::AesCcm12 => "AES-CCM-12",
            EncrAlg::AesCcm16 => "AES-CCM-16",
            EncrAlg::AesGcm8 => "AES-GCM-8",
            EncrAlg::AesGcm12 => "AES-GCM-12",
            EncrAlg::AesGcm16 => "AES-GCM-16",
            EncrAlg::AesGmac => "AES-GMAC",
            EncrAlg::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }
}

/// The kernel's check of an authentication key (ipseckey-behaviour.md 5.8).
///
/// `bits` is the key extension's `sadb_key_bits`. The socket layer has
/// already refused zero-bit, mis-sized and all-zero keys (diagnostic 34).
pub fn check_auth_key(alg: AuthAlg, bits: u16, key: &KeyMaterial) -> Result<(), Diagnostic> {
    if alg == AuthAlg::None {
        return Err(Diagnostic::BadAalg);
    }
    if !alg.key_bits().allows(bits) || key.len() < usize::from(bits).div_ceil(8) {
        return Err(Diagnostic::BadAkeybits);
    }
    // RFC 2104 accepts any HMAC key: there is no weak-key check (48 is
    // never returned for the algorithms here).
    Ok(())
}

/// The kernel's check of an encryption key (ipseckey-behaviour.md 5.8,
/// decisions.md kernel #5).
///
/// `bits` is the key extension's `sadb_key_bits` and `iv_bits` its
/// `sadb_key_reserved`. The key material is laid out key, salt, IV bits;
/// the IV and salt bits are subtracted before the size check. DES and
/// 3DES keys have their parity corrected in place, as illumos stores and
/// shows them; the correction happens even when the key is then refused.
pub fn check_encr_key(
    alg: EncrAlg,
    bits: u16,
    iv_bits: u16,
    key: &mut KeyMaterial,
) -> Result<(), Diagnostic> {
    match alg {
        EncrAlg::None => return Err(Diagnostic::BadEalg),
        // ESP NULL takes no key; illumos answers a key with "bad bits".
        EncrAlg::Null => return Err(Diagnostic::BadEkeybits),
        _ => {}
    }
    let key_bits = bits
        .checked_sub(iv_bits)
        .and_then(|b| b.checked_sub(alg.salt_bits()))
        .ok_or(Diagnostic::BadEkeybits)?;
    if !alg.key_bits().allows(key_bits) || key.len() < usize::from(bits).div_ceil(8) {
        return Err(Diagnostic::BadEkeybits);
    }
    let weak = match alg {
        EncrAlg::DesCbc => {
            let k = key
                .expose_mut()
                .first_chunk_mut::<8>()
                .ok_or(Diagnostic::BadEkeybits)?;
            des_fix_parity(k);
            des_is_weak(k)
        }
        EncrAlg::TripleDesCbc => {
            let k = key
                .expose_mut()
                .first_chunk_mut::<24>()
                .ok_or(Diagnostic::BadEkeybits)?;
            des_fix_parity(k);
            des3_is_weak(k)
        }
        // AES, Blowfish, ChaCha20: no weak keys.
        _ => false,
    };
    if weak {
        Err(Diagnostic::WeakEkey)
    } else {
        Ok(())
    }
}

/// Sets each byte's least significant bit so that the byte has an odd
/// number of one bits (the DES parity convention, FIPS 46-3).
pub fn des_fix_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        let high = *b & 0xfe;
        // Without a branch on key bits: 1 when the upper seven are even.
        *b = high | ((high.count_ones() as u8 & 1) ^ 1);
    }
}

/// The 4 weak and 12 semi-weak DES keys of the standard table (NIST SP
/// 800-67 3.3.2), with odd parity. illumos's x86 kernels compare against a
/// byte-reversed copy of the semi-weak part; decisions.md #5 says to use
/// the correct one.
const DES_WEAK_KEYS: [[u8; 8]; 16] = [
    // Weak.
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0x1f, 0x1f, 0x1f, 0x1f, 0x0e, 0x0e, 0x0e, 0x0e],
    [0xe0, 0xe0, 0xe0, 0xe0, 0xf1, 0xf1, 0xf1, 0xf1],
    [0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe],
    // Semi-weak, in pairs.
    [0x01, 0xfe, 0x01, 0xfe, 0x01, 0xfe, 0x01, 0xfe],
    [0xfe, 0x01, 0xfe, 0x01, 0xfe, 0x01, 0xfe, 0x01],
    [0x1f, 0xe0, 0x1f, 0xe0, 0x0e, 0xf1, 0x0e, 0xf1],
    [0xe0, 0x1f, 0xe0, 0x1f, 0xf1, 0x0e, 0xf1, 0x0e],
    [0x01, 0xe0, 0x01, 0xe0, 0x01, 0xf1, 0x01, 0xf1],
    [0xe0, 0x01, 0xe0, 0x01, 0xf1, 0x01, 0xf1, 0x01],
    [0x1f, 0xfe, 0x1f, 0xfe, 0x0e, 0xfe, 0x0e, 0xfe],
    [0xfe, 0x1f, 0xfe, 0x1f, 0xfe, 0x0e, 0xfe, 0x0e],
    [0x01, 0x1f, 0x01, 0x1f, 0x01, 0x0e, 0x01, 0x0e],
    [0x1f, 0x01, 0x1f, 0x01, 0x0e, 0x01, 0x0e, 0x01],
    [0xe0, 0xfe, 0xe0, 0xfe, 0xf1, 0xfe, 0xf1, 0xfe],
    [0xfe, 0xe0, 0xfe, 0xe0, 0xfe, 0xf1, 0xfe, 0xf1],
];

/// Whether an 8-byte DES key is one of the 4 weak or 12 semi-weak keys,
/// parity bits ignored. Compares against the whole table without early
/// exit. A slice that is not 8 bytes long is not a DES key: false.
pub fn des_is_weak(key8: &[u8]) -> bool {
    bool::from(des_weak_choice(key8))
}

fn des_weak_choice(key8: &[u8]) -> Choice {
    if key8.len() != 8 {
        return Choice::from(0);
    }
    let mut masked = [0u8; 8];
    for (m, b) in masked.iter_mut().zip(key8) {
        *m = b & 0xfe;
    }
    let mut hit = Choice::from(0);
    for weak in &DES_WEAK_KEYS {
        let w = weak.map(|b| b & 0xfe);
        hit |= masked[..].ct_eq(&w[..]);
    }
    masked.zeroize();
    hit
}

/// 3DES (K1 K2 K3, parity already corrected): weak if any subkey is weak or
/// semi-weak, or K1 = K2, or K2 = K3 (either makes it single DES). K1 = K3
/// is two-key 3DES, which illumos accepts.
fn des3_is_weak(key24: &[u8; 24]) -> bool {
    let mut sub = key24.chunks_exact(8);
    let (Some(k1), Some(k2), Some(k3)) = (sub.next(), sub.next(), sub.next()) else {
        return true;
    };
    let weak = des_weak_choice(k1)
        | des_weak_choice(k2)
        | des_weak_choice(k3)
        | k1.ct_eq(k2)
        | k2.ct_eq(k3);
    bool::from(weak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const DIALECTS: [Dialect; 2] = [Dialect::Illumos, Dialect::Linux];

    fn km(h: &str) -> KeyMaterial {
        KeyMaterial::new(hex::decode(h).unwrap_or_else(|e| panic!("bad hex {h}: {e}")))
    }

    fn encr(alg: EncrAlg, bits: u16, iv_bits: u16, h: &str) -> Result<String, Diagnostic> {
        let mut k = km(h);
        check_encr_key(alg, bits, iv_bits, &mut k).map(|()| hex::encode(k.expose()))
    }

    /// A key of `bits` bits (rounded up to bytes) that no check calls weak.
    fn key_of(bits: u16) -> KeyMaterial {
        KeyMaterial::new(
            (0..usize::from(bits).div_ceil(8))
                .map(|i| 0x31u8.wrapping_add((i as u8).wrapping_mul(7)))
                .collect(),
        )
    }

    #[test]
    fn every_name_round_trips() {
        for &a in AuthAlg::ALL {
            for n in a.names() {
                assert_eq!(AuthAlg::from_name(n), Some(a), "{n}");
                assert_eq!(AuthAlg::from_name(&n.to_ascii_uppercase()), Some(a), "{n}");
            }
        }
        for &a in EncrAlg::ALL {
            for n in a.names() {
                assert_eq!(EncrAlg::from_name(n), Some(a), "{n}");
                assert_eq!(EncrAlg::from_name(&n.to_ascii_uppercase()), Some(a), "{n}");
            }
        }
        assert_eq!(AuthAlg::from_name("hmac-sha2"), None);
        assert_eq!(EncrAlg::from_name("aes-gcm4"), None);
        assert_eq!(EncrAlg::from_name(""), None);
    }

    #[test]
    fn canonical_names_are_the_illumos_ones() {
        let auth: Vec<_> = AuthAlg::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            auth,
            [
                "none",
                "hmac-md5",
                "hmac-sha1",
                "hmac-sha256",
                "hmac-sha384",
                "hmac-sha512"
            ]
        );
        assert_eq!(
            AuthAlg::HmacSha1.names(),
            [
                "hmac-sha1",
                "sha",
                "sha1",
                "sha-1",
                "hmac-sha",
                "hmac-sha-1"
            ]
        );
        let encr: Vec<_> = EncrAlg::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            encr,
            [
                "any",
                "des-cbc",
                "3des-cbc",
                "blowfish-cbc",
                "null",
                "aes-cbc",
                "aes-ctr",
                "aes-ccm8",
                "aes-ccm12",
                "aes-ccm",
                "aes-gcm8",
                "aes-gcm12",
                "aes-gcm",
                "aes-gmac",
                "chacha20-poly1305"
            ]
        );
        // The manual page's synonyms.
        for (n, a) in [
            ("sha-256", AuthAlg::HmacSha256),
            ("hmac-sha384", AuthAlg::HmacSha384),
            ("md5", AuthAlg::HmacMd5),
        ] {
            assert_eq!(AuthAlg::from_name(n), Some(a));
        }
        for (n, a) in [
            ("des", EncrAlg::DesCbc),
            ("3des", EncrAlg::TripleDesCbc),
            ("blowfish", EncrAlg::BlowfishCbc),
            ("aes", EncrAlg::AesCbc),
        ] {
            assert_eq!(EncrAlg::from_name(n), Some(a));
        }
    }

    #[test]
    fn names_are_unique_within_each_table() {
        let mut seen = HashSet::new();
        for a in AuthAlg::ALL {
            for n in a.names() {
                assert!(seen.insert(n.to_ascii_lowercase()), "{n}");
            }
        }
        let mut seen = HashSet::new();
        for a in EncrAlg::ALL {
            for n in a.names() {
                assert!(seen.insert(n.to_ascii_lowercase()), "{n}");
            }
        }
    }

    #[test]
    fn every_id_round_trips_per_dialect() {
        for d in DIALECTS {
            let mut seen = HashSet::new();
            for &a in AuthAlg::ALL {
                let id = a.id(d);
                assert!(id.is_some(), "{a:?}");
                if let Some(id) = id {
                    assert!(seen.insert(id));
                    assert_eq!(AuthAlg::from_id(id, d), Some(a));
                }
            }
            let mut seen = HashSet::new();
            for &a in EncrAlg::ALL {
                if let Some(id) = a.id(d) {
                    assert!(seen.insert(id));
                    assert_eq!(EncrAlg::from_id(id, d), Some(a));
                }
            }
        }
        for id in 0..=255u8 {
            for d in DIALECTS {
                if let Some(a) = AuthAlg::from_id(id, d) {
                    assert_eq!(a.id(d), Some(id));
                }
                if let Some(a) = EncrAlg::from_id(id, d) {
                    assert_eq!(a.id(d), Some(id));
                }
            }
        }
    }

    #[test]
    fn illumos_numbers() {
        let auth: Vec<_> = AuthAlg::ALL
            .iter()
            .filter_map(|a| a.id(Dialect::Illumos))
            .collect();
        assert_eq!(auth, [0, 2, 3, 5, 6, 7]);
        let encr: Vec<_> = EncrAlg::ALL
            .iter()
            .filter_map(|a| a.id(Dialect::Illumos))
            .collect();
        assert_eq!(
            encr,
            [0, 2, 3, 7, 11, 12, 13, 14, 15, 16, 18, 19, 20, 23, 31]
        );
        assert_eq!(EncrAlg::from_id(17, Dialect::Illumos), None);
        assert_eq!(AuthAlg::from_id(4, Dialect::Illumos), None);
    }

    #[test]
    fn linux_has_no_id_for_aead() {
        for &a in EncrAlg::ALL {
            assert_eq!(a.id(Dialect::Linux).is_none(), a.is_aead(), "{a:?}");
            if !a.is_aead() {
                assert_eq!(a.id(Dialect::Linux), a.id(Dialect::Illumos));
            }
        }
        for id in [14, 15, 16, 18, 19, 20, 23, 31] {
            assert_eq!(EncrAlg::from_id(id, Dialect::Linux), None);
        }
        assert_eq!(EncrAlg::from_id(13, Dialect::Linux), Some(EncrAlg::AesCtr));
    }

    #[test]
    fn sizes() {
        assert_eq!(AuthAlg::HmacSha256.icv_len(), 16);
        assert_eq!(AuthAlg::HmacSha256.linux_pfkey_icv_len(), 12);
        assert_eq!(AuthAlg::HmacSha1.linux_pfkey_icv_len(), 12);
        assert_eq!(AuthAlg::HmacSha512.linux_pfkey_icv_len(), 32);
        for &a in AuthAlg::ALL {
            assert_eq!(usize::from(a.key_bits().max), a.digest_len() * 8);
            assert!(a.icv_len() <= a.digest_len());
        }
        assert_eq!(AuthAlg::HmacSha384.block_len(), 128);
        assert_eq!(EncrAlg::AesGcm8.icv_len(), 8);
        assert_eq!(EncrAlg::AesCcm12.icv_len(), 12);
        assert_eq!(EncrAlg::ChaCha20Poly1305.icv_len(), 16);
        assert_eq!(EncrAlg::AesCbc.icv_len(), 0);
        assert_eq!(EncrAlg::AesCbc.iv_len(), 16);
        assert_eq!(EncrAlg::AesCtr.block_len(), 1);
        assert_eq!(EncrAlg::Null.iv_len(), 0);
        assert_eq!(EncrAlg::AesCcm8.salt_bits(), 24);
        assert_eq!(EncrAlg::AesGmac.salt_bits(), 32);
        assert!(EncrAlg::Null.needs_auth_alg());
        assert!(!EncrAlg::AesGcm16.needs_auth_alg());
        assert!(EncrAlg::AesCtr.is_counter_mode() && !EncrAlg::AesCtr.is_aead());
        assert!(!EncrAlg::AesCbc.is_counter_mode());
        for &a in EncrAlg::ALL {
            assert!(a.block_len() >= 1);
            assert_eq!(a.is_aead(), a.icv_len() > 0);
            let kb = a.key_bits();
            assert!(kb.min <= kb.max);
            assert!(kb.step == 0 || (kb.max - kb.min) % kb.step == 0);
        }
        assert_eq!(AuthAlg::HmacSha256.display_name(), "HMAC-SHA-256");
        assert_eq!(EncrAlg::AesGcm16.display_name(), "AES-GCM-16");
    }

    #[test]
    fn parity_is_corrected_and_written_back() {
        assert_eq!(
            encr(EncrAlg::DesCbc, 64, 0, "be02938e7def2839"),
            Ok("bf02928f7cef2938".into())
        );
        let mut k = hex::decode("be02938e7def2839").unwrap_or_default();
        des_fix_parity(&mut k);
        assert_eq!(hex::encode(&k), "bf02928f7cef2938");
    }

    #[test]
    fn parity_correction_can_make_a_key_weak() {
        let mut k = hex::decode("0001000100010001").unwrap_or_default();
        des_fix_parity(&mut k);
        assert_eq!(hex::encode(&k), "0101010101010101");
        assert!(des_is_weak(&k));
        let mut km = km("0001000100010001");
        assert_eq!(
            check_encr_key(EncrAlg::DesCbc, 64, 0, &mut km),
            Err(Diagnostic::WeakEkey)
        );
        assert_eq!(hex::encode(km.expose()), "0101010101010101");
    }

    #[test]
    fn every_weak_and_semi_weak_key_is_refused() {
        for w in &DES_WEAK_KEYS {
            let flipped: Vec<u8> = w.iter().map(|b| b ^ 1).collect();
            for k in [w.to_vec(), flipped] {
                assert!(des_is_weak(&k), "{}", hex::encode(&k));
                let mut km = KeyMaterial::new(k.clone());
                assert_eq!(
                    check_encr_key(EncrAlg::DesCbc, 64, 0, &mut km),
                    Err(Diagnostic::WeakEkey),
                    "{}",
                    hex::encode(&k)
                );
                assert_eq!(Diagnostic::WeakEkey.code(), 47);
            }
        }
    }

    #[test]
    fn illumos_x86_byte_reversed_keys_are_not_weak() {
        // decisions.md #5: the standard table, not illumos's reversed one.
        for h in [
            "f10ef10ee01fe01f",
            "0ef10ef11fe01fe0",
            "010e010e011f011f",
            "fef1fef1fee0fee0",
        ] {
            assert!(encr(EncrAlg::DesCbc, 64, 0, h).is_ok(), "{h}");
        }
    }

    #[test]
    fn good_des_keys_are_accepted() {
        assert!(encr(EncrAlg::DesCbc, 64, 0, "be02938e7def2839").is_ok());
        assert_eq!(
            encr(EncrAlg::DesCbc, 64, 0, "0123456789abcdef"),
            Ok("0123456789abcdef".into())
        );
        assert!(!des_is_weak(&[0x01; 7]));
        assert!(!des_is_weak(&[0x01; 9]));
    }

    #[test]
    fn triple_des_subkey_rules() {
        let (a, b, c) = ("0123456789abcdef", "fedcba9876543210", "be02938e7def2839");
        let t = |k: String| encr(EncrAlg::TripleDesCbc, 192, 0, &k);
        assert!(t(format!("{a}{b}{c}")).is_ok());
        assert_eq!(
            t(format!("{a}{a}{c}")),
            Err(Diagnostic::WeakEkey),
            "K1 == K2"
        );
        assert_eq!(
            t(format!("{a}{b}{b}")),
            Err(Diagnostic::WeakEkey),
            "K2 == K3"
        );
        assert_eq!(
            t(format!("{a}{b}{a}")),
            Ok(format!("{a}{b}{a}")),
            "K1 == K3 is two-key 3DES"
        );
        // Equal once the parity bits are corrected.
        assert_eq!(
            t(format!("{a}{b}{}", "ffdcbb9977553311")),
            Err(Diagnostic::WeakEkey)
        );
        for w in ["0101010101010101", "1f011f010e010e01", "fefefefefefefefe"] {
            assert_eq!(
                t(format!("{a}{b}{w}")),
                Err(Diagnostic::WeakEkey),
                "weak K3 {w}"
            );
            assert_eq!(
                t(format!("{w}{a}{b}")),
                Err(Diagnostic::WeakEkey),
                "weak K1 {w}"
            );
            assert_eq!(
                t(format!("{a}{w}{b}")),
                Err(Diagnostic::WeakEkey),
                "weak K2 {w}"
            );
        }
        // Every subkey's parity is corrected and written back.
        assert_eq!(
            t(format!("be02938e7def2839{a}{b}")),
            Ok(format!("bf02928f7cef2938{a}{b}"))
        );
    }

    #[test]
    fn encryption_key_lengths() {
        let ok = |alg: EncrAlg, bits: u16, iv: u16| {
            let mut k = key_of(bits);
            check_encr_key(alg, bits, iv, &mut k)
        };
        for bits in [128, 192, 256] {
            assert_eq!(ok(EncrAlg::AesCbc, bits, 0), Ok(()), "aes-cbc {bits}");
        }
        for bits in [0, 64, 120, 160, 320] {
            assert_eq!(
                ok(EncrAlg::AesCbc, bits, 0),
                Err(Diagnostic::BadEkeybits),
                "aes-cbc {bits}"
            );
        }
        for alg in [
            EncrAlg::AesGcm8,
            EncrAlg::AesGcm12,
            EncrAlg::AesGcm16,
            EncrAlg::AesGmac,
            EncrAlg::AesCtr,
        ] {
            for bits in [160, 224, 288] {
                assert_eq!(ok(alg, bits, 0), Ok(()), "{alg:?} {bits}");
            }
            for bits in [128, 192, 256, 152, 296, 352] {
                assert_eq!(
                    ok(alg, bits, 0),
                    Err(Diagnostic::BadEkeybits),
                    "{alg:?} {bits}"
                );
            }
        }
        for alg in [EncrAlg::AesCcm8, EncrAlg::AesCcm12, EncrAlg::AesCcm16] {
            for bits in [152, 216, 280] {
                assert_eq!(ok(alg, bits, 0), Ok(()), "{alg:?} {bits}");
            }
            for bits in [128, 160, 256, 288] {
                assert_eq!(
                    ok(alg, bits, 0),
                    Err(Diagnostic::BadEkeybits),
                    "{alg:?} {bits}"
                );
            }
        }
        assert_eq!(ok(EncrAlg::ChaCha20Poly1305, 288, 0), Ok(()));
        assert_eq!(
            ok(EncrAlg::ChaCha20Poly1305, 256, 0),
            Err(Diagnostic::BadEkeybits)
        );
        assert_eq!(ok(EncrAlg::BlowfishCbc, 128, 0), Ok(()));
        assert_eq!(
            ok(EncrAlg::BlowfishCbc, 136, 0),
            Err(Diagnostic::BadEkeybits)
        );
        assert_eq!(
            ok(EncrAlg::BlowfishCbc, 448, 0),
            Err(Diagnostic::BadEkeybits)
        );
        assert_eq!(ok(EncrAlg::DesCbc, 56, 0), Err(Diagnostic::BadEkeybits));
        assert_eq!(ok(EncrAlg::DesCbc, 128, 0), Err(Diagnostic::BadEkeybits));
        assert_eq!(
            ok(EncrAlg::TripleDesCbc, 128, 0),
            Err(Diagnostic::BadEkeybits)
        );
        assert_eq!(ok(EncrAlg::TripleDesCbc, 192, 0), Ok(()));
        // IV bits (sadb_key_reserved) come off before the size check.
        assert_eq!(ok(EncrAlg::AesCbc, 128 + 64, 64), Ok(()));
        assert_eq!(ok(EncrAlg::AesGcm16, 160 + 64, 64), Ok(()));
        assert_eq!(ok(EncrAlg::AesCbc, 128, 64), Err(Diagnostic::BadEkeybits));
        // Underflow.
        assert_eq!(ok(EncrAlg::AesGcm16, 16, 0), Err(Diagnostic::BadEkeybits));
        assert_eq!(ok(EncrAlg::AesCbc, 128, 200), Err(Diagnostic::BadEkeybits));
        assert_eq!(
            ok(EncrAlg::AesCbc, 128, u16::MAX),
            Err(Diagnostic::BadEkeybits)
        );
    }

    #[test]
    fn short_key_material_is_refused() {
        let mut k = key_of(120);
        assert_eq!(
            check_encr_key(EncrAlg::AesCbc, 128, 0, &mut k),
            Err(Diagnostic::BadEkeybits)
        );
        let mut k = key_of(56);
        assert_eq!(
            check_encr_key(EncrAlg::DesCbc, 64, 0, &mut k),
            Err(Diagnostic::BadEkeybits)
        );
        let mut k = key_of(184);
        assert_eq!(
            check_encr_key(EncrAlg::TripleDesCbc, 192, 0, &mut k),
            Err(Diagnostic::BadEkeybits)
        );
        let k = key_of(152);
        assert_eq!(
            check_auth_key(AuthAlg::HmacSha1, 160, &k),
            Err(Diagnostic::BadAkeybits)
        );
    }

    #[test]
    fn null_none_and_auth_none() {
        let mut k = key_of(128);
        assert_eq!(
            check_encr_key(EncrAlg::Null, 128, 0, &mut k),
            Err(Diagnostic::BadEkeybits)
        );
        assert_eq!(
            check_encr_key(EncrAlg::Null, 0, 0, &mut k),
            Err(Diagnostic::BadEkeybits)
        );
        assert_eq!(Diagnostic::BadEkeybits.code(), 45);
        assert_eq!(
            check_encr_key(EncrAlg::None, 128, 0, &mut k),
            Err(Diagnostic::BadEalg)
        );
        assert_eq!(Diagnostic::BadEalg.code(), 41);
        assert_eq!(
            check_auth_key(AuthAlg::None, 128, &k),
            Err(Diagnostic::BadAalg)
        );
    }

    #[test]
    fn authentication_key_lengths() {
        let chk = |alg: AuthAlg, bits: u16| check_auth_key(alg, bits, &key_of(bits));
        assert_eq!(chk(AuthAlg::HmacSha1, 160), Ok(()));
        assert_eq!(chk(AuthAlg::HmacSha1, 128), Err(Diagnostic::BadAkeybits));
        assert_eq!(Diagnostic::BadAkeybits.code(), 44);
        for (alg, bits) in [
            (AuthAlg::HmacMd5, 128),
            (AuthAlg::HmacSha256, 256),
            (AuthAlg::HmacSha384, 384),
            (AuthAlg::HmacSha512, 512),
        ] {
            assert_eq!(chk(alg, bits), Ok(()), "{alg:?}");
            assert_eq!(chk(alg, bits - 8), Err(Diagnostic::BadAkeybits), "{alg:?}");
            assert_eq!(chk(alg, bits + 8), Err(Diagnostic::BadAkeybits), "{alg:?}");
        }
        // HMAC keys are never weak.
        assert_eq!(
            check_auth_key(
                AuthAlg::HmacMd5,
                128,
                &km("01010101010101010101010101010101")
            ),
            Ok(())
        );
    }

    #[test]
    fn key_bits_allows() {
        let r = KeyBits::range(128, 256, 64);
        assert!(r.allows(128) && r.allows(192) && r.allows(256));
        assert!(!r.allows(160) && !r.allows(64) && !r.allows(320) && !r.allows(0));
        let f = KeyBits::fixed(160);
        assert!(f.allows(160) && !f.allows(159) && !f.allows(161));
        // A zero step with min < max still means min only.
        assert!(!KeyBits {
            min: 8,
            max: 16,
            step: 0
        }
        .allows(16));
    }

    proptest! {
        #[test]
        fn check_encr_key_never_panics(
            alg in 0..EncrAlg::ALL.len(),
            bits in prop_oneof![any::<u16>(), 0u16..400],
            iv_bits in prop_oneof![Just(0u16), 0u16..200, any::<u16>()],
            bytes in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let alg = EncrAlg::ALL.get(alg).copied().unwrap_or(EncrAlg::None);
            let mut k = KeyMaterial::new(bytes.clone());
            let r = check_encr_key(alg, bits, iv_bits, &mut k);
            prop_assert_eq!(k.len(), bytes.len());
            if r.is_ok() && matches!(alg, EncrAlg::DesCbc | EncrAlg::TripleDesCbc) {
                let n = if alg == EncrAlg::DesCbc { 8 } else { 24 };
                prop_assert!(k.expose().iter().take(n).all(|b| b.count_ones() % 2 == 1));
            }
        }

        #[test]
        fn check_auth_key_never_panics(
            alg in 0..AuthAlg::ALL.len(),
            bits in any::<u16>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let alg = AuthAlg::ALL.get(alg).copied().unwrap_or(AuthAlg::None);
            let _ = check_auth_key(alg, bits, &KeyMaterial::new(bytes));
        }

        #[test]
        fn parity_fix_is_idempotent_and_keeps_the_key_bits(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut once = bytes.clone();
            des_fix_parity(&mut once);
            let mut twice = once.clone();
            des_fix_parity(&mut twice);
            prop_assert_eq!(&once, &twice);
            for (a, b) in once.iter().zip(&bytes) {
                prop_assert_eq!(a & 0xfe, b & 0xfe);
                prop_assert_eq!(a.count_ones() % 2, 1);
            }
        }

        #[test]
        fn weakness_ignores_parity_bits(key in proptest::array::uniform8(any::<u8>()), flips in any::<u8>()) {
            let mut other = key;
            for (i, b) in other.iter_mut().enumerate() {
                *b ^= (flips >> i) & 1;
            }
            prop_assert_eq!(des_is_weak(&key), des_is_weak(&other));
        }
    }
}
