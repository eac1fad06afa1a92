//! Error numbers as PF_KEY carries them in `sadb_msg_errno`.
//!
//! The byte on the wire is in the *responding kernel's* errno space, so the
//! same name has different numbers on illumos and Linux (pfkey-v2-wire.md 1.6).

use crate::pfkey::Dialect;

/// The errno values PF_KEY uses, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    Eperm,
    Enoent,
    Esrch,
    Eintr,
    Enomem,
    Eacces,
    Ebusy,
    Eexist,
    Einval,
    Enosys,
    Eloop,
    Emsgsize,
    Eprototype,
    Enoprotoopt,
    Eprotonosupport,
    Eopnotsupp,
    Eafnosupport,
    Enobufs,
}

const TABLE: &[(Errno, u8, u8, &str)] = &[
    // (name, illumos, linux, illumos strerror text)
    (Errno::Eperm, 1, 1, "Not owner"),
    (Errno::Enoent, 2, 2, "No such file or directory"),
    (Errno::Esrch, 3, 3, "No such process"),
    (Errno::Eintr, 4, 4, "Interrupted system call"),
    (Errno::Enomem, 12, 12, "Not enough space"),
    (Errno::Eacces, 13, 13, "Permission denied"),
    (Errno::Ebusy, 16, 16, "Device busy"),
    (Errno::Eexist, 17, 17, "File exists"),
    (Errno::Einval, 22, 22, "Invalid argument"),
    (Errno::Enosys, 89, 38, "Operation not applicable"),
    (
        Errno::Eloop,
        90,
        40,
        "Number of symbolic links encountered during path name traversal exceeds MAXSYMLINKS",
    ),
    (Errno::Emsgsize, 97, 90, "Message too long"),
    (Errno::Eprototype, 98, 91, "Protocol wrong type for socket"),
    (
        Errno::Enoprotoopt,
        99,
        92,
        "Option not supported by protocol",
    ),
    (Errno::Eprotonosupport, 120, 93, "Protocol not supported"),
    (Errno::Eopnotsupp, 122, 95, "Operation not supported"),
    (
        Errno::Eafnosupport,
        124,
        97,
        "Address family not supported by protocol family",
    ),
    (Errno::Enobufs, 132, 105, "No buffer space available"),
];

impl Errno {
    /// The number this errno has in `dialect`'s kernel.
    pub fn number(self, dialect: Dialect) -> u8 {
        // TABLE lists the variants in declaration order (checked by a test).
        let row = &TABLE[self as usize];
        match dialect {
            Dialect::Illumos => row.1,
            Dialect::Linux => row.2,
        }
    }

    /// The errno a kernel of `dialect` meant by `n`, if it is one PF_KEY uses.
    pub fn from_number(n: u8, dialect: Dialect) -> Option<Errno> {
        TABLE
            .iter()
            .find(|r| match dialect {
                Dialect::Illumos => r.1 == n,
                Dialect::Linux => r.2 == n,
            })
            .map(|r| r.0)
    }

    /// The symbolic name, e.g. `EINVAL`.
    pub fn name(self) -> &'static str {
        match self {
            Errno::Eperm => "EPERM",
            Errno::Enoent => "ENOENT",
            Errno::Esrch => "ESRCH",
            Errno::Eintr => "EINTR",
            Errno::Enomem => "ENOMEM",
            Errno::Eacces => "EACCES",
            Errno::Ebusy => "EBUSY",
            Errno::Eexist => "EEXIST",
            Errno::Einval => "EINVAL",
            Errno::Enosys => "ENOSYS",
            Errno::Eloop => "ELOOP",
            Errno::Emsgsize => "EMSGSIZE",
            Errno::Eprototype => "EPROTOTYPE",
            Errno::Enoprotoopt => "ENOPROTOOPT",
            Errno::Eprotonosupport => "EPROTONOSUPPORT",
            Errno::Eopnotsupp => "EOPNOTSUPP",
            Errno::Eafnosupport => "EAFNOSUPPORT",
            Errno::Enobufs => "ENOBUFS",
        }
    }

    /// illumos `strerror` text, which ipseckey prints.
    pub fn illumos_text(self) -> &'static str {
        TABLE[self as usize].3
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i);
        }
    }

    #[test]
    fn numbers_round_trip_in_each_dialect() {
        for &(e, _, _, _) in TABLE {
            for d in [Dialect::Illumos, Dialect::Linux] {
                assert_eq!(Errno::from_number(e.number(d), d), Some(e));
            }
        }
    }

    #[test]
    fn dialects_disagree_where_the_reference_says() {
        assert_eq!(Errno::Enosys.number(Dialect::Illumos), 89);
        assert_eq!(Errno::Enosys.number(Dialect::Linux), 38);
        assert_eq!(Errno::Eafnosupport.number(Dialect::Linux), 97);
        assert_eq!(Errno::Einval.number(Dialect::Illumos), 22);
    }
}
