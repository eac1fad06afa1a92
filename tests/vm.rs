//! Boots a real Linux kernel under qemu with the project's binaries inside,
//! through `../shared/tools/kernel-vm` (make-initramfs.sh, run-vm.sh): the
//! scripts are called, not copied.
//!
//! One boot runs one guest script; a test puts every case it can into one
//! script (boots cost ~10 s under TCG). Interop tests add a network with
//! [`RunOpts::net`] (`dgram:HOSTPORT:GUESTPORT`, qemu's UDP frame link) and
//! guest addresses with [`RunOpts::kargs`].
//!
//! When the tools, qemu or the kernel package cannot be had, the test says
//! `SKIPPED: ...` on standard error; with `IPSEC_REQUIRE_VM=1` (set by
//! `.ci/run` once it has installed qemu) that is a failure instead.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Whether a missing VM must fail the test (CI) instead of skipping it.
pub fn required() -> bool {
    std::env::var("IPSEC_REQUIRE_VM").is_ok_and(|v| v == "1")
}

/// Skips loudly, or fails when the VM is required.
pub fn skip(test: &str, why: &str) {
    if required() {
        panic!("{test}: IPSEC_REQUIRE_VM=1 but {why}");
    }
    eprintln!("SKIPPED: {test}: {why}");
}

/// The kernel-vm tools and a cache for the downloaded kernel packages.
pub struct KernelVm {
    pub tools: PathBuf,
    pub cache: PathBuf,
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// `run-vm.sh -n`: `none`, or `dgram:HOSTPORT:GUESTPORT`.
    pub net: String,
    /// Extra kernel command line (`kvmtest.ip=192.0.2.2/24` ...).
    pub kargs: String,
    /// Seconds before the VM is killed.
    pub timeout: u32,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            net: "none".into(),
            kargs: String::new(),
            timeout: 300,
        }
    }
}

/// What a boot gave.
#[derive(Debug)]
pub struct VmRun {
    /// The guest script's exit status (run-vm.sh: 124 timeout, 125 no status line).
    pub status: Option<i32>,
    /// The serial console, `\r` removed.
    pub console: String,
    pub seconds: f64,
}

impl KernelVm {
    /// The tools beside the repository (`<repo>/../shared/tools/kernel-vm`)
    /// and qemu; `Err` says what is missing.
    pub fn find(repo: &Path) -> Result<KernelVm, String> {
        let tools = repo.join("../shared/tools/kernel-vm");
        for f in ["make-initramfs.sh", "run-vm.sh"] {
            if !tools.join(f).is_file() {
                return Err(format!("{} not found", tools.join(f).display()));
            }
        }
        let qemu = Command::new("sh")
            .args(["-c", "command -v qemu-system-x86_64"])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !qemu {
            return Err(
                "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)".into(),
            );
        }
        Ok(KernelVm {
            tools,
            cache: repo.join("target/kernel-vm-cache"),
        })
    }

    /// Makes kernel + initramfs in `out` with `script` as the guest's
    /// /test.sh and `bins` in its /bin. `Err` carries the script's output.
    pub fn build(&self, out: &Path, script: &Path, bins: &[&Path]) -> Result<(), String> {
        self.build_with(out, script, bins, false)
    }

    /// [`build`](Self::build), and with `iproute` the host's iproute2 as
    /// the guest's `/usr/sbin/ip` (for `ip xfrm policy`; call it by that
    /// full path, busybox's own `ip` has no xfrm).
    pub fn build_with(
        &self,
        out: &Path,
        script: &Path,
        bins: &[&Path],
        iproute: bool,
    ) -> Result<(), String> {
        let mut c = Command::new("sh");
        c.arg(self.tools.join("make-initramfs.sh"));
        if iproute {
            c.arg("-I");
        }
        c.arg("-P").arg("-s").arg(script).arg("-c").arg(&self.cache);
        for b in bins {
            c.arg("-b").arg(b);
        }
        c.arg(out);
        let o = c.output().map_err(|e| format!("make-initramfs.sh: {e}"))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "make-initramfs.sh failed ({}):\n{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    }

    /// Boots `build` and waits for the guest to power off.
    pub fn run(&self, build: &Path, opts: &RunOpts) -> Result<VmRun, String> {
        let log = build.join("serial.log");
        let t = Instant::now();
        let o = Command::new("sh")
            .arg(self.tools.join("run-vm.sh"))
            .args([
                "-a",
                "auto",
                "-t",
                &opts.timeout.to_string(),
                "-n",
                &opts.net,
            ])
            .arg("-k")
            .arg(&opts.kargs)
            .arg("-l")
            .arg(&log)
            .arg(build)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("run-vm.sh: {e}"))?;
        let console = std::fs::read_to_string(&log)
            .map(|s| s.replace('\r', ""))
            .unwrap_or_default();
        let seconds = t.elapsed().as_secs_f64();
        if o.status.code() == Some(2) {
            return Err(format!(
                "run-vm.sh refused: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(VmRun {
            status: o.status.code(),
            console,
            seconds,
        })
    }
}

/// A VM booting or running: its serial console arrives line by line
/// (`\r` removed) while the test talks to the guest over the network.
/// Dropping it kills the VM.
pub struct RunningVm {
    child: std::process::Child,
    lines: Receiver<String>,
    started: Instant,
    /// Every console line received so far.
    pub console: Vec<String>,
}

impl KernelVm {
    /// Boots `build` and returns at once; read the console with
    /// [`RunningVm::wait_for`], end with [`RunningVm::finish`].
    pub fn spawn(&self, build: &Path, opts: &RunOpts) -> Result<RunningVm, String> {
        let mut child = Command::new("sh")
            .arg(self.tools.join("run-vm.sh"))
            .args([
                "-a",
                "auto",
                "-t",
                &opts.timeout.to_string(),
                "-n",
                &opts.net,
            ])
            .arg("-k")
            .arg(&opts.kargs)
            .arg(build)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: qemu, `timeout` and `tail` go with it.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("run-vm.sh: {e}"))?;
        let out = child.stdout.take().ok_or("run-vm.sh: no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l.replace('\r', "")).is_err() {
                    break;
                }
            }
        });
        Ok(RunningVm {
            child,
            lines,
            started: Instant::now(),
            console: Vec::new(),
        })
    }
}

impl RunningVm {
    /// Waits up to `timeout` for a console line `want` accepts and returns
    /// it; `None` on timeout or when the VM has ended.
    pub fn wait_for(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let l = self.lines.recv_timeout(left).ok()?;
            self.console.push(l.clone());
            if want(&l) {
                return Some(l);
            }
        }
        None
    }

    /// Waits for the guest to power off (reading the rest of the console);
    /// the guest script's status as run-vm.sh gives it, and the seconds
    /// since the boot started.
    pub fn finish(&mut self, timeout: Duration) -> (Option<i32>, f64) {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => self.console.push(l),
                Err(_) => break,
            }
        }
        // The console has ended; run-vm.sh exits right after.
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
                _ => break None,
            }
        };
        (status, self.started.elapsed().as_secs_f64())
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group this test started (run-vm.sh, timeout, qemu, tail).
            let pgid = self.child.id() as i32;
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{pgid}")])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Quotes `s` for the guest's busybox sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
