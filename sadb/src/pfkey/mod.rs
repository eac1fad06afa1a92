//! PF_KEY v2 (RFC 2367) messages: byte views, plain representations and the
//! per-dialect numbering (illumos, the simulator's native one, and Linux).
//!
//! Layering follows smoltcp: [`view`] proves bounds once over a byte buffer,
//! [`repr`] holds plain values with `parse` / `buffer_len` / `emit`. Numbers
//! that mean different things in different kernels live in one place,
//! [`Dialect`].

pub mod error;
pub mod field;
pub mod repr;
pub mod view;

pub use error::{EncodeError, WireError};
pub use repr::*;
pub use view::{ExtIter, MsgView, RawExt};

/// `PF_KEY_V2`: the only version this codec speaks.
pub const PF_KEY_V2: u8 = 2;
/// Size of the base header and the unit of every length field.
pub const WORD: usize = 8;
/// Size of `struct sadb_msg`.
pub const BASE_LEN: usize = 16;

/// Whose numbering the bytes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// illumos keysock/SADB: the simulator's native numbering.
    Illumos,
    /// Linux `af_key`: used by real-kernel mode.
    Linux,
}

impl Dialect {
    /// Human name used in errors ("not supported by the Linux kernel").
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Illumos => "illumos",
            Dialect::Linux => "Linux",
        }
    }

    /// `AF_INET6` inside this kernel's sockaddrs.
    pub fn af_inet6(self) -> u16 {
        match self {
            Dialect::Illumos => 26,
            Dialect::Linux => 10,
        }
    }

    /// Size of this kernel's `sockaddr_in6`.
    pub fn sockaddr_in6_len(self) -> usize {
        match self {
            Dialect::Illumos => 32,
            Dialect::Linux => 28,
        }
    }

    /// SPIRANGE min/max byte order: illumos reads them in network order,
    /// Linux in host order (pfkey-v2-wire.md 2.2).
    pub fn spirange_network_order(self) -> bool {
        matches!(self, Dialect::Illumos)
    }
}

/// `AF_INET` is 2 everywhere.
pub const AF_INET: u16 = 2;
/// Size of `sockaddr_in` everywhere.
pub const SOCKADDR_IN_LEN: usize = 16;

macro_rules! numbered {
    (
        $(#[$m:meta])* $vis:vis enum $name:ident : $repr:ty {
            $($(#[$vm:meta])* $variant:ident = $illumos:expr, $linux:expr;)*
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vm])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The wire number in `dialect`, or `None` if that kernel has no such thing.
            pub fn number(self, dialect: Dialect) -> Option<$repr> {
                let n: (Option<$repr>, Option<$repr>) = match self {
                    $($name::$variant => ($illumos, $linux),)*
                };
                match dialect {
                    Dialect::Illumos => n.0,
                    Dialect::Linux => n.1,
                }
            }

            /// What wire number `n` means in `dialect`.
            pub fn from_number(n: $repr, dialect: Dialect) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.number(dialect) == Some(n))
            }
        }
    };
}

numbered! {
    /// PF_KEY message types (pfkey-v2-wire.md 3.1).
    pub enum MsgType: u8 {
        /// Type 0: invalid on the wire; used for replies to unknown types.
        Reserved = Some(0), Some(0);
        GetSpi = Some(1), Some(1);
        Update = Some(2), Some(2);
        Add = Some(3), Some(3);
        Delete = Some(4), Some(4);
        Get = Some(5), Some(5);
        Acquire = Some(6), Some(6);
        Register = Some(7), Some(7);
        Expire = Some(8), Some(8);
        Flush = Some(9), Some(9);
        Dump = Some(10), Some(10);
        Promisc = Some(11), Some(11);
        InverseAcquire = Some(12), None;
        PChange = None, Some(12);
        UpdatePair = Some(13), None;
        DelPair = Some(14), None;
        DelPairState = Some(15), None;
        SpdUpdate = None, Some(13);
        SpdAdd = None, Some(14);
        SpdDelete = None, Some(15);
        SpdGet = None, Some(16);
        SpdAcquire = None, Some(17);
        SpdDump = None, Some(18);
        SpdFlush = None, Some(19);
        SpdSetIdx = None, Some(20);
        SpdExpire = None, Some(21);
        SpdDelete2 = None, Some(22);
        NatTNewMapping = None, Some(23);
        Migrate = None, Some(24);
    }
}

