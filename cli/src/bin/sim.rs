//! sim: simulated IPsec hosts and links, for labs and tests (no root),
//! and live hosts on real links (UDP, TAP) on the wall clock.
//!
//!     sim lab labs/01-esp-transport/lab.txt [--trace] [--dir DIR] [--serve DIR]
//!     sim live CONFIG [--serve DIR] [--json] [--no-stdin]
//!     sim bench-net run|up|down|clean [--json] ...

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sim",
    version,
    about = "Simulated IPsec hosts and links (no root needed)"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a lab script: hosts, links with faults, keys, traffic, virtual time, checks.
    Lab {
        /// The lab script (see labs/README.md).
        file: PathBuf,
        /// Print each packet's path through each host.
        #[arg(long)]
        trace: bool,
        /// Where captures are written (default: the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Serve each host's PF_KEY socket at DIR/HOST.sock (`ipseckey
        /// --socket DIR/HOST.sock ...` manages that host), stop at `pause` lines
        /// until Enter, and after the script read lab commands from
        /// standard input until end of input or `quit`.
        #[arg(long, value_name = "DIR")]
        serve: Option<PathBuf>,
        /// When the lab ends, write every counter (hosts, SAs, links) as
        /// JSON to FILE.
        #[arg(long, value_name = "FILE")]
        counters_json: Option<PathBuf>,
    },
    /// Run simulated hosts on the wall clock with real links: UDP (qemu
    /// `-netdev dgram` format), TAP devices, in-process pipes. Commands
    /// (ping, udp, counters, quit; `help`) are read from standard input.
    Live {
        /// The configuration (labs/README.md, "Live mode").
        config: PathBuf,
        /// Serve each host's PF_KEY socket at DIR/HOST.sock.
        #[arg(long, value_name = "DIR")]
        serve: Option<PathBuf>,
        /// Where relative capture files go (default: the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print events and results as JSON Lines.
        #[arg(long)]
        json: bool,
        /// Do not read commands: run until SIGINT or SIGTERM.
        #[arg(long)]
        no_stdin: bool,
        /// Print each packet's path (every packet then takes the slow path).
        #[arg(long)]
        trace: bool,
    },
    /// The network-namespace bench (needs root): two namespaces, each
    /// with a TAP served by a live simulated host, the hosts joined by a
    /// UDP link; ping and iperf3 between the namespaces.
    BenchNet {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Move or read the virtual clock of a `sadbd --virtual-clock`.
    Clock {
        /// The daemon's socket (default: as for ipseckey).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        #[command(subcommand)]
        what: ClockCmd,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct BenchShape {
    /// tunnel (simulated gateways) or transport (bump-in-the-stack hosts
    /// in front of each namespace); several separated by commas.
    #[arg(long, default_value = "tunnel")]
    mode: String,
    /// aes-gcm, aes-cbc-sha1, ah-sha1, null-sha1 (ESP NULL encryption
    /// with HMAC-SHA1: framing and integrity, no cipher), clear (no SA:
    /// the path's I/O limit); several separated by commas.
    #[arg(long, default_value = "aes-gcm,aes-cbc-sha1,clear")]
    alg: String,
    /// 4 or 6.
    #[arg(long, default_value_t = 4)]
    family: u8,
    /// The namespaces' MTU.
    #[arg(long, default_value_t = 1500)]
    mtu: u16,
    /// Queues per TAP (more than 1: a multi-queue TAP); each queue is
    /// served by its own thread.
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// iperf3 parallel streams (-P), spread over the queues by flow.
    #[arg(long, default_value_t = 1)]
    streams: u32,
    /// The SAs' replay window in packets (0: none; at most 255).
    #[arg(long, default_value_t = 64)]
    replay: u8,
    /// The TAPs' checksum and segmentation offload: on (the kernel hands
    /// TCP over in frames of up to 64 KiB, cut into segments by the
    /// simulated hosts) or off (one read per segment).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    offload: String,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Measure iperf3 TCP throughput for each mode and algorithm.
    Run {
        #[command(flatten)]
        shape: BenchShape,
        /// Seconds of iperf3 per run.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// One JSON object per run (JSON Lines).
        #[arg(long)]
        json: bool,
    },
    /// Build one bench (the first mode and algorithm) and keep it until Ctrl-C.
    Up {
        #[command(flatten)]
        shape: BenchShape,
    },
    /// Remove namespaces and TAPs left by benches whose process died.
    Clean,
}

#[derive(Subcommand, Debug)]
enum ClockCmd {
    /// Move the clock forward (`30s`, `10m`, `8h`, `2d`, or seconds); the
    /// ager runs on the way and EXPIREs reach every monitor.
    Advance { duration: String },
    /// Print the virtual time.
    Now,
}

/// Sends one clock request and prints the virtual time it answers with.
fn clock(socket: Option<PathBuf>, what: ClockCmd) -> ExitCode {
    let path = socket.unwrap_or_else(sim::daemon::default_socket_path);
    let secs = match &what {
        ClockCmd::Now => 0,
        ClockCmd::Advance { duration } => match sim::vclock::parse_secs(duration) {
            Some(s) => s,
            None => {
                eprintln!(
                    "sim: clock: {duration:?} is not a duration (30s, 10m, 8h, 2d, or seconds)"
                );
                return ExitCode::from(2);
            }
        },
    };
    match sim::vclock::request(&path, secs, std::time::Duration::from_secs(600)) {
        Ok(sim::vclock::Answer::Virtual(now)) => {
            let when = ipseckey::print::format_date(now);
            match what {
                ClockCmd::Now => println!("virtual time: {when} ({now})"),
                ClockCmd::Advance { .. } => {
                    println!("virtual time: {when} ({now}), moved {secs} s")
                }
            }
            ExitCode::SUCCESS
        }
        Ok(sim::vclock::Answer::OwnerOnly(now)) if secs == 0 => {
            let when = ipseckey::print::format_date(now);
            println!("virtual time: {when} ({now})");
            ExitCode::SUCCESS
        }
        Ok(sim::vclock::Answer::OwnerOnly(_)) => {
            eprintln!(
                "sim: clock: the lab serving {} moves its own clock (type `advance {}` in the lab)",
                path.display(),
                match &what {
                    ClockCmd::Advance { duration } => duration.as_str(),
                    ClockCmd::Now => "",
                }
            );
            ExitCode::FAILURE
        }
        Ok(sim::vclock::Answer::RealTime) => {
            eprintln!(
                "sim: clock: the daemon at {} keeps real time (start it with sadbd --virtual-clock)",
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sim: clock: cannot reach sadbd at {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn live(
    config: PathBuf,
    serve: Option<PathBuf>,
    dir: Option<PathBuf>,
    json: bool,
    no_stdin: bool,
    trace: bool,
) -> ExitCode {
    let spec = match sim::live::load(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim: {}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    let opts = sim::live::LiveOpts {
        serve,
        dir: dir.unwrap_or_else(|| PathBuf::from(".")),
        json,
        stdin: !no_stdin,
        trace,
    };
    let mut loader = ipseckey::lab::IpseckeyLoader;
    let mut l = match sim::live::Live::build(&spec, opts, &mut loader) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sim: {}: {e}", config.display());
            return ExitCode::FAILURE;
        }
    };
    l.announce();
    if let Err(e) = l.run(&mut loader) {
        eprintln!("sim: live: {e}");
        return ExitCode::FAILURE;
    }
    if l.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn bench_specs(shape: &BenchShape) -> Result<Vec<sim::bench::BenchSpec>, String> {
    let mut out = Vec::new();
    for m in shape.mode.split(',') {
        let mode = match m {
            "tunnel" => sim::bench::Mode::Tunnel,
            "transport" => sim::bench::Mode::Transport,
            _ => return Err(format!("mode {m:?}: tunnel or transport")),
        };
        for a in shape.alg.split(',') {
            let alg = sim::bench::Alg::parse(a).ok_or_else(|| {
                format!("alg {a:?}: aes-gcm, aes-cbc-sha1, ah-sha1, null-sha1 or clear")
            })?;
            out.push(sim::bench::BenchSpec {
                mode,
                alg,
                mtu: shape.mtu,
                capture: false,
                queues: shape.queues.clamp(1, 16),
                streams: shape.streams.clamp(1, 128),
                replay: shape.replay,
                offload: shape.offload == "on",
            });
        }
    }
    if !matches!(shape.family, 4 | 6) {
        return Err("family 4 or 6".to_string());
    }
    Ok(out)
}

fn bench_tools() -> Result<sim::bench::Tools, String> {
    let sim = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
    let ipseckey = sim.with_file_name("ipseckey");
    if !ipseckey.exists() {
        return Err(format!(
            "{} not found (build it: cargo build -p ipseckey)",
            ipseckey.display()
        ));
    }
    Ok(sim::bench::Tools { sim, ipseckey })
}

fn bench(what: BenchCmd) -> ExitCode {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Ctrl-C stops what runs (the namespaces' programs get it too)
        // and the bench is torn down on the way out.
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    if let BenchCmd::Clean = what {
        for r in sim::bench::clean_stale() {
            println!("removed {r}");
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = sim::bench::preflight() {
        eprintln!("sim: bench-net: {e}");
        return ExitCode::FAILURE;
    }
    let tools = match bench_tools() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sim: bench-net: {e}");
            return ExitCode::FAILURE;
        }
    };
    match what {
        BenchCmd::Clean => ExitCode::SUCCESS,
        BenchCmd::Up { shape } => {
            let specs = match bench_specs(&shape) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sim: bench-net: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(spec) = specs.first() else {
                return ExitCode::from(2);
            };
            let b = match sim::bench::Bench::up(spec, &tools) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("sim: bench-net: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let peer = if shape.family == 6 {
                &b.addrs.b6
            } else {
                &b.addrs.b4
            };
            println!(
                "bench {} up ({} mode, {}): namespaces {} and {}; try:\n  ip netns exec {} ping {peer}\n  ip netns exec {} iperf3 -s &  ip netns exec {} iperf3 -c {peer}\nCtrl-C tears it down.",
                b.name, spec.mode.name(), spec.alg.name(), b.ns[0], b.ns[1], b.ns[0], b.ns[1], b.ns[0]
            );
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            drop(b);
            println!("bench down");
            ExitCode::SUCCESS
        }
        BenchCmd::Run {
            shape,
            seconds,
            json,
        } => {
            let specs = match bench_specs(&shape) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sim: bench-net: {e}");
                    return ExitCode::from(2);
                }
            };
            let v6 = shape.family == 6;
            let mut failed = false;
            let mut rows: Vec<(String, String, f64)> = Vec::new();
            for spec in &specs {
                if stop.load(Ordering::Relaxed) {
                    failed = true;
                    break;
                }
                match sim::bench::measure(spec, &tools, v6, seconds) {
                    Ok(v) => {
                        let bps = v["iperf3"]["bits_per_second"].as_f64().unwrap_or(0.0);
                        if json {
                            println!("{v}");
                        } else {
                            println!(
                                "{} {} ipv{} mtu {}: {:.2} Gbit/s ({} bytes received in {:.1} s, {} retransmits)",
                                spec.mode.name(), spec.alg.name(), shape.family, spec.mtu, bps / 1e9,
                                v["iperf3"]["bytes_received"], v["iperf3"]["seconds"].as_f64().unwrap_or(0.0),
                                v["iperf3"]["retransmits"]
                            );
                        }
                        rows.push((
                            spec.mode.name().to_string(),
                            spec.alg.name().to_string(),
                            bps,
                        ));
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!(
                            "sim: bench-net: {} {}: {e}",
                            spec.mode.name(),
                            spec.alg.name()
                        );
                    }
                }
            }
            if !json {
                for (mode, alg, bps) in &rows {
                    if let Some((_, _, clear)) =
                        rows.iter().find(|r| r.0 == *mode && r.1 == "clear")
                    {
                        if alg != "clear" && *clear > 0.0 {
                            println!("{mode} {alg}: {:.2} of the clear path", bps / clear);
                        }
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    match a.cmd {
        Cmd::Live {
            config,
            serve,
            dir,
            json,
            no_stdin,
            trace,
        } => live(config, serve, dir, json, no_stdin, trace),
        Cmd::BenchNet { what } => bench(what),
        Cmd::Clock { socket, what } => clock(socket, what),
        Cmd::Lab {
            file,
            trace,
            dir,
            serve,
            counters_json,
        } => {
            let script = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sim: {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            // A served lab is interactive: its lines are printed as they come.
            let echo = serve.is_some();
            let opts = sim::lab::RunOpts {
                trace,
                serve,
                echo,
                counters_json,
            };
            match sim::lab::run_with(&script, &dir, &mut ipseckey::lab::IpseckeyLoader, &opts) {
                Ok(report) => {
                    if !echo {
                        print!("{report}");
                    }
                    ExitCode::SUCCESS
                }
                Err((report, e)) => {
                    if !echo {
                        print!("{report}");
                    }
                    eprintln!("sim: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
