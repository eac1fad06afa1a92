//! Runs the `keys` blocks of a lab through ipseckey's own parser and
//! message builder, into a simulated host's PF_KEY socket.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use sadb::Now;
use sim::host::Host;
use sim::keysock::SockId;
use sim::lab::KeyLoader;

use crate::driver::run_stream;
use crate::parse::ParseOpts;
use crate::print::PrintOpts;
use crate::run::{Mode, Session};
use crate::transport::Transport;

/// ipseckey as a lab's key loader.
pub struct IpseckeyLoader;

struct HostSocket<'h> {
    host: &'h mut Host,
    sock: SockId,
    now: Now,
    inbox: VecDeque<Vec<u8>>,
}

impl Transport for HostSocket<'_> {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        for o in self.host.pfkey(self.sock, msg, self.now) {
            if o.to == self.sock {
                self.inbox.push_back(o.bytes);
            } else {
                // Copies for the host's other sockets (served clients).
                self.host.outbox.push(o);
            }
        }
        Ok(())
    }
    fn recv(&mut self, _timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        Ok(self.inbox.pop_front())
    }
    fn describe(&self) -> String {
        format!("host {}", self.host.name)
    }
}

impl KeyLoader for IpseckeyLoader {
    fn load(
        &mut self,
        host: &mut Host,
        sock: SockId,
        text: &str,
        now: Now,
    ) -> Result<String, String> {
        let name = host.name.clone();
        let mut t = HostSocket {
            host,
            sock,
            now,
            inbox: VecDeque::new(),
        };
        let mut out: Vec<u8> = Vec::new();
        let mut err: Vec<u8> = Vec::new();
        let tally = {
            let mut s = Session::new(
                &mut t,
                PrintOpts {
                    numeric: true,
                    ..PrintOpts::default()
                },
                Mode::File,
            );
            s.out = Box::new(&mut out);
            s.err = Box::new(&mut err);
            s.clock = Box::new(move || now);
            run_stream(&mut s, ParseOpts { numeric: true }, &mut text.as_bytes())
        };
        let mut shown = String::new();
        for l in String::from_utf8_lossy(&out)
            .lines()
            .chain(String::from_utf8_lossy(&err).lines())
        {
            shown.push_str(&format!("{name}: ipseckey: {l}\n"));
        }
        if tally.valid < tally.parsed {
            Err(format!("ipseckey commands for {name} failed:\n{shown}"))
        } else {
            Ok(shown)
        }
    }
}