numbered! {
    /// Extension kinds (pfkey-v2-wire.md 2.1); numbers 17-27 differ per kernel.
    pub enum ExtKind: u16 {
        Sa = Some(1), Some(1);
        LifetimeCurrent = Some(2), Some(2);
        LifetimeHard = Some(3), Some(3);
        LifetimeSoft = Some(4), Some(4);
        AddressSrc = Some(5), Some(5);
        AddressDst = Some(6), Some(6);
        /// RFC "proxy"; illumos reuses it as the tunnel-mode inner source.
        AddressInnerSrc = Some(7), Some(7);
        KeyAuth = Some(8), Some(8);
        KeyEncrypt = Some(9), Some(9);
        IdentitySrc = Some(10), Some(10);
        IdentityDst = Some(11), Some(11);
        Sensitivity = Some(12), Some(12);
        Proposal = Some(13), Some(13);
        SupportedAuth = Some(14), Some(14);
        SupportedEncrypt = Some(15), Some(15);
        SpiRange = Some(16), Some(16);
        // illumos extensions
        ExtRegister = Some(17), None;
        ExtProposal = Some(18), None;
        KmCookie = Some(19), None;
        AddressNattLoc = Some(20), None;
        AddressNattRem = Some(21), None;
        AddressInnerDst = Some(22), None;
        Pair = Some(23), None;
        ReplayValue = Some(24), None;
        ExtDump = Some(25), None;
        LifetimeIdle = Some(26), None;
        OuterSensitivity = Some(27), None;
        // Linux extensions
        KmPrivate = None, Some(17);
        Policy = None, Some(18);
        Sa2 = None, Some(19);
        NatTType = None, Some(20);
        NatTSport = None, Some(21);
        NatTDport = None, Some(22);
        NatTOa = None, Some(23);
        SecCtx = None, Some(24);
        KmAddress = None, Some(25);
        Filter = None, Some(26);
    }
}

impl ExtKind {
    /// Extensions laid out as `sadb_address`.
    pub fn is_address(self) -> bool {
        matches!(
            self,
            ExtKind::AddressSrc
                | ExtKind::AddressDst
                | ExtKind::AddressInnerSrc
                | ExtKind::AddressInnerDst
                | ExtKind::AddressNattLoc
                | ExtKind::AddressNattRem
                | ExtKind::NatTOa
        )
    }

    /// Extensions laid out as `sadb_lifetime`.
    pub fn is_lifetime(self) -> bool {
        matches!(
            self,
            ExtKind::LifetimeCurrent
                | ExtKind::LifetimeHard
                | ExtKind::LifetimeSoft
                | ExtKind::LifetimeIdle
        )
    }
}

/// SA types (`sadb_msg_satype`, pfkey-v2-wire.md 5.4).
pub mod satype {
    pub const UNSPEC: u8 = 0;
    pub const AH: u8 = 2;
    pub const ESP: u8 = 3;
    pub const RSVP: u8 = 5;
    pub const OSPFV2: u8 = 6;
    pub const RIPV2: u8 = 7;
    pub const MIP: u8 = 8;
}

/// SA states (`sadb_sa_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SaState {
    Larval = 0,
    Mature = 1,
    Dying = 2,
    Dead = 3,
    /// illumos clustering: SA owned by another node.
    ActiveElsewhere = 4,
    /// illumos clustering: idle, packets buffered.
    Idle = 5,
    /// illumos clustering: UPDATE target that reactivates an IDLE SA.
    Active = 6,
}

impl SaState {
    pub fn from_u8(n: u8) -> Option<SaState> {
        Some(match n {
            0 => SaState::Larval,
            1 => SaState::Mature,
            2 => SaState::Dying,
            3 => SaState::Dead,
            4 => SaState::ActiveElsewhere,
            5 => SaState::Idle,
            6 => SaState::Active,
            _ => return None,
        })
    }

    /// Lower-case name as ipseckey's `state` keyword spells it.
    pub fn name(self) -> &'static str {
        match self {
            SaState::Larval => "larval",
            SaState::Mature => "mature",
            SaState::Dying => "dying",
            SaState::Dead => "dead",
            SaState::ActiveElsewhere => "active-elsewhere",
            SaState::Idle => "idle",
            SaState::Active => "active",
        }
    }
}

