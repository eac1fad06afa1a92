//! `udp-encap [PORT]`: what an IKE daemon does for Linux's NAT-T, and
//! nothing else. Linux opens ESP in UDP (RFC 3948) only for datagrams that
//! reach a UDP socket marked `UDP_ENCAP_ESPINUDP`; without one, the port
//! answers ICMP port unreachable and the SAs' `encap espinudp` is used on
//! the way out only. The interop test (`kernel_interop.rs`) runs this in
//! the guest, in the background, for its NAT-T cases.
//!
//! It binds PORT (4500 by default) on 0.0.0.0 and, IPv6-only, on `::`,
//! marks both sockets, says so on standard output, and then reads (and
//! drops) what is not ESP (IKE, keepalives) until it is killed.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn6};

/// `UDP_ENCAP_ESPINUDP` from <linux/udp.h> (RFC 3948 framing).
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;

fn mark(sock: &UdpSocket) -> std::io::Result<()> {
    let v: libc::c_int = UDP_ENCAP_ESPINUDP;
    // SAFETY: a valid socket descriptor, and `v` is a c_int that lives
    // across the call, with its size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_UDP,
            libc::UDP_ENCAP,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `[::]:port` for IPv6 only, beside the IPv4 socket on the same port.
fn bind_v6_only(port: u16) -> nix::Result<UdpSocket> {
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    let addr = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    socket::bind(fd.as_raw_fd(), &addr)?;
    Ok(UdpSocket::from(fd))
}

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 4500,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("usage: udp-encap [PORT]");
            return ExitCode::from(2);
        }
    };
    let mut socks = Vec::new();
    match UdpSocket::bind(("0.0.0.0", port)) {
        Ok(s) => socks.push(("0.0.0.0", s)),
        Err(e) => {
            eprintln!("udp-encap: bind 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match bind_v6_only(port) {
        Ok(s) => socks.push(("[::]", s)),
        // A kernel without IPv6 still gets IPv4 NAT-T.
        Err(e) => eprintln!("udp-encap: bind [::]:{port}: {e} (IPv4 only)"),
    }
    let mut readers = Vec::new();
    for (name, s) in socks {
        if let Err(e) = mark(&s) {
            eprintln!("udp-encap: setsockopt UDP_ENCAP on {name}:{port}: {e}");
            return ExitCode::FAILURE;
        }
        println!("udp-encap: ESP in UDP on {name}:{port}");
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while s.recv(&mut buf).is_ok() {}
        }));
    }
    for r in readers {
        let _ = r.join();
    }
    ExitCode::FAILURE
}
