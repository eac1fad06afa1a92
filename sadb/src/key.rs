//! Key material as a type: zeroized on drop, compared in constant time, and
//! never printed by `Debug` (STYLE.md 5).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The bytes of an authentication or encryption key (plus salt, where an
/// algorithm carries one at the end of its key).
#[derive(Clone, Default)]
pub struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    pub fn new(bytes: Vec<u8>) -> Self {
        KeyMaterial(Zeroizing::new(bytes))
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        KeyMaterial::new(bytes.to_vec())
    }

    /// The key bytes. Only the code that needs the key itself (crypto set-up,
    /// the wire encoder, and the printers the manual says show keys) calls this.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Mutable access, for parity correction of DES keys.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every byte is zero (checked in constant time).
    pub fn is_all_zero(&self) -> bool {
        let acc = self.0.iter().fold(0u8, |a, b| a | b);
        bool::from(acc.ct_eq(&0))
    }
}

impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}
impl Eq for KeyMaterial {}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = KeyMaterial::from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let s = format!("{k:?}");
        assert_eq!(s, "<redacted 4 bytes>");
        assert!(!s.contains("de") && !s.contains("222"));
    }

    #[test]
    fn equality_and_zero_check() {
        assert_eq!(
            KeyMaterial::from_slice(&[1, 2]),
            KeyMaterial::from_slice(&[1, 2])
        );
        assert_ne!(
            KeyMaterial::from_slice(&[1, 2]),
            KeyMaterial::from_slice(&[1, 3])
        );
        assert_ne!(
            KeyMaterial::from_slice(&[1, 2]),
            KeyMaterial::from_slice(&[1, 2, 0])
        );
        assert!(KeyMaterial::from_slice(&[0, 0, 0]).is_all_zero());
        assert!(!KeyMaterial::from_slice(&[0, 0, 1]).is_all_zero());
    }
}
