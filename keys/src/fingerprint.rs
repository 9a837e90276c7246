//! Fingerprints and safety numbers.
//!
//! A [`Fingerprint`] is SHA-256 over a domain tag and both public keys. Its hex form is
//! what users paste to add a contact; its *safety number* (30 decimal digits in groups of
//! five) is what two people read to each other to verify a contact, in the manner of
//! Signal's safety numbers. Digits are easier to compare aloud than hex.

use sha2::{Digest, Sha256};

use crate::identity::PublicIdentity;

const DOMAIN: &[u8] = b"chorus/fingerprint/v1";

/// SHA-256 of an identity's public keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `id`.
    pub fn of(id: &PublicIdentity) -> Self {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(id.sign);
        h.update(id.dh);
        Self(h.finalize().into())
    }

    /// Full lowercase hex (64 characters): the form users paste.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse the hex form, tolerating spaces and colons people add when copying.
    pub fn parse(text: &str) -> Option<Self> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(cleaned, &mut out).ok()?;
        Some(Self(out))
    }

    /// First 8 hex characters, for logs and debug output.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Six groups of five digits derived from the first 30 bytes (5 bytes per group,
    /// reduced mod 100000; the bias from 2^40 mod 10^5 is negligible for comparison).
    pub fn safety_number(&self) -> String {
        self.0[..30]
            .chunks_exact(5)
            .map(|chunk| {
                let v = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                format!("{:05}", v % 100_000)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The safety number of a pair of identities: both halves in a canonical order, so
    /// both people see the same 60 digits.
    pub fn pair_safety_number(a: &Fingerprint, b: &Fingerprint) -> String {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        format!("{} {}", lo.safety_number(), hi.safety_number())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    #[test]
    fn safety_number_has_six_groups_of_five_digits() {
        let id = Identity::generate(&mut rand_core::OsRng).public();
        let sn = id.fingerprint().safety_number();
        let groups: Vec<_> = sn.split(' ').collect();
        assert_eq!(groups.len(), 6);
        assert!(groups
            .iter()
            .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
    }

    #[test]
    fn pair_safety_number_is_symmetric() {
        let a = Identity::generate(&mut rand_core::OsRng)
            .public()
            .fingerprint();
        let b = Identity::generate(&mut rand_core::OsRng)
            .public()
            .fingerprint();
        assert_eq!(
            Fingerprint::pair_safety_number(&a, &b),
            Fingerprint::pair_safety_number(&b, &a)
        );
    }

    #[test]
    fn hex_parse_round_trips_with_separators() {
        let fp = Identity::generate(&mut rand_core::OsRng)
            .public()
            .fingerprint();
        let spaced: String = fp
            .to_hex()
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(Fingerprint::parse(&spaced), Some(fp));
        assert_eq!(Fingerprint::parse("zz"), None);
    }
}
