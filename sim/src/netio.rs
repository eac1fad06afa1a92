//! Real links for live hosts: Ethernet frames over UDP (qemu's
//! `-netdev dgram` wire format, one frame per datagram) moved in batches
//! with `recvmmsg`/`sendmmsg`, and TAP devices (crate `tun-rs`, sync API)
//! drained several frames per wake-up, with the kernel's segmentation
//! offload where it allows (bulk TCP read 64 KiB at a time, cut into
//! segments here, and runs of segments merged before they are written). Frames land in a [`Slots`] pool
//! with room in front and behind, so the ESP/AH engine transforms them in
//! place (no allocation per packet).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Room left in front of every received frame: the outer headers a
/// tunnel adds (ESP and AH, IPv6 outer) plus a new Ethernet header.
pub const FRONT: usize = 320;
/// The largest frame carried: a UDP datagram's largest payload, or an
/// offloaded TAP frame (Ethernet, two VLAN tags, an IP packet of 65535
/// bytes), rounded up. A read that fills it is taken as cut short.
pub const MAX_FRAME: usize = 65_600;
const _: () = assert!(ETH_HLEN + 8 + 65_535 < MAX_FRAME);
/// Room behind a frame for ESP padding, trailer and ICVs.
pub const BACK: usize = 320;
/// Frames read per system call (or per wake-up on a TAP).
pub const BATCH: usize = 64;

/// A pool of frame buffers; frame `i` is `bufs[i][FRONT..FRONT + lens[i]]`.
/// The first [`BATCH`] hold any frame; a TAP's segmentation offload may
/// add smaller ones behind them for the segments of one large frame
/// (kept for the next time, so no allocation once they exist).
pub struct Slots {
    pub bufs: Vec<Box<[u8]>>,
    pub lens: Vec<usize>,
    /// Where a TAP's offloaded (GSO) frame is split from.
    spare: Box<[u8]>,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots::new()
    }
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            bufs: (0..BATCH).map(|_| big_slot()).collect(),
            lens: vec![0; BATCH],
            spare: big_slot(),
        }
    }

    /// Makes sure slots `from..from + k` exist, each with room for a
    /// frame of `len` bytes.
    fn reserve(&mut self, from: usize, k: usize, len: usize) {
        let need = FRONT + len + BACK;
        for i in from..from + k {
            if i == self.bufs.len() {
                self.bufs.push(vec![0u8; need].into_boxed_slice());
                self.lens.push(0);
            } else if self.bufs[i].len() < need {
                self.bufs[i] = vec![0u8; need].into_boxed_slice();
            }
        }
    }
}

