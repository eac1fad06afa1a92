//! Executing commands against a PF_KEY transport and printing what comes
//! back (ipseckey-behaviour.md 3, 4.2; decisions.md front end #4-#8).

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

use sadb::errno::Errno;
use sadb::pfkey::{Dialect, Message, MsgType};
use sadb::Diagnostic;

use crate::parse::{satype_word, CmdKind, Command};
use crate::print::{self, PrintOpts};
use crate::request;
use crate::transport::Transport;

/// How commands arrive (1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Operands on the command line: one command.
    CommandLine,
    /// Lines from standard input.
    Interactive,
    /// `-f FILE` or `load FILE`.
    File,
    /// `-c FILE`: parse only, send nothing.
    Check,
}

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; `n` counts towards a file's valid commands (4.5).
    Done(usize),
    /// Refused or failed; the messages were printed.
    Failed,
    /// `quit` / `exit`.
    Quit,
    /// `load FILE`: the caller reads it.
    Load(String),
}

/// How long to wait for the kernel's answer (illumos: 10 s).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One ipseckey process's state: options, the transport, message numbers.
pub struct Session<'a> {
    pub t: &'a mut dyn Transport,
    pub print: PrintOpts,
    pub mode: Mode,
    /// `--json`: get, dump and monitor print JSON Lines.
    pub json: bool,
    /// How many `load`/`-f` files are open inside each other.
    pub load_depth: usize,
    pub pid: u32,
    seq: u32,
    pub out: Box<dyn Write + 'a>,
    pub err: Box<dyn Write + 'a>,
    /// Epoch seconds for printing ("Time now is").
    pub clock: Box<dyn FnMut() -> u64 + 'a>,
}

/// A failure talking to the kernel (as opposed to a refusal it sent).
#[derive(Debug)]
pub enum Bail {
    Io(io::Error),
    Timeout,
    Encode(String),
    /// The kernel lacks a feature the request needs; nothing was sent.
    Refused(String),
}

