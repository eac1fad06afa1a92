//! `sadbd --state FILE`: every acknowledged SA survives kill -9 in the
//! middle of a load, SIGTERM leaves a consistent journal, a full disk
//! refuses the change it cannot record, and the file is private.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{add, add_answered, dump_spis, header, Daemon, TempDir, AUTH_KEY};
use nix::sys::signal::Signal;
use sadb::pfkey::{satype, Address, Dialect, ExtKind, Extension, Message, MsgType, SaExt};

const SAS: u32 = 100_000;
const BASE: u32 = 0x10_0000;

#[test]
fn kill_9_in_the_middle_of_a_100k_load_loses_no_acknowledged_sa() {
    let dir = TempDir::new("state-kill9");
    let state = dir.0.join("state");
    let args = [
        "--state",
        state.to_str().expect("utf-8"),
        "--queue-limit",
        "1000000",
    ];
    let d = Daemon::start(&dir.0, &args);
    let acked = Arc::new(AtomicU64::new(0));
    // The killer: SIGKILL once about half the load is acknowledged, while
    // the client is still sending.
    let killer = {
        let acked = acked.clone();
        let pid = d.pid();
        std::thread::spawn(move || {
            let t = Instant::now();
            while acked.load(Ordering::Relaxed) < u64::from(SAS / 2) {
                assert!(t.elapsed() < Duration::from_secs(300), "load too slow");
                std::thread::sleep(Duration::from_micros(200));
            }
            nix::sys::signal::kill(pid, Signal::SIGKILL).expect("kill -9");
        })
    };
    let c = d.connect();
    let t = Instant::now();
    let mut acknowledged = HashSet::new();
    let mut in_flight = None;
    for i in 0..SAS {
        let spi = BASE + i;
        if c.send(&add(spi, i + 1)).is_err() {
            break;
        }
        in_flight = Some(spi);
        match c.recv(Some(Duration::from_secs(10))) {
            Ok(Some(b)) => {
                let (_, errno, seq) = header(&b);
                assert_eq!((errno, seq), (0, i + 1), "ADD {spi:#x} refused");
                acknowledged.insert(spi);
                in_flight = None;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => break, // the daemon is gone
        }
    }
    let load_time = t.elapsed();
    killer.join().expect("killer");
    drop(d);
    assert!(
        (acknowledged.len() as u32) < SAS,
        "the daemon was killed before the load ended"
    );
    eprintln!(
        "{} ADDs acknowledged in {load_time:?} before kill -9",
        acknowledged.len()
    );

    let mut d = Daemon::start(&dir.0, &args);
    let c = d.connect();
    let dumped: HashSet<u32> = dump_spis(&c).into_iter().collect();
    let missing: Vec<_> = acknowledged.difference(&dumped).take(5).collect();
    assert!(missing.is_empty(), "acknowledged SAs lost: {missing:x?}...");
    let extra: Vec<u32> = dumped.difference(&acknowledged).copied().collect();
    assert!(
        extra.is_empty() || extra == in_flight.into_iter().collect::<Vec<_>>(),
        "only the one in-flight ADD may be there unacknowledged: {extra:x?}"
    );
    // The keys came back too.
    let spi = BASE + 7;
    let get = Message::new(MsgType::Get, satype::ESP, 5, 77)
        .with(SaExt {
            spi,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressDst,
            Address::new("10.0.0.2".parse().expect("ip"), 0, 0),
        ))
        .emit(Dialect::Illumos)
        .expect("emit");
    c.send(&get).expect("send");
    let m = Message::parse(
        &c.recv(Some(Duration::from_secs(5)))
            .expect("recv")
            .expect("GET answer"),
        Dialect::Illumos,
    )
    .expect("parse");
    let key = m.key(ExtKind::KeyAuth).expect("auth key");
    assert_eq!(key.material.expose(), AUTH_KEY);
    let key = m.key(ExtKind::KeyEncrypt).expect("encr key");
    assert_eq!(key.material.expose(), spi.to_be_bytes().repeat(4));
    // It keeps journaling after the restart.
    assert_eq!(add_answered(&c, 0x77, 1), 0);
    let err = d.stderr();
    assert!(err.contains("SAs restored"), "{err}");
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
    let mode = std::fs::metadata(&state)
        .expect("state")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the state file holds keys");
}

/// SIGTERM while two clients are adding: exit status 0, socket removed,
/// and the journal replays without a damaged record to every SA that was
/// acknowledged.
#[test]
fn sigterm_during_a_load_leaves_a_consistent_journal() {
    let dir = TempDir::new("state-term");
    let state = dir.0.join("state");
    let args = [
        "--state",
        state.to_str().expect("utf-8"),
        "--queue-limit",
        "1000000",
    ];
    let mut d = Daemon::start(&dir.0, &args);
    let acked = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..2u32)
        .map(|n| {
            let c = d.connect();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..200_000u32 {
                    let spi = BASE + n * 0x100_0000 + i;
                    if c.send(&add(spi, i + 1)).is_err() {
                        break;
                    }
                    // Replies and the other client's broadcasts.
                    let mut answered = false;
                    while !answered {
                        match c.recv(Some(Duration::from_secs(10))) {
                            Ok(Some(b)) => {
                                let (_, errno, seq) = header(&b);
                                if seq == i + 1 && common::spi_of(&b) == spi {
                                    assert_eq!(errno, 0);
                                    answered = true;
                                }
                            }
                            _ => return mine,
                        }
                    }
                    mine.push(spi);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                mine
            })
        })
        .collect();
    let t = Instant::now();
    while acked.load(Ordering::Relaxed) < 5_000 {
        assert!(t.elapsed() < Duration::from_secs(120), "load too slow");
        std::thread::sleep(Duration::from_millis(1));
    }
    d.signal(Signal::SIGTERM);
    let st = d.wait(Duration::from_secs(30));
    assert!(st.success(), "exit status {st:?}: {}", d.stderr());
    assert!(!d.socket.exists(), "the socket is removed");
    let acknowledged: HashSet<u32> = clients
        .into_iter()
        .flat_map(|h| h.join().expect("client"))
        .collect();
    assert!(acknowledged.len() >= 5_000);

    let d = Daemon::start(&dir.0, &args);
    let c = d.connect();
    let dumped: HashSet<u32> = dump_spis(&c).into_iter().collect();
    assert!(acknowledged.is_subset(&dumped), "acknowledged SAs lost");
    assert!(
        dumped.len() <= acknowledged.len() + 2,
        "at most one in-flight ADD per client beyond the acknowledged ones"
    );
    let err = d.stderr();
    assert!(
        !err.contains("warning"),
        "a clean stop leaves no damage: {err}"
    );
}