fn big_slot() -> Box<[u8]> {
    vec![0u8; FRONT + MAX_FRAME + BACK].into_boxed_slice()
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
        // The first BATCH slots: those behind them may be smaller.
        for (i, buf) in slots.bufs.iter_mut().take(BATCH).enumerate() {
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
    /// Segmentation and checksum offload are on: every frame comes and
    /// goes behind a virtio-net header, and the kernel hands over TCP
    /// (and UDP) frames of up to 64 KiB that this side cuts into segments
    /// ([`TapPort::recv_batch`]).
    offload: bool,
    /// Offloaded (GSO) frames read, and the segments cut from them.
    gso_frames: AtomicU64,
    gso_segments: AtomicU64,
    /// Merged (GSO) frames written, and the segments merged into them.
    gro_frames: AtomicU64,
    gro_segments: AtomicU64,
}

/// The virtio-net header in front of every frame of an offloading TAP.
const VNET: usize = tun_rs::VIRTIO_NET_HDR_LEN;
/// The header of a frame that needs nothing done (no GSO, checksum
/// complete).
const VNET_NONE: [u8; VNET] = [0; VNET];
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
const ETH_HLEN: usize = 14;
/// Most segments cut from one offloaded frame: 64 KiB at TCP's smallest
/// MSS (48) is 1366, UDP segmentation allows 128; anything beyond is not
/// something a kernel sends, and is dropped rather than given slots.
const MAX_SEGMENTS: usize = 2048;

/// Completes the checksum of a frame the kernel left partial (its
/// transport header holds the pseudo-header sum): the one's complement
/// sum from `start` to the end, stored at `start + offset`. False when
/// the offsets do not fit the frame.
fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if start >= frame.len() || at + 2 > frame.len() {
        return false;
    }
    let initial = u16::from_be_bytes([frame[at], frame[at + 1]]);
    frame[at] = 0;
    frame[at + 1] = 0;
    let sum = !tun_rs::checksum(&frame[start..], u64::from(initial));
    // A computed zero is sent as 0xffff (the same in one's complement):
    // zero in a UDP checksum means "none", and is invalid over IPv6.
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
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
    ///
    /// `offload` asks for the kernel's checksum and segmentation offload
    /// (a virtio-net header on every frame; TCP handed over in frames of
    /// up to 64 KiB, cut into segments here): far fewer reads for bulk
    /// TCP. When the kernel refuses it the TAP is opened without.
    pub fn open(name: &str, queues: usize, offload: bool) -> Result<TapPort, String> {
        if offload {
            if let Ok(t) = TapPort::open_with(name, queues, true) {
                return Ok(t);
            }
        }
        TapPort::open_with(name, queues, false)
    }

    fn open_with(name: &str, queues: usize, offload: bool) -> Result<TapPort, String> {
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
            .offload(offload)
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
            offload,
            gso_frames: AtomicU64::new(0),
            gso_segments: AtomicU64::new(0),
            gro_frames: AtomicU64::new(0),
            gro_segments: AtomicU64::new(0),
        })
    }

    /// Whether segmentation and checksum offload are on.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Offloaded (GSO) frames read so far, and the segments cut from them.
    pub fn gso_counts(&self) -> (u64, u64) {
        (
            self.gso_frames.load(Ordering::Relaxed),
            self.gso_segments.load(Ordering::Relaxed),
        )
    }

    /// Merged (GSO) frames written so far, and the segments merged.
    pub fn gro_counts(&self) -> (u64, u64) {
        (
            self.gro_frames.load(Ordering::Relaxed),
            self.gro_segments.load(Ordering::Relaxed),
        )
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
        if self.offload {
            return recv_offloaded(self, q, slots);
        }
        let mut n = 0;
        while n < BATCH {
            match q.recv(&mut slots.bufs[n][FRONT..FRONT + MAX_FRAME]) {
                // A frame as large as the buffer may have been cut short.
                Ok(len) if len >= MAX_FRAME => {}
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
        let queue_of = |f: &[u8]| self.queues.get(if n > 1 { flow_queue(f, n) } else { 0 });
        let write = |q: &tun_rs::SyncDevice, parts: &[io::IoSlice<'_>]| loop {
            match q.send_vectored(parts) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        };
        let mut sent = 0;
        if !self.offload {
            for f in frames {
                let Some(q) = queue_of(f) else { return sent };
                if write(q, &[io::IoSlice::new(f)]) {
                    sent += 1;
                }
            }
            return sent;
        }
        // With offload, runs of one TCP flow's segments leave as one GSO
        // frame (the reverse of what `recv_offloaded` does): one write
        // and one pass through the kernel's stack for the run.
        COALESCER.with_borrow_mut(|c| {
            let mut emit = |hdr: &[u8], frame: &[u8], segments: usize| {
                if let Some(q) = queue_of(frame) {
                    if write(q, &[io::IoSlice::new(hdr), io::IoSlice::new(frame)]) {
                        sent += segments;
                        if segments > 1 {
                            self.gro_frames.fetch_add(1, Ordering::Relaxed);
                            self.gro_segments
                                .fetch_add(segments as u64, Ordering::Relaxed);
                        }
                    }
                }
            };
            for f in frames {
                c.push(f, &mut emit);
            }
            c.finish(&mut emit);
        });
        sent
    }
}

thread_local! {
    /// Each thread's buffer for coalescing the frames it writes to TAPs.
    static COALESCER: std::cell::RefCell<Coalescer> = std::cell::RefCell::new(Coalescer::new());
}

/// Merges consecutive TCP segments of one flow into one frame with a
/// virtio-net GSO header, as the kernel's own GRO does before its TCP
/// sees them: same Ethernet and IP headers (but for lengths, IPv4 ID and
/// checksum), same ports, acknowledgement, window and options, sequence
/// numbers back to back, ACK (and PSH on the last) the only flags, every
/// segment but the last of the first one's size, each segment's checksum
/// verified first (a damaged one is written alone, for the kernel to
/// drop). The merged frame carries the pseudo-header sum in its TCP
/// checksum and NEEDS_CSUM, as a GSO frame from a virtio device does.
/// Anything else is written as it came.
pub struct Coalescer {
    /// The run so far: Ethernet, IP and TCP headers, then the payloads.
    buf: Vec<u8>,
    /// The run's header length (Ethernet + IP + TCP), 0 when no run.
    hlen: usize,
    /// Offset of the TCP header in `buf`.
    l4: usize,
    v6: bool,
    /// Payload size of the first segment (the GSO size), and segments.
    mss: usize,
    segments: usize,
    /// The sequence number the next segment must start at.
    next_seq: u32,
    /// The first segment's IPv4 ID: the next must carry it plus the
    /// segments so far, as a re-segmenting kernel would number them.
    first_id: u16,
    /// The run ends with this segment (shorter than the MSS, or PSH).
    closed: bool,
}

/// The largest merged frame: what fits an IPv4 total length.
const MAX_MERGED: usize = ETH_HLEN + 65_535;

impl Default for Coalescer {
    fn default() -> Coalescer {
        Coalescer::new()
    }
}

impl Coalescer {
    pub fn new() -> Coalescer {
        Coalescer {
            buf: Vec::with_capacity(MAX_MERGED),
            hlen: 0,
            l4: 0,
            v6: false,
            mss: 0,
            segments: 0,
            next_seq: 0,
            first_id: 0,
            closed: false,
        }
    }

    /// Takes the next frame; `emit(header, frame, segments)` writes what
    /// is complete.
    pub fn push(&mut self, f: &[u8], emit: &mut impl FnMut(&[u8], &[u8], usize)) {
        let Some(t) = tcp_segment(f) else {
            self.finish(emit);
            emit(&VNET_NONE, f, 1);
            return;
        };
        if self.hlen > 0 && !self.extends(f, &t) {
            self.finish(emit);
        }
        if self.hlen == 0 {
            if !checksum_ok(f, &t) {
                emit(&VNET_NONE, f, 1);
                return;
            }
            self.buf.clear();
            self.buf.extend_from_slice(f);
            self.hlen = t.hlen;
            self.l4 = t.l4;
            self.v6 = t.v6;
            self.mss = f.len() - t.hlen;
            self.segments = 1;
            self.next_seq = t.seq.wrapping_add(self.mss as u32);
            self.first_id = t.id;
            self.closed = t.psh;
            return;
        }
        self.buf.extend_from_slice(&f[t.hlen..]);
        self.segments += 1;
        self.next_seq = self.next_seq.wrapping_add((f.len() - t.hlen) as u32);
        if t.psh {
            self.buf[self.l4 + 13] |= TCP_PSH;
        }
        self.closed = t.psh || f.len() - t.hlen < self.mss;
    }

    /// Whether `f` continues the run (and its checksum is right).
    fn extends(&self, f: &[u8], t: &TcpSeg) -> bool {
        let b = &self.buf;
        let (l4, h) = (self.l4, self.hlen);
        let pay = f.len() - t.hlen;
        !self.closed
            && t.hlen == h
            && t.v6 == self.v6
            && t.seq == self.next_seq
            && (self.v6 || t.id == self.first_id.wrapping_add(self.segments as u16))
            && pay <= self.mss
            && self.buf.len() + pay <= MAX_MERGED
            && f[..ETH_HLEN] == b[..ETH_HLEN]
            && same_ip(&f[ETH_HLEN..l4], &b[ETH_HLEN..l4], self.v6)
            // Ports; acknowledgement, offset; window; urgent and options.
            && f[l4..l4 + 4] == b[l4..l4 + 4]
            && f[l4 + 8..l4 + 13] == b[l4 + 8..l4 + 13]
            && f[l4 + 14..l4 + 16] == b[l4 + 14..l4 + 16]
            && f[l4 + 18..h] == b[l4 + 18..h]
            && checksum_ok(f, t)
    }

    /// Writes the run, merged when it has several segments.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], &[u8], usize)) {
        if self.hlen == 0 {
            return;
        }
        let (l4, h, n) = (self.l4, self.hlen, self.segments);
        self.hlen = 0;
        if n == 1 {
            emit(&VNET_NONE, &self.buf, 1);
            return;
        }
        let b = &mut self.buf;
        let l4_len = b.len() - l4;
        let ip_len = b.len() - ETH_HLEN;
        if self.v6 {
            b[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            b[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        }
        if !self.v6 {
            let ihl = l4 - ETH_HLEN;
            b[ETH_HLEN + 10..ETH_HLEN + 12].fill(0);
            let c = !tun_rs::checksum(&b[ETH_HLEN..ETH_HLEN + ihl], 0);
            b[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&c.to_be_bytes());
        }
        // The pseudo-header's sum, left for whoever completes it.
        let (src, dst) = if self.v6 {
            (ETH_HLEN + 8..ETH_HLEN + 24, ETH_HLEN + 24..ETH_HLEN + 40)
        } else {
            (ETH_HLEN + 12..ETH_HLEN + 16, ETH_HLEN + 16..ETH_HLEN + 20)
        };
        let mut sum = tun_rs::checksum_no_fold(&b[src], 0);
        sum = tun_rs::checksum_no_fold(&b[dst], sum);
        sum += 6 + l4_len as u64;
        let mut folded = sum;
        while folded > 0xffff {
            folded = (folded >> 16) + (folded & 0xffff);
        }
        b[l4 + 16..l4 + 18].copy_from_slice(&(folded as u16).to_be_bytes());
        let hdr = tun_rs::VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: if self.v6 {
                VIRTIO_NET_HDR_GSO_TCPV6
            } else {
                VIRTIO_NET_HDR_GSO_TCPV4
            },
            hdr_len: h as u16,
            gso_size: self.mss as u16,
            csum_start: l4 as u16,
            csum_offset: 16,
        };
        let mut raw = [0u8; VNET];
        if hdr.encode(&mut raw).is_err() {
            return;
        }
        emit(&raw, &self.buf, n);
    }
}

const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;

/// What the coalescer needs of a TCP segment.
struct TcpSeg {
    v6: bool,
    /// Offset of the TCP header, and of the payload.
    l4: usize,
    hlen: usize,
    seq: u32,
    psh: bool,
    /// The IPv4 ID (0 for IPv6).
    id: u16,
}

/// A frame that may join a run: Ethernet, IPv4 without options or
/// fragmentation (DF allowed) or IPv6 without extension headers, TCP
/// with ACK (and PSH) only, a payload, lengths that match the frame.
fn tcp_segment(f: &[u8]) -> Option<TcpSeg> {
    let (v6, l4) = match f.get(12..14)? {
        [0x08, 0x00] => {
            let ip = f.get(ETH_HLEN..ETH_HLEN + 20)?;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            if ip[0] != 0x45
                || ip[9] != 6
                || frag & 0xbfff != 0
                || ETH_HLEN + total != f.len()
                || tun_rs::checksum(ip, 0) != 0xffff
            {
                return None;
            }
            (false, ETH_HLEN + 20)
        }
        [0x86, 0xdd] => {
            let ip = f.get(ETH_HLEN..ETH_HLEN + 40)?;
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if ip[0] >> 4 != 6 || ip[6] != 6 || ETH_HLEN + 40 + payload != f.len() {
                return None;
            }
            (true, ETH_HLEN + 40)
        }
        _ => return None,
    };
    let tcp = f.get(l4..l4 + 20)?;
    let off = usize::from(tcp[12] >> 4) * 4;
    let flags = tcp[13];
    if off < 20 || flags & !TCP_PSH != TCP_ACK || l4 + off >= f.len() {
        return None;
    }
    Some(TcpSeg {
        v6,
        l4,
        hlen: l4 + off,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        psh: flags & TCP_PSH != 0,
        id: if v6 {
            0
        } else {
            u16::from_be_bytes([f[ETH_HLEN + 4], f[ETH_HLEN + 5]])
        },
    })
}

/// Whether two IP headers belong to one run: equal but for the lengths,
/// the IPv4 ID and header checksum.
fn same_ip(a: &[u8], b: &[u8], v6: bool) -> bool {
    if v6 {
        a[..4] == b[..4] && a[6..] == b[6..]
    } else {
        a[..2] == b[..2] && a[6..10] == b[6..10] && a[12..] == b[12..]
    }
}

/// Whether a segment's TCP checksum is right.
fn checksum_ok(f: &[u8], t: &TcpSeg) -> bool {
    let (src, dst) = if t.v6 {
        (ETH_HLEN + 8..ETH_HLEN + 24, ETH_HLEN + 24..ETH_HLEN + 40)
    } else {
        (ETH_HLEN + 12..ETH_HLEN + 16, ETH_HLEN + 16..ETH_HLEN + 20)
    };
    let mut sum = tun_rs::checksum_no_fold(&f[src], 0);
    sum = tun_rs::checksum_no_fold(&f[dst], sum);
    sum += 6 + (f.len() - t.l4) as u64;
    tun_rs::checksum(&f[t.l4..], sum) == 0xffff
}

/// Reads the frames waiting on an offloading TAP queue, at most
/// [`BATCH`] reads, without waiting. A frame whose checksum the kernel
/// left partial is completed; a GSO frame (TCP or UDP of up to 64 KiB) is
/// cut into the segments a wire would carry, each its own frame with the
/// Ethernet header repeated, by `tun-rs`'s `gso_split` (sequence numbers,
/// IP IDs, lengths and checksums per segment). A frame that cannot be cut
/// (no IP under the Ethernet header, inconsistent offsets) is dropped.
fn recv_offloaded(t: &TapPort, q: &tun_rs::SyncDevice, slots: &mut Slots) -> io::Result<usize> {
    let mut n = 0;
    let mut reads = 0;
    while reads < BATCH && n < BATCH {
        let got = match q.recv(&mut slots.bufs[n][FRONT - VNET..FRONT + MAX_FRAME]) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        };
        reads += 1;
        // Nothing to take, or as large as the buffer (maybe cut short).
        if got <= VNET || got >= VNET + MAX_FRAME {
            continue;
        }
        let len = got - VNET;
        let Ok(hdr) = tun_rs::VirtioNetHdr::decode(&slots.bufs[n][FRONT - VNET..FRONT]) else {
            continue;
        };
        if hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE {
            if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
                && !complete_checksum(
                    &mut slots.bufs[n][FRONT..FRONT + len],
                    usize::from(hdr.csum_start),
                    usize::from(hdr.csum_offset),
                )
            {
                continue;
            }
            slots.lens[n] = len;
            n += 1;
            continue;
        }
        let k = split_gso(slots, n, len, hdr);
        if k > 0 {
            t.gso_frames.fetch_add(1, Ordering::Relaxed);
            t.gso_segments.fetch_add(k as u64, Ordering::Relaxed);
        }
        n += k;
    }
    Ok(n)
}

