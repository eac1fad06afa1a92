//! Real links for live hosts: Ethernet frames over UDP (qemu's
//! `-netdev dgram` wire format, one frame per datagram) moved in batches
//! with `recvmmsg`/`sendmmsg`, and TAP devices (crate `tun-rs`, sync API)
//! drained several frames per wake-up. Frames land in a [`Slots`] pool
//! with room in front and behind, so the ESP/AH engine transforms them in
//! place (no allocation per packet).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// Room left in front of every received frame: the outer headers a
/// tunnel adds (ESP and AH, IPv6 outer) plus a new Ethernet header.
pub const FRONT: usize = 320;
/// The largest frame carried (a UDP datagram's largest payload, rounded).
pub const MAX_FRAME: usize = 65_536;
/// Room behind a frame for ESP padding, trailer and ICVs.
pub const BACK: usize = 320;
/// Frames read per system call (or per wake-up on a TAP).
pub const BATCH: usize = 64;

/// A pool of [`BATCH`] frame buffers; frame `i` is `bufs[i][FRONT..FRONT + lens[i]]`.
pub struct Slots {
    pub bufs: Vec<Box<[u8]>>,
    pub lens: [usize; BATCH],
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::new()
    }
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            bufs: (0..BATCH)
                .map(|_| vec![0u8; FRONT + MAX_FRAME + BACK].into_boxed_slice())
                .collect(),
            lens: [0; BATCH],
        }
    }
}

/// Sets a socket buffer size, forced past the system limit where the
/// process may (root), else as large as allowed.
fn set_buf(fd: BorrowedFd<'_>, opt: libc::c_int, force: libc::c_int, bytes: usize) {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for o in [force, opt] {
        // SAFETY: setsockopt reads `len` bytes from a live c_int.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                o,
                (&v as *const libc::c_int).cast(),
                len,
            )
        };
        if r == 0 {
            return;
        }
    }
}

/// One end of a UDP link: a socket bound to `local` and connected to the
/// peer, so only the peer's datagrams are read. A peer that is not there
/// yet costs lost frames, never errors.
pub struct UdpPort {
    sock: UdpSocket,
    peer: SocketAddr,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

// SAFETY: the raw pointers in `hdrs`/`iovs` are scratch space rebuilt
// before every system call and never dereferenced outside it.
unsafe impl Send for UdpPort {}

impl std::fmt::Debug for UdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpPort")
            .field("local", &self.sock.local_addr().ok())
            .field("peer", &self.peer)
            .finish()
    }
}

fn empty_iov() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

fn empty_hdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

impl UdpPort {
    /// Binds `local` (port 0 picks one) and connects to `peer`.
    pub fn bind(local: SocketAddr, peer: SocketAddr) -> io::Result<UdpPort> {
        let sock = UdpSocket::bind(local)?;
        sock.set_nonblocking(true)?;
        // Bursts of a bulk TCP flow must not overflow the socket buffers.
        set_buf(sock.as_fd(), libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, 8 << 20);
        set_buf(sock.as_fd(), libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, 8 << 20);
        sock.connect(peer)?;
        Ok(UdpPort {
            sock,
            peer,
            hdrs: (0..BATCH).map(|_| empty_hdr()).collect(),
            iovs: (0..BATCH).map(|_| empty_iov()).collect(),
        })
    }

    /// Another handle on the same socket (same address and peer; a later
    /// [`UdpPort::set_peer`] applies to both), with its own scratch space:
    /// for another thread that sends.
    pub fn try_clone(&self) -> io::Result<UdpPort> {
        Ok(UdpPort {
            sock: self.sock.try_clone()?,
            peer: self.peer,
            hdrs: (0..BATCH).map(|_| empty_hdr()).collect(),
            iovs: (0..BATCH).map(|_| empty_iov()).collect(),
        })
    }

