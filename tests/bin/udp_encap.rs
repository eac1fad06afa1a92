//! `udp-encap [PORT]`: what an IKE daemon does for Linux's NAT-T, and
//! nothing else. Linux opens ESP in UDP (RFC 3948) only for datagrams that
//! reach a UDP socket marked `UDP_ENCAP_ESPINUDP`; without one, port 4500
//! answers ICMP port unreachable and the SAs' `encap espinudp` is used on
//! the way out only. The interop test (`kernel_interop.rs`) runs this in
//! the guest, in the background, for its NAT-T case.
//!
//! It binds 0.0.0.0:PORT (4500 by default), marks the socket, says so on
//! standard output, and then reads (and drops) what is not ESP (IKE,
//! keepalives) until it is killed.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

/// `UDP_ENCAP_ESPINUDP` from <linux/udp.h> (RFC 3948 framing).
const UDP_ENCAP_ESPINUDP: libc::c_int = 2;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 4500,
        Some(Ok(p)) => p,
        Some(Err(_)) => {
            eprintln!("usage: udp-encap [PORT]");
            return ExitCode::from(2);
        }
    };
    let sock = match UdpSocket::bind(("0.0.0.0", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-encap: bind 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    if rc != 0 {
        eprintln!(
            "udp-encap: setsockopt UDP_ENCAP: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    println!("udp-encap: ESP in UDP on 0.0.0.0:{port}");
    let mut buf = [0u8; 2048];
    loop {
        if let Err(e) = sock.recv(&mut buf) {
            eprintln!("udp-encap: {e}");
            return ExitCode::FAILURE;
        }
    }
}
