//! sim: simulated IPsec hosts and links, for labs and tests (no root).
//!
//!     sim lab labs/01-esp-transport/lab.txt [--trace] [--dir DIR]

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
    },
}

fn main() -> ExitCode {
    let a = Args::parse();
    match a.cmd {
        Cmd::Lab { file, trace, dir } => {
            let script = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sim: {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            match sim::lab::run(&script, &dir, &mut ipseckey::lab::IpseckeyLoader, trace) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err((report, e)) => {
                    print!("{report}");
                    eprintln!("sim: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}
