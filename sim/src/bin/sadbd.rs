//! sadbd: the simulated kernel's PF_KEY socket for one host.
//!
//!     sadbd [--socket PATH] [--local ADDR]... [--tick SECONDS] [--group GROUP]
//!           [--queue-limit N] [--virtual-clock] [--state FILE [--fsync]]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sim::daemon::{default_socket_path, kernel_config, run, run_service, DaemonConfig};
use sim::journal::{Journaled, StateOptions};

/// Serve a simulated IPsec SADB on a PF_KEY-like Unix socket (no root needed).
#[derive(Parser, Debug)]
#[command(name = "sadbd", version)]
struct Args {
    /// Socket path (default: $IPSEC_SIM_SOCKET, else $XDG_RUNTIME_DIR/ipsec-sim/sadbd.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// An address this simulated host owns (decides inbound/outbound); repeatable.
    #[arg(long = "local", value_name = "ADDR")]
    local: Vec<IpAddr>,
    /// Seconds between passes of the lifetime ager.
    #[arg(long, default_value_t = 8)]
    tick: u64,
    /// Also admit members of this group (socket mode 0660 instead of 0600).
    #[arg(long)]
    group: Option<String>,
    /// Messages kept for a client that does not read: beyond it, broadcasts
    /// to it are lost (it is then sent an ENOBUFS notice saying how many)
    /// and its own requests wait unread; replies are never lost.
    #[arg(long, default_value_t = 65536)]
    queue_limit: usize,
    /// Keep virtual time, starting now and moved only by `sim clock advance
    /// DURATION` (the ager then runs every --tick seconds of it).
    #[arg(long)]
    virtual_clock: bool,
    /// Journal every accepted change to FILE (created 0600; it holds keys)
    /// and reload it at start, so SAs survive a restart, also after kill -9.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// With --state: also flush each change to disk before acknowledging it
    /// (survives power loss; slower).
    #[arg(long, requires = "state")]
    fsync: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let mut cfg = DaemonConfig::new(a.socket.unwrap_or_else(default_socket_path));
    cfg.local = a.local;
    cfg.tick = Duration::from_secs(a.tick.max(1));
    cfg.queue_limit = a.queue_limit.max(1);
    cfg.virtual_clock = a.virtual_clock;
    if let Some(g) = a.group {
        match nix::unistd::Group::from_name(&g) {
            Ok(Some(grp)) => cfg.group = Some(grp.gid),
            _ => {
                eprintln!("sadbd: unknown group {g}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match a.state {
        Some(path) => {
            let opts = StateOptions {
                path,
                fsync: a.fsync,
            };
            let (mut svc, restored) = match Journaled::open(&opts, kernel_config(&cfg)) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("sadbd: {e}");
                    return ExitCode::FAILURE;
                }
            };
            for w in &restored.warnings {
                eprintln!("sadbd: warning: {w}");
            }
            eprintln!(
                "sadbd: state {}: {} SAs restored from {} records",
                opts.path.display(),
                restored.sas,
                restored.records
            );
            announce(&cfg);
            run_service(&cfg, &mut svc)
        }
        None => {
            announce(&cfg);
            run(&cfg)
        }
    };
    match result {
        Ok(()) => {
            eprintln!("sadbd: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sadbd: {}: {e}", cfg.socket.display());
            ExitCode::FAILURE
        }
    }
}

fn announce(cfg: &DaemonConfig) {
    eprintln!(
        "sadbd: serving PF_KEY on {}{}",
        cfg.socket.display(),
        if cfg.virtual_clock {
            " on a virtual clock (move it with `sim clock advance DURATION`)"
        } else {
            ""
        }
    );
}
