//! Real-kernel mode: the same front end on the host's own kernel, through
//! Linux PF_KEY ([`pfkey`]) or XFRM netlink ([`xfrm`]).
//!
//! Chosen only when asked for (`--kernel[=pfkey|xfrm]` or
//! `IPSECKEY_KERNEL=pfkey|xfrm`), never silently. Each transport takes the
//! illumos-style messages the front end builds, refuses what the kernel
//! lacks before sending (naming the feature and the kernel), and hands back
//! the kernel's answers in the form the printers know, so output layouts
//! are the simulator's.

pub mod linux;
pub mod pfkey;
pub mod xfrm;

use std::io;

use crate::transport::Transport;

/// Which kernel interface to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Linux `af_key` (PF_KEY v2), deprecated upstream, often not built.
    PfKey,
    /// Linux XFRM netlink, what `ip xfrm` uses.
    Xfrm,
}

impl KernelKind {
    /// `pfkey`, `xfrm` (and `pf_key`, `netlink` as synonyms).
    pub fn from_word(s: &str) -> Option<KernelKind> {
        match s.to_ascii_lowercase().as_str() {
            "pfkey" | "pf_key" | "pf-key" | "af_key" => Some(KernelKind::PfKey),
            "xfrm" | "netlink" => Some(KernelKind::Xfrm),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelKind::PfKey => "PF_KEY",
            KernelKind::Xfrm => "XFRM netlink",
        }
    }
}

/// Opens the kernel interface `kind`.
pub fn open(kind: KernelKind) -> Result<Box<dyn Transport>, String> {
    Ok(match kind {
        KernelKind::PfKey => Box::new(pfkey::LinuxPfKey::open()?),
        KernelKind::Xfrm => Box::new(xfrm::Xfrm::open()?),
    })
}

/// What to tell the user when the kernel socket cannot be opened.
pub fn open_error(kind: KernelKind, e: io::Error) -> String {
    let what = match kind {
        KernelKind::PfKey => "the kernel's PF_KEY socket",
        KernelKind::Xfrm => "the kernel's XFRM netlink socket",
    };
    match (kind, e.raw_os_error()) {
        (_, Some(libc::EPERM)) | (_, Some(libc::EACCES)) => format!(
            "ipseckey: cannot open {what}: {e}; the kernel's SA database needs root \
             (CAP_NET_ADMIN). Run as root, or use the simulator (--embedded or sadbd)."
        ),
        (KernelKind::PfKey, Some(libc::EAFNOSUPPORT))
        | (KernelKind::PfKey, Some(libc::EPROTONOSUPPORT)) => format!(
            "ipseckey: cannot open {what}: {e}; this kernel has no PF_KEY (af_key is not \
             built or loaded: try `modprobe af_key`). Linux is removing PF_KEY: use \
             --kernel=xfrm, which speaks XFRM netlink."
        ),
        (KernelKind::Xfrm, Some(libc::EPROTONOSUPPORT))
        | (KernelKind::Xfrm, Some(libc::EAFNOSUPPORT)) => format!(
            "ipseckey: cannot open {what}: {e}; this kernel has no XFRM netlink \
             (xfrm_user is not built or loaded: try `modprobe xfrm_user`)."
        ),
        _ => format!("ipseckey: cannot open {what}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_say_what_to_do() {
        let e = open_error(
            KernelKind::PfKey,
            io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
        );
        assert!(e.contains("no PF_KEY"), "{e}");
        assert!(e.contains("--kernel=xfrm"), "{e}");
        let e = open_error(KernelKind::Xfrm, io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.contains("needs root"), "{e}");
        assert_eq!(KernelKind::from_word("XFRM"), Some(KernelKind::Xfrm));
        assert_eq!(KernelKind::from_word("pfkey"), Some(KernelKind::PfKey));
        assert_eq!(KernelKind::from_word("sim"), None);
    }
}