impl<'a> Session<'a> {
    pub fn new(t: &'a mut dyn Transport, print: PrintOpts, mode: Mode) -> Session<'a> {
        Session {
            t,
            print,
            mode,
            json: false,
            load_depth: 0,
            pid: std::process::id(),
            seq: 0,
            out: Box::new(io::stdout()),
            err: Box::new(io::stderr()),
            clock: Box::new(sim::daemon::wall_clock),
        }
    }

    fn next_seq(&mut self) -> u32 {
        // ipseckey numbers its messages 1, 2, 3, ... (2.2).
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Reports messages on standard error, with the line in file mode
    /// (decisions.md #4, #5).
    pub fn report(&mut self, line: Option<usize>, messages: &[String]) {
        if let (Some(n), Mode::File | Mode::Check) = (line, self.mode) {
            let _ = writeln!(self.err, "Parse error on line {n}.");
        }
        for m in messages {
            let _ = writeln!(self.err, "{m}");
        }
    }

    fn warn(&mut self, messages: &[String]) {
        for m in messages {
            let _ = writeln!(self.err, "{m}");
        }
    }

    fn send(&mut self, msg: &Message) -> Result<(), Bail> {
        if self.print.verbose {
            let now = (self.clock)();
            let _ = write!(self.out, "{}", print::verbose_block(msg, self.print, now));
        }
        let notes = self.t.vet(msg).map_err(Bail::Refused)?;
        for n in notes {
            let _ = writeln!(self.err, "ipseckey: {n}");
        }
        let bytes = msg
            .emit(Dialect::Illumos)
            .map_err(|e| Bail::Encode(e.to_string()))?;
        self.t.send(&bytes).map_err(Bail::Io)
    }

    /// The reply to `msg`: the next message with its seq and pid (others,
    /// such as broadcasts of other sockets' work, are skipped).
    fn reply_to(&mut self, msg: &Message) -> Result<Message, Bail> {
        loop {
            let Some(b) = self.t.recv(Some(REPLY_TIMEOUT)).map_err(Bail::Io)? else {
                return Err(Bail::Timeout);
            };
            let Ok(m) = Message::parse(&b, Dialect::Illumos) else {
                continue;
            };
            if m.seq == msg.seq && m.pid == msg.pid {
                return Ok(m);
            }
        }
    }

    fn bail(&mut self, what: &str, b: Bail) -> Outcome {
        let text = match b {
            Bail::Io(e) => format!("ipseckey: {what}: {e}"),
            Bail::Timeout => "ipseckey: Reply message from PF_KEY timed out.".to_string(),
            Bail::Encode(e) => format!("ipseckey: {what}: {e}"),
            Bail::Refused(e) => format!("ipseckey: {e}"),
        };
        let _ = writeln!(self.err, "{text}");
        Outcome::Failed
    }

    /// Runs one parsed command.
    pub fn execute(&mut self, cmd: &Command, line: Option<usize>) -> Outcome {
        if !cmd.warnings.is_empty() {
            let w = cmd.warnings.clone();
            self.warn(&w);
        }
        let in_file = matches!(self.mode, Mode::File | Mode::Check);
        match cmd.kind {
            CmdKind::Quit => Outcome::Quit,
            CmdKind::Load => match self.mode {
                Mode::CommandLine => {
                    self.report(
                        line,
                        &["load is not available from the command line; use -f FILE.".into()],
                    );
                    Outcome::Failed
                }
                _ => Outcome::Load(cmd.arg.clone().unwrap_or_default()),
            },
            CmdKind::Help => {
                if in_file {
                    self.report(line, &["Help not appropriate in config file.".into()]);
                    return Outcome::Failed;
                }
                let text = crate::help::help(cmd.arg.as_deref());
                let _ = write!(self.out, "{text}");
                Outcome::Done(0)
            }
            CmdKind::Dump | CmdKind::Save | CmdKind::Monitor | CmdKind::PassiveMonitor
                if in_file =>
            {
                let what = match cmd.kind {
                    CmdKind::Dump => "Dump",
                    CmdKind::Save => "Save",
                    _ => "Monitor",
                };
                self.report(line, &[format!("{what} not appropriate in config file.")]);
                Outcome::Failed
            }
            CmdKind::Add | CmdKind::Update | CmdKind::UpdatePair
                if self.mode == Mode::CommandLine =>
            {
                let _ = writeln!(
                    self.err,
                    "ipseckey: can't do ADD or UPDATE from the command line: the keys would be visible to other \
                     users in ps(1) output. Use the ipseckey> prompt or ipseckey -f FILE."
                );
                Outcome::Failed
            }
            _ if self.mode == Mode::Check => Outcome::Done(if cmd.kind == CmdKind::Flush {
                1
            } else {
                cmd.sa.dst.as_ref().map_or(0, |d| d.len())
            }),
            CmdKind::Flush => self.flush(cmd),
            CmdKind::Dump => self.dump(cmd, false),
            CmdKind::Save => self.dump(cmd, true),
            CmdKind::Monitor | CmdKind::PassiveMonitor => {
                self.monitor(cmd.kind == CmdKind::Monitor)
            }
            _ => self.sa_command(cmd, line),
        }
    }

    fn sa_command(&mut self, cmd: &Command, line: Option<usize>) -> Outcome {
        let pid = self.pid;
        let mut seq = self.seq;
        let msgs = request::build(cmd, pid, &mut || {
            seq = seq.wrapping_add(1);
            seq
        });
        self.seq = seq;
        let mut ok = 0;
        let mut errors = Vec::new();
        for (dst, msg) in msgs {
            if let Err(b) = self.send(&msg) {
                return self.bail("sending to PF_KEY", b);
            }
            let reply = match self.reply_to(&msg) {
                Ok(r) => r,
                Err(b) => return self.bail("waiting for PF_KEY", b),
            };
            match self.judge(cmd, dst, &reply) {
                Ok(()) => ok += 1,
                Err(Some(e)) => errors.push(e),
                Err(None) => return Outcome::Failed,
            }
        }
        if errors.is_empty() {
            Outcome::Done(ok)
        } else {
            self.report(line, &errors);
            Outcome::Failed
        }
    }

    /// What a reply means (4.2). `Err(None)`: already reported (bail).
    fn judge(&mut self, cmd: &Command, dst: IpAddr, reply: &Message) -> Result<(), Option<String>> {
        let errno = Errno::from_number(reply.errno, Dialect::Illumos);
        let diag = Diagnostic::from_code(reply.reserved);
        if reply.errno == 0 {
            if cmd.kind == CmdKind::Get {
                let now = (self.clock)();
                let text = if self.json {
                    crate::json::line(reply, !self.print.paranoid)
                } else {
                    print::message_block(reply, self.print, now)
                };
                let _ = write!(self.out, "{text}");
            } else if reply.reserved != 0 {
                // The kernel did the request but says something about it
                // (pairing refused with errno 0, 5.5): say so.
                let _ = writeln!(
                    self.err,
                    "WARNING: {}: Diagnostic code {}: {}.",
                    cmd.kind.word(),
                    diag.code(),
                    diag.text()
                );
            }
            return Ok(());
        }
        let spi = cmd.sa.spi.unwrap_or(0);
        let ty = satype_word(cmd.satype);
        match errno {
            Some(Errno::Eexist) if matches!(cmd.kind, CmdKind::Add | CmdKind::Update) => {
                Err(Some(format!(
                    "Association (type = {ty}) with spi 0x{spi:x} and addr\n{dst} already exists."
                )))
            }
            Some(Errno::Esrch)
                if matches!(cmd.kind, CmdKind::Get | CmdKind::Delete)
                    && diag == Diagnostic::SaNotfound =>
            {
                Err(Some(format!(
                    "Association (type = {ty}) with spi 0x{spi:x} and addr\n{dst} does not exist."
                )))
            }
            Some(Errno::Einval) | Some(Errno::Esrch) | Some(Errno::Eexist) => Err(Some(format!(
                "One of the entered values is incorrect: Diagnostic code {}: {}{}.",
                diag.code(),
                diag.text(),
                blame(diag, cmd, dst)
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default()
            ))),
            other => {
                let text = other.map(|e| e.illumos_text()).unwrap_or("Unknown error");
                let extra = if reply.reserved != 0 {
                    format!(" (Diagnostic code {}: {})", diag.code(), diag.text())
                } else if other == Some(Errno::Eprotonosupport) {
                    // A real kernel without the ESP or AH module (XFRM's
                    // "Requested type not found").
                    format!(
                        " (the kernel has no {} support: is the {} module loaded?)",
                        ty.to_uppercase(),
                        if ty == "ah" { "ah4/ah6" } else { "esp4/esp6" }
                    )
                } else {
                    String::new()
                };
                Err(Some(format!(
                    "ipseckey: return message (in doaddresses): {text}{extra}"
                )))
            }
        }
    }

    fn flush(&mut self, cmd: &Command) -> Outcome {
        let seq = self.next_seq();
        let msg = Message::new(MsgType::Flush, cmd.satype, seq, self.pid);
        if let Err(b) = self.send(&msg) {
            return self.bail("sending to PF_KEY", b);
        }
        match self.reply_to(&msg) {
            Err(b) => self.bail("waiting for PF_KEY", b),
            Ok(r) if r.errno == 0 => Outcome::Done(1),
            Ok(r) => {
                let d = Diagnostic::from_code(r.reserved);
                let _ = writeln!(self.err, "  Diagnostic code {}:  {}.", d.code(), d.text());
                let _ = writeln!(self.err, "ipseckey: Cannot flush SA type {}.", cmd.satype);
                Outcome::Failed
            }
        }
    }

    /// DUMP, printed as blocks or, for `save`, as `add` commands.
    fn dump(&mut self, cmd: &Command, save: bool) -> Outcome {
        let seq = self.next_seq();
        let msg = Message::new(MsgType::Dump, cmd.satype, seq, self.pid);
        let mut file: Option<Box<dyn Write>> = None;
        if save {
            match cmd.arg.as_deref() {
                None | Some("-") => {}
                Some(path) => match crate::files::create_private(path) {
                    Ok(f) => file = Some(Box::new(f)),
                    Err(e) => {
                        let _ = writeln!(self.err, "ipseckey: ERROR: {path} open error: {e}");
                        return Outcome::Failed;
                    }
                },
            }
        }
        if let Err(b) = self.send(&msg) {
            return self.bail("sending to PF_KEY", b);
        }
        let mut text = String::new();
        if save {
            text.push_str(&print::save_header());
        }
        loop {
            let b = match self.t.recv(Some(REPLY_TIMEOUT)) {
                Ok(Some(b)) => b,
                Ok(None) => return self.bail("dump", Bail::Timeout),
                Err(e) => return self.bail("dump", Bail::Io(e)),
            };
            let Ok(m) = Message::parse(&b, Dialect::Illumos) else {
                continue;
            };
            if m.msg_type != MsgType::Dump || m.pid != self.pid || (m.seq != seq && m.seq != 0) {
                continue;
            }
            // The end of the dump (seq 0), or a refusal of the request
            // itself (its own seq, errno set: an SA type without an SADB),
            // which is the only answer there will be.
            if m.seq == 0 || m.errno != 0 {
                if m.errno != 0 {
                    let d = Diagnostic::from_code(m.reserved);
                    let e = Errno::from_number(m.errno, Dialect::Illumos)
                        .map(|e| e.illumos_text())
                        .unwrap_or("Unknown error");
                    let _ = writeln!(self.err, "  Diagnostic code {}:  {}.", d.code(), d.text());
                    let _ = writeln!(self.err, "ipseckey: Dump failed: {e}");
                    return Outcome::Failed;
                }
                break;
            }
            if save {
                text.push_str(&print::save_record(&m, self.print));
            } else if self.json {
                text.push_str(&crate::json::line(&m, !self.print.paranoid));
            } else {
                let now = (self.clock)();
                text.push_str(&print::message_block(&m, self.print, now));
                text.push('\n');
            }
        }
        if !save && !self.json {
            text.push_str(&print::dump_succeeded(cmd.satype));
        }
        let r = match file.as_mut() {
            Some(f) => f.write_all(text.as_bytes()),
            None => self.out.write_all(text.as_bytes()),
        };
        match r {
            Ok(()) => Outcome::Done(0),
            Err(e) => self.bail("writing", Bail::Io(e)),
        }
    }

    fn monitor(&mut self, active: bool) -> Outcome {
        // With --json the banner goes to stderr so stdout stays JSON Lines.
        let json = self.json;
        let banner = |s: &mut Self, text: &str| {
            let _ = if json {
                write!(s.err, "{text}")
            } else {
                write!(s.out, "{text}")
            };
        };
        if active {
            let seq = self.next_seq();
            let msg = Message::new(MsgType::Promisc, 1, seq, self.pid);
            banner(self, "Actively");
            if let Err(b) = self.send(&msg) {
                return self.bail("sending to PF_KEY", b);
            }
            banner(self, " monitoring the PF_KEY socket.\n");
        } else {
            banner(self, "Passively monitoring the PF_KEY socket.\n");
        }
        let _ = self.out.flush();
        loop {
            match self.t.recv(None) {
                Ok(Some(b)) => {
                    let now = (self.clock)();
                    let block = match Message::parse(&b, Dialect::Illumos) {
                        Ok(m) if self.json => crate::json::line(&m, !self.print.paranoid),
                        Ok(m) => print::monitor_block(&m, b.len(), self.print, now),
                        Err(e) => format!(
                            "Read {} bytes.\nUndecodable PF_KEY message: {e}\n\n",
                            b.len()
                        ),
                    };
                    let _ = write!(self.out, "{block}");
                    let _ = self.out.flush();
                }
                // The in-process engine has nobody else talking to it.
                Ok(None) => return Outcome::Done(0),
                Err(e) => return self.bail("monitor", Bail::Io(e)),
            }
        }
    }
}

/// The keyword (and value, never a key) behind a kernel diagnostic, so a
/// refusal names what to fix.
fn blame(diag: Diagnostic, cmd: &Command, dst: IpAddr) -> Option<String> {
    use sadb::alg::{AuthAlg, EncrAlg};
    use Diagnostic as D;
    let sa = &cmd.sa;
    let alg_a = || {
        sa.auth
            .map(|a| {
                AuthAlg::from_id(a, Dialect::Illumos)
                    .map(|x| x.name().to_string())
                    .unwrap_or_else(|| a.to_string())
            })
            .unwrap_or_else(|| "none".into())
    };
    let alg_e = || {
        sa.encr
            .map(|e| {
                EncrAlg::from_id(e, Dialect::Illumos)
                    .map(|x| x.name().to_string())
                    .unwrap_or_else(|| e.to_string())
            })
            .unwrap_or_else(|| "null".into())
    };
    let bits = |k: &Option<crate::parse::ParsedKey>| k.as_ref().map(|k| k.bits).unwrap_or(0);
    let first = |v: &Option<Vec<IpAddr>>| {
        v.as_ref()
            .and_then(|a| a.first())
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let lt = |f: &str| -> String {
        let (h, s) = (&sa.hard.lt, &sa.soft.lt);
        match f {
            "alloc" => format!(
                "soft_alloc {} > hard_alloc {}",
                s.allocations, h.allocations
            ),
            "bytes" => format!("soft_bytes {} > hard_bytes {}", s.bytes, h.bytes),
            "addtime" => format!("soft_addtime {} > hard_addtime {}", s.addtime, h.addtime),
            _ => format!("soft_usetime {} > hard_usetime {}", s.usetime, h.usetime),
        }
    };
    Some(match diag {
        D::BadAalg => format!("auth_alg {}", alg_a()),
        D::BadEalg | D::EncrNotsupp => format!("encr_alg {}", alg_e()),
        D::BadAkeybits => format!("authkey: {} bits for {}", bits(&sa.auth_key), alg_a()),
        D::BadEkeybits => format!("encrkey: {} bits for {}", bits(&sa.encr_key), alg_e()),
        D::WeakEkey | D::MalformedEkey | D::EkeyPresent | D::MissingEkey => "encrkey".into(),
        D::WeakAkey | D::MalformedAkey | D::AkeyPresent | D::MissingAkey => "authkey".into(),
        D::BadSrc | D::BadSrcAf | D::MissingSrc | D::MalformedSrc => {
            format!("src {}", first(&sa.src))
        }
        D::BadDst | D::BadDstAf | D::MissingDst | D::MalformedDst => format!("dst {dst}"),
        D::AfMismatch => format!("src {} and dst {dst}", first(&sa.src)),
        D::AllocHserr => lt("alloc"),
        D::BytesHserr => lt("bytes"),
        D::AddtimeHserr => lt("addtime"),
        D::UsetimeHserr => lt("usetime"),
        D::BadSastate => format!(
            "state {}",
            sa.state
                .map(|s| s.to_string())
                .unwrap_or_else(|| "mature".into())
        ),
        D::BadSaflags => "inbound/outbound/encap".into(),
        D::PairInappropriate | D::PairAlready | D::PairSaNotfound => match sa.pair_spi {
            Some(p) => format!("pair-spi 0x{p:x}"),
            None => format!("spi 0x{:x}", sa.spi.unwrap_or(0)),
        },
        D::SaNotfound => format!("spi 0x{:x} dst {dst}", sa.spi.unwrap_or(0)),
        D::InvalidReplay => format!("replay_value {}", sa.replay_value.unwrap_or(0)),
        D::MalformedNattLoc | D::BadNattLocAf | D::MissingNattLoc => "nat_loc".into(),
        D::MalformedNattRem | D::BadNattRemAf | D::MissingNattRem => "nat_rem".into(),
        D::MissingInnerSrc | D::MalformedInnerSrc | D::PrefixInnerSrc | D::BadInnerSrcAf => {
            "isrc".into()
        }
        D::MissingInnerDst | D::MalformedInnerDst | D::PrefixInnerDst | D::BadInnerDstAf => {
            "idst".into()
        }
        D::InnerAfMismatch => "isrc/idst and proto".into(),
        D::ProtoMismatch => format!("proto {}", sa.proto.unwrap_or(0)),
        D::InnerProtoMismatch => format!("iproto {}", sa.iproto.unwrap_or(0)),
        D::DualPortSets => "sport/dport with isport/idport".into(),
        _ => return None,
    })
}
