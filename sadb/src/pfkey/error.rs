//! Why a PF_KEY message could not be decoded or encoded.
//!
//! Every decode error maps to the errno and illumos diagnostic a kernel
//! would answer with ([`WireError::errno`], [`WireError::diagnostic`]), so the
//! simulator replies exactly like illumos. Errors carry offsets and lengths,
//! never key bytes.

use super::{Dialect, ExtKind};
use crate::diag::Diagnostic;
use crate::errno::Errno;

/// A message's bytes are not a well-formed PF_KEY v2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("bad PF_KEY version {0} (expected 2)")]
    BadVersion(u8),
    #[error("length field says {header_words} words but the message has {actual_bytes} bytes")]
    LengthMismatch {
        header_words: u16,
        actual_bytes: usize,
    },
    #[error("unknown message type {0}")]
    UnknownMsgType(u8),
    #[error("extension at offset {offset} has length 0")]
    ExtZeroLength { offset: usize },
    #[error("extension at offset {offset} ({len} bytes) runs past the end of the message")]
    ExtOverrun { offset: usize, len: usize },
    #[error("extension at offset {offset} has the reserved type 0")]
    ExtReservedType { offset: usize },
    #[error("unknown extension type {wire_type} at offset {offset}")]
    UnknownExt { wire_type: u16, offset: usize },
    #[error("{kind:?} extension too short: need {min} bytes, got {got}")]
    ExtTooShort {
        kind: ExtKind,
        min: usize,
        got: usize,
    },
    #[error("{kind:?} extension has the wrong length: expected {expected} bytes, got {got}")]
    ExtWrongLength {
        kind: ExtKind,
        expected: usize,
        got: usize,
    },
    #[error("duplicate {0:?} extension")]
    DuplicateExt(ExtKind),
    #[error("{kind:?} extension: key of 0 bits")]
    KeyBitsZero { kind: ExtKind },
    #[error("{kind:?} extension: key material is all zero")]
    KeyAllZero { kind: ExtKind },
    #[error("{kind:?} extension: {bits} key bits do not fit in {bytes} bytes")]
    KeyLenMismatch {
        kind: ExtKind,
        bits: u16,
        bytes: usize,
    },
    #[error("{kind:?} extension: unsupported address family {family}")]
    BadAddressFamily { kind: ExtKind, family: u16 },
    #[error("{kind:?} extension: sockaddr of family {family} needs {need} bytes, has {have}")]
    ShortSockaddr {
        kind: ExtKind,
        family: u16,
        need: usize,
        have: usize,
    },
    #[error("{kind:?} extension: prefix length {prefix} too long")]
    PrefixTooLong { kind: ExtKind, prefix: u8 },
    #[error("SPI range min {min:#x} > max {max:#x}")]
    SpiRangeInverted { min: u32, max: u32 },
    #[error("{kind:?} extension: count says {count} entries, only {room} fit")]
    BadCount {
        kind: ExtKind,
        count: usize,
        room: usize,
    },
}

impl WireError {
    /// The errno a kernel answers with.
    pub fn errno(&self) -> Errno {
        match self {
            WireError::Truncated { .. } | WireError::LengthMismatch { .. } => Errno::Emsgsize,
            _ => Errno::Einval,
        }
    }

    /// The illumos diagnostic code for this error (keysock, ipseckey-behaviour.md 5.2).
    pub fn diagnostic(&self) -> Diagnostic {
        use Diagnostic as D;
        match self {
            WireError::Truncated { .. }
            | WireError::LengthMismatch { .. }
            | WireError::BadVersion(_) => D::None,
            WireError::UnknownMsgType(_) => D::UnknownMsg,
            WireError::ExtZeroLength { .. } | WireError::ExtOverrun { .. } => D::BadExtlen,
            WireError::ExtReservedType { .. } | WireError::UnknownExt { .. } => D::UnknownExt,
            WireError::DuplicateExt(kind) => match kind {
                ExtKind::AddressSrc => D::DuplicateSrc,
                ExtKind::AddressDst => D::DuplicateDst,
                ExtKind::Sa => D::DuplicateSa,
                ExtKind::KeyEncrypt => D::DuplicateEkey,
                ExtKind::KeyAuth => D::DuplicateAkey,
                ExtKind::SpiRange => D::DuplicateRange,
                ExtKind::AddressInnerSrc => D::DuplicateInnerSrc,
                ExtKind::AddressInnerDst => D::DuplicateInnerDst,
                _ => D::None,
            },
            WireError::KeyBitsZero { kind }
            | WireError::KeyAllZero { kind }
            | WireError::KeyLenMismatch { kind, .. } => malformed(*kind),
            WireError::ExtTooShort { kind, .. } | WireError::ExtWrongLength { kind, .. } => {
                malformed(*kind)
            }
            WireError::ShortSockaddr { kind, .. } => malformed(*kind),
            WireError::BadAddressFamily { kind, .. } => match kind {
                ExtKind::AddressSrc => D::BadSrcAf,
                ExtKind::AddressDst => D::BadDstAf,
                ExtKind::AddressInnerSrc => D::BadInnerSrcAf,
                ExtKind::AddressInnerDst => D::BadInnerDstAf,
                ExtKind::AddressNattLoc => D::BadNattLocAf,
                ExtKind::AddressNattRem => D::BadNattRemAf,
                _ => D::None,
            },
            WireError::PrefixTooLong { kind, .. } => match kind {
                ExtKind::AddressInnerSrc => D::PrefixInnerSrc,
                ExtKind::AddressInnerDst => D::PrefixInnerDst,
                other => malformed(*other),
            },
            WireError::SpiRangeInverted { .. } => D::MalformedRange,
            WireError::BadCount { kind, .. } => malformed(*kind),
        }
    }
}

/// The MALFORMED_* diagnostic for an extension kind (diag 0 where illumos has none).
pub fn malformed(kind: ExtKind) -> Diagnostic {
    use Diagnostic as D;
    match kind {
        ExtKind::AddressSrc => D::MalformedSrc,
        ExtKind::AddressDst => D::MalformedDst,
        ExtKind::Sa => D::MalformedSa,
        ExtKind::KeyEncrypt => D::MalformedEkey,
        ExtKind::KeyAuth => D::MalformedAkey,
        ExtKind::SpiRange => D::MalformedRange,
        ExtKind::AddressInnerSrc => D::MalformedInnerSrc,
        ExtKind::AddressInnerDst => D::MalformedInnerDst,
        ExtKind::AddressNattLoc => D::MalformedNattLoc,
        ExtKind::AddressNattRem => D::MalformedNattRem,
        _ => D::None,
    }
}

/// A message cannot be expressed in the requested dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The target kernel has no equivalent of a feature the message uses.
    #[error("{feature} is not supported by the {} kernel's PF_KEY", dialect.name())]
    Unsupported { feature: String, dialect: Dialect },
    /// The message would not fit in PF_KEY's 16-bit length fields.
    #[error("message too large for PF_KEY ({bytes} bytes)")]
    TooLarge { bytes: usize },
    /// A value does not fit in its wire field.
    #[error("{what} does not fit in its PF_KEY field")]
    ValueTooLarge { what: &'static str },
}
