//! The "bad input" corpus (`malformed/`): ipseckey command lines and files,
//! PF_KEY messages and packets that must be refused with an exact error,
//! after which nothing has changed and the service still answers.
//!
//! * `malformed/commands.txt`: run through the real `ipseckey` binary
//!   (embedded kernel for typed lines and `-f` files, a real `sadbd` for
//!   command-line operands).
//! * `malformed/pfkey.txt`: fed to `sadb::Sadb::handle_bytes` and to a
//!   running `sadbd` through `sim::client::Client`.
//! * `malformed/packets.txt`: fed to the inbound path of `esp_ah::Engine`;
//!   made by [`regenerate_packets_txt`] from packets the engine itself
//!   protected, corrupted in the ways its table lists.
//!
//! Every checker returns the list of what went wrong instead of panicking,
//! so each surface also has a test that feeds it one deliberately wrong
//! expectation and requires a failure.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use esp_ah::{DropReason, Engine, PacketBuf, SaCounters, SaOptions, Verdict};
use sadb::alg::{AuthAlg, EncrAlg};
use sadb::pfkey::{
    flags, satype, Address, Dialect, ExtKind, Extension, Key, Message, MsgType, SaExt, SockAddr,
};
use sadb::{Config, Errno, Jitter, KeyMaterial, Sadb};

// ===========================================================================
// Shared helpers

fn corpus_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("malformed")
        .join(name)
}

fn read_corpus(name: &str) -> String {
    std::fs::read_to_string(corpus_path(name))
        .unwrap_or_else(|e| panic!("reading malformed/{name}: {e}"))
}

/// `\xHH` is a byte, `\\` a backslash, `{N*TEXT}` is TEXT (itself with
/// escapes) N times; everything else stands for itself.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => match b.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                Some(b'x') => {
                    let h = s
                        .get(i + 2..i + 4)
                        .ok_or_else(|| format!("short \\x escape in {s:?}"))?;
                    out.push(
                        u8::from_str_radix(h, 16)
                            .map_err(|_| format!("bad \\x escape in {s:?}"))?,
                    );
                    i += 4;
                }
                _ => return Err(format!("unknown escape in {s:?}")),
            },
            b'{' => {
                let end = s[i..]
                    .find('}')
                    .ok_or_else(|| format!("unclosed {{ in {s:?}"))?
                    + i;
                let (n, text) = s[i + 1..end]
                    .split_once('*')
                    .ok_or_else(|| format!("{{N*TEXT}} expected in {s:?}"))?;
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("bad repeat count in {s:?}"))?;
                let t = unescape(text)?;
                for _ in 0..n {
                    out.extend_from_slice(&t);
                }
                i = end + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Bytes as a readable string: printable ASCII as is, the rest escaped.
fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\n' => s.push_str("\\n\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Splits a corpus file into records: `(line of the record's first field,
/// fields in order)`. A record starts at `case:`; `#` lines and blank lines
/// are ignored. One leading space after the colon is not part of the value.
fn records(text: &str) -> Vec<(usize, Vec<(String, String)>)> {
    let mut out: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("line {}: `field: value` expected: {line:?}", n + 1));
        let v = v.strip_prefix(' ').unwrap_or(v);
        if k == "case" {
            out.push((n + 1, Vec::new()));
        }
        let rec = out
            .last_mut()
            .unwrap_or_else(|| panic!("line {}: field before the first case:", n + 1));
        rec.1.push((k.to_string(), v.to_string()));
    }
    out
}

fn temp_dir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("malformed-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The workspace's binaries sit next to this test's directory (as in
/// scenarios.rs).
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "ipseckey", "-p", "sim", "--bins"])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building the binaries failed");
    }
    p
}

