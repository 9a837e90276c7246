//! Building a client's submission: split the vector, seal each share (or seed), sign.
//!
//! For each client and round a public rotation names `t` seed servers
//! ([`seed_servers`]): each is sent a sealed 32-byte seed that expands to its share, and
//! the others get whole shares computed from the vector and those seeds (see
//! [`crate::shamir`]). Upload is `(n − t)` shares plus `t` seeds. The rotation spreads
//! the cheap seeds over the servers, and a server knows from the round and the client
//! alone which size to expect.

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x25519_dalek::PublicKey;
use zeroize::{Zeroize, Zeroizing};

use crate::bounded::{BoundedVec, Fixed};
use crate::limits::SEED_BYTES;
use crate::params::Params;
use crate::seal::Sealer;
use crate::shamir::{split_encoded_with_seeds, ShamirError};
use crate::vector::Vector;
use crate::wire::{ClientId, Round, Submission};

/// The first of the `t` consecutive seed servers (mod n) of `client` in `round`.
fn rotation_start(round: Round, client: &ClientId, n: usize) -> usize {
    let mut h = Sha256::new();
    h.update(b"chorus/seed-rotation/v1");
    h.update(round.to_le_bytes());
    h.update(client.0);
    let digest = h.finalize();
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(word) % n.max(1) as u64) as usize
}

/// The servers that get a seed instead of a share from `client` in `round`: `t`
/// consecutive indices (mod n) from a start hashed from the round and the client.
pub fn seed_servers(params: &Params, round: Round, client: &ClientId) -> Vec<usize> {
    let n = usize::from(params.servers);
    let start = rotation_start(round, client, n);
    (0..usize::from(params.threshold))
        .map(|k| (start + k) % n)
        .collect()
}

/// Whether `server` gets a seed from `client` in `round`.
pub fn is_seed_server(params: &Params, round: Round, client: &ClientId, server: usize) -> bool {
    let n = usize::from(params.servers);
    let start = rotation_start(round, client, n);
    (server + n - start) % n < usize::from(params.threshold)
}

/// What a server finds in its sealed share once opened: a seed to expand, or a whole
/// share, as [`seed_servers`] says. Anything else (wrong length, non-canonical
/// elements) is the client's garbage.
pub fn share_from_opened(
    params: &Params,
    round: Round,
    client: &ClientId,
    server: usize,
    opened: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if is_seed_server(params, round, client, server) {
        let seed: [u8; SEED_BYTES] = opened.try_into().ok()?;
        let seed = Zeroizing::new(seed);
        Some(crate::field::expand_seed(&seed, params.vector_elements()))
    } else {
        (opened.len() == params.share_bytes() && crate::field::check(opened).is_ok())
            .then(|| Zeroizing::new(opened.to_vec()))
    }
}

/// Why a submission could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The vector, encoded, is not the round's share size.
    #[error("vector is {got} bytes encoded, the round needs {expected}")]
    WrongVectorSize {
        /// Expected.
        expected: usize,
        /// Got.
        got: usize,
    },
    /// Not one key per server.
    #[error("{got} server keys for {expected} servers")]
    WrongServerCount {
        /// Expected.
        expected: usize,
        /// Got.
        got: usize,
    },
    /// Sharing failed.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
}

/// Split `vector`, seal share `i` (or seed `i`) to `server_keys[i]` under a fresh
/// ephemeral, and sign as `identity`.
pub fn build_submission<R: RngCore + CryptoRng>(
    params: &Params,
    round: Round,
    vector: &Vector,
    identity: &keys::Identity,
    server_keys: &[PublicKey],
    rng: &mut R,
) -> Result<Submission, BuildError> {
    let mut sealer = Sealer::new(server_keys, rng);
    build_submission_sealed(params, round, vector, identity, &mut sealer, rng)
}

/// Split `vector`, seal share `i` (or seed `i`) to server `i` with `sealer` (which
/// draws a fresh ephemeral when it must), and sign as `identity`.
pub fn build_submission_sealed<R: RngCore + CryptoRng>(
    params: &Params,
    round: Round,
    vector: &Vector,
    identity: &keys::Identity,
    sealer: &mut Sealer,
    rng: &mut R,
) -> Result<Submission, BuildError> {
    let vector = vector.encode();
    if vector.len() != params.share_bytes() {
        return Err(BuildError::WrongVectorSize {
            expected: params.share_bytes(),
            got: vector.len(),
        });
    }
    let n = usize::from(params.servers);
    if sealer.servers() != n {
        return Err(BuildError::WrongServerCount {
            expected: n,
            got: sealer.servers(),
        });
    }
    sealer.start_round(round, rng);
    let client = Fixed(identity.public().sign);
    let mut seeds: Vec<(usize, [u8; SEED_BYTES])> = seed_servers(params, round, &client)
        .into_iter()
        .map(|s| {
            let mut seed = [0u8; SEED_BYTES];
            rng.fill_bytes(&mut seed);
            (s, seed)
        })
        .collect();
    let shares = split_encoded_with_seeds(&vector, n, &seeds)?;
    let sealed: Vec<_> = shares
        .iter()
        .enumerate()
        .map(|(i, share)| {
            let plain: &[u8] = match seeds.iter().find(|(s, _)| *s == i) {
                Some((_, seed)) => seed,
                None => share,
            };
            sealer.seal(plain, round, &client, i as u16)
        })
        .collect();
    for (_, seed) in seeds.iter_mut() {
        seed.zeroize();
    }
    let digests: Vec<_> = sealed
        .iter()
        .map(|s| Fixed(crate::wire::share_digest(s)))
        .collect();
    let signature = Fixed(identity.sign(&Submission::signed_bytes(round, &client, &digests)));
    Ok(Submission {
        round,
        client,
        // n <= MAX_SERVERS is guaranteed by Params.
        shares: BoundedVec::new(sealed).unwrap_or_else(|_| unreachable!("n <= MAX_SERVERS")),
        signature,
    })
}
