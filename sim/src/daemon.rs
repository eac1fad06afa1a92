//! `sadbd`: serves one simulated host's PF_KEY socket layer on a Unix
//! SOCK_SEQPACKET socket. Single-threaded: one poll loop for clients, the
//! ager's timer and SIGTERM/SIGINT.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, getsockopt, listen, recv, socket, sockopt, AddressFamily, Backlog, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{Gid, Uid};
use sadb::Config;

use crate::client::MAX_MSG;
use crate::keysock::{Keysock, Outgoing, SockId};

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    /// Addresses this simulated host calls its own.
    pub local: Vec<IpAddr>,
    /// Ager period (illumos: 8 s).
    pub tick: Duration,
    /// Also admit clients of this group (the socket is then mode 0660).
    pub group: Option<Gid>,
    /// Messages queued for one slow client before further broadcasts to it
    /// are dropped (it is then told how many it lost, an ENOBUFS notice)
    /// and its own requests wait unread; answers to its requests are never
    /// dropped.
    pub queue_limit: usize,
    /// Keep virtual time, moved only by clients (`sim clock advance`).
    pub virtual_clock: bool,
}

impl DaemonConfig {
    pub fn new(socket: PathBuf) -> DaemonConfig {
        DaemonConfig {
            socket,
            local: Vec::new(),
            tick: Duration::from_secs(8),
            group: None,
            queue_limit: 65536,
            virtual_clock: false,
        }
    }
}

/// Where `sadbd` listens and `ipseckey` looks by default:
/// `$IPSEC_SIM_SOCKET`, else `$XDG_RUNTIME_DIR/ipsec-sim/sadbd.sock`, else
/// `/tmp/ipsec-sim-UID/sadbd.sock`.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("IPSEC_SIM_SOCKET") {
        return PathBuf::from(p);
    }
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("ipsec-sim"),
        None => PathBuf::from(format!("/tmp/ipsec-sim-{}", Uid::effective())),
    };
    dir.join("sadbd.sock")
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Seconds since the epoch: PF_KEY's unit of time.
pub fn wall_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Conn {
    fd: OwnedFd,
    /// Which service (simulated host) this connection talks to.
    svc: usize,
    sock: SockId,
    queue: VecDeque<Vec<u8>>,
    dropped: u64,
    /// Messages lost since the last overflow notice.
    lost: u64,
}

/// Creates the listening socket: parent directory 0700, socket 0600 (0660
/// with a group), created under a restrictive umask so there is no window
/// in which others could connect.
pub fn listen_on(cfg: &DaemonConfig) -> io::Result<OwnedFd> {
    if let Some(dir) = cfg.socket.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
    }
    match std::fs::symlink_metadata(&cfg.socket) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            // A stale socket: refuse if a daemon still answers on it.
            if UnixStream::connect(&cfg.socket).is_ok()
                || crate::client::Client::connect(&cfg.socket).is_ok()
            {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a daemon is already serving {}", cfg.socket.display()),
                ));
            }
            std::fs::remove_file(&cfg.socket)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", cfg.socket.display()),
            ))
        }
        Err(_) => {}
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(io_err)?;
    // Bound under a temporary name and renamed once listening, so the
    // socket never exists without accepting (a client that connects as
    // soon as the file appears is never refused). A path too long for a
    // temporary name is bound directly.
    let tmp = cfg.socket.file_name().map(|n| {
        let mut t = std::ffi::OsString::from(".");
        t.push(n);
        t.push(format!(".{}", std::process::id()));
        cfg.socket.with_file_name(t)
    });
    let staged = tmp.filter(|t| UnixAddr::new(t).is_ok());
    let at = staged.clone().unwrap_or_else(|| cfg.socket.clone());
    let r = bind_and_listen(&fd, &at, cfg.group).and_then(|()| match &staged {
        Some(t) => std::fs::rename(t, &cfg.socket),
        None => Ok(()),
    });
    if let (Err(_), Some(t)) = (&r, &staged) {
        let _ = std::fs::remove_file(t);
    }
    r.map(|()| fd)
}