/// A `sadbd` of our own on a private socket; killed (by its pid) on drop.
struct Daemon {
    child: Child,
    sock: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let sock = dir.join("pfkey.sock");
        let child = Command::new(bin("sadbd"))
            .arg("--socket")
            .arg(&sock)
            .args(["--local", "10.0.0.1"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start sadbd");
        let d = Daemon { child, sock };
        let t = Instant::now();
        while !d.sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "sadbd did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===========================================================================
// Surface 1: ipseckey command lines and files

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stdin,
    File,
    Argv,
}

#[derive(Debug, Clone)]
struct CliCase {
    name: String,
    line: usize,
    mode: Mode,
    input: Vec<u8>,
    args: Vec<Vec<u8>>,
    stderr: Vec<u8>,
    exit: i32,
    keyleak: Vec<String>,
}

fn parse_commands(text: &str) -> Vec<CliCase> {
    let mut out = Vec::new();
    for (line, fields) in records(text) {
        let mut c = CliCase {
            name: String::new(),
            line,
            mode: Mode::Stdin,
            input: Vec::new(),
            args: Vec::new(),
            stderr: Vec::new(),
            exit: -1,
            keyleak: Vec::new(),
        };
        let mut eol = true;
        let esc = |v: &str| unescape(v).unwrap_or_else(|e| panic!("commands.txt:{line}: {e}"));
        for (k, v) in &fields {
            match k.as_str() {
                "case" => c.name = v.clone(),
                "mode" => {
                    c.mode = match v.as_str() {
                        "stdin" => Mode::Stdin,
                        "file" => Mode::File,
                        "argv" => Mode::Argv,
                        m => panic!("commands.txt:{line}: unknown mode {m:?}"),
                    }
                }
                "input" => {
                    c.input.extend_from_slice(v.as_bytes());
                    c.input.push(b'\n');
                }
                "inputx" => {
                    c.input.extend(esc(v));
                    c.input.push(b'\n');
                }
                "eol" => eol = v != "no",
                "args" => c
                    .args
                    .extend(v.split_whitespace().map(|a| a.as_bytes().to_vec())),
                "argsx" => c.args.extend(v.split_whitespace().map(esc)),
                "stderr" => {
                    c.stderr.extend_from_slice(v.as_bytes());
                    c.stderr.push(b'\n');
                }
                "stderrx" => {
                    c.stderr.extend(esc(v));
                    c.stderr.push(b'\n');
                }
                "exit" => {
                    c.exit = v
                        .parse()
                        .unwrap_or_else(|_| panic!("commands.txt:{line}: exit status"))
                }
                "keyleak" => c.keyleak.push(v.to_lowercase()),
                f => panic!("commands.txt:{line}: unknown field {f:?}"),
            }
        }
        if !eol {
            assert_eq!(
                c.mode,
                Mode::File,
                "commands.txt:{line}: `eol: no` is for files"
            );
            assert_eq!(c.input.pop(), Some(b'\n'));
        }
        assert!(c.exit >= 0, "commands.txt:{line}: no exit status");
        match c.mode {
            Mode::Argv => assert!(
                !c.args.is_empty() && c.input.is_empty(),
                "commands.txt:{line}: argv needs args only"
            ),
            _ => assert!(
                c.args.is_empty() && !c.input.is_empty(),
                "commands.txt:{line}: input lines needed"
            ),
        }
        out.push(c);
    }
    out
}

/// The SA every session starts with (line 1 of a typed session).
const BASE_ADD: &str = "add esp spi 0x1000 src 10.0.0.1 dst 10.0.0.2 encralg aes encrkey 5a6b7c8d9e0f11223344556677889900 authalg sha1 authkey 0f1e2d3c4b5a69788796a5b4c3d2e1f001234567\n";
/// A valid command, then the state: what a session ends with.
const TRAILER: &str = "get esp spi 0x1000 dst 10.0.0.2\ndump\n";

struct Output {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs ipseckey with `args`, feeding `stdin`, with at most 30 s to finish.
fn ipseckey(
    args: &[OsString],
    stdin: &[u8],
    sock: Option<&Path>,
    dir: &Path,
) -> Result<Output, String> {
    let mut cmd = Command::new(bin("ipseckey"));
    cmd.args(args)
        .env("TZ", "UTC")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match sock {
        Some(s) => cmd.env("IPSEC_SIM_SOCKET", s),
        None => cmd.env("IPSEC_SIM_SOCKET", dir.join("no-daemon-here.sock")),
    };
    let mut child = cmd.spawn().map_err(|e| format!("starting ipseckey: {e}"))?;
    let mut i = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let w = std::thread::spawn(move || {
        let _ = i.write_all(&data);
    });
    let mut o = child.stdout.take().expect("stdout");
    let mut e = child.stderr.take().expect("stderr");
    let ro = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = o.read_to_end(&mut v);
        v
    });
    let re = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = e.read_to_end(&mut v);
        v
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("ipseckey {args:?} did not finish within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = w.join();
    let stdout = ro.join().unwrap_or_default();
    let stderr = re.join().unwrap_or_default();
    // A signal (a panic aborting, a crash) has no exit code: -1 never matches.
    Ok(Output {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    })
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Output with what varies between runs removed: sequence numbers, process
/// ids and times.
fn normalize(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let mut s = String::new();
    for l in text.lines() {
        let l = if l.starts_with("Message length") {
            l.split(", seq=").next().unwrap_or(l)
        } else if let Some(k) = l.find(" time: ").or_else(|| l.find("Time now is")) {
            &l[..k]
        } else {
            l
        };
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// What a typed session printed from its final `get` on (the get and the
/// dump of the trailer), normalized.
fn state_part(stdout: &[u8]) -> String {
    let n = normalize(stdout);
    match n.rfind("Base message (version 2) type GET") {
        Some(k) => n[k..].to_string(),
        None => format!("(no GET output at all)\n{n}"),
    }
}

/// Every hex run of 8 digits or more of the keys in `text` (after
/// `authkey`/`encrkey`), lower-cased.
fn keys_in(text: &[u8]) -> Vec<String> {
    let t = String::from_utf8_lossy(text).to_lowercase();
    let words: Vec<&str> = t.split_whitespace().collect();
    let mut out = Vec::new();
    for w in words.windows(2) {
        if w[0] == "authkey" || w[0] == "encrkey" {
            let k = w[1].strip_prefix("0x").unwrap_or(w[1]);
            let k = k.split('/').next().unwrap_or(k);
            for run in k.split(|c: char| !c.is_ascii_hexdigit()) {
                if run.len() >= 8 {
                    out.push(run.to_string());
                }
            }
        }
    }
    out
}

/// No 8 consecutive hex digits of any key may show on standard error,
/// except the documented leaks, which must (still) be there.
fn check_no_key(c: &CliCase, what: &str, input: &[u8], stderr: &[u8], errs: &mut Vec<String>) {
    let mut e = String::from_utf8_lossy(stderr).to_lowercase();
    for leak in &c.keyleak {
        if !e.contains(leak.as_str()) {
            errs.push(format!(
                "{}: {what}: the documented key leak {leak:?} is gone: update the record",
                c.name
            ));
        }
        e = e.replace(leak.as_str(), "");
    }
    for k in keys_in(input) {
        for i in 0..=k.len() - 8 {
            if e.contains(&k[i..i + 8]) {
                errs.push(format!(
                    "{}: {what}: key material ({}...) on standard error:\n{}",
                    c.name,
                    &k[i..i + 8],
                    show(stderr)
                ));
                return;
            }
        }
    }
}

fn expect_stderr(c: &CliCase, what: &str, got: &Output, errs: &mut Vec<String>) {
    if got.code != c.exit {
        errs.push(format!(
            "{} (commands.txt:{}): {what}: exit status {}, expected {}",
            c.name, c.line, got.code, c.exit
        ));
    }
    if got.stderr != c.stderr {
        errs.push(format!(
            "{} (commands.txt:{}): {what}: standard error differs\n--- expected\n{}--- got\n{}",
            c.name,
            c.line,
            show(&c.stderr),
            show(&got.stderr)
        ));
    }
}

/// The typed-session fixture: the clean session's state output.
struct CliFixture {
    dir: PathBuf,
    baseline: String,
}

impl CliFixture {
    fn new(dir: &Path) -> CliFixture {
        let input = format!("{BASE_ADD}{TRAILER}");
        let o = ipseckey(&os(&["--embedded", "-n"]), input.as_bytes(), None, dir)
            .expect("baseline session");
        assert_eq!(
            (o.code, o.stderr.as_slice()),
            (0, &b""[..]),
            "the baseline session fails: {}",
            show(&o.stderr)
        );
        let baseline = state_part(&o.stdout);
        assert!(
            baseline.contains("spi=0x1000") && baseline.contains("Dump succeeded"),
            "baseline:\n{baseline}"
        );
        assert_eq!(
            baseline.matches("SA: SADB_ASSOC").count(),
            2,
            "one SA in the get, one in the dump:\n{baseline}"
        );
        CliFixture {
            dir: dir.to_path_buf(),
            baseline,
        }
    }

    /// Typed session: base add, `case_input`, get, dump. `keys_from` is
    /// what holds the case's keys (the file, for a `load`).
    fn session(
        &self,
        c: &CliCase,
        case_input: &[u8],
        keys_from: &[u8],
        exact: bool,
        errs: &mut Vec<String>,
    ) {
        let mut input = BASE_ADD.as_bytes().to_vec();
        input.extend_from_slice(case_input);
        input.extend_from_slice(TRAILER.as_bytes());
        let what = if exact {
            "typed session"
        } else {
            "typed session with load"
        };
        let o = match ipseckey(&os(&["--embedded", "-n"]), &input, None, &self.dir) {
            Ok(o) => o,
            Err(e) => return errs.push(format!("{}: {what}: {e}", c.name)),
        };
        if exact {
            expect_stderr(c, what, &o, errs);
        } else if o.code != 0 {
            errs.push(format!(
                "{}: {what}: exit status {}\n{}",
                c.name,
                o.code,
                show(&o.stderr)
            ));
        }
        let state = state_part(&o.stdout);
        if state != self.baseline {
            errs.push(format!(
                "{} (commands.txt:{}): {what}: the SA or the service changed\n--- expected\n{}--- got\n{}",
                c.name, c.line, self.baseline, state
            ));
        }
        let mut keys = input.clone();
        keys.push(b'\n');
        keys.extend_from_slice(keys_from);
        check_no_key(c, what, &keys, &o.stderr, errs);
    }

    fn file(&self, c: &CliCase, errs: &mut Vec<String>) {
        let path = self.dir.join(format!("{}.conf", c.name));
        std::fs::write(&path, &c.input).expect("write case file");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let p = path.to_string_lossy().into_owned();
        match ipseckey(&os(&["--embedded", "-n", "-f", &p]), b"", None, &self.dir) {
            Ok(o) => {
                expect_stderr(c, "-f FILE", &o, errs);
                check_no_key(c, "-f FILE", &c.input, &o.stderr, errs);
            }
            Err(e) => errs.push(format!("{}: -f FILE: {e}", c.name)),
        }
        self.session(c, format!("load {p}\n").as_bytes(), &c.input, false, errs);
    }
}

/// A sadbd holding the base SA, for command-line operands.
struct ArgvFixture {
    dir: PathBuf,
    daemon: Daemon,
    baseline: String,
}

impl ArgvFixture {
    fn new(dir: &Path) -> ArgvFixture {
        let daemon = Daemon::start(dir);
        let base = dir.join("base.conf");
        std::fs::write(&base, BASE_ADD).expect("write base.conf");
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let o = ipseckey(
            &os(&["-n", "-f", &base.to_string_lossy()]),
            b"",
            Some(&daemon.sock),
            dir,
        )
        .expect("add the base SA");
        assert_eq!(
            (o.code, o.stderr.as_slice()),
            (0, &b""[..]),
            "adding the base SA: {}",
            show(&o.stderr)
        );
        let mut f = ArgvFixture {
            dir: dir.to_path_buf(),
            daemon,
            baseline: String::new(),
        };
        f.baseline = f.dump().expect("baseline dump");
        assert_eq!(
            f.baseline.matches("SA: SADB_ASSOC").count(),
            1,
            "{}",
            f.baseline
        );
        f
    }

    fn dump(&self) -> Result<String, String> {
        let o = ipseckey(
            &os(&["-n", "dump"]),
            b"",
            Some(&self.daemon.sock),
            &self.dir,
        )?;
        if o.code != 0 {
            return Err(format!("dump exited {}: {}", o.code, show(&o.stderr)));
        }
        Ok(normalize(&o.stdout))
    }

    fn run(&self, c: &CliCase, errs: &mut Vec<String>) {
        let mut args = vec![OsString::from("-n")];
        args.extend(c.args.iter().map(|a| OsString::from_vec(a.clone())));
        match ipseckey(&args, b"", Some(&self.daemon.sock), &self.dir) {
            Ok(o) => {
                expect_stderr(c, "command line", &o, errs);
                check_no_key(c, "command line", &c.args.join(&b' '), &o.stderr, errs);
            }
            Err(e) => errs.push(format!("{}: {e}", c.name)),
        }
        match self.dump() {
            Ok(d) if d == self.baseline => {}
            Ok(d) => errs.push(format!(
                "{}: sadbd's SADB changed\n--- expected\n{}--- got\n{d}",
                c.name, self.baseline
            )),
            Err(e) => errs.push(format!("{}: sadbd no longer answers: {e}", c.name)),
        }
    }
}

fn check_cli(cases: &[CliCase]) -> Vec<String> {
    let dir = TempDir(temp_dir("cli"));
    let typed = CliFixture::new(&dir.0);
    let argv = cases
        .iter()
        .any(|c| c.mode == Mode::Argv)
        .then(|| ArgvFixture::new(&dir.0));
    let mut errs = Vec::new();
    for c in cases {
        match c.mode {
            Mode::Stdin => typed.session(c, &c.input, b"", true, &mut errs),
            Mode::File => typed.file(c, &mut errs),
            Mode::Argv => argv.as_ref().expect("daemon").run(c, &mut errs),
        }
    }
    errs
}

#[test]
fn ipseckey_refuses_every_bad_command_exactly() {
    let cases = parse_commands(&read_corpus("commands.txt"));
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
    }
    assert!(cases.len() >= 40, "only {} command cases", cases.len());
    let errs = check_cli(&cases);
    assert!(
        errs.is_empty(),
        "{} failure(s):\n\n{}",
        errs.len(),
        errs.join("\n\n")
    );
    eprintln!("{} ipseckey cases", cases.len());
}

#[test]
fn ipseckey_checker_catches_a_wrong_expectation() {
    let cases = parse_commands(&read_corpus("commands.txt"));
    let pick = |mode: Mode| {
        cases
            .iter()
            .find(|c| c.mode == mode)
            .cloned()
            .expect("a case of each mode")
    };
    let mut wrong_err = pick(Mode::Stdin);
    wrong_err.stderr = b"Something else entirely.\n".to_vec();
    let mut wrong_exit = pick(Mode::File);
    wrong_exit.exit += 3;
    let mut wrong_argv = pick(Mode::Argv);
    wrong_argv.stderr.clear();
    // A valid add in a bad case's place: the state check must notice.
    let mut state_changes = pick(Mode::Stdin);
    state_changes.input =
        b"add esp spi 0x2000 dst 10.0.0.3 encralg aes encrkey 7e57ab1e5eed0123456789abcdef0123\n"
            .to_vec();
    state_changes.stderr.clear();
    // A key on standard error must be noticed.
    let mut leak = pick(Mode::Stdin);
    leak.input = b"get esp spi 0x1000 dst 10.0.0.2 authkey 0123456789abcdef0123\n".to_vec();
    leak.stderr = b"Don't use extension authkey for get.\nUnknown extension field \"0123456789abcdef0123\".\n".to_vec();
    leak.keyleak.clear();
    for c in [wrong_err, wrong_exit, wrong_argv, state_changes, leak] {
        let errs = check_cli(std::slice::from_ref(&c));
        assert!(
            !errs.is_empty(),
            "a wrong expectation for {} passed",
            c.name
        );
    }
}

// ===========================================================================
// Surface 2: PF_KEY messages

#[derive(Debug, Clone)]
struct PfCase {
    name: String,
    line: usize,
    bytes: Vec<u8>,
    errno: Errno,
    diag: u16,
    daemon: bool,
}

const ERRNOS: &[Errno] = &[
    Errno::Eperm,
    Errno::Enoent,
    Errno::Esrch,
    Errno::Eintr,
    Errno::Enomem,
    Errno::Eacces,
    Errno::Ebusy,
    Errno::Eexist,
    Errno::Einval,
    Errno::Enosys,
    Errno::Eloop,
    Errno::Emsgsize,
    Errno::Eprototype,
    Errno::Enoprotoopt,
    Errno::Eprotonosupport,
    Errno::Eopnotsupp,
    Errno::Eafnosupport,
    Errno::Enobufs,
];

fn parse_pfkey(text: &str) -> Vec<PfCase> {
    let mut out = Vec::new();
    for (line, fields) in records(text) {
        let mut c = PfCase {
            name: String::new(),
            line,
            bytes: Vec::new(),
            errno: Errno::Eperm,
            diag: u16::MAX,
            daemon: true,
        };
        let mut errno = None;
        for (k, v) in &fields {
            match k.as_str() {
                "case" => c.name = v.clone(),
                "hex" => {
                    let h: String = v
                        .split('#')
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect();
                    c.bytes.extend(
                        hex::decode(&h).unwrap_or_else(|e| panic!("pfkey.txt:{line}: hex: {e}")),
                    );
                }
                "errno" => {
                    errno = Some(
                        *ERRNOS
                            .iter()
                            .find(|e| e.name() == v)
                            .unwrap_or_else(|| panic!("pfkey.txt:{line}: errno {v:?}")),
                    )
                }
                "diag" => {
                    c.diag = v
                        .parse()
                        .unwrap_or_else(|_| panic!("pfkey.txt:{line}: diag"))
                }
                "daemon" => c.daemon = v != "no",
                f => panic!("pfkey.txt:{line}: unknown field {f:?}"),
            }
        }
        c.errno = errno.unwrap_or_else(|| panic!("pfkey.txt:{line}: no errno"));
        assert_ne!(c.diag, u16::MAX, "pfkey.txt:{line}: no diag");
        out.push(c);
    }
    out
}

const PF_NOW: u64 = 1_700_000_000;

fn sockaddr(ip: &str) -> Address {
    Address::new(ip.parse().expect("address"), 0, 0)
}

/// The SAs the database holds during the PF_KEY cases.
fn pf_base_sas() -> Vec<Vec<u8>> {
    let esp = Message::new(MsgType::Add, satype::ESP, 1, 7)
        .with(SaExt {
            spi: 0x1000,
            state: 1,
            auth: 3,
            encrypt: 12,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            sockaddr("10.0.0.1"),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            sockaddr("10.0.0.2"),
        ))
        .with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: 160,
                reserved: 0,
                material: KeyMaterial::new((0x60..0x74).collect()),
            },
        ))
        .with(Extension::Key(
            ExtKind::KeyEncrypt,
            Key {
                bits: 128,
                reserved: 0,
                material: KeyMaterial::new((0x80..0x90).collect()),
            },
        ));
    let ah = Message::new(MsgType::Add, satype::AH, 2, 7)
        .with(SaExt {
            spi: 0x1001,
            state: 1,
            auth: 2,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressSrc,
            sockaddr("10.0.0.1"),
        ))
        .with(Extension::Address(
            ExtKind::AddressDst,
            sockaddr("10.0.0.2"),
        ))
        .with(Extension::Key(
            ExtKind::KeyAuth,
            Key {
                bits: 128,
                reserved: 0,
                material: KeyMaterial::new((0xa0..0xb0).collect()),
            },
        ));
    [esp, ah]
        .iter()
        .map(|m| m.emit(Dialect::Illumos).expect("emit"))
        .collect()
}

fn pf_dump_request() -> Vec<u8> {
    Message::new(MsgType::Dump, satype::UNSPEC, 9999, 7)
        .emit(Dialect::Illumos)
        .expect("emit")
}

fn pf_get_request() -> Vec<u8> {
    Message::new(MsgType::Get, satype::ESP, 9998, 7)
        .with(SaExt {
            spi: 0x1000,
            ..SaExt::default()
        })
        .with(Extension::Address(
            ExtKind::AddressDst,
            sockaddr("10.0.0.2"),
        ))
        .emit(Dialect::Illumos)
        .expect("emit")
}

/// The error reply a case must get: errno and diagnostic as recorded; type
/// (0 when illumos has no such type), SA type, seq and pid echoed; nothing
/// else (ipseckey-behaviour.md 6.5).
fn check_pf_reply(c: &PfCase, where_: &str, reply: &Message) -> Result<(), String> {
    let b = &c.bytes;
    let (ty, st, seq, pid) = if b.len() < 16 {
        (MsgType::Reserved, 0, 0, 0)
    } else {
        (
            MsgType::from_number(b[1], Dialect::Illumos).unwrap_or(MsgType::Reserved),
            b[3],
            u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        )
    };
    let want_errno = c.errno.number(Dialect::Illumos);
    let got = (reply.errno, reply.reserved);
    let mut e = Vec::new();
    if got != (want_errno, c.diag) {
        let name = Errno::from_number(reply.errno, Dialect::Illumos)
            .map(|e| e.name())
            .unwrap_or("?");
        e.push(format!(
            "errno {} ({name}) diag {}, expected {} diag {}",
            reply.errno,
            reply.reserved,
            c.errno.name(),
            c.diag
        ));
    }
    if (reply.msg_type, reply.satype, reply.seq, reply.pid) != (ty, st, seq, pid) {
        e.push(format!(
            "reply header {:?}/{}/seq {}/pid {}, expected {ty:?}/{st}/seq {seq}/pid {pid}",
            reply.msg_type, reply.satype, reply.seq, reply.pid
        ));
    }
    if !reply.exts.is_empty() {
        e.push(format!(
            "the error reply carries extensions: {:?}",
            reply.exts.iter().map(|x| x.kind()).collect::<Vec<_>>()
        ));
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (pfkey.txt:{}) via {where_}: {}",
            c.name,
            c.line,
            e.join("; ")
        ))
    }
}

