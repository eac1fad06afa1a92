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
    /// Move or read the virtual clock of a `sadbd --virtual-clock`.
    Clock {
        /// The daemon's socket (default: as for ipseckey).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        #[command(subcommand)]
        what: ClockCmd,
    },
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
        Cmd::Clock { socket, what } => clock(socket, what),
        Cmd::Lab {
            file,
            trace,
            dir,
            serve,
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
            let opts = sim::lab::RunOpts { trace, serve, echo };
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
