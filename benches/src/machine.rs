//! What the numbers were measured on, recorded next to them.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo ("unknown" elsewhere).
    pub cpu: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// The crypto-relevant CPU features present (aes, pclmulqdq, avx2,
    /// avx512f, vaes, vpclmulqdq, sha_ni), as /proc/cpuinfo lists them.
    pub features: Vec<String>,
    pub os: String,
    /// UTC, RFC 3339.
    pub date: String,
    /// The tool's version and whether it was built with optimisations.
    pub tool: String,
}

impl Machine {
    pub fn here() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let flags = field("flags").unwrap_or_default();
        let features = [
            "aes",
            "pclmulqdq",
            "avx2",
            "avx512f",
            "vaes",
            "vpclmulqdq",
            "sha_ni",
        ]
        .iter()
        .filter(|f| flags.split_whitespace().any(|x| x == **f))
        .map(|f| f.to_string())
        .collect();
        Machine {
            cpu: field("model name").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            features,
            os: std::env::consts::OS.to_string(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            tool: format!(
                "ipsec-bench {} ({})",
                env!("CARGO_PKG_VERSION"),
                if cfg!(debug_assertions) {
                    "debug build: numbers are not meaningful"
                } else {
                    "release build"
                }
            ),
        }
    }
}
