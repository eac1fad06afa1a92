//! The client end of a simulated PF_KEY socket: a Unix SOCK_SEQPACKET
//! connection to `sadbd`, where one send is one PF_KEY message and one
//! receive is one reply, as on a kernel PF_KEY socket.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    connect, recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Largest PF_KEY message: the 16-bit length field counts 8-byte words.
pub const MAX_MSG: usize = 65535 * 8;

/// A connected simulated PF_KEY socket.
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    /// Receive buffer of the largest message, allocated once: zeroing
    /// 512 KiB per message cost more than the rest of a round trip.
    buf: Mutex<Vec<u8>>,
}

/// Waits until `fd` can be read, or `timeout` (None: for ever) passes;
/// returns whether it can. A signal does not cut the wait short. Every
/// socket client here (the simulator's PF_KEY socket, Linux's PF_KEY and
/// XFRM netlink sockets) waits for its replies this way.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let t = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, t) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Client {
    /// Connects to the daemon's socket at `path`.
    pub fn connect(path: &Path) -> io::Result<Client> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io_err)?;
        let addr = UnixAddr::new(path).map_err(io_err)?;
        connect(fd.as_raw_fd(), &addr).map_err(io_err)?;
        Ok(Client {
            fd,
            buf: Mutex::new(Vec::new()),
        })
    }

    /// Sends one PF_KEY message.
    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        let n = send(self.fd.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL).map_err(io_err)?;
        if n != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short PF_KEY write",
            ));
        }
        Ok(())
    }

    /// Receives one message, waiting at most `timeout` (`None`: forever).
    /// `Ok(None)` on timeout; an error of kind `UnexpectedEof` when the
    /// daemon went away.
    pub fn recv(&self, timeout: Option<Duration>) -> io::Result<Option<Vec<u8>>> {
        // One receive buffer per connection, not 512 KiB zeroed per message.
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() < MAX_MSG {
            buf.resize(MAX_MSG, 0);
        }
        Ok(self
            .recv_into(&mut buf, timeout)?
            .map(|n| buf[..n].to_vec()))
    }

    /// [`Client::recv`] into the caller's buffer (at least [`MAX_MSG`]
    /// bytes, or longer messages are cut): the length received.
    pub fn recv_into(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<Option<usize>> {
        if !wait_readable(self.fd.as_fd(), timeout)? {
            return Ok(None);
        }
        let n = recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io_err)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the simulator closed the PF_KEY socket",
            ));
        }
        Ok(Some(n))
    }
}
