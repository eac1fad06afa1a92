//! What the engine keeps per SA: the crypto state built once from the
//! SADB entry, the mode, NAT-T ports, and the per-SA counters.

use std::net::IpAddr;
use std::sync::Arc;

use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{flags, satype};
use sadb::Sa;

use crate::crypto::{self, BuildError, EspCipher, Integrity};
use crate::DropReason;

/// Options the SADB does not carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaOptions {
    /// Extended sequence numbers (RFC 4304).
    pub esn: bool,
    /// Override the ICV length of the authentication algorithm (Linux
    /// PF_KEY's 12-byte HMAC-SHA-256).
    pub icv_len: Option<usize>,
}

/// Tunnel-mode addresses: the outer header's source and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// Inner selectors checked on inbound tunnel traffic (RFC 4301 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

impl Selector {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let p = u32::from(self.prefix_len.min(32));
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let p = u32::from(self.prefix_len.min(128));
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Packet and drop counts of one SA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaCounters {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

impl SaCounters {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }
}

/// The read-only part of an SA's engine state: the cipher state built
/// once from the SADB entry, the mode and NAT-T ports. Shared (an `Arc`)
/// by every thread that protects or opens packets with the SA, so a
/// multi-threaded data path needs no copy of the keys per thread or per
/// packet; the ciphers are `Send + Sync` and keep no per-packet state.
pub struct SaCrypto {
    /// The SA this was built from ([`sadb::Sa::serial`]).
    pub serial: u64,
    pub spi: u32,
    pub esp: bool,
    pub(crate) cipher: Option<Box<dyn EspCipher>>,
    pub(crate) integ: Option<Box<dyn Integrity>>,
    pub tunnel: Option<Tunnel>,
    pub inner: Option<(Selector, Selector)>,
    /// ESP-in-UDP (RFC 3948): (local port, remote port).
    pub natt: Option<(u16, u16)>,
    pub esn: bool,
}

impl std::fmt::Debug for SaCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaCrypto")
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("esp", &self.esp)
            .field("tunnel", &self.tunnel)
            .field("natt", &self.natt)
            .field("esn", &self.esn)
            .finish_non_exhaustive()
    }
}

impl SaCrypto {
    pub fn icv_len(&self) -> usize {
        match (&self.cipher, &self.integ) {
            (Some(c), _) if c.icv_len() != 0 => c.icv_len(),
            (_, Some(i)) => i.icv_len(),
            _ => 0,
        }
    }
}

/// The engine's state for one SA: the shared crypto state (its fields
/// read through `Deref`) and the SA's counters.
#[derive(Debug)]
pub struct Transform {
    crypto: Arc<SaCrypto>,
    pub counters: SaCounters,
}

impl std::ops::Deref for Transform {
    type Target = SaCrypto;
    fn deref(&self) -> &SaCrypto {
        &self.crypto
    }
}

impl Transform {
    /// Builds the transform of a stored SA: keys are expanded here, once.
    pub fn new(sa: &Sa, opts: SaOptions) -> Result<Transform, BuildError> {
        let esp = sa.satype == satype::ESP;
        let auth = sa
            .auth()
            .ok_or(BuildError::Unsupported("authentication algorithm id"))?;
        let integ = match (&sa.auth_key, auth) {
            (_, AuthAlg::None) => None,
            (Some(k), alg) => crypto::integrity(alg, k.expose(), opts.icv_len)?,
            (None, _) => {
                return Err(BuildError::Unsupported(
                    "authentication algorithm without a key",
                ))
            }
        };
        let cipher = if esp {
            let alg = sa
                .encr()
                .ok_or(BuildError::Unsupported("encryption algorithm id"))?;
            let key = sa.encr_key.as_ref().map(|k| k.expose()).unwrap_or(&[]);
            if alg != EncrAlg::Null && key.is_empty() {
                return Err(BuildError::Unsupported(
                    "encryption algorithm without a key",
                ));
            }
            Some(crypto::cipher(alg, key)?)
        } else {
            if integ.is_none() {
                return Err(BuildError::Unsupported(
                    "AH without an authentication algorithm",
                ));
            }
            None
        };
        // The manual: proto 4 or 41 plus inner addresses means tunnel mode.
        let tunnel_mode = matches!(sa.proto, 4 | 41) && sa.is_tunnel();
        let tunnel = tunnel_mode.then_some(Tunnel {
            src: sa.src.ip,
            dst: sa.dst.ip,
        });
        let inner = match (tunnel_mode, sa.inner_src, sa.inner_dst) {
            (true, Some(s), Some(d)) => Some((
                Selector {
                    ip: s.ip,
                    prefix_len: s.prefix_len,
                },
                Selector {
                    ip: d.ip,
                    prefix_len: d.prefix_len,
                },
            )),
            _ => None,
        };
        let natt = (esp && sa.flags & (flags::X_NATT_LOC | flags::X_NATT_REM) != 0).then(|| {
            let port = |p: Option<u16>| p.filter(|&p| p != 0).unwrap_or(4500);
            (
                port(sa.natt_loc.map(|e| e.port)),
                port(sa.natt_rem.map(|e| e.port)),
            )
        });
        Ok(Transform {
            crypto: Arc::new(SaCrypto {
                serial: sa.serial,
                spi: sa.spi,
                esp,
                cipher,
                integ,
                tunnel,
                inner,
                natt,
                esn: opts.esn,
            }),
            counters: SaCounters::default(),
        })
    }

    /// The crypto state, for a thread that works outside the engine.
    pub fn crypto(&self) -> Arc<SaCrypto> {
        Arc::clone(&self.crypto)
    }
}
