//! ipsec-bench: what each IPsec algorithm costs on this machine, how close
//! the ESP/AH data path comes to the bare crypto, and what the SADB and
//! PF_KEY sustain. A table on a terminal, JSON with `--json`.
//!
//!     ipsec-bench esp [--algs LIST] [--sizes LIST]
//!     ipsec-bench ah | sadb [-n N] | pfkey [-n N] | all
//!     ipsec-bench e2e [--algs LIST] [--modes LIST] [--seconds S]   (root)
//!     (each with --reps N --warmup S --time S --threads N --json)

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ipsec_benches::alloc::CountingAlloc;
use ipsec_benches::e2e_mode::{self, E2eResult};
use ipsec_benches::esp::{self, PathResult, Proto, Suite};
use ipsec_benches::machine::Machine;
use ipsec_benches::pfkey_mode::{self, PfkeyResult, Runner};
use ipsec_benches::sadb_mode::{self, SadbResult};
use ipsec_benches::stats::{Settings, Stat};
use serde::Serialize;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// IPsec throughput benchmarks: ESP/AH per algorithm and size next to the
/// bare crypto, the SADB at a million SAs, PF_KEY adds per second.
#[derive(Parser, Debug)]
#[command(name = "ipsec-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Repetitions; tables show the median with min-max.
    #[arg(long, global = true, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    reps: u32,
    /// Seconds of untimed warm-up before the repetitions.
    #[arg(long, global = true, default_value = "0.1", value_name = "SECONDS", value_parser = seconds_or_zero)]
    warmup: Duration,
    /// Seconds each repetition of each measurement runs.
    #[arg(long, global = true, default_value = "0.1", value_name = "SECONDS", value_parser = seconds)]
    time: Duration,
    /// Threads running the same measurement at once, each on its own SAs
    /// (esp, ah, sadb lookups; pfkey: client connections; e2e: queues per
    /// TAP, each served by its own thread, and iperf3 streams).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// Print one JSON object instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// ESP encap and decap per algorithm and packet size, next to the bare cipher + MAC.
    Esp(EspArgs),
    /// AH per algorithm and packet size, next to the bare MAC.
    Ah(AhArgs),
    /// SADB ADD, lookup and DELETE with N SAs, memory per SA, lookup next to a bare HashMap.
    Sadb(CountArgs),
    /// PF_KEY ADDs per second through the simulator's socket, and `ipseckey -f` of N SAs.
    Pfkey(PfkeyArgs),
    /// The TAP bench's iperf3 TCP throughput per algorithm beside the
    /// no-SA baseline (needs root, TAP, iperf3).
    E2e(E2eArgs),
    /// esp, ah, sadb and pfkey in turn, then e2e when it can run here.
    All(AllArgs),
}

#[derive(Args, Debug, Clone)]
struct E2eArgs {
    /// Algorithms, comma-separated: aes-gcm (AES-128-GCM), aes-cbc-sha1
    /// (AES-128-CBC + HMAC-SHA1), ah-sha1, null-sha1 (ESP NULL encryption
    /// with HMAC-SHA1: framing and integrity, no cipher), clear (no SA:
    /// the baseline) [default: aes-gcm,aes-cbc-sha1,null-sha1,clear].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = e2e_alg)]
    algs: Vec<sim::bench::Alg>,
    /// tunnel (simulated gateways in front of two LANs) or transport
    /// (bump-in-the-stack hosts), comma-separated [default: tunnel].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = e2e_mode_name)]
    modes: Vec<sim::bench::Mode>,
    /// Seconds of iperf3 per run.
    #[arg(long, value_name = "S", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// IP version of the namespaces' traffic: 4 or 6.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=6))]
    family: u8,
    /// The namespaces' MTU.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(1280..=9000))]
    mtu: u16,
    /// The SAs' replay window in packets (0: none).
    #[arg(long, default_value_t = 64)]
    replay: u8,
    /// The TAPs' checksum and segmentation offload: on (TCP handed over
    /// in frames of up to 64 KiB, cut into segments by the simulated
    /// hosts) or off (one TAP read per segment).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    offload: String,
    /// The sim program (default: the one next to ipsec-bench).
    #[arg(long, value_name = "PATH", value_parser = program)]
    sim: Option<PathBuf>,
    /// The ipseckey program that keys the bench (default: next to ipsec-bench).
    #[arg(long, value_name = "PATH", value_parser = program)]
    ipseckey: Option<PathBuf>,
}

