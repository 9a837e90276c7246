//! Identity = ed25519 signing key + x25519 static key, generated together.

use ed25519_dalek::Signer;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// A full identity, including secrets. Not `Clone` on purpose: secrets should have one
/// owner. Both halves zeroize on drop (dalek's `zeroize` feature).
pub struct Identity {
    signing: ed25519_dalek::SigningKey,
    dh: x25519_dalek::StaticSecret,
}

/// The public half of an [`Identity`]: what goes into configs and the directory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicIdentity {
    /// ed25519 verifying key bytes.
    pub sign: [u8; 32],
    /// x25519 public key bytes.
    pub dh: [u8; 32],
}

/// Why public key bytes were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublicKeyError {
    /// The bytes are not a valid compressed Edwards point.
    #[error("not a valid ed25519 public key")]
    InvalidEd25519,
    /// The hex text could not be decoded into exactly 32 bytes.
    #[error("expected 64 hex characters (32 bytes), got {0:?}")]
    BadHex(String),
}

impl Identity {
    /// A fresh random identity.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let signing = ed25519_dalek::SigningKey::generate(rng);
        let dh = x25519_dalek::StaticSecret::random_from_rng(rng);
        Self { signing, dh }
    }

    /// Rebuild from raw secret bytes (used by the key file loader).
    pub fn from_secret_bytes(ed25519_seed: &[u8; 32], x25519_secret: &[u8; 32]) -> Self {
        Self {
            signing: ed25519_dalek::SigningKey::from_bytes(ed25519_seed),
            dh: x25519_dalek::StaticSecret::from(*x25519_secret),
        }
    }

    /// The secret bytes, for writing a key file. Callers must zeroize the result.
    pub(crate) fn secret_bytes(&self) -> ([u8; 32], [u8; 32]) {
        (self.signing.to_bytes(), self.dh.to_bytes())
    }

    /// The ed25519 seed, for building a libp2p keypair in `actors`/`client`.
    /// The returned buffer zeroizes on drop.
    pub fn ed25519_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.signing.to_bytes())
    }

    /// The x25519 secret, for opening shares (servers) and slots (clients).
    pub fn x25519_secret(&self) -> &x25519_dalek::StaticSecret {
        &self.dh
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            sign: self.signing.verifying_key().to_bytes(),
            dh: x25519_dalek::PublicKey::from(&self.dh).to_bytes(),
        }
    }

    /// Sign `msg` with the ed25519 key.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// Sign `msg` with the x25519 key (XEdDSA, as Signal specifies it): proves
    /// possession of the key that slots are sealed to. Verify with [`verify_xeddsa`].
    pub fn sign_with_dh(&self, msg: &[u8]) -> [u8; 64] {
        use xeddsa::Sign;
        let key = xeddsa::xed25519::PrivateKey::from(&self.dh);
        key.sign(msg, rand_core::OsRng)
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug output.
        f.debug_struct("Identity")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

impl PublicIdentity {
    /// Verify an ed25519 signature by this identity. Returns false on any problem
    /// (invalid key bytes included) — the caller maps that to its own error.
    pub fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> bool {
        verify_ed25519(&self.sign, msg, signature)
    }

    /// The human fingerprint of this identity.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self)
    }

    /// The x25519 public key.
    pub fn x25519(&self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.dh)
    }

    /// Check that the ed25519 half is a valid point.
    pub fn validate(&self) -> Result<(), PublicKeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.sign)
            .map(|_| ())
            .map_err(|_| PublicKeyError::InvalidEd25519)
    }
}

impl std::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicIdentity({})", self.fingerprint().short())
    }
}

/// Verify an ed25519 signature over `msg` by the key `public`. Uses strict verification so
/// that a signature has exactly one valid encoding (no malleability-based replays): it
/// refuses small-order keys and `R`, then checks the same equation as plain `verify`, so
/// checking both (as this once did) only doubled the cost of every signature.
pub fn verify_ed25519(public: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(msg, &sig).is_ok()
}

/// Verify an XEdDSA signature over `msg` by the x25519 key `public` (see
/// [`Identity::sign_with_dh`]). False on any problem, unusable keys included.
pub fn verify_xeddsa(public: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> bool {
    use xeddsa::Verify;
    xeddsa::xed25519::PublicKey(*public)
        .verify(msg, signature)
        .is_ok()
}

/// Parse 64 hex characters into 32 bytes.
pub fn parse_hex32(text: &str) -> Result<[u8; 32], PublicKeyError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| PublicKeyError::BadHex(text.chars().take(80).collect()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let id = Identity::generate(&mut rand_core::OsRng);
        let sig = id.sign(b"hello");
        assert!(id.public().verify(b"hello", &sig));
        assert!(!id.public().verify(b"hellp", &sig));
    }

    #[test]
    fn forgeries_that_plain_verification_would_take_are_refused() {
        // The identity point as key and as R, with s = 0: [0]B - [k]A = R for every
        // message, so plain verification accepts it; a key of small order is refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        let key = ed25519_dalek::VerifyingKey::from_bytes(&identity).expect("decodes");
        let sig = ed25519_dalek::Signature::from_bytes(&forged);
        assert!(ed25519_dalek::Verifier::verify(&key, b"any", &sig).is_ok());
        assert!(!verify_ed25519(&identity, b"any", &forged));
        // s + l (the group order) is the same signature in another encoding: refused.
        let id = Identity::generate(&mut rand_core::OsRng);
        let mut sig = id.sign(b"once");
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (b, add) in sig[32..].iter_mut().zip(l) {
            let v = u16::from(*b) + u16::from(add) + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        assert!(!id.public().verify(b"once", &sig));
    }

    #[test]
    fn the_x25519_key_signs_and_only_it_verifies() {
        let id = Identity::generate(&mut rand_core::OsRng);
        let other = Identity::generate(&mut rand_core::OsRng);
        let sig = id.sign_with_dh(b"register alice");
        assert!(verify_xeddsa(&id.public().dh, b"register alice", &sig));
        assert!(!verify_xeddsa(&id.public().dh, b"register mallory", &sig));
        assert!(!verify_xeddsa(&other.public().dh, b"register alice", &sig));
        // An ed25519 signature is not an x25519 one, even over the same bytes.
        assert!(!verify_xeddsa(
            &id.public().dh,
            b"register alice",
            &id.sign(b"register alice")
        ));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let id = Identity::generate(&mut rand_core::OsRng);
        let (seed, _) = id.secret_bytes();
        let text = format!("{id:?}");
        assert!(!text.contains(&hex::encode(seed)));
    }
}