/// SA flags in illumos numbering (`sadb_sa_flags`, pfkey-v2-wire.md 5.2).
///
/// The simulator stores flags this way. Linux gives some of the same bits
/// other meanings; those are mapped to bits above 32 ([`flags::LINUX_NOECN`]
/// and friends) so one value can say what either kernel meant.
pub mod flags {
    pub const PFS: u64 = 0x0000_0001;
    pub const NOREPLAY: u64 = 0x0000_0002;
    pub const X_NATTED: u64 = 0x0000_1000;
    pub const X_INBOUND: u64 = 0x0000_4000;
    pub const X_OUTBOUND: u64 = 0x0000_8000;
    pub const X_PAIRED: u64 = 0x0001_0000;
    pub const X_TUNNEL: u64 = 0x0002_0000;
    pub const X_KRES2: u64 = 0x0004_0000;
    pub const X_NATT_REM: u64 = 0x0008_0000;
    pub const X_NATT_LOC: u64 = 0x0010_0000;
    pub const X_KRES1: u64 = 0x0020_0000;
    pub const X_KM4: u64 = 0x0040_0000;
    pub const X_KM3: u64 = 0x0080_0000;
    pub const X_KM2: u64 = 0x0100_0000;
    pub const X_KM1: u64 = 0x0200_0000;
    pub const X_EALG2: u64 = 0x0400_0000;
    pub const X_EALG1: u64 = 0x0800_0000;
    pub const X_AALG2: u64 = 0x1000_0000;
    pub const X_AALG1: u64 = 0x2000_0000;
    pub const X_UNIQUE: u64 = 0x4000_0000;
    pub const X_USED: u64 = 0x8000_0000;

    /// Linux `SADB_SAFLAGS_NOECN` (0x80000000 on the Linux wire).
    pub const LINUX_NOECN: u64 = 1 << 32;
    /// Linux `SADB_SAFLAGS_DECAP_DSCP` (0x40000000 on the Linux wire).
    pub const LINUX_DECAP_DSCP: u64 = 1 << 33;
    /// Linux `SADB_SAFLAGS_NOPMTUDISC` (0x20000000 on the Linux wire).
    pub const LINUX_NOPMTUDISC: u64 = 1 << 34;

    /// illumos UPDATE-settable flags for AH.
    pub const UPDATE_AH: u64 =
        X_PAIRED | NOREPLAY | X_OUTBOUND | X_INBOUND | X_KM1 | X_KM2 | X_KM3 | X_KM4;
    /// illumos UPDATE-settable flags for ESP.
    pub const UPDATE_ESP: u64 = UPDATE_AH | X_NATT_LOC | X_NATT_REM | X_NATTED;
    /// illumos ADD-settable flags for AH.
    pub const ADD_AH: u64 = UPDATE_AH | X_AALG1 | X_AALG2 | X_TUNNEL;
    /// illumos ADD-settable flags for ESP.
    pub const ADD_ESP: u64 = ADD_AH | X_NATT_LOC | X_NATT_REM | X_NATTED | X_EALG1 | X_EALG2;

    /// Names ipseckey prints for the flag bits, lowest first.
    pub const NAMES: &[(u64, &str)] = &[
        (PFS, "PFS"),
        (NOREPLAY, "NOREPLAY"),
        (X_NATTED, "X_NATTED"),
        (X_INBOUND, "X_INBOUND"),
        (X_OUTBOUND, "X_OUTBOUND"),
        (X_PAIRED, "X_PAIRED"),
        (X_TUNNEL, "X_TUNNEL"),
        (X_KRES2, "X_KRES2"),
        (X_NATT_REM, "X_NATT_REM"),
        (X_NATT_LOC, "X_NATT_LOC"),
        (X_KRES1, "X_KRES1"),
        (X_KM4, "X_KM4"),
        (X_KM3, "X_KM3"),
        (X_KM2, "X_KM2"),
        (X_KM1, "X_KM1"),
        (X_EALG2, "X_EALG2"),
        (X_EALG1, "X_EALG1"),
        (X_AALG2, "X_AALG2"),
        (X_AALG1, "X_AALG1"),
        (X_UNIQUE, "X_UNIQUE"),
        (X_USED, "X_USED"),
        (LINUX_NOECN, "NOECN"),
        (LINUX_DECAP_DSCP, "DECAP_DSCP"),
        (LINUX_NOPMTUDISC, "NOPMTUDISC"),
    ];

