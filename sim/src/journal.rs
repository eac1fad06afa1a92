//! `sadbd --state FILE`: a journal of every change the simulated kernel
//! accepted, so that a restarted daemon (also after `kill -9`) comes back
//! with every SA it had acknowledged.
//!
//! [`Journaled`] wraps a [`Keysock`] as a [`Service`]. A request that
//! changes the SADB (ADD, UPDATE, UPDATE-PAIR, DELETE, DELETE-PAIR,
//! X_DELPAIR_STATE, FLUSH, GETSPI) and whose reply carries errno 0 is
//! appended to the file *before* the reply is returned for sending, so no
//! client ever sees an acknowledgement of a change the file lacks.
//!
//! Durability: each record goes to the file with one `write(2)` before the
//! reply; that survives the daemon being killed (`kill -9`, a crash). With
//! `fsync` the record is also `fdatasync`ed before the reply, which survives
//! the machine losing power, at the cost of a disk flush per change.
//!
//! What is written (all integers little-endian):
//! - the magic `SADBDJ01`, then records of `length: u32, crc32: u32,
//!   payload`; the CRC covers the payload;
//! - a CONFIG record first: the `--local` addresses the journal was written
//!   for (direction selection depends on them, so a restart with other
//!   addresses is refused rather than replayed differently);
//! - OP records: the time and the request bytes, replayed through the same
//!   `Sadb::handle_bytes` at the same time. Randomness is pinned: GETSPI is
//!   journaled with its SPI range narrowed to the SPI the kernel chose, and
//!   an ADD (or larval UPDATE) carries the soft lifetime the kernel stored
//!   after its jitter;
//! - TICK records: an ager pass that changed something (an EXPIRE, a reaped
//!   SA), so a replay ages exactly where the daemon did. Expiry that falls
//!   while the daemon is down is not journaled: lifetimes count from the
//!   journaled add time, so the first ager pass after a restart expires
//!   what should have expired meanwhile;
//! - IMAGE records: one stored SA, field by field (keys included), written
//!   by compaction. When the journal holds more than four records per live
//!   SA (and at least 16384), it is rewritten as CONFIG plus one IMAGE per
//!   SA into `FILE.tmp`, flushed, and renamed over `FILE`. The replay
//!   window's record of received packets is not kept: `sadbd` has no data
//!   path, only the window size and its highest number.
//!
//! A record cut short or damaged (a write interrupted by `kill -9` or a
//! crash) fails its length or CRC check: the file is truncated there with
//! a warning. The file holds keys: it is created 0600, and one that is not
//! the daemon's user's or that group or others may read or write is
//! refused. An exclusive lock keeps a second daemon off it. No error or
//! warning from here contains a byte of a record.
//!
//! If a record cannot be written (disk full), the change is undone by
//! reloading the SADB from the file, and the requester gets ENOMEM.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sadb::pfkey::{Dialect, Extension, Identity, Lifetime, Message, MsgType, MsgView, Sensitivity};
use sadb::sa::{Endpoint, InnerSelector};
use sadb::{Config, KeyMaterial, Now, Sa, Sadb};
use zeroize::Zeroizing;

use crate::daemon::Service;
use crate::keysock::{Keysock, Outgoing, SockId};

const MAGIC: &[u8; 8] = b"SADBDJ01";
/// Largest payload: a PF_KEY message (64 Ki words) plus an OP's header.
const MAX_RECORD: usize = 65535 * 8 + 64;
const REC_HDR: usize = 8;

const CONFIG: u8 = 1;
const OP: u8 = 2;
const TICK: u8 = 3;
const IMAGE: u8 = 4;

/// Compaction: more than this many records per live SA ...
const RECORDS_PER_SA: u64 = 4;
/// ... and more than this many records in all.
const MIN_COMPACT: u64 = 16384;

/// Why the state file cannot be used. The texts name the file, never its
/// contents.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("state file {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("state file {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("state file {path} belongs to another user (uid {owner})")]
    NotOwner { path: PathBuf, owner: u32 },
    #[error(
        "state file {path} holds keys but group or others may access it (mode {mode:04o}); \
         run chmod 600 on it"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("state file {path} is in use by another sadbd")]
    Locked { path: PathBuf },
    #[error("{path} is not a sadbd state file")]
    NotJournal { path: PathBuf },
    #[error(
        "state file {path}: the record at offset {offset} is damaged and {after} bytes follow it: \
         not a write cut short by a crash, so nothing is discarded and sadbd does not start \
         (move the file away to start empty, or put back a good copy)"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        after: u64,
    },
    #[error(
        "state file {path} was written for --local {journal}; this daemon has --local {given} \
         (start it with the same addresses, or use another state file)"
    )]
    LocalMismatch {
        path: PathBuf,
        journal: String,
        given: String,
    },
}

/// How to keep the state.
#[derive(Debug, Clone)]
pub struct StateOptions {
    pub path: PathBuf,
    /// `fdatasync` every record before its reply (survives power loss).
    pub fsync: bool,
}

/// What opening the state file found.
#[derive(Debug, Default, Clone)]
pub struct Restored {
    /// SAs the SADB holds after the replay.
    pub sas: usize,
    /// Records replayed.
    pub records: u64,
    /// Warnings for the operator (damaged tail, changes that no longer apply).
    pub warnings: Vec<String>,
}

/// A [`Keysock`] whose accepted changes are journaled to a file.
pub struct Journaled {
    ks: Keysock,
    file: Flock<File>,
    path: PathBuf,
    fsync: bool,
    /// Bytes of whole records in the file (where the next one goes).
    len: u64,
    /// Records in the file, the CONFIG record included.
    records: u64,
    /// Compaction is not tried again before the file has this many records
    /// (after a compaction that failed).
    compact_after: u64,
    /// The file could not be written and the SADB could not be reloaded:
    /// every further change is refused.
    poisoned: bool,
}

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io { path, what, source }
}

