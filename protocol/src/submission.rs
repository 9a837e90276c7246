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

use crate::bounded::{BoundedVec, Bytes, Fixed};
use crate::limits::SEED_BYTES;
use crate::params::Params;
use crate::seal::Sealer;
use crate::shamir::{split_encoded_with_seeds, ShamirError};
use crate::validity::{self, Validity, EXTRA_ELEMENTS};
use crate::vector::Vector;
use crate::wire::{ClientId, Round, SealedProof, Submission};

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

/// The seed a seed server's proof share grows from: its share seed, hashed apart.
fn proof_seed(seed: &[u8; SEED_BYTES]) -> Zeroizing<[u8; SEED_BYTES]> {
    let mut h = Sha256::new();
    h.update(b"chorus/proof-seed/v1");
    h.update(seed);
    Zeroizing::new(h.finalize().into())
}

/// A server's proof share (the tags' masks and the proofs, encoded): a seed server's
/// grows from the seed it opened (`opened_share`), any other's is what it opened from
/// the sealed proof (`opened_proof`). None for garbage.
pub fn proof_from_opened(
    params: &Params,
    round: Round,
    client: &ClientId,
    server: usize,
    opened_share: &[u8],
    opened_proof: Option<&[u8]>,
) -> Option<Zeroizing<Vec<u8>>> {
    if is_seed_server(params, round, client, server) {
        let seed: [u8; SEED_BYTES] = opened_share.try_into().ok()?;
        Some(crate::field::expand_seed(
            &proof_seed(&seed),
            EXTRA_ELEMENTS,
        ))
    } else {
        let proof = opened_proof?;
        (proof.len() == EXTRA_ELEMENTS * crate::field::ELEMENT_BYTES
            && crate::field::check(proof).is_ok())
        .then(|| Zeroizing::new(proof.to_vec()))
    }
}

/// A server's opened shares of one submission: of the vector, and of the proofs (the
/// tags' masks, then the proofs), both encoded.
pub type OpenedShares = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// Open server `server`'s upload with its share key: its share of the vector and its
/// proof share, both encoded; None if either does not open or is garbage.
pub fn open_upload(
    params: &Params,
    key: &crate::seal::ShareKey,
    up: &crate::wire::ShareUpload,
    server: usize,
) -> Option<OpenedShares> {
    let (round, client, me) = (up.round, &up.client, server as u16);
    let plain = key.open(&up.share, round, client, me).ok()?;
    let share = share_from_opened(params, round, client, server, &plain)?;
    let opened_proof = if up.proof.is_empty() {
        None
    } else {
        Some(
            key.open_proof(up.proof.as_slice(), round, client, me)
                .ok()?,
        )
    };
    let opened_proof = opened_proof.as_ref().map(|p| p.as_slice());
    let proof = proof_from_opened(params, round, client, server, &plain, opened_proof)?;
    Some((share, proof))
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
    /// The validity proof could not be made (the vector is not the round's size).
    #[error("validity proof: {0}")]
    Proof(String),
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

/// Split `vector`, prove it valid for its layout, seal share `i` (or seed `i`) and proof
/// share `i` to server `i` with `sealer` (which draws a fresh ephemeral when it must),
/// and sign as `identity`.
pub fn build_submission_sealed<R: RngCore + CryptoRng>(
    params: &Params,
    round: Round,
    vector: &Vector,
    identity: &keys::Identity,
    sealer: &mut Sealer,
    rng: &mut R,
) -> Result<Submission, BuildError> {
    build(params, round, None, vector, identity, sealer, rng)
}

/// How a jammer's proof is wrong, though shared and sealed like an honest one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadProof {
    /// Made for another round's challenge (a proof replayed from that round).
    ForRound(Round),
    /// Random elements where the proofs should be.
    Random,
}

/// A submission to `round` whose proof does not hold (`bad`), otherwise well formed.
/// Servers exclude it; the abuse run and the jamming benchmark send it.
pub fn build_submission_with_bad_proof<R: RngCore + CryptoRng>(
    params: &Params,
    round: Round,
    bad: BadProof,
    vector: &Vector,
    identity: &keys::Identity,
    sealer: &mut Sealer,
    rng: &mut R,
) -> Result<Submission, BuildError> {
    build(params, round, Some(bad), vector, identity, sealer, rng)
}

fn build<R: RngCore + CryptoRng>(
    params: &Params,
    round: Round,
    bad: Option<BadProof>,
    vector: &Vector,
    identity: &keys::Identity,
    sealer: &mut Sealer,
    rng: &mut R,
) -> Result<Submission, BuildError> {
    let encoded = vector.encode();
    if encoded.len() != params.share_bytes() {
        return Err(BuildError::WrongVectorSize {
            expected: params.share_bytes(),
            got: encoded.len(),
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
    let shares = split_encoded_with_seeds(&encoded, n, &seeds)?;
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
    let digests: Vec<_> = sealed
        .iter()
        .map(|s| Fixed(crate::wire::share_digest(s)))
        .collect();
    // The proof, under joint randomness bound to the sealed vector shares, is shared
    // like the vector: a seed server's share grows from its seed.
    let circuit = Validity::for_round(params, vector.layout());
    let proof_round = match bad {
        Some(BadProof::ForRound(r)) => r,
        _ => round,
    };
    let joint = validity::joint_rand(proof_round, &client, &digests);
    let mut extra = validity::prove(&circuit, &encoded, &joint, rng)
        .map_err(|e| BuildError::Proof(e.to_string()))?;
    if bad == Some(BadProof::Random) {
        let mut seed = Zeroizing::new([0u8; SEED_BYTES]);
        rng.fill_bytes(seed.as_mut());
        let junk = crate::field::expand_seed(&seed, EXTRA_ELEMENTS);
        let masks = validity::TAGS * crate::field::ELEMENT_BYTES;
        extra[masks..].copy_from_slice(&junk[masks..]);
    }
    let proof_seeds: Vec<(usize, [u8; SEED_BYTES])> = seeds
        .iter()
        .map(|(s, seed)| (*s, *proof_seed(seed)))
        .collect();
    let proof_shares = split_encoded_with_seeds(&extra, n, &proof_seeds)?;
    let proofs: Vec<SealedProof> = proof_shares
        .iter()
        .enumerate()
        .map(|(i, share)| {
            if seeds.iter().any(|(s, _)| *s == i) {
                SealedProof::default()
            } else {
                // A sealed proof share is EXTRA_ELEMENTS elements and a tag: in bounds.
                Bytes::new(sealer.seal_proof(share, round, &client, i as u16)).unwrap_or_default()
            }
        })
        .collect();
    for (_, seed) in seeds.iter_mut() {
        seed.zeroize();
    }
    let proof_digests: Vec<_> = proofs
        .iter()
        .map(|p| Fixed(crate::wire::proof_digest(p.as_slice())))
        .collect();
    let signature = Fixed(identity.sign(&Submission::signed_bytes(
        round,
        &client,
        &digests,
        &proof_digests,
    )));
    Ok(Submission {
        round,
        client,
        // n <= MAX_SERVERS is guaranteed by Params.
        shares: BoundedVec::new(sealed).unwrap_or_else(|_| unreachable!("n <= MAX_SERVERS")),
        proofs: BoundedVec::new(proofs).unwrap_or_else(|_| unreachable!("n <= MAX_SERVERS")),
        signature,
    })
}
