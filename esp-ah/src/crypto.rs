//! Cipher and integrity state for one SA, built once when the SA is
//! installed (expanded AES keys, HMAC inner/outer pads), never per packet.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U11, U12, U16, U8};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use cipher::{
    BlockCipher, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, BlockSizeUser, InnerIvInit,
    KeyIvInit, StreamCipher,
};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use sadb::alg::{AuthAlg, EncrAlg};

/// Why an SA's keys could not be turned into cipher state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("algorithm {0} has no implementation in this engine")]
    Unsupported(&'static str),
    #[error("key of {got} bytes does not suit {alg} (wants {want})")]
    KeyLength {
        alg: &'static str,
        got: usize,
        want: usize,
    },
}

/// The ICV did not verify (or an AEAD tag failed), or the cipher refused
/// its inputs (which the engine treats the same way: drop the packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcvMismatch;

/// The encryption half of an ESP SA.
pub trait EspCipher: Send + Sync {
    /// Bytes of IV in each packet.
    fn iv_len(&self) -> usize;
    /// Payload must be padded to a multiple of this (at least 4, RFC 4303 2.4).
    fn block_len(&self) -> usize;
    /// ICV bytes a combined-mode cipher appends (0 otherwise).
    fn icv_len(&self) -> usize;
    /// GMAC: authenticates the payload but does not encrypt it (RFC 4543).
    fn auth_only(&self) -> bool {
        false
    }
    /// Encrypts `data` in place; for combined modes, writes the ICV.
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), IcvMismatch>;
    /// Verifies (combined modes) and decrypts `data` in place.
    fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], icv: &[u8]) -> Result<(), IcvMismatch>;
}

/// The integrity half of an ESP SA, or AH's algorithm.
pub trait Integrity: Send + Sync {
    /// Truncated ICV length in bytes.
    fn icv_len(&self) -> usize;
    /// Writes the truncated MAC of the concatenation of `parts` into `out`.
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]);
    /// Constant-time comparison of the MAC of `parts` with `icv`.
    fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), IcvMismatch> {
        let mut buf = [0u8; 64];
        let n = self.icv_len();
        self.compute(parts, &mut buf[..n]);
        if icv.len() == n && bool::from(buf[..n].ct_eq(icv)) {
            Ok(())
        } else {
            Err(IcvMismatch)
        }
    }
}

// ---------------------------------------------------------------------------
// Integrity: HMAC-MD5-96, HMAC-SHA-1-96 (RFC 2403/2404), HMAC-SHA-2 (RFC 4868)

struct HmacInteg<M: Mac + Clone + Send + Sync> {
    keyed: M,
    icv_len: usize,
}

impl<M: Mac + Clone + Send + Sync> Integrity for HmacInteg<M> {
    fn icv_len(&self) -> usize {
        self.icv_len
    }
    fn compute(&self, parts: &[&[u8]], out: &mut [u8]) {
        // Cloning the keyed state reuses the pads computed at SA set-up.
        let mut m = self.keyed.clone();
        for p in parts {
            m.update(p);
        }
        let tag = m.finalize().into_bytes();
        let n = out.len().min(tag.len());
        out[..n].copy_from_slice(&tag[..n]);
    }
}

fn hmac<M: Mac + KeyInit + Clone + Send + Sync + 'static>(
    key: &[u8],
    icv_len: usize,
) -> Result<Box<dyn Integrity>, BuildError> {
    let keyed = <M as Mac>::new_from_slice(key).map_err(|_| BuildError::Unsupported("HMAC key"))?;
    Ok(Box::new(HmacInteg { keyed, icv_len }))
}

/// Builds the integrity state for `alg` with `key`; `icv_len` overrides the
/// algorithm's standard truncation (Linux PF_KEY's 96-bit HMAC-SHA-256).
pub fn integrity(
    alg: AuthAlg,
    key: &[u8],
    icv_len: Option<usize>,
) -> Result<Option<Box<dyn Integrity>>, BuildError> {
    let n = icv_len.unwrap_or(alg.icv_len());
    Ok(Some(match alg {
        AuthAlg::None => return Ok(None),
        AuthAlg::HmacMd5 => hmac::<Hmac<md5::Md5>>(key, n)?,
        AuthAlg::HmacSha1 => hmac::<Hmac<sha1::Sha1>>(key, n)?,
        AuthAlg::HmacSha256 => hmac::<Hmac<sha2::Sha256>>(key, n)?,
        AuthAlg::HmacSha384 => hmac::<Hmac<sha2::Sha384>>(key, n)?,
        AuthAlg::HmacSha512 => hmac::<Hmac<sha2::Sha512>>(key, n)?,
    }))
}