fn bind_and_listen(fd: &OwnedFd, at: &std::path::Path, group: Option<Gid>) -> io::Result<()> {
    let addr = UnixAddr::new(at).map_err(io_err)?;
    let old = umask(Mode::from_bits_truncate(0o177));
    let r = bind(fd.as_raw_fd(), &addr);
    umask(old);
    r.map_err(io_err)?;
    if let Some(g) = group {
        nix::unistd::chown(at, None, Some(g)).map_err(io_err)?;
        std::fs::set_permissions(at, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    }
    listen(fd, Backlog::new(64).map_err(io_err)?).map_err(io_err)
}

/// A socket that becomes readable on SIGTERM or SIGINT.
pub fn signal_wakeup() -> io::Result<UnixStream> {
    let (wake_r, wake_w) = UnixStream::pair()?;
    wake_r.set_nonblocking(true)?;
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(sig, wake_w.try_clone()?)?;
    }
    Ok(wake_r)
}

/// Serves until SIGTERM or SIGINT; removes the socket on the way out.
pub fn run(cfg: &DaemonConfig) -> io::Result<()> {
    run_service(cfg, &mut Keysock::new(kernel_config(cfg)))
}

/// [`run`] with a given kernel (e.g. one journaled to a state file).
/// With `cfg.virtual_clock`, the kernel keeps virtual time.
pub fn run_service(cfg: &DaemonConfig, svc: &mut dyn Service) -> io::Result<()> {
    let wake_r = signal_wakeup()?;
    let listener = listen_on(cfg)?;
    let result = if cfg.virtual_clock {
        let step = cfg.tick.as_secs().max(1);
        let mut vc = crate::vclock::VirtualClock::new(svc, wall_clock(), step);
        serve_services(cfg, &[&listener], &mut [&mut vc], &wake_r)
    } else {
        serve_services(cfg, &[&listener], &mut [svc], &wake_r)
    };
    let _ = std::fs::remove_file(&cfg.socket);
    result
}

/// The SADB configuration of the host `sadbd` simulates: its `--local`
/// addresses, random SPIs and soft-lifetime jitter.
pub fn kernel_config(cfg: &DaemonConfig) -> Config {
    let mut sc = Config::default();
    sc.local_addrs
        .extend(cfg.local.iter().map(|a| a.to_canonical()));
    if let Ok(seed) = getrandom_seed() {
        sc.seed = seed;
        sc.jitter = sadb::Jitter::Seeded(seed);
    }
    sc
}

/// Something that answers PF_KEY sockets: one simulated host's kernel.
pub trait Service {
    fn open(&mut self) -> SockId;
    fn close(&mut self, sock: SockId);
    fn write(&mut self, from: SockId, bytes: &[u8], now: sadb::Now) -> Vec<Outgoing>;
    fn tick(&mut self, now: sadb::Now) -> Vec<Outgoing>;
    /// The earliest time a [`Service::tick`] can change anything, `None`
    /// if none can until a request comes (so a virtual clock may skip the
    /// passes in between); by default any pass may.
    fn next_event(&self) -> Option<sadb::Now> {
        Some(0)
    }
}

impl<T: Service + ?Sized> Service for &mut T {
    fn open(&mut self) -> SockId {
        (**self).open()
    }
    fn close(&mut self, sock: SockId) {
        (**self).close(sock)
    }
    fn write(&mut self, from: SockId, bytes: &[u8], now: sadb::Now) -> Vec<Outgoing> {
        (**self).write(from, bytes, now)
    }
    fn tick(&mut self, now: sadb::Now) -> Vec<Outgoing> {
        (**self).tick(now)
    }
    fn next_event(&self) -> Option<sadb::Now> {
        (**self).next_event()
    }
}

impl Service for Keysock {
    fn open(&mut self) -> SockId {
        Keysock::open(self)
    }
    fn close(&mut self, sock: SockId) {
        Keysock::close(self, sock)
    }
    fn write(&mut self, from: SockId, bytes: &[u8], now: sadb::Now) -> Vec<Outgoing> {
        Keysock::write(self, from, bytes, now)
    }
    fn tick(&mut self, now: sadb::Now) -> Vec<Outgoing> {
        Keysock::tick(self, now)
    }
    fn next_event(&self) -> Option<sadb::Now> {
        self.sadb().next_event()
    }
}

