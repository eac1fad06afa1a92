//! The algorithm table: ids per dialect, the names ipseckey accepts, key
//! sizes, salt, block and ICV sizes (ipseckey-behaviour.md 1.8,
//! pfkey-v2-wire.md 4), and the kernel's key checks (5.8).

use subtle::ConstantTimeEq;

use crate::diag::Diagnostic;
use crate::key::KeyMaterial;
use crate::pfkey::Dialect;

/// Legal key sizes in bits, without salt: `min..=max` in steps of `step`
/// (`step` 0: `min` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBits {
    pub min: u16,
    pub max: u16,
    pub step: u16,
}

impl KeyBits {
    const fn fixed(n: u16) -> KeyBits {
        KeyBits { min: n, max: n, step: 0 }
    }
    const fn range(min: u16, max: u16, step: u16) -> KeyBits {
        KeyBits { min, max, step }
    }

    /// Whether a key of `bits` bits is legal.
    pub fn allows(&self, bits: u16) -> bool {
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

/// Authentication algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAlg {
    None,
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl AuthAlg {
    pub const ALL: &'static [AuthAlg] = &[
        AuthAlg::None,
        AuthAlg::HmacMd5,
        AuthAlg::HmacSha1,
        AuthAlg::HmacSha256,
        AuthAlg::HmacSha384,
        AuthAlg::HmacSha512,
    ];

    /// The id in `sadb_sa_auth`; the same in both dialects.
    pub fn id(self, _d: Dialect) -> Option<u8> {
        Some(match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 => 2,
            AuthAlg::HmacSha1 => 3,
            AuthAlg::HmacSha256 => 5,
            AuthAlg::HmacSha384 => 6,
            AuthAlg::HmacSha512 => 7,
        })
    }

    pub fn from_id(id: u8, d: Dialect) -> Option<AuthAlg> {
        AuthAlg::ALL.iter().copied().find(|a| a.id(d) == Some(id))
    }

    /// Names ipseckey accepts; the first is the one it prints.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            AuthAlg::None => &["none", "any"],
            AuthAlg::HmacMd5 => &["hmac-md5", "md5"],
            AuthAlg::HmacSha1 => &["hmac-sha1", "sha", "sha1", "sha-1", "hmac-sha", "hmac-sha-1"],
            AuthAlg::HmacSha256 => &["hmac-sha256", "sha256", "sha-256", "hmac-sha-256"],
            AuthAlg::HmacSha384 => &["hmac-sha384", "sha384", "sha-384", "hmac-sha-384"],
            AuthAlg::HmacSha512 => &["hmac-sha512", "sha512", "sha-512", "hmac-sha-512"],
        }
    }

    pub fn from_name(s: &str) -> Option<AuthAlg> {
        AuthAlg::ALL.iter().copied().find(|a| a.names().iter().any(|n| n.eq_ignore_ascii_case(s)))
    }

    pub fn display_name(self) -> &'static str {
        match self {
            AuthAlg::None => "none",
            AuthAlg::HmacMd5 => "HMAC-MD5-96",
            AuthAlg::HmacSha1 => "HMAC-SHA-1-96",
            AuthAlg::HmacSha256 => "HMAC-SHA-256-128",
            AuthAlg::HmacSha384 => "HMAC-SHA-384-192",
            AuthAlg::HmacSha512 => "HMAC-SHA-512-256",
        }
    }

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

    /// ICV length in bytes (RFC 2403, 2404, 4868).
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 | AuthAlg::HmacSha1 => 12,
            AuthAlg::HmacSha256 => 16,
            AuthAlg::HmacSha384 => 24,
            AuthAlg::HmacSha512 => 32,
        }
    }

    /// ICV length of an SA made through Linux PF_KEY, which still gives
    /// HMAC-SHA-256 the 96-bit ICV of pre-RFC 4868 drafts.
    pub fn linux_pfkey_icv_len(self) -> usize {
        match self {
            AuthAlg::HmacSha256 => 12,
            other => other.icv_len(),
        }
    }

    /// Digest length in bytes.
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

    /// HMAC block length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5 | AuthAlg::HmacSha1 | AuthAlg::HmacSha256 => 64,
            AuthAlg::HmacSha384 | AuthAlg::HmacSha512 => 128,
        }
    }
}

/// Encryption algorithms (ESP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    None,
    DesCbc,
    TripleDesCbc,
    BlowfishCbc,
    Null,
    AesCbc,
    AesCtr,
    AesCcm8,
    AesCcm12,
    AesCcm16,
    AesGcm8,
    AesGcm12,
    AesGcm16,
    AesGmac,
    ChaCha20Poly1305,
}

