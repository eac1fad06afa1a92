//! ipseckey: manually manipulate an IPsec SA database, the simulator's (or
//! later a real kernel's), with the command language of illumos ipseckey(8).

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ipseckey::driver::{file_verdict, run_command, run_file, run_stream};
use ipseckey::kernel::{self, KernelKind};
use ipseckey::lexer::{CommandText, Joiner};
use ipseckey::parse::{parse_command, ParseOpts};
use ipseckey::print::PrintOpts;
use ipseckey::run::{Mode, Outcome, Session};
use ipseckey::transport::{InProcess, SimSocket, Transport};

/// Manually manipulate an IPsec Security Association Database (SADB).
#[derive(Parser, Debug)]
#[command(name = "ipseckey", version, about)]
struct Args {
    /// Print addresses and protocols as numbers only; accept only literal addresses.
    #[arg(short = 'n')]
    numeric: bool,
    /// Paranoid: print every byte of keying material as XX.
    #[arg(short = 'p')]
    paranoid: bool,
    /// Verbose: print the messages sent to PF_KEY and raw time values.
    #[arg(short = 'v')]
    verbose: bool,
    /// Read commands from FILE (`-` for standard input).
    #[arg(short = 'f', value_name = "FILE", conflicts_with_all = ["check", "save"])]
    file: Option<String>,
    /// Check the commands in FILE for syntax errors; send nothing.
    #[arg(short = 'c', value_name = "FILE", conflicts_with = "save")]
    check: Option<String>,
    /// Write every SA as `add` commands to FILE (`-` for standard output).
    #[arg(short = 's', value_name = "FILE")]
    save: Option<String>,
    /// The simulator's PF_KEY socket (default: $IPSEC_SIM_SOCKET, else $XDG_RUNTIME_DIR/ipsec-sim/sadbd.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "embedded")]
    socket: Option<PathBuf>,
    /// get, dump and monitor print one JSON object per SA or message (JSON Lines).
    #[arg(long)]
    json: bool,
    /// Use a simulated kernel inside this process (no daemon; its SAs last as long as the process).
    #[arg(long, visible_alias = "in-process")]
    embedded: bool,
    /// Use this machine's kernel: `pfkey` (Linux PF_KEY, the default of a bare
    /// --kernel) or `xfrm` (Linux XFRM netlink). Needs root. Also $IPSECKEY_KERNEL.
    #[arg(
        long,
        value_name = "pfkey|xfrm",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "pfkey",
        conflicts_with_all = ["socket", "embedded"]
    )]
    kernel: Option<String>,
    /// With --embedded: an address this host owns (decides inbound/outbound); repeatable.
    #[arg(long = "local", value_name = "ADDR", requires = "embedded")]
    local: Vec<IpAddr>,
    /// A command: delete, delete-pair, get, flush, dump, save, monitor, pmonitor, help ...
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// The kernel interface asked for with --kernel or $IPSECKEY_KERNEL, if any
/// (never chosen silently).
fn kernel_choice(a: &Args) -> Result<Option<KernelKind>, String> {
    let env = std::env::var("IPSECKEY_KERNEL")
        .ok()
        .filter(|v| !v.is_empty());
    let (word, from) = match (&a.kernel, env) {
        (Some(w), _) => (w.clone(), "--kernel"),
        (None, Some(_)) if a.embedded || a.socket.is_some() => return Ok(None),
        (None, Some(v)) => (v, "IPSECKEY_KERNEL"),
        (None, None) => return Ok(None),
    };
    KernelKind::from_word(&word)
        .map(Some)
        .ok_or_else(|| format!("ipseckey: {from}={word}: expected pfkey or xfrm"))
}

fn connect(a: &Args) -> Result<Box<dyn Transport>, String> {
    if a.check.is_some() && !a.embedded {
        // -c sends nothing: no kernel (or root) needed.
        return Ok(Box::new(InProcess::new(sadb::Config::default())));
    }
    if let Some(kind) = kernel_choice(a)? {
        return kernel::open(kind);
    }
    if a.embedded || a.check.is_some() {
        let mut cfg = sadb::Config::default();
        cfg.local_addrs
            .extend(a.local.iter().map(|x| x.to_canonical()));
        cfg.jitter =
            sadb::Jitter::Seeded(u64::from(std::process::id()) ^ sim::daemon::wall_clock());
        return Ok(Box::new(InProcess::new(cfg)));
    }
    let path = a
        .socket
        .clone()
        .unwrap_or_else(sim::daemon::default_socket_path);
    SimSocket::connect(&path).map(|s| Box::new(s) as Box<dyn Transport>).map_err(|e| {
        format!(
            "ipseckey: cannot reach the simulated kernel at {} ({e}); start one with `sadbd --socket {} &` or use --embedded",
            path.display(),
            path.display()
        )
    })
}