fn sadb_dump(db: &mut Sadb) -> Vec<Vec<u8>> {
    let r = db.handle_bytes(&pf_dump_request(), PF_NOW);
    r.deliveries
        .iter()
        .map(|d| d.msg.emit(Dialect::Illumos).expect("emit"))
        .collect()
}

fn check_pf_sadb(cases: &[PfCase]) -> Vec<String> {
    let cfg = Config {
        jitter: Jitter::Off,
        local_addrs: ["10.0.0.1".parse().expect("ip")].into_iter().collect(),
        ..Config::default()
    };
    let mut db = Sadb::new(cfg);
    for m in pf_base_sas() {
        let r = db.handle_bytes(&m, PF_NOW);
        assert_eq!(
            r.reply().map(|m| (m.errno, m.reserved)),
            Some((0, 0)),
            "base SA refused"
        );
    }
    let before = sadb_dump(&mut db);
    assert_eq!(before.len(), 3, "two SAs and the end of the dump");
    let mut errs = Vec::new();
    for c in cases {
        // One database for every case: each must leave it as it was.
        let r = db.handle_bytes(&c.bytes, PF_NOW);
        match r.deliveries.as_slice() {
            [d] => {
                if let Err(e) = check_pf_reply(c, "Sadb::handle_bytes", &d.msg) {
                    errs.push(e);
                }
                if let Err(e) = d.msg.emit(Dialect::Illumos) {
                    errs.push(format!("{}: the reply cannot be encoded: {e}", c.name));
                }
            }
            other => errs.push(format!(
                "{} (pfkey.txt:{}): {} replies, expected one",
                c.name,
                c.line,
                other.len()
            )),
        }
        if r.effect.is_some() {
            errs.push(format!(
                "{}: the request changed the socket ({:?})",
                c.name, r.effect
            ));
        }
        if sadb_dump(&mut db) != before {
            errs.push(format!(
                "{} (pfkey.txt:{}): the SADB changed",
                c.name, c.line
            ));
        }
        let g = db.handle_bytes(&pf_get_request(), PF_NOW);
        if g.reply().map(|m| m.errno) != Some(0) {
            errs.push(format!("{}: a valid GET fails afterwards", c.name));
        }
    }
    errs
}