// ---------------------------------------------------------------------------
// Ciphers

struct NullCipher;

impl EspCipher for NullCipher {
    fn iv_len(&self) -> usize {
        0
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        0
    }
    fn seal(&self, _: &[u8], _: &[u8], _: &mut [u8], _: &mut [u8]) -> Result<(), IcvMismatch> {
        Ok(())
    }
    fn open(&self, _: &[u8], _: &[u8], _: &mut [u8], _: &[u8]) -> Result<(), IcvMismatch> {
        Ok(())
    }
}

/// CBC (RFC 2405, 2451, 3602): the expanded key is kept; each packet
/// starts a CBC chain from its own IV.
struct CbcCipher<C> {
    cipher: C,
}

impl<C> EspCipher for CbcCipher<C>
where
    C: BlockCipher + BlockEncrypt + cipher::BlockDecrypt + Clone + Send + Sync,
    cbc::Encryptor<C>: BlockEncryptMut,
    cbc::Decryptor<C>: BlockDecryptMut,
{
    fn iv_len(&self) -> usize {
        C::block_size()
    }
    fn block_len(&self) -> usize {
        C::block_size()
    }
    fn icv_len(&self) -> usize {
        0
    }
    fn seal(&self, iv: &[u8], _: &[u8], data: &mut [u8], _: &mut [u8]) -> Result<(), IcvMismatch> {
        let mut enc = cbc::Encryptor::<C>::inner_iv_slice_init(self.cipher.clone(), iv)
            .map_err(|_| IcvMismatch)?;
        for block in data.chunks_exact_mut(C::block_size()) {
            enc.encrypt_block_mut(cipher::generic_array::GenericArray::from_mut_slice(block));
        }
        Ok(())
    }
    fn open(&self, iv: &[u8], _: &[u8], data: &mut [u8], _: &[u8]) -> Result<(), IcvMismatch> {
        let Ok(mut dec) = cbc::Decryptor::<C>::inner_iv_slice_init(self.cipher.clone(), iv) else {
            return Err(IcvMismatch);
        };
        for block in data.chunks_exact_mut(C::block_size()) {
            dec.decrypt_block_mut(cipher::generic_array::GenericArray::from_mut_slice(block));
        }
        Ok(())
    }
}

/// AES-CTR (RFC 3686): counter block = nonce (4) || IV (8) || counter from 1.
struct CtrCipher<C> {
    key: Vec<u8>,
    nonce: [u8; 4],
    _c: std::marker::PhantomData<C>,
}

impl<C> EspCipher for CtrCipher<C>
where
    C: BlockCipher + BlockEncrypt + KeyInit + BlockSizeUser<BlockSize = U16> + Send + Sync,
{
    fn iv_len(&self) -> usize {
        8
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        0
    }
    fn seal(&self, iv: &[u8], _: &[u8], data: &mut [u8], _: &mut [u8]) -> Result<(), IcvMismatch> {
        self.apply(iv, data)
    }
    fn open(&self, iv: &[u8], _: &[u8], data: &mut [u8], _: &[u8]) -> Result<(), IcvMismatch> {
        self.apply(iv, data)
    }
}

impl<C> CtrCipher<C>
where
    C: BlockCipher + BlockEncrypt + KeyInit + BlockSizeUser<BlockSize = U16>,
{
    fn apply(&self, iv: &[u8], data: &mut [u8]) -> Result<(), IcvMismatch> {
        let mut block = [0u8; 16];
        block[..4].copy_from_slice(&self.nonce);
        block[4..12].copy_from_slice(iv.get(..8).ok_or(IcvMismatch)?);
        block[15] = 1;
        let mut c =
            ctr::Ctr32BE::<C>::new_from_slices(&self.key, &block).map_err(|_| IcvMismatch)?;
        c.try_apply_keystream(data).map_err(|_| IcvMismatch)
    }
}

