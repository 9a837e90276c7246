//! Sealing to an x25519 key: a fresh ephemeral, HKDF-SHA256 of the shared secret and
//! both public keys, ChaCha20-Poly1305 with a zero nonce (the key is never reused).
//! Backup shares are sealed to a server's epoch key, refresh sub-shares to each
//! recipient's, and a share handed back to a restoring client to its one-time key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Bytes a sealed box adds: the ephemeral key and the AEAD tag.
pub const OVERHEAD: usize = 32 + 16;

fn key(shared: &[u8; 32], eph: &[u8; 32], to: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(b"chorus/backup/seal/v1"), shared);
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(eph);
    info[32..].copy_from_slice(to);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is within HKDF-SHA256's output limit.
    // 32 bytes is far below HKDF-SHA256's maximum, so expand cannot fail.
    if hk.expand(&info, &mut *out).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    out
}

/// Seal `plain` to `to`, bound to `aad`.
pub fn seal<R: RngCore + CryptoRng>(
    to: &[u8; 32],
    aad: &[u8],
    plain: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let eph = StaticSecret::random_from_rng(rng);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let shared = Zeroizing::new(eph.diffie_hellman(&PublicKey::from(*to)).to_bytes());
    let k = key(&shared, &eph_pub, to);
    let cipher = ChaCha20Poly1305::new((&*k).into());
    let ct = cipher
        .encrypt(&[0u8; 12].into(), Payload { msg: plain, aad })
        // Encryption only fails for inputs beyond 2^38 bytes.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(32 + ct.len());
    out.extend_from_slice(&eph_pub);
    out.extend_from_slice(&ct);
    out
}

/// Open a box sealed to `secret`'s public key; `None` if it was not, or was altered.
pub fn open(secret: &StaticSecret, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let mut eph = [0u8; 32];
    eph.copy_from_slice(&sealed[..32]);
    let to = PublicKey::from(secret).to_bytes();
    let shared = Zeroizing::new(secret.diffie_hellman(&PublicKey::from(eph)).to_bytes());
    let k = key(&shared, &eph, &to);
    let cipher = ChaCha20Poly1305::new((&*k).into());
    cipher
        .decrypt(
            &[0u8; 12].into(),
            Payload {
                msg: &sealed[32..],
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    use super::*;

    #[test]
    fn opens_only_for_its_key_and_aad() {
        let sk = StaticSecret::random_from_rng(OsRng);
        let other = StaticSecret::random_from_rng(OsRng);
        let to = PublicKey::from(&sk).to_bytes();
        let b = seal(&to, b"aad", b"secret share", &mut OsRng);
        assert_eq!(
            open(&sk, b"aad", &b).expect("opens").as_slice(),
            b"secret share"
        );
        assert!(open(&sk, b"other aad", &b).is_none());
        assert!(open(&other, b"aad", &b).is_none());
    }

    proptest! {
        #[test]
        fn random_bytes_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let sk = StaticSecret::from([7u8; 32]);
            prop_assert!(open(&sk, b"", &bytes).is_none());
        }
    }
}