impl Journaled {
    /// Opens (or creates) the state file and rebuilds the SADB of a kernel
    /// configured with `cfg` from it.
    pub fn open(opts: &StateOptions, cfg: Config) -> Result<(Journaled, Restored), JournalError> {
        let path = opts.path.clone();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path, "cannot open"))?;
        check_private(&file, &path)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Err(JournalError::Locked { path }),
            Err((_, e)) => {
                return Err(JournalError::Io {
                    path,
                    what: "cannot lock",
                    source: io::Error::from_raw_os_error(e as i32),
                })
            }
        };
        // A compaction interrupted by a crash leaves a partial copy behind.
        let _ = std::fs::remove_file(tmp_path(&path));
        let local = local_list(&cfg);
        let mut ks = Keysock::new(cfg);
        let mut restored = Restored::default();
        let scan = replay(&mut file, ks.sadb_mut(), &path, &mut restored)?;
        if let Some(journal_local) = &scan.local {
            if *journal_local != local {
                return Err(JournalError::LocalMismatch {
                    path,
                    journal: show_addrs(journal_local),
                    given: show_addrs(&local),
                });
            }
        }
        let mut j = Journaled {
            ks,
            file,
            path,
            fsync: opts.fsync,
            len: scan.good_len,
            records: scan.records,
            compact_after: 0,
            poisoned: false,
        };
        if scan.good_len < scan.file_len {
            j.file
                .set_len(scan.good_len)
                .map_err(io_err(&j.path, "cannot truncate its damaged tail"))?;
        }
        if scan.local.is_none() {
            // New (or emptied) file: the header and the CONFIG record.
            j.file
                .set_len(0)
                .map_err(io_err(&j.path, "cannot truncate"))?;
            let mut head = Zeroizing::new(MAGIC.to_vec());
            head.extend_from_slice(&record(&config_payload(&local)));
            j.file
                .write_all(&head)
                .and_then(|()| j.file.sync_data())
                .map_err(io_err(&j.path, "cannot write"))?;
            j.len = head.len() as u64;
            j.records = 1;
        }
        restored.sas = j.ks.sadb().len();
        if j.wants_compaction() {
            if let Err(e) = j.compact() {
                restored.warnings.push(format!(
                    "state file {}: compaction failed: {e}",
                    j.path.display()
                ));
            }
        }
        Ok((j, restored))
    }

    pub fn keysock(&self) -> &Keysock {
        &self.ks
    }

    /// Records in the file (the CONFIG record included).
    pub fn records(&self) -> u64 {
        self.records
    }

    fn wants_compaction(&self) -> bool {
        let live = self.ks.sadb().len() as u64;
        self.records > MIN_COMPACT
            && self.records > RECORDS_PER_SA * live
            && self.records >= self.compact_after
    }

    /// Appends one record; on failure the file is cut back to its last
    /// whole record.
    fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let rec = record(payload);
        let r = self.file.write_all(&rec).and_then(|()| {
            if self.fsync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {
                self.len += rec.len() as u64;
                self.records += 1;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Rewrites the file as CONFIG plus one IMAGE per SA (see the module
    /// documentation).
    pub fn compact(&mut self) -> io::Result<()> {
        let tmp = tmp_path(&self.path);
        let r = self.write_snapshot(&tmp);
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
            self.compact_after = self.records.saturating_mul(2);
        }
        r
    }

    fn write_snapshot(&mut self, tmp: &Path) -> io::Result<()> {
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(tmp)?;
        let mut f = Flock::lock(f, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io::Error::from_raw_os_error(e as i32))?;
        let mut chunk: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(1 << 20));
        chunk.extend_from_slice(MAGIC);
        chunk.extend_from_slice(&record(&config_payload(&local_list(
            self.ks.sadb().config(),
        ))));
        let mut len = 0u64;
        let mut records = 1u64;
        for (_, sa) in self.ks.sadb().iter() {
            chunk.extend_from_slice(&record(&image_payload(sa)));
            records += 1;
            if chunk.len() >= 1 << 20 {
                f.write_all(&chunk)?;
                len += chunk.len() as u64;
                chunk.clear();
            }
        }
        f.write_all(&chunk)?;
        len += chunk.len() as u64;
        f.sync_all()?;
        std::fs::rename(tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        f.seek(SeekFrom::End(0))?;
        self.file = f;
        self.len = len;
        self.records = records;
        self.compact_after = 0;
        Ok(())
    }

    /// Undoes a change whose record could not be written: the SADB is
    /// rebuilt from what the file holds.
    fn reload(&mut self) -> Result<(), JournalError> {
        let cfg = self.ks.sadb().config().clone();
        let mut sadb = Sadb::new(cfg);
        let mut restored = Restored::default();
        let scan = replay(&mut self.file, &mut sadb, &self.path, &mut restored)?;
        *self.ks.sadb_mut() = sadb;
        self.len = scan.good_len;
        self.records = scan.records;
        Ok(())
    }

    /// The OP record for an accepted request, `None` when the request does
    /// not change the SADB.
    fn op_payload(&self, bytes: &[u8], reply: &[u8], now: Now) -> Option<Zeroizing<Vec<u8>>> {
        let hdr = MsgView::<&[u8]>::peek_header(bytes)?;
        let t = MsgType::from_number(hdr.msg_type, Dialect::Illumos)?;
        let mut p = Zeroizing::new(Vec::with_capacity(bytes.len() + 32));
        p.push(OP);
        p.extend_from_slice(&now.to_le_bytes());
        match t {
            MsgType::GetSpi => {
                // Pin the SPI the kernel picked at random.
                let spi = Message::parse(reply, Dialect::Illumos).ok()?.sa()?.spi;
                let mut req = Message::parse(bytes, Dialect::Illumos).ok()?;
                for e in req.exts.iter_mut() {
                    if let Extension::SpiRange(r) = e {
                        r.min = spi;
                        r.max = spi;
                    }
                }
                p.push(0);
                p.extend_from_slice(&req.emit(Dialect::Illumos).ok()?);
            }
            MsgType::Add | MsgType::Update | MsgType::UpdatePair => {
                // Pin the soft lifetime the jitter gave (ADD, larval UPDATE).
                let req = Message::parse(bytes, Dialect::Illumos).ok()?;
                let stored = req.sa().and_then(|s| {
                    let dst = req.address(sadb::pfkey::ExtKind::AddressDst)?;
                    let id = self
                        .ks
                        .sadb()
                        .lookup(req.satype, s.spi, dst.addr.canonical_ip())?;
                    self.ks.sadb().sa(id)
                });
                match stored {
                    Some(sa) => {
                        p.push(1);
                        p.extend_from_slice(&sa.soft.addtime.to_le_bytes());
                        p.extend_from_slice(&sa.soft_expire.to_le_bytes());
                    }
                    None => p.push(0),
                }
                p.extend_from_slice(bytes);
            }
            MsgType::Delete | MsgType::DelPair | MsgType::DelPairState | MsgType::Flush => {
                p.push(0);
                p.extend_from_slice(bytes);
            }
            _ => return None,
        }
        Some(p)
    }
}

/// Message types whose acceptance changes the SADB.
fn journaled(bytes: &[u8]) -> Option<sadb::pfkey::view::RawHeader> {
    let hdr = MsgView::<&[u8]>::peek_header(bytes)?;
    match MsgType::from_number(hdr.msg_type, Dialect::Illumos)? {
        MsgType::Add
        | MsgType::Update
        | MsgType::UpdatePair
        | MsgType::Delete
        | MsgType::DelPair
        | MsgType::DelPairState
        | MsgType::Flush
        | MsgType::GetSpi => Some(hdr),
        _ => None,
    }
}

impl Service for Journaled {
    fn open(&mut self) -> SockId {
        self.ks.open()
    }

    fn close(&mut self, sock: SockId) {
        self.ks.close(sock)
    }

    fn write(&mut self, from: SockId, bytes: &[u8], now: Now) -> Vec<Outgoing> {
        let Some(hdr) = journaled(bytes) else {
            return self.ks.write(from, bytes, now);
        };
        if self.poisoned {
            return refusal(from, &hdr);
        }
        let out = self.ks.write(from, bytes, now);
        // The reply comes first; errno 0 means the change was made.
        let accepted = out.first().is_some_and(|o| {
            MsgView::<&[u8]>::peek_header(&o.bytes).is_some_and(|r| {
                r.msg_type == hdr.msg_type && r.errno == 0 && r.seq == hdr.seq && r.pid == hdr.pid
            })
        });
        if !accepted {
            return out;
        }
        let Some(payload) = out
            .first()
            .and_then(|o| self.op_payload(bytes, &o.bytes, now))
        else {
            return out;
        };
        match self.append(&payload) {
            Ok(()) => {
                if self.wants_compaction() {
                    if let Err(e) = self.compact() {
                        eprintln!(
                            "sadbd: state file {}: compaction failed: {e}",
                            self.path.display()
                        );
                    }
                }
                out
            }
            Err(e) => {
                eprintln!(
                    "sadbd: state file {}: cannot record a change ({e}); it is undone and refused",
                    self.path.display()
                );
                if let Err(e) = self.reload() {
                    eprintln!("sadbd: {e}; every further change is refused");
                    self.poisoned = true;
                }
                refusal(from, &hdr)
            }
        }
    }

    fn tick(&mut self, now: Now) -> Vec<Outgoing> {
        let before = self.ks.sadb().len();
        let msgs = self.ks.sadb_mut().age(now);
        if !msgs.is_empty() || self.ks.sadb().len() != before {
            let mut p = vec![TICK];
            p.extend_from_slice(&now.to_le_bytes());
            // A lost TICK is harmless: replayed lifetimes expire on the
            // first pass after a restart anyway.
            if let Err(e) = self.append(&p) {
                eprintln!(
                    "sadbd: state file {}: cannot record an ager pass: {e}",
                    self.path.display()
                );
            }
        }
        self.ks.broadcast(&msgs)
    }

    fn next_event(&self) -> Option<Now> {
        self.ks.sadb().next_event()
    }
}

/// ENOMEM to the requester: the change could not be made durable.
fn refusal(from: SockId, hdr: &sadb::pfkey::view::RawHeader) -> Vec<Outgoing> {
    let t = MsgType::from_number(hdr.msg_type, Dialect::Illumos).unwrap_or(MsgType::Reserved);
    let mut m = Message::new(t, hdr.satype, hdr.seq, hdr.pid);
    m.errno = sadb::Errno::Enomem.number(Dialect::Illumos);
    match m.emit(Dialect::Illumos) {
        Ok(bytes) => vec![Outgoing { to: from, bytes }],
        Err(_) => Vec::new(),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

fn check_private(file: &File, path: &Path) -> Result<(), JournalError> {
    let m = file.metadata().map_err(io_err(path, "cannot stat"))?;
    if !m.is_file() {
        return Err(JournalError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if m.uid() != nix::unistd::Uid::effective().as_raw() {
        return Err(JournalError::NotOwner {
            path: path.to_path_buf(),
            owner: m.uid(),
        });
    }
    if m.mode() & 0o077 != 0 {
        return Err(JournalError::Exposed {
            path: path.to_path_buf(),
            mode: m.mode() & 0o7777,
        });
    }
    Ok(())
}

fn local_list(cfg: &Config) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = cfg.local_addrs.iter().map(|a| a.to_canonical()).collect();
    v.sort();
    v.dedup();
    v
}

fn show_addrs(a: &[IpAddr]) -> String {
    if a.is_empty() {
        return "(none)".into();
    }
    a.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Frames a payload: length, CRC-32, payload.
fn record(payload: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut r = Zeroizing::new(Vec::with_capacity(REC_HDR + payload.len()));
    r.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    r.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    r.extend_from_slice(payload);
    r
}

fn config_payload(local: &[IpAddr]) -> Vec<u8> {
    let mut e = Enc(vec![CONFIG]);
    e.u32(local.len() as u32);
    for a in local {
        e.ip(*a);
    }
    e.0
}

struct Scan {
    /// Bytes of the magic plus whole, valid records.
    good_len: u64,
    file_len: u64,
    records: u64,
    /// The CONFIG record's addresses; `None` if the file has none yet.
    local: Option<Vec<IpAddr>>,
}

/// Reads the state file from the start and applies every record to `sadb`.
/// Stops at the first damaged record (reported in `restored.warnings`).
fn replay(
    file: &mut File,
    sadb: &mut Sadb,
    path: &Path,
    restored: &mut Restored,
) -> Result<Scan, JournalError> {
    let file_len = file.metadata().map_err(io_err(path, "cannot stat"))?.len();
    file.seek(SeekFrom::Start(0))
        .map_err(io_err(path, "cannot read"))?;
    let mut rd = Chunks::new(file);
    let mut scan = Scan {
        good_len: 0,
        file_len,
        records: 0,
        local: None,
    };
    let magic = rd.take(MAGIC.len()).map_err(io_err(path, "cannot read"))?;
    match magic {
        None => {
            // Shorter than the magic: a file created by a daemon that died
            // before writing its header, or not ours at all.
            let got = rd.rest();
            if !MAGIC.starts_with(&got) {
                return Err(JournalError::NotJournal {
                    path: path.to_path_buf(),
                });
            }
            if file_len > 0 {
                restored.warnings.push(format!(
                    "state file {}: an unfinished header of {file_len} bytes was discarded",
                    path.display()
                ));
            }
            return Ok(scan);
        }
        Some(m) if m.as_slice() != MAGIC => {
            return Err(JournalError::NotJournal {
                path: path.to_path_buf(),
            })
        }
        Some(_) => {}
    }
    scan.good_len = MAGIC.len() as u64;
    let mut diverged = 0u64;
    // The length the damaged record claims, when its header is whole.
    let mut bad_len;
    let damaged = loop {
        bad_len = None;
        let hdr = match rd.take(REC_HDR).map_err(io_err(path, "cannot read"))? {
            Some(h) => h,
            None if rd.rest().is_empty() => break false,
            None => break true,
        };
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        bad_len = Some(len);
        let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if len == 0 || len > MAX_RECORD {
            break true;
        }
        let Some(payload) = rd.take(len).map_err(io_err(path, "cannot read"))? else {
            break true;
        };
        if crc32fast::hash(&payload) != crc {
            break true;
        }
        let first = scan.local.is_none();
        let ok = match (payload[0], first) {
            (CONFIG, true) => match parse_config(&payload[1..]) {
                Some(l) => {
                    scan.local = Some(l);
                    true
                }
                None => false,
            },
            (_, true) | (CONFIG, false) => false,
            (OP, false) => match apply_op(sadb, &payload[1..]) {
                Some(accepted) => {
                    if !accepted {
                        diverged += 1;
                    }
                    true
                }
                None => false,
            },
            (TICK, false) => match Dec::new(&payload[1..]).u64() {
                Some(now) => {
                    sadb.age(now);
                    true
                }
                None => false,
            },
            (IMAGE, false) => match decode_image(&payload[1..]) {
                Some(sa) => {
                    if sadb.restore(sa).is_err() {
                        diverged += 1;
                    }
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !ok {
            break true;
        }
        scan.good_len += (REC_HDR + len) as u64;
        scan.records += 1;
    };
    drop(rd);
    if damaged {
        // A crash cuts the last record short (or leaves zeros where it
        // was to be): the damage runs to the end of the file. Damage with
        // records after it is something else (a flipped bit, an edit), and
        // cutting there would throw good records away.
        let after = file_len - scan.good_len;
        let tail = after < REC_HDR as u64
            || match bad_len {
                Some(len) if (1..=MAX_RECORD).contains(&len) => (REC_HDR + len) as u64 >= after,
                _ => false,
            };
        if !tail && !zeros_from(file, scan.good_len).map_err(io_err(path, "cannot read"))? {
            return Err(JournalError::Damaged {
                path: path.to_path_buf(),
                offset: scan.good_len,
                after,
            });
        }
    }
    restored.records += scan.records;
    if damaged || scan.good_len < file_len {
        restored.warnings.push(format!(
            "state file {}: discarded {} damaged bytes at offset {} (a write cut short); \
             the {} records before them are kept",
            path.display(),
            file_len - scan.good_len,
            scan.good_len,
            scan.records
        ));
    }
    if diverged > 0 {
        restored.warnings.push(format!(
            "state file {}: {diverged} journaled changes no longer apply",
            path.display()
        ));
    }
    Ok(scan)
}

/// Whether every byte of `file` from `offset` on is zero.
fn zeros_from(file: &mut File, offset: u64) -> io::Result<bool> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Replays one OP; `Some(false)` when the kernel now refuses it.
fn apply_op(sadb: &mut Sadb, p: &[u8]) -> Option<bool> {
    let mut d = Dec::new(p);
    let now = d.u64()?;
    let fix = match d.u8()? {
        0 => None,
        1 => Some((d.u64()?, d.u64()?)),
        _ => return None,
    };
    let msg = d.rest();
    let r = sadb.handle_bytes(msg, now);
    let accepted = r.reply().is_some_and(|m| m.errno == 0);
    if let (Some((soft_addtime, soft_expire)), true) = (fix, accepted) {
        let req = Message::parse(msg, Dialect::Illumos).ok()?;
        let spi = req.sa()?.spi;
        let dst = req
            .address(sadb::pfkey::ExtKind::AddressDst)?
            .addr
            .canonical_ip();
        if let Some(sa) = sadb
            .lookup(req.satype, spi, dst)
            .and_then(|id| sadb.sa_mut(id))
        {
            sa.soft.addtime = soft_addtime;
            sa.soft_expire = soft_expire;
        }
    }
    Some(accepted)
}

fn parse_config(p: &[u8]) -> Option<Vec<IpAddr>> {
    let mut d = Dec::new(p);
    let n = d.u32()?;
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(d.ip()?);
    }
    d.end().then_some(v)
}

/// Reads a file in 1 MiB chunks into a buffer that is wiped when dropped
/// (the file holds keys).
struct Chunks<'a> {
    file: &'a mut File,
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    eof: bool,
}

impl<'a> Chunks<'a> {
    fn new(file: &'a mut File) -> Self {
        Chunks {
            file,
            buf: Zeroizing::new(Vec::with_capacity(2 << 20)),
            pos: 0,
            eof: false,
        }
    }

    /// The next `n` bytes, or `None` at the end of the file (the partial
    /// remainder stays available through [`Chunks::rest`]).
    fn take(&mut self, n: usize) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
        while self.buf.len() - self.pos < n && !self.eof {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let old = self.buf.len();
            let want = (n - old).max(1 << 20);
            self.buf.resize(old + want, 0);
            let got = loop {
                match self.file.read(&mut self.buf[old..]) {
                    Ok(g) => break g,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(old + got);
            if got == 0 {
                self.eof = true;
            }
        }
        if self.buf.len() - self.pos < n {
            return Ok(None);
        }
        let out = Zeroizing::new(self.buf[self.pos..self.pos + n].to_vec());
        self.pos += n;
        Ok(Some(out))
    }

    fn rest(&self) -> Vec<u8> {
        self.buf[self.pos..].to_vec()
    }
}

// --------------------------------------------------------------------------
// IMAGE records: one stored SA, field by field.

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.u8(4);
                self.0.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.0.extend_from_slice(&a.octets());
            }
        }
    }
    fn endpoint(&mut self, e: &Endpoint) {
        self.ip(e.ip);
        self.u16(e.port);
    }
    fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            Some(x) => {
                self.u8(1);
                f(self, x);
            }
            None => self.u8(0),
        }
    }
    fn lifetime(&mut self, l: &Lifetime) {
        self.u32(l.allocations);
        self.u64(l.bytes);
        self.u64(l.addtime);
        self.u64(l.usetime);
    }
    fn key(&mut self, k: Option<&KeyMaterial>) {
        self.opt(k, |e, k| e.bytes(k.expose()));
    }
    fn identity(&mut self, i: Option<&Identity>) {
        self.opt(i, |e, i| {
            e.u16(i.id_type);
            e.u64(i.id);
            e.bytes(&i.text);
        });
    }
    fn sens(&mut self, s: Option<&Sensitivity>) {
        self.opt(s, |e, s| {
            e.u32(s.dpd);
            e.u8(s.sens_level);
            e.u8(s.integ_level);
            e.u32(s.flags);
            for bm in [&s.sens_bitmap, &s.integ_bitmap] {
                e.u32(bm.len() as u32);
                for w in bm {
                    e.u64(*w);
                }
            }
        });
    }
}

struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    fn new(b: &'a [u8]) -> Self {
        Dec { b }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.arr()?))
    }
    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn ip(&mut self) -> Option<IpAddr> {
        match self.u8()? {
            4 => Some(IpAddr::V4(Ipv4Addr::from(self.arr::<4>()?))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(self.arr::<16>()?))),
            _ => None,
        }
    }
    fn endpoint(&mut self) -> Option<Endpoint> {
        Some(Endpoint {
            ip: self.ip()?,
            port: self.u16()?,
        })
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(f(self)?)),
            _ => None,
        }
    }
    fn lifetime(&mut self) -> Option<Lifetime> {
        Some(Lifetime {
            allocations: self.u32()?,
            bytes: self.u64()?,
            addtime: self.u64()?,
            usetime: self.u64()?,
        })
    }
    fn key(&mut self) -> Option<Option<KeyMaterial>> {
        self.opt(|d| Some(KeyMaterial::from_slice(d.bytes()?)))
    }
    fn identity(&mut self) -> Option<Option<Identity>> {
        self.opt(|d| {
            Some(Identity {
                id_type: d.u16()?,
                id: d.u64()?,
                text: d.bytes()?.to_vec(),
            })
        })
    }
    fn words(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        if n > self.b.len() / 8 {
            return None;
        }
        (0..n).map(|_| self.u64()).collect()
    }
    fn sens(&mut self) -> Option<Option<Sensitivity>> {
        self.opt(|d| {
            Some(Sensitivity {
                dpd: d.u32()?,
                sens_level: d.u8()?,
                integ_level: d.u8()?,
                flags: d.u32()?,
                sens_bitmap: d.words()?,
                integ_bitmap: d.words()?,
            })
        })
    }
    fn inner(&mut self) -> Option<Option<InnerSelector>> {
        self.opt(|d| {
            Some(InnerSelector {
                ip: d.ip()?,
                prefix_len: d.u8()?,
                port: d.u16()?,
            })
        })
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
    fn end(&self) -> bool {
        self.b.is_empty()
    }
}