/// AES-GCM with a 12- or 16-byte ICV (RFC 4106), AES-CCM (RFC 4309) and
/// ChaCha20-Poly1305 (RFC 7634): nonce = salt || IV.
struct AeadCipher<A> {
    aead: A,
    salt: Vec<u8>,
    icv: usize,
}

impl<A> EspCipher for AeadCipher<A>
where
    A: AeadInPlace + Send + Sync,
{
    fn iv_len(&self) -> usize {
        8
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        self.icv
    }
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), IcvMismatch> {
        let nonce = self.nonce(iv)?;
        let tag = self
            .aead
            .encrypt_in_place_detached(
                aes_gcm::aead::Nonce::<A>::from_slice(&nonce[..self.nonce_len()]),
                aad,
                data,
            )
            .map_err(|_| IcvMismatch)?;
        icv.get_mut(..self.icv)
            .ok_or(IcvMismatch)?
            .copy_from_slice(tag.get(..self.icv).ok_or(IcvMismatch)?);
        Ok(())
    }
    fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], icv: &[u8]) -> Result<(), IcvMismatch> {
        let nonce = self.nonce(iv)?;
        if icv.len() != self.icv {
            return Err(IcvMismatch);
        }
        let tag = aes_gcm::aead::Tag::<A>::from_slice(icv);
        self.aead
            .decrypt_in_place_detached(
                aes_gcm::aead::Nonce::<A>::from_slice(&nonce[..self.nonce_len()]),
                aad,
                data,
                tag,
            )
            .map_err(|_| IcvMismatch)
    }
}

impl<A: AeadInPlace> AeadCipher<A> {
    fn nonce_len(&self) -> usize {
        self.salt.len() + 8
    }
    fn nonce(&self, iv: &[u8]) -> Result<[u8; 12], IcvMismatch> {
        let mut n = [0u8; 12];
        n[..self.salt.len()].copy_from_slice(&self.salt);
        n[self.salt.len()..self.salt.len() + 8].copy_from_slice(iv.get(..8).ok_or(IcvMismatch)?);
        Ok(n)
    }
}

/// AES-GCM with an 8-byte ICV (RFC 4106 allows 8, 12, 16; the aes-gcm crate
/// only offers 12-16): the same construction from the aes, ctr and ghash
/// crates, tag = GHASH(H, A, C) xor E(K, J0), J0 = salt || IV || 1.
struct Gcm8<C> {
    key: Vec<u8>,
    h: [u8; 16],
    salt: [u8; 4],
    _c: std::marker::PhantomData<C>,
}

impl<C> Gcm8<C>
where
    C: BlockCipher + BlockEncrypt + KeyInit + BlockSizeUser<BlockSize = U16>,
{
    fn new(key: &[u8], salt: [u8; 4]) -> Option<Gcm8<C>> {
        let c = C::new_from_slice(key).ok()?;
        let mut h = cipher::generic_array::GenericArray::default();
        c.encrypt_block(&mut h);
        Some(Gcm8 {
            key: key.to_vec(),
            h: h.into(),
            salt,
            _c: std::marker::PhantomData,
        })
    }

    fn tag(&self, iv: &[u8], aad: &[u8], ct: &[u8]) -> Result<[u8; 16], IcvMismatch> {
        use ghash::universal_hash::UniversalHash;
        let mut g = ghash::GHash::new(&self.h.into());
        g.update_padded(aad);
        g.update_padded(ct);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
        g.update(&[lens.into()]);
        let mut s: [u8; 16] = g.finalize().into();
        let j0 = self.j0(iv)?;
        let mut c = ctr::Ctr32BE::<C>::new_from_slices(&self.key, &j0).map_err(|_| IcvMismatch)?;
        c.apply_keystream(&mut s);
        Ok(s)
    }

    fn j0(&self, iv: &[u8]) -> Result<[u8; 16], IcvMismatch> {
        let mut j0 = [0u8; 16];
        j0[..4].copy_from_slice(&self.salt);
        j0[4..12].copy_from_slice(iv.get(..8).ok_or(IcvMismatch)?);
        j0[15] = 1;
        Ok(j0)
    }

    fn keystream(&self, iv: &[u8], data: &mut [u8]) -> Result<(), IcvMismatch> {
        let mut ctr0 = self.j0(iv)?;
        ctr0[15] = 2;
        let mut c =
            ctr::Ctr32BE::<C>::new_from_slices(&self.key, &ctr0).map_err(|_| IcvMismatch)?;
        c.try_apply_keystream(data).map_err(|_| IcvMismatch)
    }
}