impl EncrAlg {
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

    /// The id in `sadb_sa_encrypt`. The simulator (illumos numbering) adds
    /// AES-CTR as 13 and AES-GMAC as 23 (the Linux/FreeBSD numbers) and
    /// ChaCha20-Poly1305 as 31 (a private number: FreeBSD's 15 is illumos's
    /// AES-CCM-12). Linux PF_KEY cannot configure AEAD algorithms at all
    /// (af_key looks ids up only in the plain cipher list and answers
    /// ENOSYS), so they have no Linux id.
    pub fn id(self, d: Dialect) -> Option<u8> {
        let illumos = match self {
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
            Dialect::Illumos => Some(illumos),
            Dialect::Linux if self.is_aead() => None,
            Dialect::Linux => Some(illumos),
        }
    }

    pub fn from_id(id: u8, d: Dialect) -> Option<EncrAlg> {
        EncrAlg::ALL.iter().copied().find(|a| a.id(d) == Some(id))
    }

    /// Names ipseckey accepts; the first is the one it prints.
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

    pub fn from_name(s: &str) -> Option<EncrAlg> {
        EncrAlg::ALL.iter().copied().find(|a| a.names().iter().any(|n| n.eq_ignore_ascii_case(s)))
    }

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

    /// Key sizes in bits, without salt.
    pub fn key_bits(self) -> KeyBits {
        match self {
            EncrAlg::None | EncrAlg::Null => KeyBits::fixed(0),
            EncrAlg::DesCbc => KeyBits::fixed(64),
            EncrAlg::TripleDesCbc => KeyBits::fixed(192),
            // The current illumos ipsecalgs table allows 128 only.
            EncrAlg::BlowfishCbc => KeyBits::fixed(128),
            EncrAlg::ChaCha20Poly1305 => KeyBits::fixed(256),
            _ => KeyBits::range(128, 256, 64),
        }
    }

    /// Salt (nonce) bits carried after the key (RFC 3686, 4106, 4309,
    /// 4543, 7634).
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

    pub fn block_len(self) -> usize {
        match self {
            EncrAlg::DesCbc | EncrAlg::TripleDesCbc | EncrAlg::BlowfishCbc => 8,
            EncrAlg::AesCbc => 16,
            _ => 1,
        }
    }

    /// Bytes of IV each ESP packet carries.
    pub fn iv_len(self) -> usize {
        match self {
            EncrAlg::None | EncrAlg::Null => 0,
            EncrAlg::DesCbc | EncrAlg::TripleDesCbc | EncrAlg::BlowfishCbc => 8,
            EncrAlg::AesCbc => 16,
            _ => 8,
        }
    }

    /// ICV bytes of a combined-mode algorithm (0 for the others).
    pub fn icv_len(self) -> usize {
        match self {
            EncrAlg::AesCcm8 | EncrAlg::AesGcm8 => 8,
            EncrAlg::AesCcm12 | EncrAlg::AesGcm12 => 12,
            EncrAlg::AesCcm16 | EncrAlg::AesGcm16 | EncrAlg::AesGmac | EncrAlg::ChaCha20Poly1305 => 16,
            _ => 0,
        }
    }

    pub fn is_aead(self) -> bool {
        self.icv_len() != 0
    }

    /// The algorithms ipseckey warns about for manual keying.
    pub fn is_counter_mode(self) -> bool {
        self.is_aead() || self == EncrAlg::AesCtr
    }

    /// ESP with this algorithm needs a separate authentication algorithm.
    pub fn needs_auth_alg(self) -> bool {
        !self.is_aead()
    }
}

/// The kernel's check of an authentication key of `bits` bits.
pub fn check_auth_key(alg: AuthAlg, bits: u16, key: &KeyMaterial) -> Result<(), Diagnostic> {
    if alg == AuthAlg::None {
        return Err(Diagnostic::BadAalg);
    }
    if !alg.key_bits().allows(bits) || key.len() < (bits as usize).div_ceil(8) {
        return Err(Diagnostic::BadAkeybits);
    }
    // HMAC has no weak keys.
    Ok(())
}

