//! sim: simulated IPsec hosts and links, for labs and tests (no root).
//!
//!     sim lab labs/01-esp-transport/lab.txt [--trace] [--dir DIR] [--serve DIR]

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
}

fn main() -> ExitCode {
    let a = Args::parse();
    match a.cmd {
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
