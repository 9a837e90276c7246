//! Building a client's submission: split the vector, seal each share, sign.

use rand_core::{CryptoRng, RngCore};
use x25519_dalek::PublicKey;

use crate::bounded::{BoundedVec, Fixed};
use crate::params::Params;
use crate::seal::seal_share;
use crate::shamir::{split_vector, ShamirError};
use crate::wire::{Round, Submission};

/// Why a submission could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The vector is not `S * L` bytes.
    #[error("vector is {got} bytes, the round needs {expected}")]
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

/// Split `vector`, seal share `i` to `server_keys[i]`, and sign as `identity`.
pub fn build_submission<R: RngCore + CryptoRng>(
    params: &Params,
    round: Round,
    vector: &[u8],
    identity: &keys::Identity,
    server_keys: &[PublicKey],
    rng: &mut R,
) -> Result<Submission, BuildError> {
    if vector.len() != params.vector_bytes() {
        return Err(BuildError::WrongVectorSize {
            expected: params.vector_bytes(),
            got: vector.len(),
        });
    }
    let n = usize::from(params.servers);
    if server_keys.len() != n {
        return Err(BuildError::WrongServerCount {
            expected: n,
            got: server_keys.len(),
        });
    }
    let client = Fixed(identity.public().sign);
    let shares = split_vector(vector, n, usize::from(params.threshold), rng)?;
    let sealed: Vec<_> = shares
        .iter()
        .zip(server_keys)
        .enumerate()
        .map(|(i, (share, key))| seal_share(share, round, &client, i as u16, key, rng))
        .collect();
    let signature = Fixed(identity.sign(&Submission::signed_bytes(round, &client, &sealed)));
    Ok(Submission {
        round,
        client,
        // n <= MAX_SERVERS is guaranteed by Params.
        shares: BoundedVec::new(sealed).unwrap_or_else(|_| unreachable!("n <= MAX_SERVERS")),
        signature,
    })
}
