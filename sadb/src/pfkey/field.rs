//! Byte offsets of every fixed PF_KEY layout (pfkey-v2-wire.md 1.2 and 2).
//! Lengths and counts are in host order; SPIs, ports and addresses in
//! network order.

#![allow(missing_docs)]

pub type Field = core::ops::Range<usize>;

/// `struct sadb_msg` (16 bytes).
pub mod msg {
    use super::Field;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const ERRNO: usize = 2;
    pub const SATYPE: usize = 3;
    pub const LEN: Field = 4..6;
    pub const RESERVED: Field = 6..8;
    pub const SEQ: Field = 8..12;
    pub const PID: Field = 12..16;
}

/// `struct sadb_ext`: the first 4 bytes of every extension.
pub mod ext {
    use super::Field;
    pub const LEN: Field = 0..2;
    pub const TYPE: Field = 2..4;
    pub const HEADER_LEN: usize = 4;
}

/// `struct sadb_sa` (16 bytes).
pub mod sa {
    use super::Field;
    pub const SPI: Field = 4..8;
    pub const REPLAY: usize = 8;
    pub const STATE: usize = 9;
    pub const AUTH: usize = 10;
    pub const ENCRYPT: usize = 11;
    pub const FLAGS: Field = 12..16;
    pub const LEN: usize = 16;
}

/// `struct sadb_lifetime` (32 bytes).
pub mod lifetime {
    use super::Field;
    pub const ALLOCATIONS: Field = 4..8;
    pub const BYTES: Field = 8..16;
    pub const ADDTIME: Field = 16..24;
    pub const USETIME: Field = 24..32;
    pub const LEN: usize = 32;
}

/// `struct sadb_address` (8 bytes + sockaddr).
pub mod address {
    use super::Field;
    pub const PROTO: usize = 4;
    pub const PREFIXLEN: usize = 5;
    pub const RESERVED: Field = 6..8;
    pub const SOCKADDR: usize = 8;
}

/// `struct sockaddr_in` / `sockaddr_in6` (no `sa_len` on illumos or Linux).
pub mod sockaddr {
    use super::Field;
    pub const FAMILY: Field = 0..2;
    pub const PORT: Field = 2..4;
    pub const IN_ADDR: Field = 4..8;
    pub const IN_ZERO: Field = 8..16;
    pub const IN6_FLOWINFO: Field = 4..8;
    pub const IN6_ADDR: Field = 8..24;
    pub const IN6_SCOPE_ID: Field = 24..28;
    /// illumos only: `__sin6_src_id`.
    pub const IN6_SRC_ID: Field = 28..32;
}

/// `struct sadb_key` (8 bytes + key).
pub mod key {
    use super::Field;
    pub const BITS: Field = 4..6;
    pub const RESERVED: Field = 6..8;
    pub const MATERIAL: usize = 8;
}

/// `struct sadb_ident` (16 bytes + string).
pub mod ident {
    use super::Field;
    pub const TYPE: Field = 4..6;
    pub const RESERVED: Field = 6..8;
    pub const ID: Field = 8..16;
    pub const STRING: usize = 16;
}

/// `struct sadb_sens` (16 bytes + bitmaps).
pub mod sens {
    use super::Field;
    pub const DPD: Field = 4..8;
    pub const SENS_LEVEL: usize = 8;
    pub const SENS_LEN: usize = 9;
    pub const INTEG_LEVEL: usize = 10;
    pub const INTEG_LEN: usize = 11;
    pub const FLAGS: Field = 12..16;
    pub const BITMAPS: usize = 16;
}

/// `struct sadb_prop` (8 bytes + combs).
pub mod prop {
    pub const REPLAY: usize = 4;
    pub const RESERVED: core::ops::Range<usize> = 5..8;
    pub const COMBS: usize = 8;
    pub const COMB_LEN: usize = 72;
}

/// `struct sadb_supported` (8 bytes + algs) and `struct sadb_alg` (8 bytes).
pub mod supported {
    use super::Field;
    pub const RESERVED: Field = 4..8;
    pub const ALGS: usize = 8;
    pub const ALG_LEN: usize = 8;
    pub const ALG_ID: usize = 0;
    pub const ALG_IVLEN: usize = 1;
    pub const ALG_MINBITS: Field = 2..4;
    pub const ALG_MAXBITS: Field = 4..6;
    /// illumos: increment u8 @6, saltbits u8 @7; others: reserved u16.
    pub const ALG_RESERVED: Field = 6..8;
}

/// `struct sadb_spirange` (16 bytes).
pub mod spirange {
    use super::Field;
    pub const MIN: Field = 4..8;
    pub const MAX: Field = 8..12;
    pub const RESERVED: Field = 12..16;
    pub const LEN: usize = 16;
}

/// illumos `sadb_x_kmc` (16 bytes).
pub mod km_cookie {
    use super::Field;
    pub const PROTO: Field = 4..8;
    pub const COOKIE: Field = 8..16;
    pub const LEN: usize = 16;
}

/// illumos `sadb_x_pair` (8 bytes).
pub mod pair {
    use super::Field;
    pub const SPI: Field = 4..8;
    pub const LEN: usize = 8;
}

/// illumos `sadb_x_replay_ctr` (16 bytes).
pub mod replay_value {
    use super::Field;
    pub const R32: Field = 4..8;
    pub const R64: Field = 8..16;
    pub const LEN: usize = 16;
}

/// illumos `sadb_x_edump` (16 bytes).
pub mod edump {
    use super::Field;
    pub const RESERVED: Field = 4..8;
    pub const TIMEOUT: Field = 8..16;
    pub const LEN: usize = 16;
}

/// Linux `sadb_x_sa2` (16 bytes).
pub mod sa2 {
    use super::Field;
    pub const MODE: usize = 4;
    pub const RESERVED: Field = 5..8;
    pub const SEQUENCE: Field = 8..12;
    pub const REQID: Field = 12..16;
    pub const LEN: usize = 16;
}

/// Linux `sadb_x_nat_t_type` and `sadb_x_nat_t_port` (8 bytes each).
pub mod nat_t {
    use super::Field;
    pub const TYPE: usize = 4;
    pub const TYPE_RESERVED: Field = 5..8;
    pub const PORT: Field = 4..6;
    pub const PORT_RESERVED: Field = 6..8;
    pub const LEN: usize = 8;
}

/// Linux `sadb_x_sec_ctx` (8 bytes + context).
pub mod sec_ctx {
    use super::Field;
    pub const ALG: usize = 4;
    pub const DOI: usize = 5;
    pub const CTX_LEN: Field = 6..8;
    pub const CTX: usize = 8;
}

/// Linux `sadb_x_filter` (40 bytes).
pub mod filter {
    use super::Field;
    pub const SADDR: Field = 4..20;
    pub const DADDR: Field = 20..36;
    pub const FAMILY: Field = 36..38;
    pub const SPLEN: usize = 38;
    pub const DPLEN: usize = 39;
    pub const LEN: usize = 40;
}