fn recv_msg(cl: &sim::client::Client) -> Result<Message, String> {
    let b = cl
        .recv(Some(Duration::from_secs(5)))
        .map_err(|e| format!("recv: {e}"))?
        .ok_or("no reply within 5 s")?;
    Message::parse(&b, Dialect::Illumos)
        .map_err(|e| format!("an undecodable reply ({e}): {}", hex::encode(&b)))
}

fn daemon_dump(cl: &sim::client::Client) -> Result<Vec<Vec<u8>>, String> {
    cl.send(&pf_dump_request())
        .map_err(|e| format!("send DUMP: {e}"))?;
    let mut out = Vec::new();
    loop {
        let b = cl
            .recv(Some(Duration::from_secs(5)))
            .map_err(|e| format!("recv: {e}"))?
            .ok_or("DUMP: no answer within 5 s")?;
        let m =
            Message::parse(&b, Dialect::Illumos).map_err(|e| format!("DUMP: undecodable ({e})"))?;
        out.push(b);
        if m.msg_type == MsgType::Dump && m.seq == 0 {
            return Ok(out);
        }
    }
}

fn check_pf_daemon(cases: &[PfCase]) -> Vec<String> {
    let dir = TempDir(temp_dir("pfkey"));
    let d = Daemon::start(&dir.0);
    let cl = sim::client::Client::connect(&d.sock).expect("connect to sadbd");
    for m in pf_base_sas() {
        cl.send(&m).expect("send ADD");
        let r = recv_msg(&cl).expect("ADD reply");
        assert_eq!((r.errno, r.reserved), (0, 0), "base SA refused by sadbd");
    }
    let before = daemon_dump(&cl).expect("first DUMP");
    assert_eq!(before.len(), 3, "two SAs and the end of the dump");
    let mut errs = Vec::new();
    for c in cases.iter().filter(|c| c.daemon) {
        if let Err(e) = cl.send(&c.bytes) {
            errs.push(format!("{}: send: {e}", c.name));
            break;
        }
        match recv_msg(&cl) {
            Ok(r) => {
                if let Err(e) = check_pf_reply(c, "sadbd", &r) {
                    errs.push(e);
                }
            }
            Err(e) => {
                errs.push(format!("{} (pfkey.txt:{}): sadbd: {e}", c.name, c.line));
                break;
            }
        }
        match daemon_dump(&cl) {
            Ok(after) if after == before => {}
            Ok(_) => errs.push(format!(
                "{} (pfkey.txt:{}): sadbd's SADB changed (or a stray message arrived)",
                c.name, c.line
            )),
            Err(e) => {
                errs.push(format!("{}: sadbd no longer answers a DUMP: {e}", c.name));
                break;
            }
        }
        let get = cl
            .send(&pf_get_request())
            .map_err(|e| e.to_string())
            .and_then(|_| recv_msg(&cl));
        match get {
            Ok(m) if m.errno == 0 && m.seq == 9998 => {}
            Ok(m) => errs.push(format!(
                "{}: a valid GET afterwards got errno {} seq {}",
                c.name, m.errno, m.seq
            )),
            Err(e) => {
                errs.push(format!("{}: sadbd no longer answers a GET: {e}", c.name));
                break;
            }
        }
    }
    errs
}

#[test]
#[cfg_attr(
    target_endian = "big",
    ignore = "pfkey.txt is in little-endian host order"
)]
fn pfkey_messages_are_refused_by_the_sadb() {
    let cases = parse_pfkey(&read_corpus("pfkey.txt"));
    assert!(cases.len() >= 40, "only {} PF_KEY cases", cases.len());
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
        assert!(c.errno != Errno::Eperm, "{}", c.name);
    }
    let errs = check_pf_sadb(&cases);
    assert!(
        errs.is_empty(),
        "{} failure(s):\n{}",
        errs.len(),
        errs.join("\n")
    );
    eprintln!("{} PF_KEY cases", cases.len());
}

#[test]
#[cfg_attr(
    target_endian = "big",
    ignore = "pfkey.txt is in little-endian host order"
)]
fn pfkey_messages_are_refused_by_sadbd() {
    let cases = parse_pfkey(&read_corpus("pfkey.txt"));
    let n = cases.iter().filter(|c| c.daemon).count();
    assert!(n >= 40, "only {n} cases go to sadbd");
    let errs = check_pf_daemon(&cases);
    assert!(
        errs.is_empty(),
        "{} failure(s):\n{}",
        errs.len(),
        errs.join("\n")
    );
}

#[test]
#[cfg_attr(
    target_endian = "big",
    ignore = "pfkey.txt is in little-endian host order"
)]
fn pfkey_checker_catches_a_wrong_expectation() {
    let cases = parse_pfkey(&read_corpus("pfkey.txt"));
    let mut wrong_diag = cases
        .iter()
        .find(|c| c.diag != 0)
        .cloned()
        .expect("a case with a diagnostic");
    wrong_diag.diag += 1;
    let mut wrong_errno = cases
        .iter()
        .find(|c| c.errno == Errno::Emsgsize && c.daemon)
        .cloned()
        .expect("an EMSGSIZE case");
    wrong_errno.errno = Errno::Einval;
    // A valid message that changes the SADB must be noticed too.
    let mut valid = wrong_diag.clone();
    valid.bytes = Message::new(MsgType::Flush, satype::AH, 77, 4242)
        .emit(Dialect::Illumos)
        .expect("emit");
    valid.errno = Errno::Einval;
    for c in [&wrong_diag, &wrong_errno, &valid] {
        assert!(
            !check_pf_sadb(std::slice::from_ref(c)).is_empty(),
            "a wrong expectation for {} passed",
            c.name
        );
    }
    assert!(
        !check_pf_daemon(std::slice::from_ref(&wrong_errno)).is_empty(),
        "sadbd: a wrong expectation passed"
    );
}

// ===========================================================================
// Surface 3: packets

const PKT_NOW: u64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// An address and prefix length.
type Prefix = (&'static str, u8);

/// An SA of the packet cases, on both hosts.
#[derive(Debug, Clone)]
struct PSa {
    spi: u32,
    satype: u8,
    src: &'static str,
    dst: &'static str,
    auth: AuthAlg,
    encr: EncrAlg,
    auth_key: Vec<u8>,
    encr_key: Vec<u8>,
    tunnel: Option<(Prefix, Prefix)>,
    natt: bool,
}

fn pkey(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) | 0x21)
        .collect()
}

fn psa(spi: u32, src: &'static str, dst: &'static str, encr: EncrAlg, auth: AuthAlg) -> PSa {
    let ebytes = if encr == EncrAlg::Null {
        0
    } else {
        (encr.key_bits().min as usize + encr.salt_bits() as usize) / 8
    };
    PSa {
        spi,
        satype: satype::ESP,
        src,
        dst,
        auth,
        encr,
        auth_key: pkey(auth.key_bits().min as usize / 8, spi as u8),
        encr_key: pkey(ebytes, spi as u8 ^ 0x5a),
        tunnel: None,
        natt: false,
    }
}

/// The SAs (see the header of packets.txt).
fn packet_sas() -> Vec<PSa> {
    let cbc = psa(
        0x101,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesCbc,
        AuthAlg::HmacSha256,
    );
    let null = psa(
        0x102,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::Null,
        AuthAlg::HmacSha256,
    );
    let mut tunnel = psa(
        0x103,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::Null,
        AuthAlg::HmacSha256,
    );
    tunnel.tunnel = Some((("172.16.1.0", 24), ("172.16.2.0", 24)));
    let v6 = psa(
        0x104,
        "2001:db8::1",
        "2001:db8::2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    let mut ah = psa(
        0x105,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::None,
        AuthAlg::HmacSha1,
    );
    ah.satype = satype::AH;
    ah.encr_key.clear();
    let mut natt = psa(
        0x106,
        "10.0.0.1",
        "10.0.0.2",
        EncrAlg::AesGcm16,
        AuthAlg::None,
    );
    natt.natt = true;
    let mut ah6 = psa(
        0x107,
        "2001:db8::1",
        "2001:db8::2",
        EncrAlg::None,
        AuthAlg::HmacSha256,
    );
    ah6.satype = satype::AH;
    ah6.encr_key.clear();
    vec![cbc, null, tunnel, v6, ah, natt, ah6]
}

