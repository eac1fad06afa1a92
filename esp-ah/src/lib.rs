//! ESP (RFC 4303) and AH (RFC 4302) packet transforms over the `sadb` SA
//! database, sans-IO: given a packet buffer, produce the protected packet
//! (outbound) or the verified clear text (inbound), or a drop with its
//! reason (STYLE.md 3). Nothing here opens a socket or reads a clock.

pub mod ah;
pub mod crypto;
pub mod engine;
pub mod esp;
pub mod packet;
pub mod transform;

pub use engine::{Engine, GlobalCounters, InboundJob, OutboundJob, Verdict};
pub use packet::PacketBuf;
pub use transform::{SaCounters, SaCrypto, SaOptions, Transform};

/// Why a packet was dropped. Counted per SA where the SA is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// No SA for the SPI and destination.
    NoSa,
    /// The ICV (or AEAD tag) did not verify.
    BadIcv,
    /// The sequence number was seen already (RFC 4303 3.4.3).
    Replay,
    /// The sequence number is left of the replay window.
    TooOld,
    /// Sequence number 0 on an SA with a replay window.
    ZeroSequence,
    /// Padding or pad length inconsistent after decryption.
    BadPadding,
    /// The SA is dead, larval, or its lifetime ran out on this packet.
    Expired,
    /// The outbound sequence counter would wrap (RFC 4303 3.3.3).
    SeqOverflow,
    /// Truncated or inconsistent headers.
    Malformed,
    /// An IP fragment: reassemble first (RFC 4303 3.4.1).
    Fragment,
    /// Inner addresses outside the SA's selectors (RFC 4301 5.2).
    Policy,
    /// A dummy packet (next header 59), discarded by design.
    Dummy,
    /// A NAT-T keepalive (RFC 3948 2.3), discarded by design.
    Keepalive,
    /// The buffer had no room for the headers and trailers, or the
    /// protected packet would not fit IP's 16-bit length field.
    NoRoom,
}

impl DropReason {
    pub const COUNT: usize = 14;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::NoSa,
        DropReason::BadIcv,
        DropReason::Replay,
        DropReason::TooOld,
        DropReason::ZeroSequence,
        DropReason::BadPadding,
        DropReason::Expired,
        DropReason::SeqOverflow,
        DropReason::Malformed,
        DropReason::Fragment,
        DropReason::Policy,
        DropReason::Dummy,
        DropReason::Keepalive,
        DropReason::NoRoom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::NoSa => "no SA",
            DropReason::BadIcv => "bad ICV",
            DropReason::Replay => "replay",
            DropReason::TooOld => "too old",
            DropReason::ZeroSequence => "sequence number 0",
            DropReason::BadPadding => "bad padding",
            DropReason::Expired => "expired",
            DropReason::SeqOverflow => "sequence number overflow",
            DropReason::Malformed => "malformed",
            DropReason::Fragment => "fragment",
            DropReason::Policy => "inner addresses outside the SA's selectors",
            DropReason::Dummy => "dummy packet",
            DropReason::Keepalive => "NAT-T keepalive",
            DropReason::NoRoom => "no buffer room",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
