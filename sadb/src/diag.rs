//! illumos PF_KEY diagnostic codes (`SADB_X_DIAGNOSTIC_*`), carried in the
//! base header's reserved field of an error reply, with the texts ipseckey
//! prints for them (ipseckey-behaviour.md 4.7).

macro_rules! diagnostics {
    ($($name:ident = $code:literal, $text:literal;)*) => {
        /// A PF_KEY diagnostic code. `Other` keeps codes this table does not know.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Diagnostic {
            $($name,)*
            Other(u16),
        }

        impl Diagnostic {
            /// The number on the wire.
            pub fn code(self) -> u16 {
                match self {
                    $(Diagnostic::$name => $code,)*
                    Diagnostic::Other(n) => n,
                }
            }

            /// The diagnostic with wire number `code`.
            pub fn from_code(code: u16) -> Diagnostic {
                match code {
                    $($code => Diagnostic::$name,)*
                    n => Diagnostic::Other(n),
                }
            }

            /// The text `ipseckey` prints (libipsecutil's `keysock_diag()`).
            pub fn text(self) -> &'static str {
                match self {
                    $(Diagnostic::$name => $text,)*
                    Diagnostic::Other(_) => "Unknown diagnostic code",
                }
            }
        }
    };
}

/// SADB_X_DIAGNOSTIC_BAD_LABEL: raised by the kernel, but ipseckey has no text for it.
pub const BAD_LABEL: Diagnostic = Diagnostic::Other(83);

diagnostics! {
    None = 0, "No diagnostic";
    UnknownMsg = 1, "Unknown message type";
    UnknownExt = 2, "Unknown extension type";
    BadExtlen = 3, "Bad extension length";
    UnknownSatype = 4, "Unknown Security Association type";
    SatypeNeeded = 5, "Specific Security Association type needed";
    NoSadbs = 6, "No Security Association Databases present";
    NoExt = 7, "No extensions needed for message";
    BadSrcAf = 8, "Bad source address family";
    BadDstAf = 9, "Bad destination address family";
    BadInnerSrcAf = 10, "Bad inner-source address family";
    AfMismatch = 11, "Source/destination address family mismatch";
    BadSrc = 12, "Bad source address value";
    BadDst = 13, "Bad destination address value";
    AllocHserr = 14, "Soft allocations limit more than hard limit";
    BytesHserr = 15, "Soft bytes limit more than hard limit";
    AddtimeHserr = 16, "Soft add expiration time later than hard expiration time";
    UsetimeHserr = 17, "Soft use expiration time later than hard expiration time";
    MissingSrc = 18, "Missing source address";
    MissingDst = 19, "Missing destination address";
    MissingSa = 20, "Missing SA extension";
    MissingEkey = 21, "Missing encryption key";
    MissingAkey = 22, "Missing authentication key";
    MissingRange = 23, "Missing SPI range";
    DuplicateSrc = 24, "Duplicate source address";
    DuplicateDst = 25, "Duplicate destination address";
    DuplicateSa = 26, "Duplicate SA extension";
    DuplicateEkey = 27, "Duplicate encryption key";
    DuplicateAkey = 28, "Duplicate authentication key";
    DuplicateRange = 29, "Duplicate SPI range";
    MalformedSrc = 30, "Malformed source address";
    MalformedDst = 31, "Malformed destination address";
    MalformedSa = 32, "Malformed SA extension";
    MalformedEkey = 33, "Malformed encryption key";
    MalformedAkey = 34, "Malformed authentication key";
    MalformedRange = 35, "Malformed SPI range";
    AkeyPresent = 36, "Authentication key not needed";
    EkeyPresent = 37, "Encryption key not needed";
    PropPresent = 38, "Proposal extension not needed";
    SuppPresent = 39, "Supported algorithms extension not needed";
    BadAalg = 40, "Unsupported authentication algorithm";
    BadEalg = 41, "Unsupported encryption algorithm";
    BadSaflags = 42, "Invalid SA flags";
    BadSastate = 43, "Invalid SA state";
    BadAkeybits = 44, "Bad number of authentication bits";
    BadEkeybits = 45, "Bad number of encryption bits";
    EncrNotsupp = 46, "Encryption not supported for this SA type";
    WeakEkey = 47, "Weak encryption key";
    WeakAkey = 48, "Weak authentication key";
    DuplicateKmp = 49, "Duplicate key management protocol";
    DuplicateKmc = 50, "Duplicate key management cookie";
    MissingNattLoc = 51, "Missing NAT-T local address";
    MissingNattRem = 52, "Missing NAT-T remote address";
    DuplicateNattLoc = 53, "Duplicate NAT-T local address";
    DuplicateNattRem = 54, "Duplicate NAT-T remote address";
    MalformedNattLoc = 55, "Malformed NAT-T local address";
    MalformedNattRem = 56, "Malformed NAT-T remote address";
    DuplicateNattPorts = 57, "Duplicate NAT-T ports";
    MissingInnerSrc = 58, "Missing inner source address";
    MissingInnerDst = 59, "Missing inner destination address";
    DuplicateInnerSrc = 60, "Duplicate inner source address";
    DuplicateInnerDst = 61, "Duplicate inner destination address";
    MalformedInnerSrc = 62, "Malformed inner source address";
    MalformedInnerDst = 63, "Malformed inner destination address";
    PrefixInnerSrc = 64, "Invalid inner-source prefix length ";
    PrefixInnerDst = 65, "Invalid inner-destination prefix length";
    BadInnerDstAf = 66, "Bad inner-destination address family";
    InnerAfMismatch = 67, "Inner source/destination address family mismatch";
    BadNattRemAf = 68, "Bad NAT-T remote address family";
    BadNattLocAf = 69, "Bad NAT-T local address family";
    ProtoMismatch = 70, "Source/desination protocol mismatch";
    InnerProtoMismatch = 71, "Inner source/desination protocol mismatch";
    DualPortSets = 72, "Both inner ports and outer ports are set";
    PairInappropriate = 73, "Pairing failed, target SA unsuitable for pairing";
    PairAddMismatch = 74, "Source/destination address differs from pair SA";
    PairAlready = 75, "Already paired with another security association";
    PairSaNotfound = 76, "Command failed, pair security association not found";
    BadSaDirection = 77, "Inappropriate SA direction";
    SaNotfound = 78, "Security association not found";
    SaExpired = 79, "Security association is not valid";
    BadCtx = 80, "Algorithm invalid or not supported by Crypto Framework";
    InvalidReplay = 81, "Invalid Replay counter";
    MissingLifetime = 82, "Inappropriate lifetimes";
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Diagnostic code {}: {}", self.code(), self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=90u16 {
            assert_eq!(Diagnostic::from_code(code).code(), code);
        }
    }

    #[test]
    fn texts_keep_illumos_quirks() {
        // The trailing space and the misspelling are what ipseckey prints.
        assert_eq!(
            Diagnostic::from_code(64).text(),
            "Invalid inner-source prefix length "
        );
        assert_eq!(
            Diagnostic::ProtoMismatch.text(),
            "Source/desination protocol mismatch"
        );
        // 83 (BAD_LABEL) has no text in ipseckey's table.
        assert_eq!(Diagnostic::from_code(83), Diagnostic::Other(83));
        assert_eq!(Diagnostic::from_code(83).text(), "Unknown diagnostic code");
    }
}
