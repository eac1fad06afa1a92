//! Reading commands: files (`-f`, `-c`, `load`), standard input, the
//! interactive prompt, and the accounting of 4.5 / decisions.md #4.

use std::io::{BufRead, Write};

use crate::lexer::{CommandText, Joiner, MAX_LINE};
use crate::parse::{parse_command, ParseOpts};
use crate::run::{Mode, Outcome, Session};

/// How reading a stream of commands ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub parsed: usize,
    pub valid: usize,
    pub quit: bool,
    /// A reading error that ends the run (file mode).
    pub fatal: bool,
}

/// Runs one command's text; returns (counts as parsed, valid count, quit).
pub fn run_command(
    s: &mut Session<'_>,
    popts: ParseOpts,
    c: &CommandText,
) -> (usize, bool, Option<String>) {
    let line = Some(c.line);
    match parse_command(&c.tokens, popts) {
        Err(e) => {
            if !e.warnings.is_empty() {
                let w = e.warnings.clone();
                s.report(None, &w);
            }
            let mut msgs = e.messages;
            if matches!(s.mode, Mode::Interactive)
                && msgs.iter().any(|m| m.starts_with("Unknown command"))
            {
                msgs.push("Type help or ? for usage info".into());
            }
            s.report(line, &msgs);
            (0, false, None)
        }
        Ok(cmd) => match s.execute(&cmd, line) {
            Outcome::Done(n) => (n, false, None),
            Outcome::Failed => (0, false, None),
            Outcome::Quit => (0, true, None),
            Outcome::Load(f) => (0, false, Some(f)),
        },
    }
}

/// Reads and runs every command of `input`.
pub fn run_stream(s: &mut Session<'_>, popts: ParseOpts, input: &mut dyn BufRead) -> Tally {
    let mut t = Tally {
        parsed: 0,
        valid: 0,
        quit: false,
        fatal: false,
    };
    let mut j = Joiner::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match read_line_bounded(input, &mut buf, MAX_LINE + 2) {
            Ok(n) => n,
            Err(e) => {
                let _ = writeln!(s.err, "ipseckey: reading commands: {e}");
                t.fatal = true;
                return t;
            }
        };
        let got = if n == 0 {
            j.finish()
        } else {
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            j.push_bytes(line)
        };
        match got {
            Ok(Some(c)) => {
                t.parsed += 1;
                let (valid, quit, load) = run_command(s, popts, &c);
                t.valid += valid;
                if quit {
                    t.quit = true;
                    return t;
                }
                if let Some(file) = load {
                    let sub = run_file(s, popts, &file);
                    if sub.quit {
                        t.quit = true;
                        return t;
                    }
                    if !sub.fatal && sub.valid >= sub.parsed {
                        t.valid += 1;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                let in_file = matches!(s.mode, Mode::File | Mode::Check);
                let msg = if in_file {
                    e.to_string()
                } else {
                    e.interactive()
                };
                let _ = writeln!(s.err, "ipseckey: {msg}");
                if in_file {
                    t.fatal = true;
                    return t;
                }
            }
        }
        if n == 0 {
            return t;
        }
    }
}

/// Reads one line (with its newline) into `buf`, keeping at most `keep`
/// bytes of it: the rest of an overlong line is read and thrown away, so
/// input without newlines (`ipseckey < /dev/zero`, a binary file) cannot
/// use up memory; the line is still reported as too long. Returns the bytes
/// consumed (0 at end of input).
pub fn read_line_bounded(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    keep: usize,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = keep.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// How deep `load` may nest (a file loading itself would never end).
pub const MAX_LOAD_DEPTH: usize = 8;

/// `-f FILE`, `-c FILE`, `load FILE` (`-` = standard input).
pub fn run_file(s: &mut Session<'_>, popts: ParseOpts, path: &str) -> Tally {
    if s.load_depth >= MAX_LOAD_DEPTH {
        let _ = writeln!(s.err, "ipseckey: load {path}: files nested more than {MAX_LOAD_DEPTH} deep (does a file load itself?)");
        return Tally {
            parsed: 0,
            valid: 0,
            quit: false,
            fatal: true,
        };
    }
    s.load_depth += 1;
    let t = run_file_inner(s, popts, path);
    s.load_depth -= 1;
    t
}

fn run_file_inner(s: &mut Session<'_>, popts: ParseOpts, path: &str) -> Tally {
    let saved = s.mode;
    if !matches!(s.mode, Mode::Check) {
        s.mode = Mode::File;
    }
    let t = if path == "-" {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        run_stream(s, popts, &mut lock)
    } else {
        match open_checked(s, path) {
            Some(f) => run_stream(s, popts, &mut std::io::BufReader::new(f)),
            None => Tally {
                parsed: 0,
                valid: 0,
                quit: false,
                fatal: true,
            },
        }
    };
    s.mode = saved;
    t
}

fn open_checked(s: &mut Session<'_>, path: &str) -> Option<std::fs::File> {
    let p = std::path::Path::new(path);
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(_) => {
            let _ = writeln!(s.err, "ipseckey: Invalid pathname: {path}");
            return None;
        }
    };
    if !meta.is_file() {
        let _ = writeln!(s.err, "ipseckey: {path} - Not a regular file");
        return None;
    }
    if let Some(w) = crate::files::insecure_warning(p) {
        let _ = writeln!(s.err, "{w}");
    }
    match std::fs::File::open(p) {
        Ok(f) => Some(f),
        Err(_) => {
            let _ = writeln!(s.err, "ipseckey: Unable to open configuration file: {path}");
            None
        }
    }
}

/// The end-of-file verdict for `-f`/`-c` (decisions.md #4): nothing when
/// every command was valid; otherwise one summary line, and failure.
pub fn file_verdict(s: &mut Session<'_>, t: &Tally) -> bool {
    if t.quit {
        return true;
    }
    if t.fatal {
        let _ = writeln!(s.err, "ipseckey: Fatal error - exiting.");
        return false;
    }
    if t.parsed == 0 || t.valid >= t.parsed {
        return true;
    }
    let _ = writeln!(
        s.err,
        "ipseckey: {} of {} commands parsed were valid.",
        t.valid.min(t.parsed),
        t.parsed
    );
    false
}