/// A disk that fills up: the ADD that cannot be recorded is refused with
/// ENOMEM and undone; the daemon keeps serving, and after a restart holds
/// exactly what it acknowledged.
#[test]
fn a_change_that_cannot_be_recorded_is_refused_and_undone() {
    let dir = TempDir::new("state-full");
    let state = dir.0.join("state");
    let args = ["--state", state.to_str().expect("utf-8")];
    // RLIMIT_FSIZE makes writes past 64 KiB fail (EFBIG) as a full disk
    // would; SIGXFSZ ignored so the write returns an error.
    let limit = 64 * 1024;
    let d = Daemon::start_with(&dir.0, &args, |cmd| unsafe {
        cmd.pre_exec(move || {
            let rl = nix::libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_FSIZE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            nix::sys::signal::signal(Signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    });
    let c = d.connect();
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..10_000u32 {
        match add_answered(&c, BASE + i, i + 1) {
            0 => acknowledged.push(BASE + i),
            e => {
                assert_eq!(e, sadb::Errno::Enomem.number(Dialect::Illumos));
                refused = Some(BASE + i);
                break;
            }
        }
    }
    let refused = refused.expect("the file limit is reached");
    assert!(acknowledged.len() > 10);
    // Undone: the refused SA is not there, the others are.
    let dumped = dump_spis(&c);
    assert_eq!(dumped.len(), acknowledged.len());
    assert!(!dumped.contains(&refused));
    // Still serving: a GET (not journaled) is answered.
    c.send(&common::msg(MsgType::Dump, satype::AH, 9))
        .expect("send");
    assert_eq!(
        header(
            &c.recv(Some(Duration::from_secs(5)))
                .expect("recv")
                .expect("reply")
        )
        .1,
        0
    );
    let err = d.stderr();
    assert!(err.contains("cannot record a change"), "{err}");
    assert!(
        !err.to_lowercase().contains("5e5e"),
        "no key bytes in messages"
    );
    drop(d);
    let d = Daemon::start(&dir.0, &args);
    let mut again = dump_spis(&d.connect());
    again.sort();
    acknowledged.sort();
    assert_eq!(again, acknowledged);
}

#[test]
fn a_state_file_others_can_read_is_refused() {
    let dir = TempDir::new("state-mode");
    let state = dir.0.join("state");
    std::fs::write(&state, b"").expect("create");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sadbd"))
        .arg("--socket")
        .arg(dir.0.join("s.sock"))
        .arg("--state")
        .arg(&state)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!dir.0.join("s.sock").exists(), "refused before serving");
}

#[test]
fn with_fsync_every_acknowledged_sa_survives_kill_9() {
    let dir = TempDir::new("state-fsync");
    let state = dir.0.join("state");
    let args = ["--state", state.to_str().expect("utf-8"), "--fsync"];
    let d = Daemon::start(&dir.0, &args);
    let c = d.connect();
    for i in 0..200u32 {
        assert_eq!(add_answered(&c, BASE + i, i + 1), 0);
    }
    d.signal(Signal::SIGKILL);
    drop(d);
    let d = Daemon::start(&dir.0, &args);
    let mut spis = dump_spis(&d.connect());
    spis.sort();
    assert_eq!(spis, (BASE..BASE + 200).collect::<Vec<_>>());
}

/// Damage with good records after it (a flipped byte, not a crash) is
/// refused with its offset and the file is left as it was; damage that
/// runs to the end (a write cut short, or zeros after a crash) is cut off
/// and the records before it come back.
#[test]
fn damage_inside_the_journal_is_refused_and_only_a_torn_tail_is_cut() {
    let dir = TempDir::new("state-damage");
    let state = dir.0.join("state");
    let args = ["--state", state.to_str().expect("utf-8")];
    let d = Daemon::start(&dir.0, &args);
    let c = d.connect();
    for i in 0..20u32 {
        assert_eq!(add_answered(&c, BASE + i, i + 1), 0);
    }
    drop(c);
    d.signal(Signal::SIGTERM);
    drop(d);
    let good = std::fs::read(&state).expect("read");
    // A byte flipped in the first record (the host's addresses), and one
    // in the middle: refused, nothing discarded.
    for at in [12, good.len() / 2] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&state, &bad).expect("write");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sadbd"))
            .arg("--socket")
            .arg(dir.0.join("s.sock"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run");
        let end = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("byte {at}: sadbd started on a damaged journal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "byte {at}: {err}");
        assert!(
            err.contains("is damaged") && err.contains("nothing is discarded"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&state).expect("read"),
            bad,
            "the file is untouched"
        );
    }
    // A torn last record, then zeros where a record was to be: the daemon
    // starts with every SA before the damage.
    for tail in [good[..good.len() - 3].to_vec(), {
        let mut z = good.clone();
        z.extend_from_slice(&[0u8; 100]);
        z
    }] {
        std::fs::write(&state, &tail).expect("write");
        let d = Daemon::start(&dir.0, &args);
        let spis = dump_spis(&d.connect());
        assert!(spis.len() >= 19, "{} SAs back", spis.len());
        d.signal(Signal::SIGTERM);
    }
}