    /// Wire flags of a Linux kernel -> semantic flags.
    pub fn from_linux(wire: u32) -> u64 {
        let w = wire as u64;
        (w & PFS)
            | if w & 0x8000_0000 != 0 { LINUX_NOECN } else { 0 }
            | if w & 0x4000_0000 != 0 {
                LINUX_DECAP_DSCP
            } else {
                0
            }
            | if w & 0x2000_0000 != 0 {
                LINUX_NOPMTUDISC
            } else {
                0
            }
    }

    /// Semantic flags -> Linux wire flags; `Err` names the first flag Linux lacks.
    pub fn to_linux(f: u64) -> Result<u32, &'static str> {
        let mut out = (f & PFS) as u32;
        if f & LINUX_NOECN != 0 {
            out |= 0x8000_0000;
        }
        if f & LINUX_DECAP_DSCP != 0 {
            out |= 0x4000_0000;
        }
        if f & LINUX_NOPMTUDISC != 0 {
            out |= 0x2000_0000;
        }
        let linux_ok = PFS | LINUX_NOECN | LINUX_DECAP_DSCP | LINUX_NOPMTUDISC;
        if let Some(&(_, name)) = NAMES
            .iter()
            .find(|(bit, _)| f & bit != 0 && linux_ok & bit == 0)
        {
            return Err(name);
        }
        Ok(out)
    }

    /// Semantic flags -> illumos wire flags; `Err` names the first Linux-only flag.
    pub fn to_illumos(f: u64) -> Result<u32, &'static str> {
        if let Some(&(_, name)) = NAMES
            .iter()
            .find(|(bit, _)| f & bit != 0 && *bit > u32::MAX as u64)
        {
            return Err(name);
        }
        Ok(f as u32)
    }
}

/// Identity types (`sadb_ident_type`).
pub mod ident_type {
    pub const PREFIX: u16 = 1;
    pub const FQDN: u16 = 2;
    pub const USER_FQDN: u16 = 3;
    pub const DER_DN: u16 = 4;
    pub const DER_GN: u16 = 5;
    pub const KEY_ID: u16 = 6;
    pub const ADDR_RANGE: u16 = 7;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_number_different_meaning() {
        assert_eq!(
            ExtKind::from_number(20, Dialect::Linux),
            Some(ExtKind::NatTType)
        );
        assert_eq!(
            ExtKind::from_number(20, Dialect::Illumos),
            Some(ExtKind::AddressNattLoc)
        );
        assert_eq!(
            MsgType::from_number(13, Dialect::Linux),
            Some(MsgType::SpdUpdate)
        );
        assert_eq!(
            MsgType::from_number(13, Dialect::Illumos),
            Some(MsgType::UpdatePair)
        );
        assert_eq!(ExtKind::from_number(28, Dialect::Illumos), None);
        assert_eq!(ExtKind::from_number(0, Dialect::Linux), None);
    }

    #[test]
    fn numbers_are_unique_per_dialect() {
        for d in [Dialect::Illumos, Dialect::Linux] {
            for k in ExtKind::ALL {
                if let Some(n) = k.number(d) {
                    assert_eq!(ExtKind::from_number(n, d), Some(*k));
                }
            }
            for m in MsgType::ALL {
                if let Some(n) = m.number(d) {
                    assert_eq!(MsgType::from_number(n, d), Some(*m));
                }
            }
        }
    }

    #[test]
    fn linux_flags_translate_and_refuse_illumos_only_bits() {
        assert_eq!(flags::from_linux(0x8000_0000), flags::LINUX_NOECN);
        assert_eq!(
            flags::to_linux(flags::LINUX_NOECN | flags::PFS),
            Ok(0x8000_0001)
        );
        assert_eq!(flags::to_linux(flags::X_INBOUND), Err("X_INBOUND"));
        assert_eq!(
            flags::to_illumos(flags::LINUX_DECAP_DSCP),
            Err("DECAP_DSCP")
        );
        assert_eq!(
            flags::to_illumos(flags::X_USED | flags::X_OUTBOUND),
            Ok(0x8000_8000)
        );
    }
}
