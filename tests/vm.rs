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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

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
        let mut c = Command::new("sh");
        c.arg(self.tools.join("make-initramfs.sh"))
            .arg("-P")
            .arg("-s")
            .arg(script)
            .arg("-c")
            .arg(&self.cache);
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

/// Quotes `s` for the guest's busybox sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
