//! Sealing a share to one server: x25519 → HKDF-SHA256 → ChaCha20-Poly1305.
//!
//! The AAD binds the round, the client and the server index, so a sealed share cannot be
//! moved to another round, another client's submission or another server's slot.
//!
//! A client's ephemeral x25519 key ([`Sealer`]) serves all servers and up to
//! [`SEALER_ROUNDS`] consecutive rounds, and each server remembers the secret it shares
//! with a recent ephemeral ([`OpenCache`]): two x25519 operations per share, on every
//! client and every server every round, were the largest cost of a round at a thousand
//! clients. Each share's key is derived from that secret with the round, the client and
//! the server index, and a sealer seals at most one submission per round (a second one
//! for the same round, or an earlier one, takes a fresh ephemeral), so no key is ever
//! used twice and a zero nonce is safe. What the reuse gives up: whoever takes a
//! client's memory during an ephemeral's life can open that client's shares of those
//! rounds, if they also hold the ciphertexts, which travel only inside the Noise
//! channel to their server.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::bounded::{Bytes, Fixed};
use crate::wire::{ClientId, Round, SealedShare, ServerIndex};

/// Rounds one ephemeral key seals for before the sealer draws a new one.
pub const SEALER_ROUNDS: u64 = 64;

/// Ephemerals whose shared secret a server remembers (two generations of half this).
pub const OPEN_CACHE_ENTRIES: usize = 32_768;

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

/// The key of one share: unique per ephemeral, server key, round, client and server.
fn derive_key(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    server_pub: &[u8; 32],
    round: Round,
    client: &ClientId,
    server: ServerIndex,
) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(server_pub);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut info = [0u8; 19 + 8 + 32 + 2];
    info[..19].copy_from_slice(b"chorus/share-key/v2");
    info[19..27].copy_from_slice(&round.to_le_bytes());
    info[27..59].copy_from_slice(&client.0);
    info[59..].copy_from_slice(&server.to_le_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte maximum, so expand cannot fail.
    if hk.expand(&info, okm.as_mut()).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    okm
}

/// A client's ephemeral public key and the secrets it shares with each server.
pub struct Sealer {
    public: [u8; 32],
    /// Per server: its public key and the shared secret.
    servers: Vec<([u8; 32], Zeroizing<[u8; 32]>)>,
    first_round: Option<Round>,
    last_round: Option<Round>,
}

impl Sealer {
    /// A fresh ephemeral for `server_keys`.
    pub fn new<R: RngCore + CryptoRng>(server_keys: &[PublicKey], rng: &mut R) -> Self {
        let secret = StaticSecret::random_from_rng(rng);
        let public = PublicKey::from(&secret).to_bytes();
        let servers = server_keys
            .iter()
            .map(|k| {
                (
                    k.to_bytes(),
                    Zeroizing::new(secret.diffie_hellman(k).to_bytes()),
                )
            })
            .collect();
        // The ephemeral secret itself is erased here: only the shared secrets are kept.
        Self {
            public,
            servers,
            first_round: None,
            last_round: None,
        }
    }

    /// How many servers it seals to.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Make ready to seal one submission for `round`: a fresh ephemeral unless this one
    /// has only sealed for earlier rounds, fewer than [`SEALER_ROUNDS`] ago.
    pub fn start_round<R: RngCore + CryptoRng>(&mut self, round: Round, rng: &mut R) {
        let fresh = self.last_round.is_some_and(|last| round <= last)
            || self
                .first_round
                .is_some_and(|first| round >= first.saturating_add(SEALER_ROUNDS));
        if fresh {
            let keys: Vec<PublicKey> = self
                .servers
                .iter()
                .map(|(k, _)| PublicKey::from(*k))
                .collect();
            *self = Self::new(&keys, rng);
        }
        self.first_round.get_or_insert(round);
        self.last_round = Some(round);
    }

    /// The key of `client`'s share to `server` in `round` under the current ephemeral.
    fn key(&self, round: Round, client: &ClientId, server: ServerIndex) -> Zeroizing<[u8; 32]> {
        let (server_pub, shared) = match self.servers.get(usize::from(server)) {
            Some((k, s)) => (*k, s.clone()),
            // No such server: a key nobody holds seals nothing anyone can open.
            None => ([0u8; 32], Zeroizing::new([0u8; 32])),
        };
        derive_key(&shared, &self.public, &server_pub, round, client, server)
    }