impl PSa {
    fn add_msg(&self) -> Vec<u8> {
        let mut fl = 0;
        let proto = match self.tunnel {
            Some(_) => {
                fl |= flags::X_TUNNEL;
                4
            }
            None => 0,
        };
        if self.natt {
            fl |= flags::X_NATT_LOC | flags::X_NATT_REM;
        }
        let esp = self.satype == satype::ESP;
        let mut m = Message::new(MsgType::Add, self.satype, 1, 1)
            .with(SaExt {
                spi: self.spi,
                replay: 32,
                state: 1,
                auth: self.auth.id(Dialect::Illumos).unwrap_or(0),
                encrypt: if esp {
                    self.encr.id(Dialect::Illumos).unwrap_or(0)
                } else {
                    0
                },
                flags: fl,
            })
            .with(Extension::Address(
                ExtKind::AddressSrc,
                Address::new(ip(self.src), 0, proto),
            ))
            .with(Extension::Address(
                ExtKind::AddressDst,
                Address::new(ip(self.dst), 0, proto),
            ));
        if let Some(((s, sp), (d, dp))) = self.tunnel {
            m = m
                .with(Extension::Address(
                    ExtKind::AddressInnerSrc,
                    Address {
                        proto: 0,
                        prefix_len: sp,
                        addr: SockAddr::new(ip(s), 0),
                    },
                ))
                .with(Extension::Address(
                    ExtKind::AddressInnerDst,
                    Address {
                        proto: 0,
                        prefix_len: dp,
                        addr: SockAddr::new(ip(d), 0),
                    },
                ));
        }
        if self.natt {
            m = m
                .with(Extension::Address(
                    ExtKind::AddressNattLoc,
                    Address::new(ip("0.0.0.0"), 4500, 0),
                ))
                .with(Extension::Address(
                    ExtKind::AddressNattRem,
                    Address::new(ip("192.0.2.99"), 4500, 0),
                ));
        }
        if self.auth != AuthAlg::None {
            let k = Key {
                bits: (self.auth_key.len() * 8) as u16,
                reserved: 0,
                material: KeyMaterial::new(self.auth_key.clone()),
            };
            m = m.with(Extension::Key(ExtKind::KeyAuth, k));
        }
        if !self.encr_key.is_empty() {
            let k = Key {
                bits: (self.encr_key.len() * 8) as u16,
                reserved: 0,
                material: KeyMaterial::new(self.encr_key.clone()),
            };
            m = m.with(Extension::Key(ExtKind::KeyEncrypt, k));
        }
        m.emit(Dialect::Illumos).expect("emit ADD")
    }

    /// A clear UDP packet this SA protects (inner addresses in tunnel mode).
    fn clear(&self, payload: &[u8]) -> Vec<u8> {
        match self.tunnel {
            Some(_) => udp_packet("172.16.1.5", "172.16.2.9", 5000, 7, payload),
            None => udp_packet(self.src, self.dst, 5000, 7, payload),
        }
    }
}

/// A UDP datagram in IPv4 or IPv6 with correct lengths and checksums.
fn udp_packet(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (s, d) = (ip(src), ip(dst));
    let ulen = 8 + payload.len();
    let mut p = match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, 17, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => panic!("mixed families"),
    };
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(ulen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let v6 = s.is_ipv6();
    esp_ah::packet::fix_lengths(&mut p, v6);
    let l = esp_ah::packet::layout(&p).expect("layout");
    esp_ah::packet::fix_l4_checksum(&mut p, &l);
    p
}

/// One simulated host: SADB and engine, SAs added through PF_KEY bytes.
struct PHost {
    db: Sadb,
    engine: Engine,
    ids: HashMap<u32, sadb::SaId>,
}

impl PHost {
    fn new(locals: &[&str], sas: &[PSa]) -> PHost {
        let mut cfg = Config {
            jitter: Jitter::Off,
            ..Config::default()
        };
        cfg.local_addrs.extend(locals.iter().map(|a| ip(a)));
        let mut h = PHost {
            db: Sadb::new(cfg),
            engine: Engine::with_seed(7),
            ids: HashMap::new(),
        };
        for s in sas {
            let r = h.db.handle_bytes(&s.add_msg(), PKT_NOW);
            let reply = r.reply().expect("reply");
            assert_eq!(
                (reply.errno, reply.reserved),
                (0, 0),
                "ADD of SA {:#x} refused",
                s.spi
            );
            let id = h.db.lookup(s.satype, s.spi, ip(s.dst)).expect("SA added");
            h.engine
                .install(&h.db, id, SaOptions::default())
                .expect("install transform");
            h.ids.insert(s.spi, id);
        }
        h
    }

    fn sender(sas: &[PSa]) -> PHost {
        PHost::new(&["10.0.0.1", "2001:db8::1"], sas)
    }

    fn receiver(sas: &[PSa]) -> PHost {
        PHost::new(&["10.0.0.2", "2001:db8::2"], sas)
    }

    fn send(&mut self, spi: u32, clear: &[u8]) -> Vec<u8> {
        let id = self.ids[&spi];
        let mut buf = vec![0u8; clear.len() + 512];
        let mut p = PacketBuf::load(&mut buf, clear).expect("room");
        let mut ex = Vec::new();
        let v = self
            .engine
            .outbound(&mut self.db, id, &mut p, PKT_NOW, &mut ex);
        assert_eq!(v, Verdict::Send, "outbound on SA {spi:#x}");
        p.data().to_vec()
    }

    fn receive(&mut self, packet: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = vec![0u8; packet.len() + 512];
        let mut p = PacketBuf::load(&mut buf, packet).expect("room");
        let mut ex = Vec::new();
        let v = self.engine.inbound(&mut self.db, &mut p, PKT_NOW, &mut ex);
        (v, p.data().to_vec())
    }