impl<C> EspCipher for Gcm8<C>
where
    C: BlockCipher + BlockEncrypt + KeyInit + BlockSizeUser<BlockSize = U16> + Send + Sync,
{
    fn iv_len(&self) -> usize {
        8
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        8
    }
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), IcvMismatch> {
        self.keystream(iv, data)?;
        let t = self.tag(iv, aad, data)?;
        icv.get_mut(..8)
            .ok_or(IcvMismatch)?
            .copy_from_slice(&t[..8]);
        Ok(())
    }
    fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], icv: &[u8]) -> Result<(), IcvMismatch> {
        let t = self.tag(iv, aad, data)?;
        if icv.len() != 8 || !bool::from(t[..8].ct_eq(icv)) {
            return Err(IcvMismatch);
        }
        self.keystream(iv, data)
    }
}

/// AES-GMAC (RFC 4543): everything is AAD, nothing is encrypted.
struct Gmac<A> {
    inner: AeadCipher<A>,
}

impl<A: AeadInPlace + Send + Sync> EspCipher for Gmac<A> {
    fn iv_len(&self) -> usize {
        8
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        16
    }
    fn auth_only(&self) -> bool {
        true
    }
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        _data: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), IcvMismatch> {
        self.inner.seal(iv, aad, &mut [], icv)
    }
    fn open(&self, iv: &[u8], aad: &[u8], _data: &mut [u8], icv: &[u8]) -> Result<(), IcvMismatch> {
        self.inner.open(iv, aad, &mut [], icv)
    }
}

/// AES-GCM-16 and ChaCha20-Poly1305 through ring (assembly with runtime
/// CPU detection: AES-NI, PCLMULQDQ, AVX2/VAES where present).
#[cfg(feature = "ring")]
struct RingAead {
    key: ring::aead::LessSafeKey,
    salt: [u8; 4],
}

#[cfg(feature = "ring")]
impl RingAead {
    fn new(alg: &'static ring::aead::Algorithm, key: &[u8], salt: &[u8]) -> Option<RingAead> {
        let key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(alg, key).ok()?);
        Some(RingAead {
            key,
            salt: salt.try_into().ok()?,
        })
    }

    fn nonce(&self, iv: &[u8]) -> Result<ring::aead::Nonce, IcvMismatch> {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv.get(..8).ok_or(IcvMismatch)?);
        Ok(ring::aead::Nonce::assume_unique_for_key(n))
    }
}

#[cfg(feature = "ring")]
impl EspCipher for RingAead {
    fn iv_len(&self) -> usize {
        8
    }
    fn block_len(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        16
    }
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        data: &mut [u8],
        icv: &mut [u8],
    ) -> Result<(), IcvMismatch> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv)?, ring::aead::Aad::from(aad), data)
            .map_err(|_| IcvMismatch)?;
        icv.get_mut(..16)
            .ok_or(IcvMismatch)?
            .copy_from_slice(tag.as_ref());
        Ok(())
    }
    fn open(&self, iv: &[u8], aad: &[u8], data: &mut [u8], icv: &[u8]) -> Result<(), IcvMismatch> {
        let tag: [u8; 16] = icv.try_into().map_err(|_| IcvMismatch)?;
        self.key
            .open_in_place_separate_tag(
                self.nonce(iv)?,
                ring::aead::Aad::from(aad),
                ring::aead::Tag::from(tag),
                data,
                0..,
            )
            .map(|_| ())
            .map_err(|_| IcvMismatch)
    }
}

fn split_salt(alg: EncrAlg, key: &[u8]) -> Result<(&[u8], &[u8]), BuildError> {
    let salt = alg.salt_bits() as usize / 8;
    if key.len() <= salt {
        return Err(BuildError::KeyLength {
            alg: alg.display_name(),
            got: key.len(),
            want: salt + 16,
        });
    }
    Ok(key.split_at(key.len() - salt))
}

