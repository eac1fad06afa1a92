//! Where PF_KEY messages go: the simulator daemon's socket, an engine
//! inside this process, or a real kernel ([`crate::kernel`]). All take and
//! give the same (simulator-dialect) bytes.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sadb::pfkey::Message;
use sadb::Config;
use sim::client::Client;
use sim::keysock::{Keysock, SockId};

/// A PF_KEY socket: one send is one message, one receive is one reply.
pub trait Transport {
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// One message, or `None` when nothing came within `timeout`.
    fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>>;
    /// What the user should be told this talks to.
    fn describe(&self) -> String;
    /// Checks a request before it is sent: `Err` names a feature this
    /// kernel lacks (nothing is sent); `Ok` carries notes for the user.
    fn vet(&mut self, _msg: &Message) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// The `sadbd` daemon's socket.
pub struct SimSocket {
    client: Client,
    path: PathBuf,
}

impl SimSocket {
    pub fn connect(path: &Path) -> io::Result<SimSocket> {
        Ok(SimSocket {
            client: Client::connect(path)?,
            path: path.to_path_buf(),
        })
    }
}

impl Transport for SimSocket {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.client.send(msg)
    }
    fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        self.client.recv(timeout)
    }
    fn describe(&self) -> String {
        format!("the simulator at {}", self.path.display())
    }
}

/// A simulated kernel inside this process: quick starts, `-c`, tests. Its
/// SADB lives as long as the process.
pub struct InProcess {
    ks: Keysock,
    me: SockId,
    inbox: VecDeque<Vec<u8>>,
    clock: Box<dyn FnMut() -> u64>,
}

impl InProcess {
    pub fn new(cfg: Config) -> InProcess {
        let mut ks = Keysock::new(cfg);
        let me = ks.open();
        InProcess {
            ks,
            me,
            inbox: VecDeque::new(),
            clock: Box::new(sim::daemon::wall_clock),
        }
    }

    /// Uses `clock` (epoch seconds) instead of the wall clock.
    pub fn with_clock(mut self, clock: impl FnMut() -> u64 + 'static) -> InProcess {
        self.clock = Box::new(clock);
        self
    }

    pub fn keysock(&mut self) -> &mut Keysock {
        &mut self.ks
    }
}

impl Transport for InProcess {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let now = (self.clock)();
        // The ager runs before each request, so lifetimes expire as time passes.
        let mut out = self.ks.tick(now);
        out.extend(self.ks.write(self.me, msg, now));
        self.inbox
            .extend(out.into_iter().filter(|o| o.to == self.me).map(|o| o.bytes));
        Ok(())
    }
    fn recv(&mut self, _timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        Ok(self.inbox.pop_front())
    }
    fn describe(&self) -> String {
        "the in-process engine".into()
    }
}