    /// Every counter the engine keeps, by SPI.
    fn counters(&self) -> Snapshot {
        let mut per_sa: Vec<(u32, SaCounters)> = self
            .ids
            .iter()
            .map(|(&spi, &id)| {
                (
                    spi,
                    self.engine
                        .transform(id)
                        .map(|t| t.counters.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        per_sa.sort_by_key(|x| x.0);
        (
            self.engine.global.drops.to_vec(),
            self.engine.global.not_ipsec,
            per_sa,
        )
    }
}

/// Which counter one packet must move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    /// The SA's own: a drop by reason, or a delivery.
    Sa,
    /// The engine's global drops (no SA known yet).
    Global,
    /// The engine's count of packets handed to the host.
    NotIpsec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Deliver,
    NotIpsec,
    Drop(DropReason),
}

#[derive(Debug, Clone)]
struct PktCase {
    name: String,
    line: usize,
    spi: u32,
    pre: Vec<String>,
    bytes: Vec<u8>,
    expect: Expect,
    counter: Counter,
}

fn parse_expect(v: &str) -> Option<Expect> {
    match v {
        "Deliver" => Some(Expect::Deliver),
        "NotIpsec" => Some(Expect::NotIpsec),
        _ => DropReason::ALL
            .iter()
            .find(|r| format!("{r:?}") == v)
            .map(|r| Expect::Drop(*r)),
    }
}

fn parse_packets(text: &str) -> Vec<PktCase> {
    let mut out = Vec::new();
    for (line, fields) in records(text) {
        let mut c = PktCase {
            name: String::new(),
            line,
            spi: 0,
            pre: Vec::new(),
            bytes: Vec::new(),
            expect: Expect::Deliver,
            counter: Counter::Sa,
        };
        let mut expect = None;
        let mut counter = None;
        for (k, v) in &fields {
            match k.as_str() {
                "case" => c.name = v.clone(),
                "sa" => {
                    c.spi = u32::from_str_radix(v.trim_start_matches("0x"), 16)
                        .unwrap_or_else(|_| panic!("packets.txt:{line}: sa"))
                }
                "pre" => c.pre.push(v.clone()),
                "hex" => {
                    let h: String = v
                        .split('#')
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect();
                    c.bytes.extend(
                        hex::decode(&h).unwrap_or_else(|e| panic!("packets.txt:{line}: hex: {e}")),
                    );
                }
                "expect" => {
                    expect = Some(
                        parse_expect(v)
                            .unwrap_or_else(|| panic!("packets.txt:{line}: expect {v:?}")),
                    )
                }
                "counter" => {
                    counter = Some(match v.as_str() {
                        "sa" => Counter::Sa,
                        "global" => Counter::Global,
                        "not_ipsec" => Counter::NotIpsec,
                        x => panic!("packets.txt:{line}: counter {x:?}"),
                    })
                }
                f => panic!("packets.txt:{line}: unknown field {f:?}"),
            }
        }
        c.expect = expect.unwrap_or_else(|| panic!("packets.txt:{line}: no expect"));
        c.counter = counter.unwrap_or_else(|| panic!("packets.txt:{line}: no counter"));
        assert!(c.spi != 0, "packets.txt:{line}: no sa");
        out.push(c);
    }
    out
}

type Snapshot = (Vec<u64>, u64, Vec<(u32, SaCounters)>);

/// What changed between two counter snapshots, e.g. `global NoSa +1`.
fn counter_moves(a: &Snapshot, b: &Snapshot) -> String {
    let mut m = Vec::new();
    for r in DropReason::ALL {
        let d = b.0[r as usize] as i128 - a.0[r as usize] as i128;
        if d != 0 {
            m.push(format!("global {r:?} {d:+}"));
        }
    }
    if b.1 != a.1 {
        m.push(format!("not_ipsec {:+}", b.1 as i128 - a.1 as i128));
    }
    for ((spi, x), (_, y)) in a.2.iter().zip(&b.2) {
        for r in DropReason::ALL {
            let d = y.dropped(r) as i128 - x.dropped(r) as i128;
            if d != 0 {
                m.push(format!("SA {spi:#x} {r:?} {d:+}"));
            }
        }
        for (what, p, q) in [
            ("packets_in", x.packets_in, y.packets_in),
            ("bytes_in", x.bytes_in, y.bytes_in),
        ] {
            if p != q {
                m.push(format!("SA {spi:#x} {what} {:+}", q as i128 - p as i128));
            }
        }
    }
    if m.is_empty() {
        "nothing".into()
    } else {
        m.join(", ")
    }
}

fn check_packets(cases: &[PktCase]) -> Vec<String> {
    let sas = packet_sas();
    let by_name: HashMap<&str, &PktCase> = cases.iter().map(|c| (c.name.as_str(), c)).collect();
    // The sender makes the fresh valid packets sent after each case, with
    // sequence numbers far above the corpus's.
    let mut a = PHost::sender(&sas);
    for &id in a.ids.values() {
        if let Some(sa) = a.db.sa_mut(id) {
            sa.seq_out = 100_000;
        }
    }
    let mut errs = Vec::new();
    for c in cases {
        let at = format!("{} (packets.txt:{})", c.name, c.line);
        let Some(spec) = sas.iter().find(|s| s.spi == c.spi) else {
            errs.push(format!("{at}: no SA {:#x}", c.spi));
            continue;
        };
        // A fresh receiver per case, so each case's counters stand alone.
        let mut b = PHost::receiver(&sas);
        for p in &c.pre {
            match by_name.get(p.as_str()) {
                Some(pc) => {
                    let (v, _) = b.receive(&pc.bytes);
                    if v != Verdict::Deliver {
                        errs.push(format!(
                            "{at}: the earlier packet {p} was not delivered ({v:?})"
                        ));
                    }
                }
                None => errs.push(format!("{at}: no case named {p}")),
            }
        }
        let before = b.counters();
        let (verdict, out) = b.receive(&c.bytes);
        let got = match verdict {
            Verdict::Deliver => Expect::Deliver,
            Verdict::NotIpsec => Expect::NotIpsec,
            Verdict::Drop(r) => Expect::Drop(r),
            Verdict::Send => {
                errs.push(format!("{at}: inbound said Send"));
                continue;
            }
        };
        if got != c.expect {
            errs.push(format!("{at}: {got:?}, expected {:?}", c.expect));
        }
        // Exactly one counter moves, the expected one.
        let mut want = before.clone();
        let idx = want.2.iter().position(|x| x.0 == c.spi);
        match (c.counter, c.expect, idx) {
            (Counter::Global, Expect::Drop(r), _) => want.0[r as usize] += 1,
            (Counter::NotIpsec, Expect::NotIpsec, _) => want.1 += 1,
            (Counter::Sa, Expect::Drop(r), Some(i)) => want.2[i].1.drops[r as usize] += 1,
            (Counter::Sa, Expect::Deliver, Some(i)) => {
                want.2[i].1.packets_in += 1;
                want.2[i].1.bytes_in += out.len() as u64;
            }
            (k, e, _) => errs.push(format!("{at}: counter {k:?} does not go with {e:?}")),
        }
        let after = b.counters();
        if after != want {
            errs.push(format!(
                "{at}: counters moved wrongly: expected {}, got {}",
                counter_moves(&before, &want),
                counter_moves(&before, &after)
            ));
        }
        // The SA still works: a fresh valid packet is delivered, intact.
        let clear = spec.clear(b"still here");
        let probe = a.send(c.spi, &clear);
        match b.receive(&probe) {
            (Verdict::Deliver, got) if got == clear => {}
            (v, got) => errs.push(format!(
                "{at}: a valid packet afterwards: {v:?} ({})",
                hex::encode(got)
            )),
        }
    }
    errs
}

#[test]
fn packets_are_dropped_with_the_exact_reason_and_counter() {
    let cases = parse_packets(&read_corpus("packets.txt"));
    let bad = cases.iter().filter(|c| c.expect != Expect::Deliver).count();
    assert!(bad >= 20, "only {bad} bad packets");
    let mut names = std::collections::HashSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.clone()),
            "duplicate case name {}",
            c.name
        );
    }
    let errs = check_packets(&cases);
    assert!(
        errs.is_empty(),
        "{} failure(s):\n{}",
        errs.len(),
        errs.join("\n")
    );
    eprintln!("{} packet cases ({bad} bad)", cases.len());
}

#[test]
fn packet_checker_catches_a_wrong_expectation() {
    let cases = parse_packets(&read_corpus("packets.txt"));
    let mut wrong_reason = cases
        .iter()
        .find(|c| c.expect == Expect::Drop(DropReason::BadIcv))
        .cloned()
        .expect("a BadIcv case");
    wrong_reason.expect = Expect::Drop(DropReason::Malformed);
    let mut wrong_counter = cases
        .iter()
        .find(|c| c.counter == Counter::Global)
        .cloned()
        .expect("a global case");
    if let Expect::Drop(_) = wrong_counter.expect {
        wrong_counter.counter = Counter::Sa;
    }
    for c in [wrong_reason, wrong_counter] {
        assert!(
            !check_packets(std::slice::from_ref(&c)).is_empty(),
            "a wrong expectation for {} passed",
            c.name
        );
    }
}

// ---------------------------------------------------------------------------
// The generator of packets.txt: valid packets from the engine, corrupted.

fn set_ipv4_len(p: &mut [u8], len: usize) {
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    esp_ah::packet::ipv4_checksum(&mut p[..20]);
}

/// Cuts an IPv4 packet to `n` bytes, keeping its length field honest.
fn cut4(p: &[u8], n: usize) -> Vec<u8> {
    let mut t = p[..n].to_vec();
    set_ipv4_len(&mut t, n);
    t
}

fn fix_ipv6_len(p: &mut [u8]) {
    let n = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&n.to_be_bytes());
}

/// Inserts an IPv6 extension header `ext` (whose next-header byte is set
/// here) right after the fixed header.
fn insert_v6_ext(p: &[u8], ext_type: u8, ext: &[u8]) -> Vec<u8> {
    let mut e = ext.to_vec();
    e[0] = p[6];
    let mut out = p[..40].to_vec();
    out[6] = ext_type;
    out.extend_from_slice(&e);
    out.extend_from_slice(&p[40..]);
    fix_ipv6_len(&mut out);
    out
}

/// For ESP with NULL encryption and HMAC-SHA-256 (ICV 16 bytes): edits the
/// clear trailer of a transport- or tunnel-mode packet with `f(payload)`
/// and recomputes the ICV, so the packet verifies and the edit is what the
/// receiver sees.
fn edit_null_esp(p: &[u8], spec: &PSa, f: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut t = p.to_vec();
    let esp = 20;
    let icv_at = t.len() - 16;
    f(&mut t[esp + 8..icv_at]);
    let integ = esp_ah::crypto::integrity(AuthAlg::HmacSha256, &spec.auth_key, None)
        .expect("integrity")
        .expect("some");
    let mut icv = [0u8; 16];
    integ.compute(&[&t[esp..icv_at]], &mut icv);
    t[icv_at..].copy_from_slice(&icv);
    t
}

/// One generated record of packets.txt.
struct GenCase {
    name: String,
    what: String,
    spi: u32,
    pre: Vec<String>,
    bytes: Vec<u8>,
    expect: &'static str,
    counter: &'static str,
}

struct Gen {
    a: PHost,
    sas: Vec<PSa>,
    out: Vec<GenCase>,
}

impl Gen {
    fn spec(&self, spi: u32) -> PSa {
        self.sas
            .iter()
            .find(|s| s.spi == spi)
            .cloned()
            .expect("spec")
    }
    /// A valid packet on SA `spi` carrying `payload`.
    fn valid(&mut self, spi: u32, payload: &[u8]) -> Vec<u8> {
        let clear = self.spec(spi).clear(payload);
        self.a.send(spi, &clear)
    }
    #[allow(clippy::too_many_arguments)]
    fn case(
        &mut self,
        name: &str,
        what: &str,
        spi: u32,
        pre: &[&str],
        bytes: Vec<u8>,
        expect: &'static str,
        counter: &'static str,
    ) {
        self.out.push(GenCase {
            name: name.into(),
            what: what.into(),
            spi,
            pre: pre.iter().map(|s| s.to_string()).collect(),
            bytes,
            expect,
            counter,
        });
    }
}

