//! The userspace IPsec kernel: the only crate that owns sockets, timers
//! and threads (STYLE.md 1). [`keysock`] is the PF_KEY socket layer as a
//! sans-IO state machine; [`daemon`] serves it on a Unix SOCK_SEQPACKET
//! socket (the `sadbd` binary), optionally journaled to a state file
//! ([`journal`]); [`client`] is the other end.

pub mod bench;
pub mod client;
pub mod counters;
pub mod daemon;
pub mod host;
pub mod journal;
pub mod keysock;
pub mod lab;
pub mod link;
pub mod live;
pub mod nat;
pub mod netio;
pub mod policy;
pub mod stack;
pub mod vclock;

pub use keysock::{Keysock, SockId};
