//! Checked views over PF_KEY bytes: construction proves every later access
//! is in bounds, so accessors never panic and never copy.

use super::error::WireError;
use super::field::{self, Field};
use super::{BASE_LEN, PF_KEY_V2, WORD};

#[inline]
pub(crate) fn ne_u16(b: &[u8], f: Field) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[f]);
    u16::from_ne_bytes(a)
}
#[inline]
pub(crate) fn ne_u32(b: &[u8], f: Field) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[f]);
    u32::from_ne_bytes(a)
}
#[inline]
pub(crate) fn ne_u64(b: &[u8], f: Field) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[f]);
    u64::from_ne_bytes(a)
}
#[inline]
pub(crate) fn be_u16(b: &[u8], f: Field) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[f]);
    u16::from_be_bytes(a)
}
#[inline]
pub(crate) fn be_u32(b: &[u8], f: Field) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[f]);
    u32::from_be_bytes(a)
}

/// A PF_KEY message whose base header has been checked: at least 16 bytes,
/// `len * 8` equal to the buffer length, version 2.
#[derive(Debug, Clone, Copy)]
pub struct MsgView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> MsgView<T> {
    /// Checks the framing rules of pfkey-v2-wire.md 1.3.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < BASE_LEN {
            return Err(WireError::Truncated {
                need: BASE_LEN,
                have: b.len(),
            });
        }
        let words = ne_u16(b, field::msg::LEN);
        if words as usize * WORD != b.len() {
            return Err(WireError::LengthMismatch {
                header_words: words,
                actual_bytes: b.len(),
            });
        }
        if b[field::msg::VERSION] != PF_KEY_V2 {
            return Err(WireError::BadVersion(b[field::msg::VERSION]));
        }
        Ok(MsgView { buf })
    }

    /// Reads only the base header of a buffer that may be malformed beyond it,
    /// so an error reply can echo type, satype, seq and pid.
    pub fn peek_header(b: &[u8]) -> Option<RawHeader> {
        if b.len() < BASE_LEN {
            return None;
        }
        Some(RawHeader {
            version: b[field::msg::VERSION],
            msg_type: b[field::msg::TYPE],
            errno: b[field::msg::ERRNO],
            satype: b[field::msg::SATYPE],
            len_words: ne_u16(b, field::msg::LEN),
            reserved: ne_u16(b, field::msg::RESERVED),
            seq: ne_u32(b, field::msg::SEQ),
            pid: ne_u32(b, field::msg::PID),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn version(&self) -> u8 {
        self.as_bytes()[field::msg::VERSION]
    }
    pub fn msg_type(&self) -> u8 {
        self.as_bytes()[field::msg::TYPE]
    }
    pub fn errno(&self) -> u8 {
        self.as_bytes()[field::msg::ERRNO]
    }
    pub fn satype(&self) -> u8 {
        self.as_bytes()[field::msg::SATYPE]
    }
    pub fn len_words(&self) -> u16 {
        ne_u16(self.as_bytes(), field::msg::LEN)
    }
    pub fn reserved(&self) -> u16 {
        ne_u16(self.as_bytes(), field::msg::RESERVED)
    }
    pub fn seq(&self) -> u32 {
        ne_u32(self.as_bytes(), field::msg::SEQ)
    }
    pub fn pid(&self) -> u32 {
        ne_u32(self.as_bytes(), field::msg::PID)
    }

    /// The extensions after the base header, in wire order.
    pub fn extensions(&self) -> ExtIter<'_> {
        ExtIter {
            buf: self.as_bytes(),
            offset: BASE_LEN,
        }
    }
}

/// The base header fields, read without any check beyond its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    pub version: u8,
    pub msg_type: u8,
    pub errno: u8,
    pub satype: u8,
    pub len_words: u16,
    pub reserved: u16,
    pub seq: u32,
    pub pid: u32,
}

/// One extension whose generic header has been checked: length of at least
/// one word, inside the message. The type is not interpreted here, so the
/// iterator is the same for every dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExt<'a> {
    /// Offset of the extension from the start of the message.
    pub offset: usize,
    /// `sadb_ext_type` as on the wire.
    pub wire_type: u16,
    /// The whole extension, generic header included.
    pub bytes: &'a [u8],
}

/// Walks the extensions of a message. Yields an error (and then stops) at the
/// first extension that breaks the generic rules.
#[derive(Debug, Clone)]
pub struct ExtIter<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = Result<RawExt<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.len().checked_sub(self.offset)?;
        if rest == 0 {
            return None;
        }
        let offset = self.offset;
        if rest < field::ext::HEADER_LEN {
            self.offset = self.buf.len();
            return Some(Err(WireError::ExtOverrun { offset, len: rest }));
        }
        let b = &self.buf[offset..];
        let words = ne_u16(b, field::ext::LEN) as usize;
        let wire_type = ne_u16(b, field::ext::TYPE);
        let len = words * WORD;
        if words == 0 {
            self.offset = self.buf.len();
            return Some(Err(WireError::ExtZeroLength { offset }));
        }
        if len > rest {
            self.offset = self.buf.len();
            return Some(Err(WireError::ExtOverrun { offset, len }));
        }
        if wire_type == 0 {
            self.offset = self.buf.len();
            return Some(Err(WireError::ExtReservedType { offset }));
        }
        self.offset += len;
        Some(Ok(RawExt {
            offset,
            wire_type,
            bytes: &b[..len],
        }))
    }
}
