//! Clients that misbehave do not stop sadbd from serving the others, nor
//! leave its SADB inconsistent: one that hangs up in the middle of a DUMP,
//! one that asks for a DUMP and never reads it, one whose socket goes away
//! with replies pending, and the daemon's own socket file being removed.

mod common;

use std::time::{Duration, Instant};

use common::{add, delete, dump_spis, header, Daemon, TempDir};
use sadb::pfkey::MsgType;
use sim::client::MAX_MSG;

const SAS: u32 = 20_000;
const BASE: u32 = 0x20_0000;

#[test]
fn misbehaving_clients_do_not_stop_the_others() {
    let dir = TempDir::new("faults");
    let mut d = Daemon::start(&dir.0, &[]);
    let a = d.connect();
    let mut buf = vec![0u8; MAX_MSG];
    // Load the SADB, a window of ADDs in flight.
    let (mut sent, mut acked) = (0u32, 0u32);
    while acked < SAS {
        while sent < SAS && sent - acked < 64 {
            a.send(&add(BASE + sent, sent + 1)).expect("send");
            sent += 1;
        }
        let n = a
            .recv_into(&mut buf, Some(Duration::from_secs(10)))
            .expect("recv")
            .expect("reply");
        assert_eq!(header(&buf[..n]).1, 0);
        acked += 1;
    }

    // Hangs up after 10 messages of a 20,000-SA DUMP.
    {
        let quitter = d.connect();
        quitter
            .send(&common::msg(MsgType::Dump, 0, 1))
            .expect("send");
        for _ in 0..10 {
            quitter
                .recv_into(&mut buf, Some(Duration::from_secs(10)))
                .expect("recv")
                .expect("DUMP message");
        }
    }
    // Asks for DUMPs and never reads.
    let sleeper = d.connect();
    for s in 0..3 {
        sleeper
            .send(&common::msg(MsgType::Dump, 0, 2 + s))
            .expect("send");
    }
    // Goes away with a whole DUMP pending, without reading a byte.
    {
        let vanisher = d.connect();
        vanisher
            .send(&common::msg(MsgType::Dump, 0, 9))
            .expect("send");
    }
    // The socket file is removed: connected clients go on being served.
    std::fs::remove_file(&d.socket).expect("remove the socket file");

    // Meanwhile `a` adds and deletes and is answered promptly each time.
    let mut slowest = Duration::ZERO;
    for i in 0..2_000u32 {
        let spi = 0x9000_0000 + i;
        for (req, t) in [
            (add(spi, 100_000 + i), MsgType::Add),
            (delete(spi, 100_000 + i), MsgType::Delete),
        ] {
            let t0 = Instant::now();
            a.send(&req).expect("send");
            loop {
                let n = a
                    .recv_into(&mut buf, Some(Duration::from_secs(10)))
                    .expect("recv")
                    .expect("answered within 10 s");
                let (mt, errno, seq) = header(&buf[..n]);
                if Some(mt) == t.number(sadb::pfkey::Dialect::Illumos) && seq == 100_000 + i {
                    assert_eq!(errno, 0);
                    break;
                }
            }
            slowest = slowest.max(t0.elapsed());
        }
    }
    assert!(
        slowest < Duration::from_secs(2),
        "slowest answer {slowest:?}"
    );
    // The SADB is exactly what was acknowledged.
    let mut spis = dump_spis(&a);
    spis.sort();
    assert_eq!(spis, (BASE..BASE + SAS).collect::<Vec<_>>());
    drop(sleeper);
    // And it still stops cleanly.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(10)).success());
}