/// Cuts the GSO frame of `len` bytes in slot `n` into segments in slots
/// `n..`; returns how many.
fn split_gso(slots: &mut Slots, n: usize, len: usize, hdr: tun_rs::VirtioNetHdr) -> usize {
    // The link-layer header: Ethernet, and VLAN tags (802.1Q, 802.1ad)
    // when a VLAN device sits on the TAP; each segment gets a copy.
    let mut l2 = ETH_HLEN;
    let is_v6 = loop {
        match slots.bufs[n].get(FRONT + l2 - 2..FRONT + l2) {
            Some([0x08, 0x00]) => break false,
            Some([0x86, 0xdd]) => break true,
            Some([0x81, 0x00] | [0x88, 0xa8]) if l2 < ETH_HLEN + 8 => l2 += 4,
            _ => return 0,
        }
    };
    if len < l2 {
        return 0;
    }
    // Offsets from the IP header on. The kernel's hdr_len is not the
    // headers' length on every path (forwarded packets give the whole
    // first segment), so it is taken from the transport header: 8 bytes
    // for UDP, the TCP header's data offset for TCP.
    let Some(csum_start) = usize::from(hdr.csum_start).checked_sub(l2) else {
        return 0;
    };
    let ip_len = len - l2;
    let l4 = if hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN == VIRTIO_NET_HDR_GSO_UDP_L4 {
        8
    } else {
        match slots.bufs[n].get(FRONT + l2 + csum_start + 12) {
            Some(&b) if (20..=60).contains(&(usize::from(b >> 4) * 4)) => usize::from(b >> 4) * 4,
            _ => return 0,
        }
    };
    let hdr_len = csum_start + l4;
    let gso_size = usize::from(hdr.gso_size);
    if gso_size == 0 || hdr_len >= ip_len {
        return 0;
    }
    let payload = ip_len - hdr_len;
    let k = payload.div_ceil(gso_size);
    if k > MAX_SEGMENTS {
        return 0;
    }
    let ip_hdr = tun_rs::VirtioNetHdr {
        hdr_len: hdr_len as u16,
        csum_start: csum_start as u16,
        ..hdr
    };
    // The frame moves to the spare buffer (a pointer swap), its segments
    // go to slots n.. with room for the Ethernet header in front.
    std::mem::swap(&mut slots.bufs[n], &mut slots.spare);
    slots.reserve(n, k, l2 + hdr_len + gso_size);
    let Slots { bufs, lens, spare } = slots;
    let (eth, ip) = spare[FRONT..FRONT + len].split_at_mut(l2);
    let Ok(k) = tun_rs::gso_split(
        ip,
        ip_hdr,
        &mut bufs[n..n + k],
        &mut lens[n..n + k],
        FRONT + l2,
        is_v6,
    ) else {
        return 0;
    };
    for i in n..n + k {
        bufs[i][FRONT..FRONT + l2].copy_from_slice(eth);
        lens[i] += l2;
    }
    k
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

    /// Ethernet and IP (198.18.1.2 to 198.18.2.2, or 2001:db8::1 to
    /// 2001:db8::2) for the test frames.
    fn ip_builder(v6: bool) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        if v6 {
            b.ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
        } else {
            b.ipv4([198, 18, 1, 2], [198, 18, 2, 2], 64)
        }
    }

    /// A TCP frame of `payload` bytes as a TSO-offloading kernel hands it
    /// over, in slot `n`; returns its length and virtio-net header.
    fn gso_frame(
        slots: &mut Slots,
        n: usize,
        v6: bool,
        payload: &[u8],
    ) -> (usize, tun_rs::VirtioNetHdr) {
        let b = ip_builder(v6);
        let b = b.tcp(40000, 5201, 1000, 512).ack(77).psh();
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        slots.bufs[n][FRONT..FRONT + f.len()].copy_from_slice(&f);
        let ip = if v6 { 40 } else { 20 };
        let hdr = tun_rs::VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: if v6 { 4 } else { 1 },
            // As on the forward path: the whole first segment, not the
            // headers (the split must not trust it).
            hdr_len: (ETH_HLEN + ip + 20 + 1448) as u16,
            gso_size: 1448,
            csum_start: (ETH_HLEN + ip) as u16,
            csum_offset: 16,
        };
        (f.len(), hdr)
    }

    /// Checks the segments in slots `from..from + k` against etherparse:
    /// each a whole Ethernet/IP/TCP frame of at most one MSS, checksums
    /// right, sequence numbers consecutive, PSH only on the last, and the
    /// payloads in order make up `payload`.
    fn check_segments(slots: &Slots, from: usize, k: usize, v6: bool, payload: &[u8]) {
        let mut joined = Vec::new();
        for i in from..from + k {
            let f = &slots.bufs[i][FRONT..FRONT + slots.lens[i]];
            let l2 = if f[12..14] == [0x81, 0x00] {
                18
            } else {
                ETH_HLEN
            };
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
                panic!("segment {i} is not TCP");
            };
            let h = tcp.to_header();
            let want = match p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => {
                    assert!(!v6);
                    let iph = ip.header().to_header();
                    assert_eq!(
                        iph.header_checksum,
                        iph.calc_header_checksum(),
                        "IPv4 checksum of {i}"
                    );
                    assert_eq!(usize::from(iph.total_len), f.len() - l2);
                    h.calc_checksum_ipv4(&iph, tcp.payload()).unwrap()
                }
                Some(etherparse::NetSlice::Ipv6(ip)) => {
                    assert!(v6);
                    let iph = ip.header().to_header();
                    assert_eq!(usize::from(iph.payload_length), f.len() - l2 - 40);
                    h.calc_checksum_ipv6(&iph, tcp.payload()).unwrap()
                }
                _ => panic!("segment {i} is not IP"),
            };
            assert_eq!(h.checksum, want, "TCP checksum of segment {i}");
            assert_eq!(h.sequence_number, 1000 + joined.len() as u32);
            assert!(tcp.payload().len() <= 1448);
            assert_eq!(h.psh, i == from + k - 1, "PSH on the last segment only");
            assert!(h.ack && h.acknowledgment_number == 77);
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, payload);
    }

    /// A TCP segment of a flow as a sender's kernel would put it on the
    /// wire: sequence `seq`, IPv4 ID `id`, PSH when `psh`.
    fn segment(v6: bool, sport: u16, seq: u32, id: u16, psh: bool, payload: &[u8]) -> Vec<u8> {
        let b = if v6 {
            ip_builder(true)
        } else {
            let mut ip = etherparse::Ipv4Header::new(
                0,
                64,
                etherparse::IpNumber::TCP,
                [198, 18, 1, 2],
                [198, 18, 2, 2],
            )
            .unwrap();
            ip.identification = id;
            ip.dont_fragment = true;
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        };
        let b = b.tcp(sport, 5201, seq, 512).ack(77);
        let mut f = Vec::new();
        if psh {
            b.psh().write(&mut f, payload)
        } else {
            b.write(&mut f, payload)
        }
        .unwrap();
        f
    }

    /// Runs `frames` through a coalescer; returns what it wrote as
    /// (virtio-net header, frame, segments).
    fn coalesce(frames: &[Vec<u8>]) -> Vec<(tun_rs::VirtioNetHdr, Vec<u8>, usize)> {
        let mut c = Coalescer::new();
        let mut out = Vec::new();
        let mut emit = |h: &[u8], f: &[u8], n: usize| {
            out.push((tun_rs::VirtioNetHdr::decode(h).unwrap(), f.to_vec(), n));
        };
        for f in frames {
            c.push(f, &mut emit);
        }
        c.finish(&mut emit);
        out
    }

    /// Segments merged into one GSO frame and cut again by the receive
    /// side (tun-rs's gso_split) come back byte for byte.
    #[test]
    fn runs_of_a_flow_are_merged_and_cut_back_to_the_same_segments() {
        for v6 in [false, true] {
            let segs: Vec<Vec<u8>> = (0..5u32)
                .map(|i| {
                    let len = if i == 4 { 700 } else { 1448 };
                    let pay: Vec<u8> = (0..len).map(|k| (k as u32 * 13 + i) as u8).collect();
                    segment(v6, 40000, 1000 + i * 1448, 7 + i as u16, i == 4, &pay)
                })
                .collect();
            let out = coalesce(&segs);
            assert_eq!(out.len(), 1, "one write for the run");
            let (hdr, merged, n) = &out[0];
            assert_eq!(*n, 5);
            // Completed as a kernel would, the merged frame's TCP
            // checksum is right (the pseudo-header sum was).
            let mut done = merged.clone();
            assert!(complete_checksum(
                &mut done,
                usize::from(hdr.csum_start),
                16
            ));
            let t = tcp_segment(&done).expect("a TCP frame");
            assert!(checksum_ok(&done, &t), "merged checksum, v6 {v6}");
            assert_eq!(hdr.gso_size, 1448);
            assert_eq!(hdr.gso_type, if v6 { 4 } else { 1 });
            let mut slots = Slots::new();
            slots.bufs[0][FRONT..FRONT + merged.len()].copy_from_slice(merged);
            let k = split_gso(&mut slots, 0, merged.len(), *hdr);
            assert_eq!(k, 5);
            for (i, want) in segs.iter().enumerate() {
                assert_eq!(
                    &slots.bufs[i][FRONT..FRONT + slots.lens[i]],
                    &want[..],
                    "segment {i}, v6 {v6}"
                );
            }
        }
    }

    /// What must not be merged is written as it came, in order: another
    /// flow, a gap in the sequence, a damaged checksum, a segment after a
    /// short one, a SYN, and what is not TCP; a run of one is the frame
    /// itself without a GSO header.
    /// An IPv4 header whose checksum is wrong is never merged (it would
    /// leave with a good one), nor a segment whose ID does not follow.
    #[test]
    fn ip_headers_must_be_sound_and_ids_consecutive() {
        let p = vec![0x11; 1448];
        let mut bad_ttl = segment(false, 40000, 1000 + 3 * 1448, 52, false, &p);
        bad_ttl[14 + 8] -= 1;
        let frames = vec![
            segment(false, 40000, 1000, 1, false, &p),
            // The sequence follows, the ID does not.
            segment(false, 40000, 1000 + 1448, 50, false, &p),
            segment(false, 40000, 1000 + 2 * 1448, 51, false, &p),
            // Follows in both, but its header checksum is wrong.
            bad_ttl,
        ];
        let out = coalesce(&frames);
        let counts: Vec<usize> = out.iter().map(|o| o.2).collect();
        assert_eq!(counts, vec![1, 2, 1], "{counts:?}");
        assert_eq!(out[2].1, frames[3], "the damaged one as it came");
    }

    #[test]
    fn only_a_clean_run_of_one_flow_is_merged() {
        let p = vec![0xab; 1448];
        let mut damaged = segment(false, 40000, 1000 + 2 * 1448, 3, false, &p);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let mut syn = segment(false, 40000, 50, 0, false, &p[..10]);
        syn[14 + 20 + 13] = 0x02;
        let frames = vec![
            segment(false, 40000, 1000, 1, false, &p),
            segment(false, 40000, 1000 + 1448, 2, false, &p),
            damaged,
            segment(false, 40001, 9, 1, false, &p),
            segment(false, 40001, 9 + 1448, 2, false, &p[..100]),
            segment(false, 40001, 9 + 1548, 3, false, &p),
            segment(false, 40001, 9 + 5000, 4, false, &p),
            syn.clone(),
            vec![0xffu8; 60],
        ];
        let out = coalesce(&frames);
        let shape: Vec<(usize, u8)> = out.iter().map(|(h, _, n)| (*n, h.gso_type)).collect();
        assert_eq!(
            shape,
            vec![(2, 1), (1, 0), (2, 1), (1, 0), (1, 0), (1, 0), (1, 0)],
            "{shape:?}"
        );
        for (i, k) in [(1, 2), (3, 5), (4, 6), (5, 7), (6, 8)] {
            assert_eq!(out[i].1, frames[k], "written as it came: frame {k}");
        }
        assert!(out
            .iter()
            .all(|(h, _, n)| (*n == 1) == (h.gso_type == 0 && h.flags == 0)));
    }

    /// A frame of a VLAN device on the TAP: the tag is kept on every
    /// segment and the offsets counted past it.
    #[test]
    fn gso_frames_with_a_vlan_tag_are_cut_too() {
        let payload: Vec<u8> = (0..4000u32).map(|i| (i * 3) as u8).collect();
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(etherparse::VlanId::try_new(5).unwrap())
            .ipv4([198, 18, 1, 2], [198, 18, 2, 2], 64)
            .tcp(40000, 5201, 1000, 512)
            .ack(77)
            .psh()
            .write(&mut f, &payload)
            .unwrap();
        let mut slots = Slots::new();
        slots.bufs[0][FRONT..FRONT + f.len()].copy_from_slice(&f);
        let hdr = tun_rs::VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: 1,
            hdr_len: 18 + 40,
            gso_size: 1448,
            csum_start: 18 + 20,
            csum_offset: 16,
        };
        let k = split_gso(&mut slots, 0, f.len(), hdr);
        assert_eq!(k, 3);
        for i in 0..k {
            assert_eq!(slots.bufs[i][FRONT..FRONT + 18], f[..18], "tag kept on {i}");
        }
        check_segments(&slots, 0, k, false, &payload);
    }

    /// UDP segmentation offload (a sender's UDP_SEGMENT): datagrams of
    /// gso_size bytes, each with its own length and checksum.
    #[test]
    fn udp_gso_frames_are_cut_into_datagrams() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i * 5) as u8).collect();
        for v6 in [false, true] {
            let b = ip_builder(v6);
            let mut f = Vec::new();
            b.udp(4000, 9).write(&mut f, &payload).unwrap();
            let mut slots = Slots::new();
            slots.bufs[0][FRONT..FRONT + f.len()].copy_from_slice(&f);
            let ip = if v6 { 40 } else { 20 };
            let hdr = tun_rs::VirtioNetHdr {
                flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type: VIRTIO_NET_HDR_GSO_UDP_L4,
                hdr_len: (ETH_HLEN + ip + 8) as u16,
                gso_size: 1000,
                csum_start: (ETH_HLEN + ip) as u16,
                csum_offset: 6,
            };
            let k = split_gso(&mut slots, 0, f.len(), hdr);
            assert_eq!(k, 3, "v6 {v6}");
            let mut joined = Vec::new();
            for i in 0..k {
                let seg = &slots.bufs[i][FRONT..FRONT + slots.lens[i]];
                let p = etherparse::SlicedPacket::from_ethernet(seg).unwrap();
                let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
                    panic!("datagram {i} is not UDP");
                };
                let h = udp.to_header();
                assert_eq!(usize::from(h.length), 8 + udp.payload().len());
                let want = match p.net {
                    Some(etherparse::NetSlice::Ipv4(ip)) => h
                        .calc_checksum_ipv4(&ip.header().to_header(), udp.payload())
                        .unwrap(),
                    Some(etherparse::NetSlice::Ipv6(ip)) => h
                        .calc_checksum_ipv6(&ip.header().to_header(), udp.payload())
                        .unwrap(),
                    _ => panic!("not IP"),
                };
                assert_eq!(h.checksum, want, "UDP checksum of datagram {i}");
                joined.extend_from_slice(udp.payload());
            }
            assert_eq!(joined, payload);
        }
    }

    /// A checksum that computes to zero is written as 0xffff: for UDP a
    /// zero means "no checksum" (and is refused over IPv6).
    #[test]
    fn a_completed_checksum_is_never_zero() {
        let mut f = [0xff, 0xff, 0x00, 0x00];
        assert!(complete_checksum(&mut f, 0, 2));
        assert_eq!(f[2..], [0xff, 0xff]);
    }

    #[test]
    fn gso_frames_are_cut_into_checksummed_segments() {
        let payload: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
        for v6 in [false, true] {
            let mut slots = Slots::new();
            let (len, hdr) = gso_frame(&mut slots, 0, v6, &payload);
            let k = split_gso(&mut slots, 0, len, hdr);
            assert_eq!(k, 3, "4000 bytes at an MSS of 1448");
            check_segments(&slots, 0, k, v6, &payload);
        }
    }

    /// A large frame that arrives when the batch is nearly full gets
    /// slots added behind the others; a UDP batch still uses only the
    /// first BATCH (the added ones are smaller).
    #[test]
    fn gso_segments_past_the_batch_get_slots_of_their_own() {
        let payload = vec![0x5a; 60_000];
        let mut slots = Slots::new();
        let n = BATCH - 1;
        let (len, hdr) = gso_frame(&mut slots, n, false, &payload);
        let k = split_gso(&mut slots, n, len, hdr);
        assert_eq!(k, 60_000usize.div_ceil(1448));
        assert_eq!(slots.bufs.len(), n + k);
        assert_eq!(slots.lens.len(), n + k);
        check_segments(&slots, n, k, false, &payload);
        let lo = "127.0.0.1:0".parse().unwrap();
        let mut a = UdpPort::bind(lo, lo).unwrap();
        let mut b = UdpPort::bind(lo, a.local_addr().unwrap()).unwrap();
        a.set_peer(b.local_addr().unwrap()).unwrap();
        assert_eq!(a.send_frames(std::iter::once(&b"x"[..])), 1);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(b.recv_batch(&mut slots).unwrap(), 1);
    }

    /// What a kernel would never send, but a broken one might: cut into
    /// nothing, no panic.
    #[test]
    fn gso_frames_that_cannot_be_cut_are_dropped() {
        let payload = vec![1u8; 3000];
        let mut slots = Slots::new();
        let (len, hdr) = gso_frame(&mut slots, 0, false, &payload);
        let cases = [
            tun_rs::VirtioNetHdr { gso_size: 0, ..hdr },
            tun_rs::VirtioNetHdr {
                csum_start: 4,
                ..hdr
            },
            tun_rs::VirtioNetHdr {
                csum_start: 60_000,
                ..hdr
            },
            tun_rs::VirtioNetHdr {
                csum_offset: 900,
                ..hdr
            },
            tun_rs::VirtioNetHdr { gso_type: 9, ..hdr },
            // 3000 segments of one byte: more than any kernel cuts to.
            tun_rs::VirtioNetHdr { gso_size: 1, ..hdr },
        ];
        for (i, h) in cases.into_iter().enumerate() {
            let (len, _) = gso_frame(&mut slots, 0, false, &payload);
            assert_eq!(split_gso(&mut slots, 0, len, h), 0, "case {i}");
        }
        // Not IP under the Ethernet header.
        slots.bufs[0][FRONT + 12..FRONT + 14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(split_gso(&mut slots, 0, len, hdr), 0);
        // Shorter than its headers.
        let (_, hdr) = gso_frame(&mut slots, 0, false, &payload);
        assert_eq!(split_gso(&mut slots, 0, 40, hdr), 0);
        assert_eq!(split_gso(&mut slots, 0, 0, hdr), 0);
    }

    #[test]
    fn partial_checksums_are_completed() {
        let payload = vec![9u8; 999];
        let mut slots = Slots::new();
        let (len, _) = gso_frame(&mut slots, 0, false, &payload);
        let f = &mut slots.bufs[0][FRONT..FRONT + len];
        let good = u16::from_be_bytes([f[50], f[51]]);
        // What the kernel leaves: the pseudo-header's sum, not inverted.
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&f[14..])
            .unwrap()
            .to_header();
        f[50] = 0;
        f[51] = 0;
        let mut sum = 0u32;
        for w in [
            &ip.source[..2],
            &ip.source[2..],
            &ip.destination[..2],
            &ip.destination[2..],
        ] {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        sum += 6 + (len - 34) as u32;
        while sum > 0xffff {
            sum = (sum >> 16) + (sum & 0xffff);
        }
        f[50..52].copy_from_slice(&(sum as u16).to_be_bytes());
        assert!(complete_checksum(f, 34, 16));
        assert_eq!(u16::from_be_bytes([f[50], f[51]]), good);
        assert!(!complete_checksum(f, 34, 9000));
        assert!(!complete_checksum(f, 9000, 0));
    }

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