/// The kernel's check of an encryption key: `bits` counts key + salt (+ the
/// `iv_bits` some test requests append). DES and 3DES keys get their
/// parity corrected in place, as illumos stores and shows them.
pub fn check_encr_key(alg: EncrAlg, bits: u16, iv_bits: u16, key: &mut KeyMaterial) -> Result<(), Diagnostic> {
    match alg {
        EncrAlg::None => return Err(Diagnostic::BadEalg),
        EncrAlg::Null => return Err(Diagnostic::BadEkeybits),
        _ => {}
    }
    let key_bits = bits
        .checked_sub(iv_bits)
        .and_then(|b| b.checked_sub(alg.salt_bits()))
        .ok_or(Diagnostic::BadEkeybits)?;
    if !alg.key_bits().allows(key_bits) || key.len() < (bits as usize).div_ceil(8) {
        return Err(Diagnostic::BadEkeybits);
    }
    match alg {
        EncrAlg::DesCbc => {
            let k = &mut key.expose_mut()[..8];
            des_fix_parity(k);
            if des_is_weak(k) {
                return Err(Diagnostic::WeakEkey);
            }
        }
        EncrAlg::TripleDesCbc => {
            let k = &mut key.expose_mut()[..24];
            des_fix_parity(k);
            let (k1, k2, k3) = (&k[..8], &k[8..16], &k[16..24]);
            let weak = des_is_weak(k1) | des_is_weak(k2) | des_is_weak(k3);
            let same12: bool = k1.ct_eq(k2).into();
            let same23: bool = k2.ct_eq(k3).into();
            if weak | same12 | same23 {
                return Err(Diagnostic::WeakEkey);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Sets each byte's least-significant bit so the byte has odd parity
/// (FIPS 46-3: the parity bits of a DES key).
pub fn des_fix_parity(key: &mut [u8]) {
    for b in key {
        let high = *b & 0xfe;
        *b = high | ((high.count_ones() as u8 & 1) ^ 1);
    }
}

/// The 4 weak and 12 semi-weak DES keys, with odd parity (FIPS 74,
/// decisions.md #5: the standard table).
const DES_WEAK: [[u8; 8]; 16] = [
    [0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01],
    [0x1f, 0x1f, 0x1f, 0x1f, 0x0e, 0x0e, 0x0e, 0x0e],
    [0xe0, 0xe0, 0xe0, 0xe0, 0xf1, 0xf1, 0xf1, 0xf1],
    [0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe],
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

/// Whether an 8-byte DES key is weak or semi-weak, ignoring parity bits.
pub fn des_is_weak(key8: &[u8]) -> bool {
    if key8.len() != 8 {
        return false;
    }
    let mut k = [0u8; 8];
    for (d, s) in k.iter_mut().zip(key8) {
        *d = s & 0xfe;
    }
    let mut hit = subtle::Choice::from(0);
    for w in &DES_WEAK {
        let mut m = [0u8; 8];
        for (d, s) in m.iter_mut().zip(w) {
            *d = s & 0xfe;
        }
        hit |= k.ct_eq(&m);
    }
    hit.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn km(h: &str) -> KeyMaterial {
        KeyMaterial::new((0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()).collect())
    }

    #[test]
    fn names_and_ids_round_trip() {
        for a in AuthAlg::ALL {
            for n in a.names() {
                assert_eq!(AuthAlg::from_name(n), Some(*a));
                assert_eq!(AuthAlg::from_name(&n.to_uppercase()), Some(*a));
            }
            for d in [Dialect::Illumos, Dialect::Linux] {
                assert_eq!(AuthAlg::from_id(a.id(d).unwrap(), d), Some(*a));
            }
        }
        for e in EncrAlg::ALL {
            for n in e.names() {
                assert_eq!(EncrAlg::from_name(n), Some(*e), "{n}");
            }
            assert_eq!(EncrAlg::from_id(e.id(Dialect::Illumos).unwrap(), Dialect::Illumos), Some(*e));
            match e.id(Dialect::Linux) {
                Some(id) => assert_eq!(EncrAlg::from_id(id, Dialect::Linux), Some(*e)),
                None => assert!(e.is_aead(), "{e:?}"),
            }
        }
        assert_eq!(AuthAlg::from_name("hmac-sha-256"), Some(AuthAlg::HmacSha256));
        assert_eq!(EncrAlg::from_name("3des"), Some(EncrAlg::TripleDesCbc));
        assert_eq!(EncrAlg::from_name("rot13"), None);
    }

    #[test]
    fn des_parity_is_corrected_in_place() {
        let mut k = km("be02938e7def2839");
        check_encr_key(EncrAlg::DesCbc, 64, 0, &mut k).unwrap();
        assert_eq!(k, km("bf02928f7cef2938"));
        let mut k = km("0001000100010001");
        assert_eq!(check_encr_key(EncrAlg::DesCbc, 64, 0, &mut k), Err(Diagnostic::WeakEkey));
        assert_eq!(k, km("0101010101010101"));
    }

    #[test]
    fn every_weak_and_semi_weak_des_key_is_refused() {
        for w in &DES_WEAK {
            for flip in [0u8, 1] {
                let mut k = KeyMaterial::new(w.iter().map(|b| b ^ flip).collect());
                assert_eq!(check_encr_key(EncrAlg::DesCbc, 64, 0, &mut k), Err(Diagnostic::WeakEkey), "{w:02x?}");
            }
        }
        // The illumos x86 table's byte-reversed entries are ordinary keys.
        let mut k = km("f10ef10ee01fe01f");
        assert_eq!(check_encr_key(EncrAlg::DesCbc, 64, 0, &mut k), Ok(()));
    }

    #[test]
    fn triple_des_rules() {
        let (a, b, c) = ("0123456789abcdef", "23456789abcdef01", "456789abcdef0123");
        let mut k = km(&format!("{a}{b}{c}"));
        assert_eq!(check_encr_key(EncrAlg::TripleDesCbc, 192, 0, &mut k), Ok(()));
        let mut k = km(&format!("{a}{a}{c}"));
        assert_eq!(check_encr_key(EncrAlg::TripleDesCbc, 192, 0, &mut k), Err(Diagnostic::WeakEkey));
        let mut k = km(&format!("{a}{b}{b}"));
        assert_eq!(check_encr_key(EncrAlg::TripleDesCbc, 192, 0, &mut k), Err(Diagnostic::WeakEkey));
        let mut k = km(&format!("{a}{b}{a}"));
        assert_eq!(check_encr_key(EncrAlg::TripleDesCbc, 192, 0, &mut k), Ok(()), "two-key 3DES is allowed");
        let mut k = km(&format!("{a}{b}fefefefefefefefe"));
        assert_eq!(check_encr_key(EncrAlg::TripleDesCbc, 192, 0, &mut k), Err(Diagnostic::WeakEkey));
    }

    #[test]
    fn key_lengths() {
        let k = |n: usize| KeyMaterial::new(vec![0x5a; n]);
        for bits in [128u16, 192, 256] {
            assert_eq!(check_encr_key(EncrAlg::AesCbc, bits, 0, &mut k(32)), Ok(()));
        }
        for bits in [64u16, 160, 320] {
            assert_eq!(check_encr_key(EncrAlg::AesCbc, bits, 0, &mut k(40)), Err(Diagnostic::BadEkeybits));
        }
        for bits in [160u16, 224, 288] {
            assert_eq!(check_encr_key(EncrAlg::AesGcm16, bits, 0, &mut k(36)), Ok(()), "{bits}");
        }
        assert_eq!(check_encr_key(EncrAlg::AesGcm16, 128, 0, &mut k(36)), Err(Diagnostic::BadEkeybits));
        assert_eq!(check_encr_key(EncrAlg::AesCcm8, 152, 0, &mut k(36)), Ok(()));
        assert_eq!(check_encr_key(EncrAlg::ChaCha20Poly1305, 288, 0, &mut k(36)), Ok(()));
        assert_eq!(check_encr_key(EncrAlg::Null, 64, 0, &mut k(8)), Err(Diagnostic::BadEkeybits));
        assert_eq!(check_encr_key(EncrAlg::AesCbc, 160, 32, &mut k(20)), Ok(()), "IV bits are not key bits");
        assert_eq!(check_encr_key(EncrAlg::AesCbc, 16, 32, &mut k(20)), Err(Diagnostic::BadEkeybits));
        assert_eq!(check_encr_key(EncrAlg::AesCbc, 256, 0, &mut k(8)), Err(Diagnostic::BadEkeybits));
        assert_eq!(check_auth_key(AuthAlg::HmacSha1, 160, &k(20)), Ok(()));
        assert_eq!(check_auth_key(AuthAlg::HmacSha1, 128, &k(20)), Err(Diagnostic::BadAkeybits));
        assert_eq!(check_auth_key(AuthAlg::None, 128, &k(16)), Err(Diagnostic::BadAalg));
    }

    #[test]
    fn linux_quirks() {
        assert_eq!(AuthAlg::HmacSha256.linux_pfkey_icv_len(), 12);
        assert_eq!(AuthAlg::HmacSha256.icv_len(), 16);
        assert_eq!(EncrAlg::AesGcm16.id(Dialect::Linux), None);
        assert_eq!(EncrAlg::AesCtr.id(Dialect::Linux), Some(13));
    }
}