    /// Sends to (and reads from) another peer from now on.
    pub fn set_peer(&mut self, peer: SocketAddr) -> io::Result<()> {
        self.sock.connect(peer)?;
        self.peer = peer;
        Ok(())
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Reads up to [`BATCH`] datagrams in one `recvmmsg`, without waiting;
    /// returns how many frames are in `slots`.
    pub fn recv_batch(&mut self, slots: &mut Slots) -> io::Result<usize> {
        for (i, buf) in slots.bufs.iter_mut().enumerate() {
            let frame = &mut buf[FRONT..FRONT + MAX_FRAME];
            self.iovs[i] = libc::iovec {
                iov_base: frame.as_mut_ptr().cast(),
                iov_len: frame.len(),
            };
            let h = &mut self.hdrs[i];
            *h = empty_hdr();
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        loop {
            // SAFETY: every header points at one iovec of a live buffer of
            // `iov_len` bytes, all borrowed mutably for this call.
            let n = unsafe {
                libc::recvmmsg(
                    self.sock.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                let n = n as usize;
                for i in 0..n {
                    slots.lens[i] = self.hdrs[i].msg_len as usize;
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                // An ICMP port unreachable from a peer not there yet.
                io::ErrorKind::ConnectionRefused => continue,
                _ => return Err(e),
            }
        }
    }

    /// Sends frames, [`BATCH`] per `sendmmsg`. Returns how many left;
    /// frames the socket did not take (buffer full, peer gone) are lost,
    /// as on a wire.
    pub fn send_frames<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> usize {
        let mut sent = 0;
        let mut n = 0;
        for f in frames {
            self.iovs[n] = libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            };
            n += 1;
            if n == BATCH {
                sent += self.flush(n);
                n = 0;
            }
        }
        if n > 0 {
            sent += self.flush(n);
        }
        sent
    }

    fn flush(&mut self, n: usize) -> usize {
        for i in 0..n {
            let h = &mut self.hdrs[i];
            *h = empty_hdr();
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: headers done..n point at iovecs over slices the
            // caller keeps alive for the duration of `send_frames`; the
            // kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    self.hdrs[done..].as_mut_ptr(),
                    (n - done) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                done += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // The peer is not listening (yet): the frame is lost.
                io::ErrorKind::ConnectionRefused => done += 1,
                _ => break,
            }
        }
        done
    }
}

/// How a TAP device was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapOrigin {
    /// This process created it (it had CAP_NET_ADMIN); it goes away when
    /// the process ends.
    Created,
    /// It existed (`ip tuntap add dev NAME mode tap user U`); this
    /// process attached to it.
    Attached,
}

/// A TAP device: one file descriptor per queue, all non-blocking.
pub struct TapPort {
    pub name: String,
    pub origin: TapOrigin,
    queues: Vec<tun_rs::SyncDevice>,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("queues", &self.queues.len())
            .finish()
    }
}

/// Why a TAP cannot be had, in words that say what to do.
fn tap_error(name: &str, existed: bool, multi: bool, e: &io::Error) -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "$USER".to_string());
    let mq = if multi { " multi_queue" } else { "" };
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) if existed => format!(
            "TAP {name} exists but this user may not attach to it (have root give it to you: \
             ip tuntap del dev {name} mode tap; ip tuntap add dev {name} mode tap{mq} user {user})"
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "cannot create TAP {name}: needs CAP_NET_ADMIN (run as root, or have root create it \
             for you: ip tuntap add dev {name} mode tap{mq} user {user})"
        ),
        Some(libc::EBUSY) | Some(libc::EINVAL) => format!(
            "TAP {name} is in use or was made with other flags ({}: {e}; queues > 1 needs a \
             multi_queue TAP, 1 queue a plain one)",
            if multi {
                "asked for several queues"
            } else {
                "asked for one queue"
            }
        ),
        _ => format!("TAP {name}: {e}"),
    }
}

/// Whether this machine has TUN/TAP at all (`/dev/net/tun`).
pub fn tun_available() -> bool {
    Path::new("/dev/net/tun").exists()
}