fn aead<A: AeadInPlace + KeyInit + Send + Sync + 'static>(
    alg: EncrAlg,
    key: &[u8],
    salt: &[u8],
    icv: usize,
) -> Result<Box<dyn EspCipher>, BuildError> {
    let aead = A::new_from_slice(key).map_err(|_| BuildError::KeyLength {
        alg: alg.display_name(),
        got: key.len(),
        want: 16,
    })?;
    Ok(Box::new(AeadCipher {
        aead,
        salt: salt.to_vec(),
        icv,
    }))
}

macro_rules! by_aes_key {
    ($key:expr, $alg:expr, |$c:ident| $body:expr) => {
        match $key.len() {
            16 => {
                type $c = Aes128;
                $body
            }
            24 => {
                type $c = Aes192;
                $body
            }
            32 => {
                type $c = Aes256;
                $body
            }
            n => Err(BuildError::KeyLength {
                alg: $alg.display_name(),
                got: n,
                want: 16,
            }),
        }
    };
}

fn cbc<C>(key: &[u8], alg: EncrAlg) -> Result<Box<dyn EspCipher>, BuildError>
where
    C: BlockCipher + BlockEncrypt + cipher::BlockDecrypt + KeyInit + Clone + Send + Sync + 'static,
    cbc::Encryptor<C>: BlockEncryptMut,
    cbc::Decryptor<C>: BlockDecryptMut,
{
    let cipher = C::new_from_slice(key).map_err(|_| BuildError::KeyLength {
        alg: alg.display_name(),
        got: key.len(),
        want: C::block_size(),
    })?;
    Ok(Box::new(CbcCipher { cipher }))
}

type AesGcm12<C> = aes_gcm::AesGcm<C, U12, U12>;
type AesGcm16<C> = aes_gcm::AesGcm<C, U12, U16>;
type AesCcm<C, T> = ccm::Ccm<C, T, U11>;

/// Builds the cipher state for `alg` with `key` (key followed by salt, as
/// PF_KEY carries it).
pub fn cipher(alg: EncrAlg, key: &[u8]) -> Result<Box<dyn EspCipher>, BuildError> {
    match alg {
        EncrAlg::None => Err(BuildError::Unsupported("none")),
        EncrAlg::Null => Ok(Box::new(NullCipher)),
        EncrAlg::DesCbc => cbc::<des::Des>(key, alg),
        EncrAlg::TripleDesCbc => cbc::<des::TdesEde3>(key, alg),
        EncrAlg::BlowfishCbc => cbc::<blowfish::Blowfish>(key, alg),
        EncrAlg::AesCbc => by_aes_key!(key, alg, |C| cbc::<C>(key, alg)),
        EncrAlg::AesCtr => {
            let (k, salt) = split_salt(alg, key)?;
            let mut nonce = [0u8; 4];
            nonce.copy_from_slice(salt);
            by_aes_key!(k, alg, |C| Ok(Box::new(CtrCipher::<C> {
                key: k.to_vec(),
                nonce,
                _c: std::marker::PhantomData
            }) as Box<dyn EspCipher>))
        }
        EncrAlg::AesGcm8 => {
            let (k, salt) = split_salt(alg, key)?;
            let mut s = [0u8; 4];
            s.copy_from_slice(salt);
            by_aes_key!(k, alg, |C| Gcm8::<C>::new(k, s)
                .map(|g| Box::new(g) as Box<dyn EspCipher>)
                .ok_or(BuildError::KeyLength {
                    alg: alg.display_name(),
                    got: k.len(),
                    want: 16
                }))
        }
        EncrAlg::AesGcm12 => {
            let (k, salt) = split_salt(alg, key)?;
            by_aes_key!(k, alg, |C| aead::<AesGcm12<C>>(alg, k, salt, 12))
        }
        EncrAlg::AesGcm16 => {
            let (k, salt) = split_salt(alg, key)?;
            #[cfg(feature = "ring")]
            {
                let ring_alg = match k.len() {
                    16 => Some(&ring::aead::AES_128_GCM),
                    32 => Some(&ring::aead::AES_256_GCM),
                    _ => None, // ring has no AES-192
                };
                if let Some(c) = ring_alg.and_then(|a| RingAead::new(a, k, salt)) {
                    return Ok(Box::new(c));
                }
            }
            by_aes_key!(k, alg, |C| aead::<AesGcm16<C>>(alg, k, salt, 16))
        }
        EncrAlg::AesCcm8 => {
            let (k, salt) = split_salt(alg, key)?;
            by_aes_key!(k, alg, |C| aead::<AesCcm<C, U8>>(alg, k, salt, 8))
        }
        EncrAlg::AesCcm12 => {
            let (k, salt) = split_salt(alg, key)?;
            by_aes_key!(k, alg, |C| aead::<AesCcm<C, U12>>(alg, k, salt, 12))
        }
        EncrAlg::AesCcm16 => {
            let (k, salt) = split_salt(alg, key)?;
            by_aes_key!(k, alg, |C| aead::<AesCcm<C, U16>>(alg, k, salt, 16))
        }
        EncrAlg::AesGmac => {
            let (k, salt) = split_salt(alg, key)?;
            by_aes_key!(k, alg, |C| {
                let aead = AesGcm16::<C>::new_from_slice(k).map_err(|_| BuildError::KeyLength {
                    alg: alg.display_name(),
                    got: k.len(),
                    want: 16,
                })?;
                Ok(Box::new(Gmac {
                    inner: AeadCipher {
                        aead,
                        salt: salt.to_vec(),
                        icv: 16,
                    },
                }) as Box<dyn EspCipher>)
            })
        }
        EncrAlg::ChaCha20Poly1305 => {
            let (k, salt) = split_salt(alg, key)?;
            #[cfg(feature = "ring")]
            if let Some(c) = RingAead::new(&ring::aead::CHACHA20_POLY1305, k, salt) {
                return Ok(Box::new(c));
            }
            aead::<chacha20poly1305::ChaCha20Poly1305>(alg, k, salt, 16)
        }
    }
}