fn generate_packets() -> String {
    let sas = packet_sas();
    let mut g = Gen {
        a: PHost::sender(&sas),
        sas,
        out: Vec::new(),
    };
    let pl = b"0123456789abcdefghij";

    // ---- IPv4 ESP, AES-CBC + HMAC-SHA-256 (0x101)
    let v = g.valid(0x101, pl);
    g.case(
        "esp-valid",
        "control: a valid ESP packet (AES-CBC, HMAC-SHA-256, transport)",
        0x101,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    g.case(
        "esp-replayed",
        "esp-valid received a second time",
        0x101,
        &["esp-valid"],
        v.clone(),
        "Replay",
        "sa",
    );
    let v = g.valid(0x101, pl);
    g.case(
        "empty",
        "0 bytes",
        0x101,
        &[],
        Vec::new(),
        "Malformed",
        "global",
    );
    g.case(
        "ipv4-header-truncated",
        "the first 12 bytes of an IPv4 ESP packet",
        0x101,
        &[],
        v[..12].to_vec(),
        "Malformed",
        "global",
    );
    let mut t = v.clone();
    t[0] = 0x44;
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "ipv4-ihl-too-small",
        "IPv4 header length field 4 words (16 bytes, below the minimum 20)",
        0x101,
        &[],
        t,
        "Malformed",
        "global",
    );
    let mut t = cut4(&v, 40);
    t[0] = 0x4f;
    g.case(
        "ipv4-ihl-beyond-packet",
        "IPv4 header length field 15 words (60 bytes) in a 40-byte packet",
        0x101,
        &[],
        t,
        "Malformed",
        "global",
    );
    let mut t = v.clone();
    set_ipv4_len(&mut t, v.len() + 100);
    g.case(
        "ipv4-total-length-too-big",
        "IPv4 total length 100 bytes more than the packet",
        0x101,
        &[],
        t,
        "Malformed",
        "global",
    );
    let mut t = v.clone();
    set_ipv4_len(&mut t, 10);
    g.case(
        "ipv4-total-length-below-header",
        "IPv4 total length 10, less than its own header",
        0x101,
        &[],
        t,
        "Malformed",
        "global",
    );
    let mut t = v.clone();
    t[0] = 0x55;
    g.case(
        "ip-version-5",
        "IP version 5",
        0x101,
        &[],
        t,
        "Malformed",
        "global",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t.extend_from_slice(&[0; 6]);
    g.case(
        "ipv4-trailing-link-padding",
        "a valid packet followed by 6 zero bytes of link-layer padding (IPv4 total length still the packet's own): the engine takes them as ESP data",
        0x101,
        &[],
        t,
        "Malformed",
        "sa",
    );
    let v = g.valid(0x101, pl);
    g.case(
        "esp-shorter-than-header",
        "an ESP header cut to 6 bytes (IP length fixed up)",
        0x101,
        &[],
        cut4(&v, 26),
        "Malformed",
        "global",
    );
    let v = g.valid(0x101, pl);
    g.case(
        "esp-shorter-than-iv",
        "ESP header plus 10 of the 16 IV bytes",
        0x101,
        &[],
        cut4(&v, 38),
        "Malformed",
        "sa",
    );
    let v = g.valid(0x101, pl);
    g.case(
        "esp-shorter-than-icv",
        "ESP header, IV, one cipher block and 10 of the 16 ICV bytes",
        0x101,
        &[],
        cut4(&v, 20 + 8 + 16 + 16 + 10),
        "Malformed",
        "sa",
    );
    let v = g.valid(0x101, pl);
    g.case(
        "esp-one-byte-short",
        "a valid packet missing its last byte",
        0x101,
        &[],
        cut4(&v, v.len() - 1),
        "Malformed",
        "sa",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    let n = t.len();
    t[n - 1] ^= 0x01;
    g.case(
        "esp-bad-icv",
        "the last ICV byte flipped",
        0x101,
        &[],
        t,
        "BadIcv",
        "sa",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[20 + 8 + 16] ^= 0x80;
    g.case(
        "esp-ciphertext-flipped",
        "one ciphertext bit flipped",
        0x101,
        &[],
        t,
        "BadIcv",
        "sa",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[20..24].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    g.case(
        "esp-wrong-spi",
        "SPI changed to 0xdeadbeef (no such SA)",
        0x101,
        &[],
        t,
        "NoSa",
        "global",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[24..28].copy_from_slice(&[0; 4]);
    g.case(
        "esp-sequence-zero",
        "sequence number 0 (the replay check comes before the ICV)",
        0x101,
        &[],
        t,
        "ZeroSequence",
        "sa",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[6] |= 0x20;
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "ipv4-fragment-more",
        "IPv4 more-fragments flag set",
        0x101,
        &[],
        t,
        "Fragment",
        "global",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[6..8].copy_from_slice(&185u16.to_be_bytes());
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "ipv4-fragment-offset",
        "IPv4 fragment offset 185 (the last fragment)",
        0x101,
        &[],
        t,
        "Fragment",
        "global",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[10] ^= 0xff;
    g.case(
        "ipv4-bad-header-checksum",
        "control: IPv4 header checksum wrong; the engine leaves it to the IP layer (sim's stack drops these before IPsec) and delivers",
        0x101,
        &[],
        t,
        "Deliver",
        "sa",
    );
    let v = g.valid(0x101, pl);
    let mut t = v.clone();
    t[6] = 0x40;
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "ipv4-dont-fragment",
        "control: IPv4 don't-fragment flag set (not a fragment)",
        0x101,
        &[],
        t,
        "Deliver",
        "sa",
    );

    // ---- ESP NULL + HMAC-SHA-256 (0x102): the trailer is clear, the ICV recomputed
    let spec = g.spec(0x102);
    // 20 bytes of UDP payload: 28 of UDP, + 2 = 30, padded to 32: 2 pad bytes.
    let v = g.valid(0x102, pl);
    g.case(
        "null-valid",
        "control: a valid ESP-NULL packet (HMAC-SHA-256)",
        0x102,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    let t = edit_null_esp(&v, &spec, |b| {
        let n = b.len();
        b[n - 4] = 0x07;
    });
    g.case(
        "null-bad-pad-bytes",
        "padding 1, 2 changed to 7, 2 (ICV recomputed: the packet verifies)",
        0x102,
        &[],
        t,
        "BadPadding",
        "sa",
    );
    let v = g.valid(0x102, pl);
    let t = edit_null_esp(&v, &spec, |b| {
        let n = b.len();
        b[n - 2] = 200;
    });
    g.case(
        "null-pad-length-too-big",
        "pad length 200, more than the payload (ICV recomputed)",
        0x102,
        &[],
        t,
        "BadPadding",
        "sa",
    );
    let v = g.valid(0x102, pl);
    let t = edit_null_esp(&v, &spec, |b| {
        let n = b.len();
        b[n - 1] = 59;
    });
    g.case(
        "null-next-header-59",
        "next header 59 (no next header: a dummy packet, ICV recomputed)",
        0x102,
        &[],
        t,
        "Dummy",
        "sa",
    );

    // ---- tunnel mode, ESP NULL + HMAC-SHA-256 (0x103), 172.16.1.0/24 -> 172.16.2.0/24
    let spec = g.spec(0x103);
    let v = g.valid(0x103, pl);
    g.case(
        "tunnel-valid",
        "control: a valid tunnel-mode packet",
        0x103,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    let t = edit_null_esp(&v, &spec, |b| {
        let n = b.len();
        b[n - 1] = 17;
    });
    g.case(
        "tunnel-next-header-udp",
        "tunnel mode with next header 17 instead of 4 (IPv4) (ICV recomputed)",
        0x103,
        &[],
        t,
        "Malformed",
        "sa",
    );
    let clear = udp_packet("192.168.9.9", "172.16.2.9", 5000, 7, pl);
    let t = g.a.send(0x103, &clear);
    g.case(
        "tunnel-inner-outside-selectors",
        "inner source 192.168.9.9, outside 172.16.1.0/24",
        0x103,
        &[],
        t,
        "Policy",
        "sa",
    );

    // ---- IPv6, ESP AES-GCM-16 (0x104)
    let v = g.valid(0x104, pl);
    g.case(
        "ipv6-valid",
        "control: a valid IPv6 ESP packet (AES-GCM-16)",
        0x104,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    g.case(
        "ipv6-header-truncated",
        "the first 30 bytes of an IPv6 packet",
        0x104,
        &[],
        v[..30].to_vec(),
        "Malformed",
        "global",
    );
    let mut t = v.clone();
    let pl6 = u16::from_be_bytes([t[4], t[5]]) + 50;
    t[4..6].copy_from_slice(&pl6.to_be_bytes());
    g.case(
        "ipv6-payload-length-too-big",
        "IPv6 payload length 50 bytes more than the packet",
        0x104,
        &[],
        t,
        "Malformed",
        "global",
    );
    let v = g.valid(0x104, pl);
    g.case(
        "ipv6-hop-by-hop-runs-off-end",
        "a hop-by-hop header whose length field (255: 2048 bytes) runs past the end",
        0x104,
        &[],
        insert_v6_ext(&v, 0, &[0, 255, 1, 4, 0, 0, 0, 0]),
        "Malformed",
        "global",
    );
    let v = g.valid(0x104, pl);
    let mut t = v[..40].to_vec();
    t[6] = 43;
    t.extend_from_slice(&[50, 0, 0, 0]);
    fix_ipv6_len(&mut t);
    g.case(
        "ipv6-routing-header-truncated",
        "a routing header cut to 4 of its 8 bytes",
        0x104,
        &[],
        t,
        "Malformed",
        "global",
    );
    let v = g.valid(0x104, pl);
    g.case(
        "ipv6-fragment-header",
        "a fragment header (offset 0, more fragments) before ESP",
        0x104,
        &[],
        insert_v6_ext(&v, 44, &[0, 0, 0, 1, 0, 0, 0x12, 0x34]),
        "Fragment",
        "global",
    );
    let v = g.valid(0x104, pl);
    g.case(
        "ipv6-hop-by-hop-before-esp",
        "control: a well-formed hop-by-hop header (PadN) before ESP",
        0x104,
        &[],
        insert_v6_ext(&v, 0, &[0, 0, 1, 4, 0, 0, 0, 0]),
        "Deliver",
        "sa",
    );
    let v = g.valid(0x104, pl);
    let mut t = v.clone();
    let n = t.len();
    t[n - 3] ^= 0x10;
    g.case(
        "ipv6-bad-tag",
        "one bit of the GCM tag flipped",
        0x104,
        &[],
        t,
        "BadIcv",
        "sa",
    );

    // ---- AH, HMAC-SHA-1 (0x105)
    let v = g.valid(0x105, pl);
    g.case(
        "ah-valid",
        "control: a valid AH packet (HMAC-SHA-1, transport)",
        0x105,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    let v = g.valid(0x105, pl);
    let mut t = v.clone();
    t[21] = 0xff;
    g.case(
        "ah-length-too-big",
        "AH payload length 255 (1028 bytes) in a short packet",
        0x105,
        &[],
        t,
        "Malformed",
        "sa",
    );
    let v = g.valid(0x105, pl);
    let mut t = v.clone();
    t[21] = 1;
    g.case(
        "ah-length-too-small",
        "AH payload length 1 (12 bytes: no room for the 12-byte ICV)",
        0x105,
        &[],
        t,
        "Malformed",
        "sa",
    );
    let v = g.valid(0x105, pl);
    g.case(
        "ah-truncated",
        "an AH header cut to 10 bytes (no sequence number)",
        0x105,
        &[],
        cut4(&v, 30),
        "Malformed",
        "global",
    );
    let v = g.valid(0x105, pl);
    let mut t = v.clone();
    t[20 + 12] ^= 0x01;
    g.case(
        "ah-bad-icv",
        "one ICV bit flipped",
        0x105,
        &[],
        t,
        "BadIcv",
        "sa",
    );
    let v = g.valid(0x105, pl);
    let mut t = v.clone();
    t[8] = 3;
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "ah-ttl-changed",
        "control: TTL lowered to 3 on the way (a mutable field)",
        0x105,
        &[],
        t,
        "Deliver",
        "sa",
    );
    let v = g.valid(0x105, pl);
    let mut t = v.clone();
    t[4] ^= 0xff;
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "ah-ip-id-changed",
        "IPv4 identification changed (an immutable field)",
        0x105,
        &[],
        t,
        "BadIcv",
        "sa",
    );
    let v = g.valid(0x105, pl);
    let mut t = v.clone();
    t[28..32].copy_from_slice(&[0; 4]);
    g.case(
        "ah-sequence-zero",
        "AH sequence number 0",
        0x105,
        &[],
        t,
        "ZeroSequence",
        "sa",
    );
    let v = g.valid(0x105, pl);
    let mut t = v[..20].to_vec();
    t[0] = 0x46;
    t.extend_from_slice(&[0x44, 40, 5, 0]);
    t.extend_from_slice(&v[20..]);
    let n = t.len();
    t[2..4].copy_from_slice(&(n as u16).to_be_bytes());
    esp_ah::packet::ipv4_checksum(&mut t[..24]);
    g.case(
        "ah-ipv4-option-runs-off-header",
        "a 4-byte IPv4 option area holding a timestamp option that claims 40 bytes",
        0x105,
        &[],
        t,
        "Malformed",
        "sa",
    );

    // ---- AH over IPv6, HMAC-SHA-256 (0x107)
    let v = g.valid(0x107, pl);
    g.case(
        "ah6-valid",
        "control: a valid IPv6 AH packet (HMAC-SHA-256)",
        0x107,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    let v = g.valid(0x107, pl);
    g.case(
        "ah6-hop-by-hop-option-runs-off-header",
        "a hop-by-hop header (8 bytes) before AH whose PadN option claims 10 bytes",
        0x107,
        &[],
        insert_v6_ext(&v, 0, &[0, 0, 1, 10, 0, 0, 0, 0]),
        "Malformed",
        "sa",
    );
    let v = g.valid(0x107, pl);
    g.case(
        "ah6-hop-by-hop-runs-off-end",
        "a hop-by-hop header before AH whose length (255: 2048 bytes) runs past the end",
        0x107,
        &[],
        insert_v6_ext(&v, 0, &[0, 255, 1, 4, 0, 0, 0, 0]),
        "Malformed",
        "global",
    );

    // ---- NAT-T, ESP-in-UDP AES-GCM-16 (0x106)
    let v = g.valid(0x106, pl);
    g.case(
        "natt-valid",
        "control: a valid ESP-in-UDP packet (port 4500)",
        0x106,
        &[],
        v.clone(),
        "Deliver",
        "sa",
    );
    g.case(
        "natt-keepalive",
        "a NAT-T keepalive: UDP 4500 carrying the single byte 0xff",
        0x106,
        &[],
        udp_packet("10.0.0.1", "10.0.0.2", 4500, 4500, &[0xff]),
        "Keepalive",
        "global",
    );
    g.case(
        "natt-non-esp-marker",
        "UDP 4500 starting with the non-ESP marker (4 zero bytes) then an IKE header: for the host",
        0x106,
        &[],
        udp_packet(
            "10.0.0.1",
            "10.0.0.2",
            4500,
            4500,
            &[0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
        ),
        "NotIpsec",
        "not_ipsec",
    );
    g.case(
        "natt-two-bytes",
        "UDP 4500 with 2 bytes of payload (not even an SPI): for the host",
        0x106,
        &[],
        udp_packet("10.0.0.1", "10.0.0.2", 4500, 4500, &[0x12, 0x34]),
        "NotIpsec",
        "not_ipsec",
    );
    g.case(
        "natt-spi-without-sequence",
        "UDP 4500 with a non-zero SPI and nothing after it",
        0x106,
        &[],
        udp_packet("10.0.0.1", "10.0.0.2", 4500, 4500, &0x106u32.to_be_bytes()),
        "Malformed",
        "global",
    );
    let v = g.valid(0x106, pl);
    let mut t = v.clone();
    t[6] |= 0x20;
    esp_ah::packet::ipv4_checksum(&mut t[..20]);
    g.case(
        "natt-fragment",
        "ESP-in-UDP with the more-fragments flag",
        0x106,
        &[],
        t,
        "Fragment",
        "global",
    );
    let v = g.valid(0x106, pl);
    let mut t = v.clone();
    let n = t.len();
    t[n - 1] ^= 0x01;
    g.case(
        "natt-bad-tag",
        "ESP-in-UDP with one tag bit flipped",
        0x106,
        &[],
        t,
        "BadIcv",
        "sa",
    );
    g.case(
        "udp-not-natt",
        "plain UDP to port 7: not IPsec",
        0x106,
        &[],
        udp_packet("10.0.0.1", "10.0.0.2", 5000, 7, pl),
        "NotIpsec",
        "not_ipsec",
    );

    let mut s = String::from(
        "# Packets the inbound path must drop (or hand to the host), each with the\n\
         # verdict and the one counter it moves. Generated by the ignored test\n\
         # `regenerate_packets_txt` in tests/malformed.rs: valid packets protected\n\
         # by the engine (seeded IVs), then corrupted as each comment says; run\n\
         # `cargo test -p ipsec-blackbox --test malformed -- --ignored` to\n\
         # rewrite this file after changing the generator.\n\
         #\n\
         # SAs (added through PF_KEY on a sender 10.0.0.1 / 2001:db8::1 and a\n\
         # receiver 10.0.0.2 / 2001:db8::2; replay window 32; keys in the code):\n\
         #   0x101 ESP AES-CBC + HMAC-SHA-256, IPv4 transport\n\
         #   0x102 ESP NULL + HMAC-SHA-256, IPv4 transport\n\
         #   0x103 ESP NULL + HMAC-SHA-256, IPv4 tunnel 172.16.1.0/24 -> 172.16.2.0/24\n\
         #   0x104 ESP AES-GCM-16, IPv6 transport\n\
         #   0x105 AH HMAC-SHA-1, IPv4 transport\n\
         #   0x106 ESP AES-GCM-16 in UDP 4500 (NAT-T), IPv4 transport\n\
         #   0x107 AH HMAC-SHA-256, IPv6 transport\n\
         #\n\
         # Fields: case, sa (the SA whose counters and probe are used), pre (a\n\
         # case delivered first), hex, expect (Deliver, NotIpsec or an\n\
         # esp_ah::DropReason), counter (sa: that SA's drop or delivery count;\n\
         # global: the engine's drops before any SA is known; not_ipsec).\n\
         # Each case meets a fresh receiver; afterwards a fresh valid packet on\n\
         # the same SA must be delivered intact.\n",
    );
    for c in &g.out {
        s.push_str(&format!(
            "\n# {}.\ncase: {}\nsa: {:#x}\n",
            c.what, c.name, c.spi
        ));
        for p in &c.pre {
            s.push_str(&format!("pre: {p}\n"));
        }
        if c.bytes.is_empty() {
            s.push_str("hex:\n");
        }
        for chunk in c.bytes.chunks(32) {
            s.push_str(&format!("hex: {}\n", hex::encode(chunk)));
        }
        s.push_str(&format!("expect: {}\ncounter: {}\n", c.expect, c.counter));
    }
    s
}

/// Rewrites malformed/packets.txt from the generator above.
#[test]
#[ignore = "rewrites malformed/packets.txt"]
fn regenerate_packets_txt() {
    std::fs::write(corpus_path("packets.txt"), generate_packets()).expect("write packets.txt");
}
