//! The PF_KEY socket layer (illumos keysock), sans-IO: which socket gets
//! which message (pfkey-v2-wire.md 1.7), promiscuous and registered
//! sockets, and the ager's EXPIREs. The daemon and the in-process
//! transport both drive this one state machine, so they behave alike.

use sadb::pfkey::{Dialect, Message, MsgView};
use sadb::{Audience, Config, Now, Sadb, SocketEffect};
use slab::Slab;

/// One open PF_KEY socket.
pub type SockId = usize;

#[derive(Debug, Clone, Default)]
struct SockState {
    promisc: bool,
    /// Bit n: registered for SA type n.
    registered: u32,
    extended: bool,
}

/// A message for one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: SockId,
    pub bytes: Vec<u8>,
}

/// The SADB of one simulated host with its PF_KEY sockets.
pub struct Keysock {
    sadb: Sadb,
    socks: Slab<SockState>,
}

impl Keysock {
    pub fn new(cfg: Config) -> Keysock {
        Keysock {
            sadb: Sadb::new(cfg),
            socks: Slab::new(),
        }
    }

    pub fn sadb(&self) -> &Sadb {
        &self.sadb
    }

    pub fn sadb_mut(&mut self) -> &mut Sadb {
        &mut self.sadb
    }

    /// `socket(PF_KEY, SOCK_RAW, PF_KEY_V2)`.
    pub fn open(&mut self) -> SockId {
        self.socks.insert(SockState::default())
    }

    pub fn close(&mut self, id: SockId) {
        self.socks.try_remove(id);
    }

    pub fn is_open(&self, id: SockId) -> bool {
        self.socks.contains(id)
    }

    pub fn sockets(&self) -> usize {
        self.socks.len()
    }

    /// One `write()` of `bytes` on socket `from` at time `now`: what every
    /// socket reads as a result, in order.
    pub fn write(&mut self, from: SockId, bytes: &[u8], now: Now) -> Vec<Outgoing> {
        if !self.socks.contains(from) {
            return Vec::new();
        }
        // A message whose header cannot even be read still gets an error
        // reply from the SADB (EMSGSIZE), addressed to the sender.
        let resp = self.sadb.handle_bytes(bytes, now);
        if let Some(effect) = &resp.effect {
            if let Some(s) = self.socks.get_mut(from) {
                match effect {
                    SocketEffect::Promisc(on) => s.promisc = *on,
                    SocketEffect::Register(t) => s.registered |= 1u32 << (*t & 31),
                    SocketEffect::RegisterExtended(types) => {
                        s.extended = true;
                        for t in types {
                            s.registered |= 1u32 << (t & 31);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        for d in resp.deliveries {
            self.deliver(from, d.to, &d.msg, &mut out);
        }
        out
    }

    /// An ager pass: EXPIREs go to every socket (illumos keysock_passup).
    pub fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for m in self.sadb.age(now) {
            self.deliver(usize::MAX, Audience::All, &m, &mut out);
        }
        out
    }

    /// Delivers kernel-originated messages (EXPIREs from the data path) to
    /// every socket.
    pub fn broadcast(&mut self, msgs: &[Message]) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for m in msgs {
            self.deliver(usize::MAX, Audience::All, m, &mut out);
        }
        out
    }

    fn deliver(&self, from: SockId, to: Audience, msg: &Message, out: &mut Vec<Outgoing>) {
        let Ok(bytes) = msg.emit(Dialect::Illumos) else {
            return;
        };
        debug_assert!(MsgView::new_checked(&bytes[..]).is_ok());
        for (id, s) in self.socks.iter() {
            let target = match to {
                Audience::All => true,
                Audience::Sender => id == from,
                Audience::Registered(0) => s.extended || id == from,
                Audience::Registered(t) => s.registered & (1u32 << (t & 31)) != 0 || id == from,
            };
            // Promiscuous sockets see everything any socket is sent.
            if target || s.promisc {
                out.push(Outgoing {
                    to: id,
                    bytes: bytes.clone(),
                });
            }
        }
    }
}