#[cfg(all(test, feature = "ring"))]
mod tests {
    use super::*;

    /// ring and RustCrypto must produce the same bytes for the same inputs,
    /// so either backend interoperates with the other (and with the
    /// oracles, which test whichever one the build uses).
    #[test]
    fn ring_and_rustcrypto_agree() {
        let cases: [(&'static ring::aead::Algorithm, Box<dyn EspCipher>, usize); 3] = [
            (
                &ring::aead::AES_128_GCM,
                aead::<AesGcm16<Aes128>>(EncrAlg::AesGcm16, &[7; 16], &[1, 2, 3, 4], 16).unwrap(),
                16,
            ),
            (
                &ring::aead::AES_256_GCM,
                aead::<AesGcm16<Aes256>>(EncrAlg::AesGcm16, &[7; 32], &[1, 2, 3, 4], 16).unwrap(),
                32,
            ),
            (
                &ring::aead::CHACHA20_POLY1305,
                aead::<chacha20poly1305::ChaCha20Poly1305>(
                    EncrAlg::ChaCha20Poly1305,
                    &[7; 32],
                    &[1, 2, 3, 4],
                    16,
                )
                .unwrap(),
                32,
            ),
        ];
        for (ring_alg, rc, klen) in cases {
            let r = RingAead::new(ring_alg, &vec![7; klen], &[1, 2, 3, 4]).unwrap();
            for len in [0usize, 1, 15, 16, 17, 1400] {
                let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let (mut a, mut b) = (plain.clone(), plain.clone());
                let (mut ta, mut tb) = ([0u8; 16], [0u8; 16]);
                r.seal(&[9; 8], b"aad-bytes", &mut a, &mut ta).unwrap();
                rc.seal(&[9; 8], b"aad-bytes", &mut b, &mut tb).unwrap();
                assert_eq!((&a, ta), (&b, tb), "{ring_alg:?} len {len}");
                rc.open(&[9; 8], b"aad-bytes", &mut a, &ta).unwrap();
                assert_eq!(a, plain);
                tb[0] ^= 1;
                assert!(r.open(&[9; 8], b"aad-bytes", &mut b, &tb).is_err());
            }
        }
    }
}