/// Serves `services[i]` on `listeners[i]` (one socket per simulated host)
/// until `wake` becomes readable (SIGTERM/SIGINT), on the wall clock with
/// the ager every `cfg.tick`.
pub fn serve_services(
    cfg: &DaemonConfig,
    listeners: &[&OwnedFd],
    services: &mut [&mut dyn Service],
    wake: &UnixStream,
) -> io::Result<()> {
    let mut server = Server::new(cfg);
    let mut next_tick = Instant::now() + cfg.tick;
    loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let ready = server.step(listeners, services, &[wake.as_fd()], timeout, &wall_clock)?;
        if ready[0] {
            return Ok(()); // SIGTERM or SIGINT
        }
        if Instant::now() >= next_tick {
            for (svc, s) in services.iter_mut().enumerate() {
                let out = s.tick(wall_clock());
                server.queue(svc, out);
            }
            server.flush(services);
            next_tick = Instant::now() + cfg.tick;
        }
    }
}

/// The connections of a PF_KEY server, stepped by its owner: `sadbd`'s
/// loop on the wall clock, or a lab serving its hosts on a virtual clock
/// between commands.
pub struct Server {
    conns: Vec<Conn>,
    me: Uid,
    group: Option<Gid>,
    queue_limit: usize,
    buf: Vec<u8>,
}

impl Server {
    pub fn new(cfg: &DaemonConfig) -> Server {
        Server {
            conns: Vec::new(),
            me: Uid::effective(),
            group: cfg.group,
            queue_limit: cfg.queue_limit.max(1),
            buf: vec![0u8; MAX_MSG],
        }
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.conns.len()
    }

    /// Waits at most `timeout` for clients (of `services[i]` on
    /// `listeners[i]`) and for the `extra` descriptors; answers requests
    /// (at `clock()`, read after the wait), admits and drops clients, and
    /// writes what the sockets take.
    /// Returns which `extra` descriptors are readable.
    pub fn step(
        &mut self,
        listeners: &[&OwnedFd],
        services: &mut [&mut dyn Service],
        extra: &[BorrowedFd<'_>],
        timeout: Duration,
        clock: &dyn Fn() -> sadb::Now,
    ) -> io::Result<Vec<bool>> {
        let (nx, nl) = (extra.len(), listeners.len());
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(self.conns.len() + nl + nx);
        for x in extra {
            fds.push(PollFd::new(*x, PollFlags::POLLIN));
        }
        for l in listeners {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        for c in &self.conns {
            let mut ev = PollFlags::empty();
            if c.queue.len() < self.queue_limit {
                ev |= PollFlags::POLLIN;
            }
            if !c.queue.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.fd.as_fd(), ev));
        }
        let ms = timeout.as_millis().min(60_000) as i32;
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(io_err(e)),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let now = clock();
        let ready = revents[..nx]
            .iter()
            .map(|e| e.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
            .collect();
        // Clients: requests and hang-ups.
        let mut out: Vec<(usize, Outgoing)> = Vec::new();
        let mut closed = Vec::new();
        for (i, c) in self.conns.iter_mut().enumerate() {
            let ev = revents[i + nx + nl];
            if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                // Backpressure: a client with a full queue is not read
                // until it drains it, so the answers to its own requests
                // (a DUMP of any size) are never lost, only delayed, and a
                // client that never reads cannot make them pile up.
                while c.queue.len() < self.queue_limit || !ev.contains(PollFlags::POLLIN) {
                    match recv(c.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                        Ok(0) => {
                            closed.push(i);
                            break;
                        }
                        Ok(n) => {
                            let svc = c.svc;
                            if let Some(s) = services.get_mut(svc) {
                                for o in s.write(c.sock, &self.buf[..n], now) {
                                    if o.to == c.sock {
                                        c.queue.push_back(o.bytes);
                                    } else {
                                        out.push((svc, o));
                                    }
                                }
                            }
                        }
                        Err(Errno::EAGAIN) => break,
                        Err(Errno::EINTR) => continue,
                        Err(_) => {
                            closed.push(i);
                            break;
                        }
                    }
                }
            }
        }
        for &i in closed.iter().rev() {
            let c = self.conns.remove(i);
            if let Some(s) = services.get_mut(c.svc) {
                s.close(c.sock);
            }
        }
        // New clients, admitted by their credentials.
        for (svc, l) in listeners.iter().enumerate() {
            if !revents[nx + svc].contains(PollFlags::POLLIN) {
                continue;
            }
            while let Ok(raw) = accept4(
                l.as_raw_fd(),
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                if admitted(fd.as_fd(), self.me, self.group) {
                    if let Some(s) = services.get_mut(svc) {
                        let sock = s.open();
                        self.conns.push(Conn {
                            fd,
                            svc,
                            sock,
                            queue: VecDeque::new(),
                            dropped: 0,
                            lost: 0,
                        });
                    }
                }
            }
        }
        for (svc, o) in out {
            self.queue(svc, std::iter::once(o));
        }
        self.flush(services);
        Ok(ready)
    }