impl TapPort {
    /// Attaches to TAP `name` if it exists, else creates it; `queues` > 1
    /// opens that many queues of a multi-queue TAP. The device's state (up
    /// or down), addresses and MTU are left to whoever owns its other side.
    pub fn open(name: &str, queues: usize) -> Result<TapPort, String> {
        if !tun_available() {
            return Err(format!(
                "TAP {name}: this system has no /dev/net/tun (no TUN/TAP driver, or a container without the device)"
            ));
        }
        if name.is_empty() || name.len() >= 16 || name.contains('/') {
            return Err(format!("TAP name {name:?}: 1 to 15 characters, no slash"));
        }
        let existed = Path::new("/sys/class/net").join(name).exists();
        let multi = queues > 1;
        let first = tun_rs::DeviceBuilder::new()
            .name(name)
            .layer(tun_rs::Layer::L2)
            .multi_queue(multi)
            .inherit_enable_state()
            .build_sync()
            .map_err(|e| tap_error(name, existed, multi, &e))?;
        let mut qs = Vec::with_capacity(queues.max(1));
        for _ in 1..queues.max(1) {
            qs.push(
                first
                    .try_clone()
                    .map_err(|e| tap_error(name, true, multi, &e))?,
            );
        }
        qs.insert(0, first);
        for q in &qs {
            q.set_nonblocking(true)
                .map_err(|e| format!("TAP {name}: {e}"))?;
        }
        Ok(TapPort {
            name: name.to_string(),
            origin: if existed {
                TapOrigin::Attached
            } else {
                TapOrigin::Created
            },
            queues: qs,
        })
    }

    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    pub fn fd(&self, queue: usize) -> Option<BorrowedFd<'_>> {
        self.queues.get(queue).map(|q| {
            // SAFETY: the descriptor lives as long as the device, which
            // `self` owns for the borrow's lifetime.
            unsafe { BorrowedFd::borrow_raw(q.as_raw_fd()) }
        })
    }

    /// Reads the frames waiting on `queue`, at most [`BATCH`], without
    /// waiting.
    pub fn recv_batch(&self, queue: usize, slots: &mut Slots) -> io::Result<usize> {
        let Some(q) = self.queues.get(queue) else {
            return Ok(0);
        };
        let mut n = 0;
        while n < BATCH {
            match q.recv(&mut slots.bufs[n][FRONT..FRONT + MAX_FRAME]) {
                Ok(len) => {
                    slots.lens[n] = len;
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if n > 0 => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Writes frames to the kernel side; returns how many it took (a TAP
    /// that is down refuses them: lost, as on a wire). With several
    /// queues, each flow's frames go through the queue [`flow_queue`]
    /// picks: the kernel remembers the queue a flow's packets arrived on
    /// and sends the flow's packets back through the same one, so the
    /// flows spread over the queues (and their threads) instead of all
    /// following queue 0.
    pub fn send_frames<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) -> usize {
        let n = self.queues.len();
        let mut sent = 0;
        for f in frames {
            let Some(q) = self.queues.get(if n > 1 { flow_queue(f, n) } else { 0 }) else {
                return sent;
            };
            loop {
                match q.send(f) {
                    Ok(_) => sent += 1,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {}
                }
                break;
            }
        }
        sent
    }
}

/// The queue (of `n`) for the flow of an Ethernet frame: a hash of its
/// addresses, protocol and ports, the same for both directions of a flow
/// (as the kernel's own flow hash for TAP queues is). Frames that are not
/// IP go to queue 0.
pub fn flow_queue(frame: &[u8], n: usize) -> usize {
    fn fold(b: &[u8]) -> u64 {
        b.chunks(4).fold(0u64, |h, c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            h ^ u64::from(u32::from_be_bytes(w))
        })
    }
    let Some(et) = frame.get(12..14) else {
        return 0;
    };
    let ip = &frame[14..];
    let (proto, addrs, l4) = match (et, ip.first().map(|b| b >> 4)) {
        ([0x08, 0x00], Some(4)) => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            match (ip.get(9), ip.get(12..20)) {
                (Some(&p), Some(a)) => (p, fold(&a[..4]) ^ fold(&a[4..]), ip.get(ihl..ihl + 4)),
                _ => return 0,
            }
        }
        ([0x86, 0xdd], Some(6)) => match (ip.get(6), ip.get(8..40)) {
            (Some(&p), Some(a)) => (p, fold(&a[..16]) ^ fold(&a[16..]), ip.get(40..44)),
            _ => return 0,
        },
        _ => return 0,
    };
    let ports = match (proto, l4) {
        (6 | 17, Some(p)) => {
            u64::from(u16::from_be_bytes([p[0], p[1]]) ^ u16::from_be_bytes([p[2], p[3]]))
        }
        _ => 0,
    };
    // MurmurHash3's finaliser: every input bit reaches every output bit
    // (ports of one host's connections differ in their high bits only:
    // Linux gives connect() even ports).
    let mut h = addrs ^ (ports << 32) ^ u64::from(proto);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_ports_move_batches_both_ways() {
        let lo = "127.0.0.1:0".parse().unwrap();
        let mut a = UdpPort::bind(lo, lo).unwrap();
        let mut b = UdpPort::bind(lo, a.local_addr().unwrap()).unwrap();
        a.set_peer(b.local_addr().unwrap()).unwrap();
        let frames: Vec<Vec<u8>> = (0..150u8).map(|i| vec![i; 60 + usize::from(i)]).collect();
        assert_eq!(a.send_frames(frames.iter().map(|f| f.as_slice())), 150);
        let mut slots = Slots::new();
        let mut got = Vec::new();
        for _ in 0..1000 {
            let n = b.recv_batch(&mut slots).unwrap();
            assert!(n <= BATCH);
            for i in 0..n {
                got.push(slots.bufs[i][FRONT..FRONT + slots.lens[i]].to_vec());
            }
            if got.len() == 150 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got, frames);
        // A stranger's datagrams are not read (the socket is connected).
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"x", b.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(b.recv_batch(&mut slots).unwrap(), 0);
        // Back the other way.
        assert_eq!(b.send_frames([&b"hello"[..]].into_iter()), 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(a.recv_batch(&mut slots).unwrap(), 1);
        assert_eq!(&slots.bufs[0][FRONT..FRONT + slots.lens[0]], b"hello");
    }

    fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn a_flow_keeps_its_queue_both_ways_and_flows_spread() {
        let (a, b) = ([198, 18, 1, 2], [198, 18, 2, 2]);
        let mut used = [0usize; 4];
        // Linux's connect() takes even ports: they must spread too.
        for port in (40000..40128).step_by(2) {
            let q = flow_queue(&tcp4(a, b, port, 5201), 4);
            assert_eq!(q, flow_queue(&tcp4(b, a, 5201, port), 4), "port {port}");
            used[q] += 1;
        }
        assert!(used.iter().all(|&n| n >= 4), "flows spread: {used:?}");
        // Not IP, or cut short: queue 0.
        assert_eq!(flow_queue(&[0u8; 10], 4), 0);
        let mut arp = tcp4(a, b, 1, 2);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(flow_queue(&arp, 4), 0);
        assert_eq!(flow_queue(&tcp4(a, b, 1, 2)[..30], 4), 0);
    }

    #[test]
    fn a_peer_not_listening_loses_frames_without_error() {
        let lo = "127.0.0.1:0".parse().unwrap();
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = gone.local_addr().unwrap();
        drop(gone);
        let mut a = UdpPort::bind(lo, peer).unwrap();
        for _ in 0..3 {
            a.send_frames([&[0u8; 60][..]].into_iter());
        }
        let mut slots = Slots::new();
        assert_eq!(a.recv_batch(&mut slots).unwrap(), 0);
    }
}