    /// Seal `share` for server `server` in `round` (after [`Sealer::start_round`]).
    pub fn seal(
        &self,
        share: &[u8],
        round: Round,
        client: &ClientId,
        server: ServerIndex,
    ) -> SealedShare {
        let key = self.key(round, client, server);
        seal_under(
            &key,
            &self.public,
            share,
            round,
            client,
            server,
            SHARE_NONCE,
        )
    }

    /// Seal `proof` for server `server` in `round` under the same key as its share, with
    /// the proof's own nonce: the ciphertext only (the ephemeral is the share's).
    pub fn seal_proof(
        &self,
        proof: &[u8],
        round: Round,
        client: &ClientId,
        server: ServerIndex,
    ) -> Vec<u8> {
        let key = self.key(round, client, server);
        seal_under(
            &key,
            &self.public,
            proof,
            round,
            client,
            server,
            PROOF_NONCE,
        )
        .ciphertext
        .into_vec()
    }
}

/// The nonce of a share under its key.
const SHARE_NONCE: [u8; 12] = [0; 12];
/// The nonce of the proof share sealed under the same key.
const PROOF_NONCE: [u8; 12] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Encrypt `share` under its derived `key`, the ephemeral `public` beside it.
fn seal_under(
    key: &[u8; 32],
    public: &[u8; 32],
    share: &[u8],
    round: Round,
    client: &ClientId,
    server: ServerIndex,
    nonce: [u8; 12],
) -> SealedShare {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(round, client, server);
    // Encryption with a valid key cannot fail for inputs under 256 GiB.
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: share,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    debug_assert_eq!(ct.len(), share.len() + crate::limits::TAG_BYTES);
    SealedShare {
        ephemeral: Fixed(*public),
        // The caller passes a vector within MAX_VECTOR_BYTES (checked by RoundParams).
        ciphertext: Bytes::new(ct).unwrap_or_default(),
    }
}

/// Seal `share` for server `server` whose x25519 public key is `server_pub`, under a
/// fresh ephemeral of its own.
pub fn seal_share<R: RngCore + CryptoRng>(
    share: &[u8],
    round: Round,
    client: &ClientId,
    server: ServerIndex,
    server_pub: &PublicKey,
    rng: &mut R,
) -> SealedShare {
    let secret = StaticSecret::random_from_rng(rng);
    let public = PublicKey::from(&secret).to_bytes();
    let shared = Zeroizing::new(secret.diffie_hellman(server_pub).to_bytes());
    let key = derive_key(
        &shared,
        &public,
        server_pub.as_bytes(),
        round,
        client,
        server,
    );
    seal_under(&key, &public, share, round, client, server, SHARE_NONCE)
}

/// A server's key and the secrets it shares with recent ephemerals: two generations,
/// so memory stays bounded whoever sends what.
pub struct OpenCache {
    secret: StaticSecret,
    public: [u8; 32],
    current: HashMap<[u8; 32], Zeroizing<[u8; 32]>>,
    previous: HashMap<[u8; 32], Zeroizing<[u8; 32]>>,
}

impl OpenCache {
    /// An empty cache for the server key `secret`.
    pub fn new(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret).to_bytes();
        Self {
            secret,
            public,
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// The secret shared with `ephemeral`, remembered or computed.
    fn shared(&mut self, ephemeral: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        if let Some(s) = self.current.get(ephemeral) {
            return Ok(s.clone());
        }
        let shared = match self.previous.remove(ephemeral) {
            Some(s) => s,
            None => {
                let dh = self.secret.diffie_hellman(&PublicKey::from(*ephemeral));
                if !dh.was_contributory() {
                    return Err(OpenError::WeakEphemeral);
                }
                Zeroizing::new(dh.to_bytes())
            }
        };
        if self.current.len() >= OPEN_CACHE_ENTRIES / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(*ephemeral, shared.clone());
        Ok(shared)
    }

    /// The key `sealed` was sealed under for this server, `round` and `client` (the
    /// x25519 step, remembered for the ephemeral's next shares).
    pub fn share_key(
        &mut self,
        sealed: &SealedShare,
        round: Round,
        client: &ClientId,
        server: ServerIndex,
    ) -> Result<ShareKey, OpenError> {
        let shared = self.shared(&sealed.ephemeral.0)?;
        Ok(ShareKey(derive_key(
            &shared,
            &sealed.ephemeral.0,
            &self.public,
            round,
            client,
            server,
        )))
    }

    /// Open a share sealed to this server.
    pub fn open(
        &mut self,
        sealed: &SealedShare,
        round: Round,
        client: &ClientId,
        server: ServerIndex,
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.share_key(sealed, round, client, server)?
            .open(sealed, round, client, server)
    }
}

/// The key of one sealed share (see [`OpenCache::share_key`]).
pub struct ShareKey(Zeroizing<[u8; 32]>);

impl ShareKey {
    /// Decrypt and authenticate `sealed` for `round`, `client` and `server`.
    pub fn open(
        &self,
        sealed: &SealedShare,
        round: Round,
        client: &ClientId,
        server: ServerIndex,
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.decrypt(
            sealed.ciphertext.as_slice(),
            round,
            client,
            server,
            SHARE_NONCE,
        )
    }