    /// Queues messages a service produced on its own (the ager, traffic)
    /// for the clients they are addressed to; messages for sockets that no
    /// client holds are dropped. Call [`Server::flush`] to write them.
    pub fn queue(&mut self, svc: usize, out: impl IntoIterator<Item = Outgoing>) {
        for o in out {
            if let Some(c) = self
                .conns
                .iter_mut()
                .find(|c| c.svc == svc && c.sock == o.to)
            {
                if c.queue.len() < self.queue_limit {
                    c.queue.push_back(o.bytes);
                } else {
                    c.dropped += 1;
                    c.lost += 1;
                }
            }
        }
    }

    /// Writes what the client sockets take without blocking; drops the
    /// clients whose sockets broke.
    pub fn flush(&mut self, services: &mut [&mut dyn Service]) {
        let mut broken = Vec::new();
        for (i, c) in self.conns.iter_mut().enumerate() {
            loop {
                // A client that lost messages is told so as soon as there
                // is room, never silently (a kernel's ENOBUFS).
                // A notice counts at most 65535: more take several.
                if c.lost > 0 && c.queue.len() < self.queue_limit {
                    let n = c.lost.min(u64::from(u16::MAX));
                    c.queue.push_back(overflow_notice(n));
                    c.lost -= n;
                }
                if c.queue.is_empty() {
                    break;
                }
                // Up to SEND_BATCH messages in one sendmmsg: a pipelining
                // client's answers leave with one system call.
                match send_batch(c.fd.as_fd(), c.queue.iter().take(SEND_BATCH)) {
                    Ok(n) => {
                        let full = n == c.queue.len().min(SEND_BATCH);
                        c.queue.drain(..n);
                        if !full {
                            // The socket took fewer: its buffer is full.
                            break;
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(_) => {
                        broken.push(i);
                        break;
                    }
                }
            }
        }
        for &i in broken.iter().rev() {
            let c = self.conns.remove(i);
            if let Some(s) = services.get_mut(c.svc) {
                s.close(c.sock);
            }
        }
    }
}

/// Messages written per `sendmmsg`.
const SEND_BATCH: usize = 64;

/// Sends each of `msgs` as one datagram (record) on `fd` with a single
/// `sendmmsg`, without blocking; returns how many the socket took. An
/// error is returned only when not even the first was taken.
fn send_batch<'a>(
    fd: BorrowedFd<'_>,
    msgs: impl Iterator<Item = &'a Vec<u8>>,
) -> Result<usize, Errno> {
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; SEND_BATCH];
    let mut n = 0;
    for (iov, m) in iovs.iter_mut().zip(msgs) {
        *iov = libc::iovec {
            iov_base: m.as_ptr() as *mut libc::c_void,
            iov_len: m.len(),
        };
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: mmsghdr is plain old data; all-zero is an empty header.
    let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()).take(n) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first n headers point at one iovec each, over messages
    // borrowed for this call; the kernel only reads them.
    let r = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// The notice a slow client gets after losing `lost` messages: a base-only
/// message of type 0 with errno ENOBUFS, seq 0, pid 0, and the number lost
/// (at most 65535; larger losses are told in several notices) in the
/// reserved field.
pub fn overflow_notice(lost: u64) -> Vec<u8> {
    let mut m = sadb::pfkey::Message::new(sadb::pfkey::MsgType::Reserved, 0, 0, 0);
    m.errno = sadb::Errno::Enobufs.number(sadb::pfkey::Dialect::Illumos);
    m.reserved = lost.min(u64::from(u16::MAX)) as u16;
    m.emit(sadb::pfkey::Dialect::Illumos).unwrap_or_default()
}

/// The peer must be this user, root, or (with `--group`) in the group.
fn admitted(fd: BorrowedFd<'_>, me: Uid, group: Option<Gid>) -> bool {
    match getsockopt(&fd, sockopt::PeerCredentials) {
        Ok(c) => {
            let uid = Uid::from_raw(c.uid());
            uid == me || uid.is_root() || group.is_some_and(|g| g == Gid::from_raw(c.gid()))
        }
        Err(_) => false,
    }
}

fn getrandom_seed() -> io::Result<u64> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}