fn e2e_alg(s: &str) -> Result<sim::bench::Alg, String> {
    sim::bench::Alg::parse(s.trim()).ok_or_else(|| {
        format!("unknown e2e algorithm `{s}` (aes-gcm, aes-cbc-sha1, ah-sha1, null-sha1, clear)")
    })
}

fn e2e_mode_name(s: &str) -> Result<sim::bench::Mode, String> {
    match s.trim() {
        "tunnel" => Ok(sim::bench::Mode::Tunnel),
        "transport" => Ok(sim::bench::Mode::Transport),
        _ => Err(format!("unknown e2e mode `{s}` (tunnel, transport)")),
    }
}

#[derive(Args, Debug, Clone)]
struct EspArgs {
    /// Packet sizes in bytes (IPv4 packet before protection), comma-separated
    /// [default: 64,512,1400,8192].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = size)]
    sizes: Vec<usize>,
    /// Suites, comma-separated, as ENCR[/BITS][+AUTH] with ipseckey's
    /// algorithm names: aes-gcm16/256, aes-cbc+hmac-sha256, null+sha1
    /// [default: every algorithm the engine has].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = esp_suite)]
    algs: Vec<Suite>,
}

#[derive(Args, Debug, Clone)]
struct AhArgs {
    /// Packet sizes in bytes (IPv4 packet before protection), comma-separated
    /// [default: 64,512,1400,8192].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = size)]
    sizes: Vec<usize>,
    /// Authentication algorithms, comma-separated: hmac-md5, hmac-sha1,
    /// hmac-sha256, hmac-sha384, hmac-sha512 [default: all].
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = ah_suite)]
    algs: Vec<Suite>,
}

fn esp_suite(s: &str) -> Result<Suite, String> {
    Suite::parse(Proto::Esp, s)
}

fn ah_suite(s: &str) -> Result<Suite, String> {
    Suite::parse(Proto::Ah, s)
}

#[derive(Args, Debug, Clone)]
struct CountArgs {
    /// SAs in the database.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 1_000_000, value_parser = count)]
    count: u32,
}

#[derive(Args, Debug, Clone)]
struct PfkeyArgs {
    /// SAs added per repetition (and lines in the ipseckey -f file).
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100_000, value_parser = count)]
    count: u32,
    /// The ipseckey program to time (default: the one next to ipsec-bench).
    #[arg(long, value_name = "PATH", value_parser = program)]
    ipseckey: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct AllArgs {
    /// Packet sizes for esp and ah.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = size)]
    sizes: Vec<usize>,
    /// SAs for sadb and pfkey (default: 1,000,000 and 100,000).
    #[arg(short = 'n', long, value_name = "N", value_parser = count)]
    count: Option<u32>,
    /// The ipseckey program to time (default: the one next to ipsec-bench).
    #[arg(long, value_name = "PATH", value_parser = program)]
    ipseckey: Option<PathBuf>,
    /// Seconds of iperf3 per e2e run.
    #[arg(long, value_name = "S", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
}

fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=3600.0).contains(&v) {
        return Err(format!("{s} s is out of range (0 to 3600 seconds)"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn seconds(s: &str) -> Result<Duration, String> {
    let d = seconds_or_zero(s)?;
    if d < Duration::from_micros(100) {
        return Err(format!("{s} s is too short (at least 0.0001 seconds)"));
    }
    Ok(d)
}

fn size(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a packet size in bytes"))?;
    if !(esp::MIN_SIZE..=esp::MAX_SIZE).contains(&v) {
        return Err(format!(
            "a packet of {v} bytes is out of range ({} to {} bytes: an IPv4 UDP packet)",
            esp::MIN_SIZE,
            esp::MAX_SIZE
        ));
    }
    Ok(v)
}

fn program(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if !p.is_file() {
        return Err(format!("{s}: no such program"));
    }
    Ok(p)
}

fn count(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a number of SAs"))?;
    if !(1..=16_000_000).contains(&v) {
        return Err(format!("{v} SAs is out of range (1 to 16,000,000)"));
    }
    Ok(v)
}

/// Everything measured, for `--json`.
#[derive(Serialize, Default)]
struct Report {
    machine: Option<Machine>,
    settings: Option<SettingsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    esp: Option<Vec<PathResult>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ah: Option<Vec<PathResult>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sadb: Option<SadbResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pfkey: Option<PfkeyResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e2e: Option<E2eOut>,
}

#[derive(Serialize)]
struct SettingsOut {
    reps: usize,
    warmup_s: f64,
    time_s: f64,
    threads: usize,
}

/// The e2e results, or why there are none.
#[derive(Serialize)]
#[serde(untagged)]
enum E2eOut {
    Measured(E2eResult),
    Missing { available: bool, reason: String },
}

/// The progress bar: on a terminal only; elsewhere one plain line per mode.
struct Progress {
    bar: ProgressBar,
    tty: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn start(&mut self, what: &str, steps: u64) {
        if self.tty {
            let bar = ProgressBar::new(steps);
            if let Ok(st) =
                ProgressStyle::with_template("{prefix:>6} [{bar:30}] {pos}/{len} {msg} ({eta})")
            {
                bar.set_style(st.progress_chars("=> "));
            }
            bar.set_prefix(what.to_string());
            self.bar = bar;
        } else {
            eprintln!("ipsec-bench: {what}: {steps} steps");
        }
    }

    fn msg(&self, m: String) {
        self.bar.set_message(m);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn main() -> ExitCode {
    CountingAlloc::installed();
    let cli = Cli::parse();
    let c = &cli.common;
    let set = Settings {
        reps: c.reps as usize,
        warmup: c.warmup,
        time: c.time,
        threads: c.threads as usize,
    };
    if cfg!(debug_assertions) && !c.json {
        eprintln!("ipsec-bench: this is a debug build; build with --release for real numbers");
    }
    match run(&cli.mode, &set, c.json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipsec-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn suites(proto: Proto, given: &[Suite]) -> Vec<Suite> {
    if !given.is_empty() {
        return given.to_vec();
    }
    match proto {
        Proto::Esp => Suite::default_esp(),
        Proto::Ah => Suite::default_ah(),
    }
}

fn sizes(given: &[usize]) -> Vec<usize> {
    if given.is_empty() {
        esp::DEFAULT_SIZES.to_vec()
    } else {
        given.to_vec()
    }
}

/// Finds the ipseckey program: `--ipseckey`, else next to this one, else
/// the library in process (said on standard error).
fn runner(given: &Option<PathBuf>) -> Runner {
    if let Some(p) = given {
        return Runner::Binary(p.clone());
    }
    let here = std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("ipseckey"))
        .filter(|p| p.is_file());
    match here {
        Some(p) => Runner::Binary(p),
        None => {
            eprintln!("ipsec-bench: no ipseckey program next to this one (build it with `cargo build --release -p ipseckey`); timing `ipseckey -f` through the ipseckey library in this process instead");
            Runner::Library
        }
    }
}

/// Finds a program next to this one.
fn next_to_me(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("where is ipsec-bench: {e}"))?;
    let p = me.with_file_name(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "no {name} program next to ipsec-bench ({}): build it (cargo build --release -p ipseckey) or give --{name} PATH",
            p.display()
        ))
    }
}

/// The e2e plan, or why e2e cannot run here (said before anything is
/// measured).
fn e2e_plan(a: &E2eArgs) -> Result<e2e_mode::Plan, String> {
    let missing = |e: String| format!("e2e: {e}; no end-to-end numbers were measured");
    e2e_mode::preflight().map_err(|e| missing(format!("the TAP bench cannot run here: {e}")))?;
    let sim = match &a.sim {
        Some(p) => p.clone(),
        None => next_to_me("sim").map_err(missing)?,
    };
    let ipseckey = match &a.ipseckey {
        Some(p) => p.clone(),
        None => next_to_me("ipseckey").map_err(missing)?,
    };
    if !matches!(a.family, 4 | 6) {
        return Err(missing("--family is 4 or 6".to_string()));
    }
    Ok(e2e_mode::Plan {
        modes: if a.modes.is_empty() {
            vec![sim::bench::Mode::Tunnel]
        } else {
            a.modes.clone()
        },
        algs: if a.algs.is_empty() {
            e2e_mode::DEFAULT_ALGS.to_vec()
        } else {
            a.algs.clone()
        },
        seconds: a.seconds,
        v6: a.family == 6,
        mtu: a.mtu,
        replay: a.replay,
        offload: a.offload == "on",
        sim,
        ipseckey,
    })
}

fn run(mode: &Mode, set: &Settings, json: bool) -> Result<(), String> {
    let plan = match mode {
        Mode::E2e(a) => Plan {
            e2e: Some(Ok(e2e_plan(a)?)),
            ..Plan::default()
        },
        Mode::Esp(a) => Plan {
            esp: Some((suites(Proto::Esp, &a.algs), sizes(&a.sizes))),
            ..Plan::default()
        },
        Mode::Ah(a) => Plan {
            ah: Some((suites(Proto::Ah, &a.algs), sizes(&a.sizes))),
            ..Plan::default()
        },
        Mode::Sadb(a) => Plan {
            sadb: Some(a.count),
            ..Plan::default()
        },
        Mode::Pfkey(a) => Plan {
            pfkey: Some((a.count, runner(&a.ipseckey))),
            ..Plan::default()
        },
        Mode::All(a) => Plan {
            esp: Some((Suite::default_esp(), sizes(&a.sizes))),
            ah: Some((Suite::default_ah(), sizes(&a.sizes))),
            sadb: Some(a.count.unwrap_or(1_000_000)),
            pfkey: Some((a.count.unwrap_or(100_000), runner(&a.ipseckey))),
            e2e: Some(e2e_plan(&E2eArgs {
                algs: Vec::new(),
                modes: Vec::new(),
                seconds: a.seconds,
                family: 4,
                mtu: 1500,
                replay: 64,
                offload: "on".to_string(),
                sim: None,
                ipseckey: a.ipseckey.clone(),
            })),
        },
    };
    let mut report = Report {
        machine: Some(Machine::here()),
        settings: Some(SettingsOut {
            reps: set.reps,
            warmup_s: set.warmup.as_secs_f64(),
            time_s: set.time.as_secs_f64(),
            threads: set.threads,
        }),
        ..Report::default()
    };
    let mut p = Progress::new();
    let mut out = std::io::stdout().lock();
    let mut print = |text: String| {
        if !json {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    };
    if !json {
        print(header(report.machine.as_ref(), set));
    }
    for (proto, job) in [(Proto::Esp, &plan.esp), (Proto::Ah, &plan.ah)] {
        let Some((suites, sizes)) = job else { continue };
        let rows = path_mode(proto, suites, sizes, set, &mut p)?;
        print(path_table(proto, &rows, set));
        match proto {
            Proto::Esp => report.esp = Some(rows),
            Proto::Ah => report.ah = Some(rows),
        }
    }
    if let Some(n) = plan.sadb {
        p.start("sadb", sadb_mode::steps(set));
        p.msg(format!("{n} SAs"));
        let r = sadb_mode::measure(n, set, || p.bar.inc(1));
        p.finish();
        let r = r?;
        print(sadb_table(&r));
        report.sadb = Some(r);
    }
    if let Some((n, runner)) = &plan.pfkey {
        p.start("pfkey", pfkey_mode::steps(set));
        p.msg(format!("{n} SAs"));
        let r = pfkey_mode::measure(*n, set, runner, || p.bar.inc(1));
        p.finish();
        let r = r?;
        print(pfkey_table(&r));
        report.pfkey = Some(r);
    }
    match &plan.e2e {
        Some(Ok(e2e)) => {
            p.start("e2e", e2e_mode::steps(e2e, set));
            p.msg(format!("{} s per run", e2e.seconds));
            let r = e2e_mode::measure(e2e, set, || p.bar.inc(1));
            p.finish();
            let r = r?;
            print(e2e_table(&r));
            report.e2e = Some(E2eOut::Measured(r));
        }
        Some(Err(reason)) => {
            eprintln!("ipsec-bench: {reason}");
            report.e2e = Some(E2eOut::Missing {
                available: false,
                reason: reason.clone(),
            });
        }
        None => {}
    }
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    }
    Ok(())
}

#[derive(Default)]
struct Plan {
    esp: Option<(Vec<Suite>, Vec<usize>)>,
    ah: Option<(Vec<Suite>, Vec<usize>)>,
    sadb: Option<u32>,
    pfkey: Option<(u32, Runner)>,
    /// Some: measure e2e (or say why it cannot run).
    e2e: Option<Result<e2e_mode::Plan, String>>,
}

fn path_mode(
    proto: Proto,
    suites: &[Suite],
    sizes: &[usize],
    set: &Settings,
    p: &mut Progress,
) -> Result<Vec<PathResult>, String> {
    p.start(
        proto.name(),
        (suites.len() * sizes.len() * set.reps.max(1)) as u64,
    );
    let mut rows = Vec::new();
    for s in suites {
        for &size in sizes {
            p.msg(format!("{} {size} B", s.name()));
            let r = esp::measure(s, size, set, || p.bar.inc(1));
            match r {
                Ok(r) => rows.push(r),
                Err(e) => {
                    p.finish();
                    return Err(e);
                }
            }
        }
    }
    p.finish();
    Ok(rows)
}

fn range(s: &Stat, prec: usize) -> String {
    format!("{:.p$} ({:.p$}-{:.p$})", s.median, s.min, s.max, p = prec)
}

fn header(m: Option<&Machine>, set: &Settings) -> String {
    let mut s = String::new();
    if let Some(m) = m {
        s += &format!(
            "{} | {} CPUs ({}) | {}\n{}\n",
            m.cpu,
            m.cpus,
            m.features.join(" "),
            m.date,
            m.tool
        );
    }
    s += &format!(
        "median (min-max) of {} repetitions of {:.2} s each after {:.2} s warm-up; {} thread{}\n\n",
        set.reps,
        set.time.as_secs_f64(),
        set.warmup.as_secs_f64(),
        set.threads,
        if set.threads == 1 { "" } else { "s" }
    );
    s
}

fn path_table(proto: Proto, rows: &[PathResult], set: &Settings) -> String {
    let what = match proto {
        Proto::Esp => "ESP (transport, IPv4)",
        Proto::Ah => "AH (transport, IPv4)",
    };
    let mut s = format!(
        "{what}: per packet; bare = the same crypto objects on the same bytes, no framing{}\n",
        if set.threads > 1 {
            "; Gbit/s and Mpps for all threads, ns per thread"
        } else {
            ""
        }
    );
    s += &format!(
        "{:<24} {:>5} {:<5} {:>26} {:>22} {:>24} {:>10} {:>6}\n",
        "algorithm", "bytes", "op", "Gbit/s", "Mpps", "ns/packet", "bare ns", "x bare"
    );
    for r in rows {
        for (op, m, bare, ratio) in [
            ("encap", &r.encap, &r.bare_seal, r.encap_vs_bare),
            ("decap", &r.decap, &r.bare_open, r.decap_vs_bare),
        ] {
            s += &format!(
                "{:<24} {:>5} {:<5} {:>26} {:>22} {:>24} {:>10.0} {:>6.2}\n",
                r.alg,
                r.size,
                op,
                range(&m.gbps, 2),
                range(&m.mpps, 3),
                range(&m.ns, 0),
                bare.ns.median,
                ratio
            );
        }
    }
    s.push('\n');
    s
}

fn sadb_table(r: &SadbResult) -> String {
    let mut s = format!(
        "SADB with {} SAs (lookups on {} thread{}): ns per operation\n",
        r.count,
        r.threads,
        if r.threads == 1 { "" } else { "s" }
    );
    s += &format!("{:<36} {:>24} {:>22}\n", "operation", "ns", "million/s");
    for (name, m) in [
        ("ADD (Sadb::handle)", &r.add),
        ("lookup (SPI, dst)", &r.lookup),
        ("bare HashMap lookup (SipHash)", &r.bare_hashmap_lookup),
        ("bare HashMap lookup (foldhash)", &r.bare_foldhash_lookup),
        ("DELETE (Sadb::handle)", &r.delete),
    ] {
        s += &format!(
            "{:<36} {:>24} {:>22}\n",
            name,
            range(&m.ns, 1),
            range(&m.mops, 2)
        );
    }
    s += &format!(
        "lookup / bare HashMap: {:.2}x (SipHash), {:.2}x (foldhash)\n",
        r.lookup_vs_bare, r.lookup_vs_foldhash
    );
    match &r.bytes_per_sa {
        Some(b) => {
            s += &format!(
                "memory: {} bytes per SA (live heap; Sa struct {} bytes)\n",
                range(b, 0),
                r.sa_struct_bytes
            )
        }
        None => s += "memory: not measured (no counting allocator)\n",
    }
    s.push('\n');
    s
}

fn pfkey_table(r: &PfkeyResult) -> String {
    let mut s = format!(
        "PF_KEY: {} ADDs per repetition, {} client connection{}\n",
        r.count,
        r.clients,
        if r.clients == 1 { "" } else { "s" }
    );
    s += &format!("{:<44} {:>30} {:>20}\n", "path", "ADDs/s", "us per ADD");
    s += &format!(
        "{:<44} {:>30} {:>20}\n",
        "sadbd socket (round trip per ADD)",
        range(&r.socket_adds_per_s, 0),
        range(&r.socket.ns.scale(1e-3), 2)
    );
    s += &format!(
        "{:<44} {:>30} {:>20}\n",
        format!("sadbd socket ({} ADDs in flight)", r.window),
        range(&r.pipelined_adds_per_s, 0),
        range(&r.pipelined.ns.scale(1e-3), 2)
    );
    s += &format!(
        "{:<44} {:>30} {:>20}\n",
        "socket layer in process (no socket)",
        range(&r.in_process_adds_per_s, 0),
        range(&r.in_process.ns.scale(1e-3), 2)
    );
    s += &format!(
        "{:<44} {:>30} {:>20}\n",
        "ipseckey -f FILE",
        range(&r.ipseckey_file.adds_per_s, 0),
        format!("{:.2} s", r.ipseckey_file.seconds.median)
    );
    s += &format!("  ({})\n\n", r.ipseckey_file.command);
    s
}

fn e2e_table(r: &E2eResult) -> String {
    let mut s = format!(
        "End to end (TAP bench, root): iperf3 TCP, {} stream{}, {} s per run, {}, MTU {}, {} per TAP, TAP offload {}, replay window {}\n",
        r.streams,
        if r.streams == 1 { "" } else { "s" },
        r.seconds,
        if r.family == "ipv6" { "IPv6" } else { "IPv4" },
        r.mtu,
        if r.queues == 1 {
            "1 queue (served by the main thread)".to_string()
        } else {
            format!("{} queues (a thread each)", r.queues)
        },
        if r.offload { "on" } else { "off" },
        r.replay_window
    );
    s += &format!("baseline: {}\n", r.baseline);
    s += &format!(
        "{:<10} {:<14} {:>24} {:>12} {:>22}\n",
        "mode", "algorithm", "Gbit/s", "x baseline", "retransmits"
    );
    for row in &r.rows {
        s += &format!(
            "{:<10} {:<14} {:>24} {:>12} {:>22}\n",
            row.mode,
            row.alg,
            range(&row.gbps, 2),
            row.vs_baseline
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".to_string()),
            range(&row.retransmits, 0)
        );
    }
    s.push('\n');
    s
}
