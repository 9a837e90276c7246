//! Sealing a share to one server: ephemeral x25519 → HKDF-SHA256 → ChaCha20-Poly1305.
//!
//! The AAD binds the round, the client and the server index, so a sealed share cannot be
//! moved to another round, another client's submission or another server's slot. Each
//! share has its own ephemeral key, so a zero nonce is safe (every key is used once).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::bounded::{Bytes, Fixed};
use crate::wire::{ClientId, Round, SealedShare, ServerIndex};

/// Why a sealed share could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Authentication failed: wrong key, wrong round/client/server, or tampered bytes.
    #[error("share does not authenticate for this round, client and server")]
    Unauthentic,
    /// The ephemeral key is a low-order point (the shared secret would be all zero).
    #[error("ephemeral key is a low-order point")]
    WeakEphemeral,
    /// Ciphertext shorter than a tag.
    #[error("ciphertext too short")]
    TooShort,
}

fn aad(round: Round, client: &ClientId, server: ServerIndex) -> [u8; 8 + 32 + 2 + 8] {
    let mut a = [0u8; 50];
    a[..8].copy_from_slice(b"chorus/s");
    a[8..16].copy_from_slice(&round.to_le_bytes());
    a[16..48].copy_from_slice(&client.0);
    a[48..50].copy_from_slice(&server.to_le_bytes());
    a
}

fn derive_key(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    server_pub: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(server_pub);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte maximum, so expand cannot fail.
    if hk.expand(b"chorus/share-key/v1", okm.as_mut()).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    okm
}

/// Seal `share` for server `server` whose x25519 public key is `server_pub`.
pub fn seal_share<R: RngCore + CryptoRng>(
    share: &[u8],
    round: Round,
    client: &ClientId,
    server: ServerIndex,
    server_pub: &PublicKey,
    rng: &mut R,
) -> SealedShare {
    let eph = EphemeralSecret::random_from_rng(rng);
    let eph_pub = PublicKey::from(&eph);
    let shared = eph.diffie_hellman(server_pub);
    let key = derive_key(shared.as_bytes(), eph_pub.as_bytes(), server_pub.as_bytes());
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let aad = aad(round, client, server);
    // Encryption with a valid key cannot fail for inputs under 256 GiB.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: share,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    debug_assert_eq!(ct.len(), share.len() + crate::limits::TAG_BYTES);
    SealedShare {
        ephemeral: Fixed(eph_pub.to_bytes()),
        // The caller passes a vector within MAX_VECTOR_BYTES (checked by RoundParams).
        ciphertext: Bytes::new(ct).unwrap_or_default(),
    }
}

/// Open a share sealed to this server.
pub fn open_share(
    sealed: &SealedShare,
    round: Round,
    client: &ClientId,
    server: ServerIndex,
    server_secret: &StaticSecret,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if sealed.ciphertext.len() < crate::limits::TAG_BYTES {
        return Err(OpenError::TooShort);
    }
    let eph_pub = PublicKey::from(sealed.ephemeral.0);
    let shared = server_secret.diffie_hellman(&eph_pub);
    if !shared.was_contributory() {
        return Err(OpenError::WeakEphemeral);
    }
    let server_pub = PublicKey::from(server_secret);
    let key = derive_key(
        shared.as_bytes(),
        &sealed.ephemeral.0,
        server_pub.as_bytes(),
    );
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let aad = aad(round, client, server);
    cipher
        .decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: sealed.ciphertext.as_slice(),
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let mut rng = rand_core::OsRng;
        let server = StaticSecret::random_from_rng(rng);
        let server_pub = PublicKey::from(&server);
        let client = Fixed([7u8; 32]);
        let sealed = seal_share(b"share bytes", 5, &client, 2, &server_pub, &mut rng);
        assert_eq!(
            open_share(&sealed, 5, &client, 2, &server)
                .expect("open")
                .as_slice(),
            b"share bytes"
        );
        assert_eq!(
            open_share(&sealed, 6, &client, 2, &server),
            Err(OpenError::Unauthentic)
        );
        assert_eq!(
            open_share(&sealed, 5, &Fixed([8u8; 32]), 2, &server),
            Err(OpenError::Unauthentic)
        );
        assert_eq!(
            open_share(&sealed, 5, &client, 1, &server),
            Err(OpenError::Unauthentic)
        );
        let other = StaticSecret::random_from_rng(rng);
        assert_eq!(
            open_share(&sealed, 5, &client, 2, &other),
            Err(OpenError::Unauthentic)
        );
    }

    #[test]
    fn low_order_ephemeral_is_refused() {
        let server = StaticSecret::random_from_rng(rand_core::OsRng);
        let sealed = SealedShare {
            ephemeral: Fixed([0u8; 32]),
            ciphertext: Bytes::new(vec![0u8; 40]).expect("small"),
        };
        assert_eq!(
            open_share(&sealed, 1, &Fixed([0; 32]), 0, &server),
            Err(OpenError::WeakEphemeral)
        );
    }
}
