//! The SA database of a userspace IPsec kernel, and the PF_KEY v2 messages
//! that drive it.
//!
//! This crate has no I/O, no threads, no crypto and never reads a clock:
//! every operation that can expire something takes `now` and returns the
//! messages it produced (STYLE.md 1 and 3).

pub mod alg;
pub mod db;
pub mod diag;
pub mod errno;
pub mod key;
pub mod pfkey;
pub mod replay;
pub mod sa;

pub use db::{Audience, Config, Delivery, Jitter, Response, SaId, Sadb, SocketEffect};
pub use diag::Diagnostic;
pub use errno::Errno;
pub use key::KeyMaterial;
pub use sa::{Now, Sa};