    /// Decrypt and authenticate the proof share sealed beside the share (see
    /// [`Sealer::seal_proof`]).
    pub fn open_proof(
        &self,
        ciphertext: &[u8],
        round: Round,
        client: &ClientId,
        server: ServerIndex,
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.decrypt(ciphertext, round, client, server, PROOF_NONCE)
    }

    fn decrypt(
        &self,
        ciphertext: &[u8],
        round: Round,
        client: &ClientId,
        server: ServerIndex,
        nonce: [u8; 12],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if ciphertext.len() < crate::limits::TAG_BYTES {
            return Err(OpenError::TooShort);
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()));
        let aad = aad(round, client, server);
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Unauthentic)
    }
}

/// Open a share sealed to this server (without a cache).
pub fn open_share(
    sealed: &SealedShare,
    round: Round,
    client: &ClientId,
    server: ServerIndex,
    server_secret: &StaticSecret,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    OpenCache::new(server_secret.clone()).open(sealed, round, client, server)
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
    fn one_ephemeral_seals_a_run_of_rounds_and_never_a_round_twice() {
        let mut rng = rand_core::OsRng;
        let servers: Vec<StaticSecret> =
            (0..3).map(|_| StaticSecret::random_from_rng(rng)).collect();
        let keys: Vec<PublicKey> = servers.iter().map(PublicKey::from).collect();
        let mut caches: Vec<OpenCache> = servers.iter().cloned().map(OpenCache::new).collect();
        let client = Fixed([7u8; 32]);
        let mut sealer = Sealer::new(&keys, &mut rng);
        let mut ephemerals = Vec::new();
        for round in 10..10 + SEALER_ROUNDS + 1 {
            sealer.start_round(round, &mut rng);
            for (i, cache) in caches.iter_mut().enumerate() {
                let sealed = sealer.seal(b"share", round, &client, i as u16);
                let opened = cache
                    .open(&sealed, round, &client, i as u16)
                    .expect("opens");
                assert_eq!(opened.as_slice(), b"share");
                // Under the same ephemeral, another round's key does not open it.
                assert_eq!(
                    cache.open(&sealed, round + 1, &client, i as u16),
                    Err(OpenError::Unauthentic)
                );
                ephemerals.push(sealed.ephemeral.0);
            }
        }
        ephemerals.dedup();
        assert_eq!(
            ephemerals.len(),
            2,
            "a new ephemeral after SEALER_ROUNDS rounds"
        );
        // A second submission for a round already sealed takes a fresh ephemeral.
        sealer.start_round(80, &mut rng);
        let before = sealer.seal(b"x", 80, &client, 0).ephemeral;
        sealer.start_round(80, &mut rng);
        assert_ne!(sealer.seal(b"x", 80, &client, 0).ephemeral, before);
        sealer.start_round(79, &mut rng);
        let again = sealer.seal(b"x", 79, &client, 0).ephemeral;
        sealer.start_round(79, &mut rng);
        assert_ne!(sealer.seal(b"x", 79, &client, 0).ephemeral, again);
    }

    #[test]
    fn the_open_cache_stays_bounded() {
        let mut rng = rand_core::OsRng;
        let server = StaticSecret::random_from_rng(rng);
        let key = PublicKey::from(&server);
        let mut cache = OpenCache::new(server);
        let client = Fixed([1u8; 32]);
        for _ in 0..OPEN_CACHE_ENTRIES + 10 {
            let sealed = seal_share(b"s", 1, &client, 0, &key, &mut rng);
            cache.open(&sealed, 1, &client, 0).expect("opens");
        }
        assert!(cache.current.len() + cache.previous.len() <= OPEN_CACHE_ENTRIES);
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