fn image_payload(sa: &Sa) -> Zeroizing<Vec<u8>> {
    let mut e = Enc(Vec::with_capacity(512));
    e.u8(IMAGE);
    e.u8(sa.satype);
    e.u32(sa.spi);
    e.u8(sa.state as u8);
    e.endpoint(&sa.src);
    e.endpoint(&sa.dst);
    e.u8(sa.proto);
    for s in [&sa.inner_src, &sa.inner_dst] {
        e.opt(s.as_ref(), |e, s| {
            e.ip(s.ip);
            e.u8(s.prefix_len);
            e.u16(s.port);
        });
    }
    e.u8(sa.inner_proto);
    e.opt(sa.natt_loc.as_ref(), Enc::endpoint);
    e.opt(sa.natt_rem.as_ref(), Enc::endpoint);
    e.u64(sa.flags);
    e.u8(sa.auth_alg);
    e.u8(sa.encr_alg);
    e.key(sa.auth_key.as_ref());
    e.u16(sa.auth_key_bits);
    e.key(sa.encr_key.as_ref());
    e.u16(sa.encr_key_bits);
    e.u8(sa.replay_window);
    e.u32(sa.replay.size());
    e.u64(sa.replay.highest());
    e.u64(sa.seq_out);
    e.lifetime(&sa.hard);
    e.lifetime(&sa.soft);
    e.lifetime(&sa.idle);
    e.bool(sa.idle_defaulted);
    for t in [
        sa.add_time,
        sa.use_time,
        sa.last_use,
        sa.bytes,
        sa.hard_expire,
        sa.soft_expire,
        sa.reap_at,
    ] {
        e.u64(t);
    }
    e.opt(sa.idle_notified.as_ref(), |e, t| e.u64(*t));
    e.identity(sa.ident_src.as_ref());
    e.identity(sa.ident_dst.as_ref());
    e.sens(sa.sens.as_ref());
    e.sens(sa.outer_sens.as_ref());
    e.u32(sa.kmc.0);
    e.u64(sa.kmc.1);
    e.opt(sa.pair_spi.as_ref(), |e, s| e.u32(*s));
    e.bool(sa.in_inbound);
    e.bool(sa.in_outbound);
    Zeroizing::new(e.0)
}