fn main() -> ExitCode {
    let a = Args::parse();
    let print = PrintOpts {
        numeric: a.numeric,
        paranoid: a.paranoid,
        verbose: a.verbose,
    };
    let popts = ParseOpts { numeric: a.numeric };
    let mut t = match connect(&a) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let mode = if a.check.is_some() {
        Mode::Check
    } else if a.file.is_some() {
        Mode::File
    } else if !a.command.is_empty() || a.save.is_some() {
        Mode::CommandLine
    } else {
        Mode::Interactive
    };
    // A simulated kernel on a virtual clock: print times against its clock.
    let virtual_clock = if a.embedded || a.check.is_some() {
        None
    } else {
        let path = a
            .socket
            .clone()
            .unwrap_or_else(sim::daemon::default_socket_path);
        match sim::vclock::request(&path, 0, Duration::from_secs(5)) {
            Ok(sim::vclock::Answer::Virtual(_) | sim::vclock::Answer::OwnerOnly(_)) => Some(path),
            _ => None,
        }
    };
    let mut s = Session::new(t.as_mut(), print, mode);
    s.json = a.json;
    if let Some(path) = virtual_clock {
        s.clock = Box::new(
            move || match sim::vclock::request(&path, 0, Duration::from_secs(5)) {
                Ok(sim::vclock::Answer::Virtual(n) | sim::vclock::Answer::OwnerOnly(n)) => n,
                _ => sim::daemon::wall_clock(),
            },
        );
    }
    if let Some(file) = a.save.as_deref() {
        let toks = vec!["save".to_string(), "all".to_string(), file.to_string()];
        return match parse_command(&toks, popts).map(|c| s.execute(&c, None)) {
            Ok(Outcome::Done(_)) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    }
    if let Some(file) = a.file.as_deref().or(a.check.as_deref()) {
        let tally = run_file(&mut s, popts, file);
        return if file_verdict(&mut s, &tally) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if !a.command.is_empty() {
        let c = CommandText {
            line: 1,
            tokens: a.command.clone(),
        };
        return match parse_command(&c.tokens, popts) {
            Err(e) => {
                s.report(None, &e.warnings);
                s.report(None, &e.messages);
                ExitCode::FAILURE
            }
            Ok(cmd) => match s.execute(&cmd, None) {
                Outcome::Done(_) | Outcome::Quit => ExitCode::SUCCESS,
                Outcome::Load(_) | Outcome::Failed => ExitCode::FAILURE,
            },
        };
    }
    if std::io::stdin().is_terminal() {
        interactive(&mut s, popts);
    } else {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        run_stream(&mut s, popts, &mut lock);
    }
    ExitCode::SUCCESS
}

/// Tab completion of commands, SA types and extension keywords.
struct Completion;

impl rustyline::completion::Completer for Completion {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(ipseckey::help::complete(line, pos))
    }
}
impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

/// The `ipseckey> ` prompt with line editing, completion and history
/// (decisions.md #13). Lines that carry keys never enter the history.
fn interactive(s: &mut Session<'_>, popts: ParseOpts) {
    let Ok(mut ed) = rustyline::Editor::<Completion, rustyline::history::DefaultHistory>::new()
    else {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        run_stream(s, popts, &mut lock);
        return;
    };
    ed.set_helper(Some(Completion));
    let mut j = Joiner::new();
    // Whether the command being continued (a line ending in a backslash)
    // already had a key keyword: its further lines may hold the key.
    let mut keyed = false;
    loop {
        let prompt = "ipseckey> ";
        match ed.readline(prompt) {
            Ok(line) => {
                keyed = (keyed && j.pending()) || ipseckey::lexer::may_hold_key(&line);
                if !keyed && !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line.as_str());
                }
                match j.push(&line) {
                    Ok(Some(c)) => {
                        let (_, quit, load) = run_command(s, popts, &c);
                        if quit {
                            return;
                        }
                        if let Some(f) = load {
                            if run_file(s, popts, &f).quit {
                                return;
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("ipseckey: {}", e.interactive()),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => {
                j = Joiner::new();
                keyed = false;
            }
            Err(_) => return,
        }
    }
}