fn decode_image(p: &[u8]) -> Option<Sa> {
    let mut d = Dec::new(p);
    let satype = d.u8()?;
    let spi = d.u32()?;
    let state = sadb::pfkey::SaState::from_u8(d.u8()?)?;
    let src = d.endpoint()?;
    let dst = d.endpoint()?;
    let proto = d.u8()?;
    let inner_src = d.inner()?;
    let inner_dst = d.inner()?;
    let inner_proto = d.u8()?;
    let natt_loc = d.opt(Dec::endpoint)?;
    let natt_rem = d.opt(Dec::endpoint)?;
    let flags = d.u64()?;
    let auth_alg = d.u8()?;
    let encr_alg = d.u8()?;
    let auth_key = d.key()?;
    let auth_key_bits = d.u16()?;
    let encr_key = d.key()?;
    let encr_key_bits = d.u16()?;
    let replay_window = d.u8()?;
    let mut replay = sadb::replay::ReplayWindow::new(d.u32()?).ok()?;
    replay.set_highest(d.u64()?);
    let seq_out = d.u64()?;
    let hard = d.lifetime()?;
    let soft = d.lifetime()?;
    let idle = d.lifetime()?;
    let idle_defaulted = d.bool()?;
    let add_time = d.u64()?;
    let use_time = d.u64()?;
    let last_use = d.u64()?;
    let bytes = d.u64()?;
    let hard_expire = d.u64()?;
    let soft_expire = d.u64()?;
    let reap_at = d.u64()?;
    let idle_notified = d.opt(Dec::u64)?;
    let ident_src = d.identity()?;
    let ident_dst = d.identity()?;
    let sens = d.sens()?;
    let outer_sens = d.sens()?;
    let kmc = (d.u32()?, d.u64()?);
    let pair_spi = d.opt(Dec::u32)?;
    let in_inbound = d.bool()?;
    let in_outbound = d.bool()?;
    if !d.end() {
        return None;
    }
    Some(Sa {
        serial: 0,
        satype,
        spi,
        state,
        src,
        dst,
        proto,
        inner_src,
        inner_dst,
        inner_proto,
        natt_loc,
        natt_rem,
        flags,
        auth_alg,
        encr_alg,
        auth_key,
        auth_key_bits,
        encr_key,
        encr_key_bits,
        replay_window,
        replay,
        seq_out,
        hard,
        soft,
        idle,
        idle_defaulted,
        add_time,
        use_time,
        last_use,
        bytes,
        hard_expire,
        soft_expire,
        reap_at,
        idle_notified,
        ident_src,
        ident_dst,
        sens,
        outer_sens,
        kmc,
        pair_spi,
        in_inbound,
        in_outbound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sadb::pfkey::{satype, Address, ExtKind, Key, SaExt, SpiRange};
    use std::os::unix::fs::PermissionsExt;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let d = std::env::temp_dir().join(format!(
                "sadbd-journal-{tag}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&d).expect("temp dir");
            TempDir(d)
        }
        fn file(&self) -> StateOptions {
            StateOptions {
                path: self.0.join("state"),
                fsync: false,
            }
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const ME: &str = "10.0.0.1";
    const PEER: &str = "10.0.0.2";
    /// A key no other byte string in these tests looks like.
    const AKEY: [u8; 20] = [0xa7; 20];

    fn cfg(seed: u64) -> Config {
        let mut c = Config::default();
        c.local_addrs.insert(ME.parse().expect("ip"));
        c.jitter = sadb::Jitter::Seeded(seed);
        c.seed = seed;
        c
    }

    fn addr(kind: ExtKind, ip: &str) -> Extension {
        Extension::Address(kind, Address::new(ip.parse().expect("ip"), 0, 0))
    }

    fn add(spi: u32, src: &str, dst: &str, soft: u64, pair: Option<u32>) -> Vec<u8> {
        let mut m = Message::new(MsgType::Add, satype::ESP, spi, 7)
            .with(SaExt {
                spi,
                state: 1,
                auth: 3,
                encrypt: 12,
                ..SaExt::default()
            })
            .with(addr(ExtKind::AddressSrc, src))
            .with(addr(ExtKind::AddressDst, dst))
            .with(Extension::Key(
                ExtKind::KeyAuth,
                Key {
                    bits: 160,
                    reserved: 0,
                    material: KeyMaterial::new(AKEY.to_vec()),
                },
            ))
            .with(Extension::Key(
                ExtKind::KeyEncrypt,
                Key {
                    bits: 128,
                    reserved: 0,
                    material: KeyMaterial::new(vec![0x3c; 16]),
                },
            ));
        if soft != 0 {
            m = m
                .with(Extension::Lifetime(
                    ExtKind::LifetimeSoft,
                    Lifetime {
                        addtime: soft,
                        ..Lifetime::default()
                    },
                ))
                .with(Extension::Lifetime(
                    ExtKind::LifetimeHard,
                    Lifetime {
                        addtime: soft * 2,
                        ..Lifetime::default()
                    },
                ));
        }
        if let Some(p) = pair {
            m = m.with(Extension::Pair { spi: p });
        }
        m.emit(Dialect::Illumos).expect("emit")
    }

    fn by_spi(t: MsgType, spi: u32, dst: &str) -> Vec<u8> {
        Message::new(t, satype::ESP, 1, 7)
            .with(SaExt {
                spi,
                ..SaExt::default()
            })
            .with(addr(ExtKind::AddressSrc, "0.0.0.0"))
            .with(addr(ExtKind::AddressDst, dst))
            .emit(Dialect::Illumos)
            .expect("emit")
    }

    fn errno(out: &[Outgoing]) -> u8 {
        out.first().expect("a reply").bytes[2]
    }

    /// Every SA, field by field (keys included), in a stable order.
    fn contents(ks: &Keysock) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = ks
            .sadb()
            .iter()
            .map(|(_, sa)| image_payload(sa).to_vec())
            .collect();
        v.sort();
        v
    }

    /// A history that exercises every journaled message type, jitter and
    /// GETSPI's random SPI, and the ager.
    fn history(j: &mut Journaled) -> u32 {
        let s = j.open();
        let t0 = 1_000_000;
        // Outbound-only with a soft lifetime: the kernel jitters it.
        assert_eq!(errno(&j.write(s, &add(0x100, ME, PEER, 600, None), t0)), 0);
        // Its inbound partner, paired.
        assert_eq!(
            errno(&j.write(s, &add(0x101, PEER, ME, 0, Some(0x100)), t0 + 1)),
            0
        );
        // A refused ADD (duplicate) is not journaled.
        assert_eq!(
            errno(&j.write(s, &add(0x100, ME, PEER, 0, None), t0 + 2)),
            17
        );
        // GETSPI then UPDATE of the larval SA: the SPI was random.
        let getspi = Message::new(MsgType::GetSpi, satype::ESP, 9, 7)
            .with(addr(ExtKind::AddressSrc, PEER))
            .with(addr(ExtKind::AddressDst, ME))
            .with(Extension::SpiRange(SpiRange {
                min: 0x1000,
                max: 0xffff_fff0,
            }))
            .emit(Dialect::Illumos)
            .expect("emit");
        let out = j.write(s, &getspi, t0 + 3);
        assert_eq!(errno(&out), 0);
        let spi = Message::parse(&out[0].bytes, Dialect::Illumos)
            .expect("reply")
            .sa()
            .expect("sa")
            .spi;
        let mut upd = Message::parse(&add(spi, PEER, ME, 300, None), Dialect::Illumos).expect("p");
        upd.msg_type = MsgType::Update;
        let upd = upd.emit(Dialect::Illumos).expect("emit");
        assert_eq!(errno(&j.write(s, &upd, t0 + 4)), 0);
        // A second larval SA: the ager's pass below reaps it (larval
        // lifetime 90 s).
        assert_eq!(errno(&j.write(s, &getspi, t0 + 5)), 0);
        // Some SAs to delete and flush around.
        for i in 0..50 {
            assert_eq!(
                errno(&j.write(s, &add(0x200 + i, ME, PEER, 0, None), t0 + 6)),
                0
            );
        }
        for i in 0..20 {
            assert_eq!(
                errno(&j.write(s, &by_spi(MsgType::Delete, 0x200 + i, PEER), t0 + 7)),
                0
            );
        }
        // The ager: the outbound SA's soft lifetime (600 s less jitter)
        // runs out; it turns DYING.
        j.tick(t0 + 595);
        // An AH SA, then a FLUSH of AH only.
        let mut ah = Message::parse(&add(0x300, ME, PEER, 0, None), Dialect::Illumos).expect("p");
        ah.satype = satype::AH;
        ah.exts
            .retain(|e| !matches!(e, Extension::Key(ExtKind::KeyEncrypt, _)));
        if let Some(sa) = ah.sa_mut() {
            sa.encrypt = 0;
        }
        assert_eq!(
            errno(&j.write(s, &ah.emit(Dialect::Illumos).expect("emit"), t0 + 8)),
            0
        );
        let flush = Message::new(MsgType::Flush, satype::AH, 10, 7)
            .emit(Dialect::Illumos)
            .expect("emit");
        assert_eq!(errno(&j.write(s, &flush, t0 + 9)), 0);
        // A third larval SA, left larval.
        assert_eq!(errno(&j.write(s, &getspi, t0 + 600)), 0);
        spi
    }

    #[test]
    fn a_reopened_journal_gives_back_the_same_sadb() {
        let d = TempDir::new("reopen");
        let before = {
            let (mut j, r) = Journaled::open(&d.file(), cfg(1)).expect("open");
            assert_eq!(r.sas, 0);
            assert!(r.warnings.is_empty());
            let spi = history(&mut j);
            let ks = j.keysock();
            let id = ks
                .sadb()
                .lookup(satype::ESP, 0x100, PEER.parse().expect("ip"))
                .expect("0x100");
            let sa = ks.sadb().sa(id).expect("sa");
            assert_eq!(
                sa.state,
                sadb::pfkey::SaState::Dying,
                "the tick was replayed"
            );
            assert!(sa.soft.addtime < 600, "jitter applied: {}", sa.soft.addtime);
            assert!(ks
                .sadb()
                .lookup(satype::ESP, spi, ME.parse().expect("ip"))
                .is_some());
            contents(ks)
        };
        assert_eq!(
            before.len(),
            2 + 2 + 30,
            "0x100, 0x101, two from GETSPI, 30 of 50"
        );
        // Another seed: the replay must not depend on the generator.
        let (j, r) = Journaled::open(&d.file(), cfg(99)).expect("reopen");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(r.sas, before.len());
        assert_eq!(contents(j.keysock()), before);
        let mode = std::fs::metadata(&d.file().path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn compaction_keeps_every_sa_exactly() {
        let d = TempDir::new("compact");
        let (mut j, _) = Journaled::open(&d.file(), cfg(5)).expect("open");
        history(&mut j);
        let before = contents(j.keysock());
        let records = j.records();
        j.compact().expect("compact");
        assert_eq!(j.records(), 1 + before.len() as u64);
        assert!(j.records() < records);
        // Changes after the snapshot go on being journaled.
        let s = j.open();
        assert_eq!(
            errno(&j.write(s, &add(0x400, ME, PEER, 0, None), 2_000_000)),
            0
        );
        let after = contents(j.keysock());
        drop(j);
        let (j, r) = Journaled::open(&d.file(), cfg(6)).expect("reopen");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(contents(j.keysock()), after);
        assert!(!tmp_path(&d.file().path).exists());
    }

    #[test]
    fn churn_compacts_on_its_own() {
        let d = TempDir::new("churn");
        let (mut j, _) = Journaled::open(&d.file(), cfg(5)).expect("open");
        let s = j.open();
        for i in 0..(MIN_COMPACT as u32) {
            let spi = 0x1000 + (i % 10);
            let out = j.write(s, &add(spi, ME, PEER, 0, None), 1_000_000);
            assert_eq!(errno(&out), 0);
            let out = j.write(s, &by_spi(MsgType::Delete, spi, PEER), 1_000_000);
            assert_eq!(errno(&out), 0);
        }
        assert!(
            j.records() < MIN_COMPACT,
            "compacted: {} records for {} SAs",
            j.records(),
            j.keysock().sadb().len()
        );
        let before = contents(j.keysock());
        drop(j);
        let (j, _) = Journaled::open(&d.file(), cfg(5)).expect("reopen");
        assert_eq!(contents(j.keysock()), before);
    }

    #[test]
    fn a_damaged_tail_is_cut_with_a_warning() {
        let d = TempDir::new("tail");
        let path = d.file().path;
        let (full, len_before_last) = {
            let (mut j, _) = Journaled::open(&d.file(), cfg(1)).expect("open");
            let s = j.open();
            for i in 0..10 {
                assert_eq!(errno(&j.write(s, &add(0x500 + i, ME, PEER, 0, None), 5)), 0);
            }
            let len = std::fs::metadata(&path).expect("meta").len();
            assert_eq!(errno(&j.write(s, &add(0x600, ME, PEER, 0, None), 5)), 0);
            (contents(j.keysock()), len)
        };
        let whole = std::fs::read(&path).expect("read");
        // kill -9 in the middle of the last write: only part of it landed.
        for cut in [len_before_last as usize + 3, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).expect("write");
            let (j, r) = Journaled::open(&d.file(), cfg(1)).expect("reopen");
            assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
            assert!(r.warnings[0].contains("damaged"), "{}", r.warnings[0]);
            assert_eq!(contents(j.keysock()).len(), full.len() - 1);
            drop(j);
            assert_eq!(
                std::fs::metadata(&path).expect("meta").len(),
                len_before_last,
                "truncated to the last whole record"
            );
        }
        // A flipped bit inside the last record: its CRC no longer matches.
        let mut bad = whole.clone();
        let n = bad.len();
        bad[n - 10] ^= 0x04;
        std::fs::write(&path, &bad).expect("write");
        let (j, r) = Journaled::open(&d.file(), cfg(1)).expect("reopen");
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(contents(j.keysock()).len(), full.len() - 1);
        drop(j);
        // Garbage instead of a record length: also just the tail.
        let mut bad = whole.clone();
        bad.extend_from_slice(&[0xff; 5]);
        std::fs::write(&path, &bad).expect("write");
        let (j, r) = Journaled::open(&d.file(), cfg(1)).expect("reopen");
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(contents(j.keysock()), full);
        for w in &r.warnings {
            assert!(!w.contains("a7a7") && !w.contains("A7A7"));
        }
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let d = TempDir::new("mode");
        let path = d.file().path;
        std::fs::write(&path, b"").expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = Journaled::open(&d.file(), cfg(1)).err().expect("refused");
        assert!(
            matches!(e, JournalError::Exposed { mode: 0o640, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_symlink_is_refused() {
        let d = TempDir::new("link");
        let target = d.0.join("elsewhere");
        std::fs::write(&target, b"").expect("create");
        std::os::unix::fs::symlink(&target, d.file().path).expect("symlink");
        assert!(Journaled::open(&d.file(), cfg(1)).is_err());
    }

    #[test]
    fn one_daemon_per_file() {
        let d = TempDir::new("lock");
        let (_j, _) = Journaled::open(&d.file(), cfg(1)).expect("open");
        let e = Journaled::open(&d.file(), cfg(1)).err().expect("refused");
        assert!(matches!(e, JournalError::Locked { .. }), "{e}");
    }

    #[test]
    fn other_local_addresses_are_refused() {
        let d = TempDir::new("local");
        drop(Journaled::open(&d.file(), cfg(1)).expect("open"));
        let mut other = cfg(1);
        other.local_addrs.insert("192.0.2.9".parse().expect("ip"));
        let e = Journaled::open(&d.file(), other).err().expect("refused");
        assert!(matches!(e, JournalError::LocalMismatch { .. }), "{e}");
        assert!(e.to_string().contains("192.0.2.9"), "{e}");
    }

    #[test]
    fn a_foreign_file_is_refused_not_overwritten() {
        let d = TempDir::new("foreign");
        let path = d.file().path;
        std::fs::write(&path, b"hello, this is not a journal").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = Journaled::open(&d.file(), cfg(1)).err().expect("refused");
        assert!(matches!(e, JournalError::NotJournal { .. }), "{e}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"hello, this is not a journal"
        );
    }

    #[test]
    fn images_round_trip_every_field() {
        let d = TempDir::new("image");
        let (mut j, _) = Journaled::open(&d.file(), cfg(3)).expect("open");
        history(&mut j);
        for (_, sa) in j.keysock().sadb().iter() {
            let p = image_payload(sa);
            let back = decode_image(&p[1..]).expect("decodes");
            assert_eq!(image_payload(&back).as_slice(), p.as_slice());
            // Any truncation is detected, never a panic.
            for cut in 1..p.len() - 1 {
                assert!(decode_image(&p[1..cut]).is_none());
            }
        }
    }
}
