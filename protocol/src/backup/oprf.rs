//! The passphrase check: a threshold OPRF (2HashDH over Ristretto255) whose key is
//! Shamir-shared across the servers like the backup key.
//!
//! The client hashes `name ‖ passphrase` to a point `P`, sends `B = r·P` (so no server
//! sees `P`), and server `i` answers `k_i·B` with a Chaum–Pedersen proof that it used the
//! share committed to by `g^{k_i}`. From any `t + 1` valid answers the client gets
//! `k·P` (Lagrange in the exponent, then `r^{-1}`), and from it the unlock key whose
//! per-server tags the servers compare. Evaluating needs `t + 1` servers, each counting
//! the guess, so `t` servers' data (their `k_i`, tags, shares) test no guess offline.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::vss::{lagrange_at_zero, point, point_bytes, scalar, VssError};
use crate::bounded::{Fixed, Key32};
use crate::wire::ServerIndex;

/// A server's answer: `k_i·B` and a proof `(c, s)` of the same discrete log as
/// `g^{k_i}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// `k_i·B`.
    pub element: Key32,
    /// Challenge.
    pub c: Key32,
    /// Response.
    pub s: Key32,
}

/// The point a passphrase for `name` hashes to.
fn input_point(name: &[u8], passphrase: &[u8]) -> RistrettoPoint {
    let mut h = Sha512::new();
    h.update(b"chorus/backup/oprf-input/v1");
    h.update((name.len() as u64).to_le_bytes());
    h.update(name);
    h.update(passphrase);
    RistrettoPoint::from_hash(h)
}

/// A blinded passphrase: send `blinded` to every server, keep `r`.
pub struct Blinded {
    /// `B = r·P`.
    pub blinded: Key32,
    r: Zeroizing<[u8; 32]>,
}

/// Blind `passphrase` for `name`.
pub fn blind<R: RngCore + CryptoRng>(name: &[u8], passphrase: &[u8], rng: &mut R) -> Blinded {
    let r = Scalar::random(rng);
    Blinded {
        blinded: point_bytes(&(input_point(name, passphrase) * r)),
        r: Zeroizing::new(r.to_bytes()),
    }
}

fn challenge(
    y: &RistrettoPoint,
    b: &RistrettoPoint,
    e: &RistrettoPoint,
    a1: &RistrettoPoint,
    a2: &RistrettoPoint,
) -> Scalar {
    let mut h = Sha512::new();
    h.update(b"chorus/backup/dleq/v1");
    for p in [y, b, e, a1, a2] {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_hash(h)
}

/// Server side: evaluate `blinded` with our key share and prove it.
pub fn evaluate<R: RngCore + CryptoRng>(
    key_share: &[u8; 32],
    blinded: &Key32,
    rng: &mut R,
) -> Result<Evaluation, VssError> {
    let k = scalar(&Fixed(*key_share))?;
    let b = point(blinded)?;
    let e = b * k;
    let w = Scalar::random(rng);
    let y = RistrettoPoint::mul_base(&k);
    let c = challenge(&y, &b, &e, &RistrettoPoint::mul_base(&w), &(b * w));
    let s = w - c * k;
    Ok(Evaluation {
        element: point_bytes(&e),
        c: Fixed(c.to_bytes()),
        s: Fixed(s.to_bytes()),
    })
}

/// Check an evaluation of `blinded` against the server's committed key `g^{k_i}`.
pub fn check(
    eval: &Evaluation,
    blinded: &Key32,
    committed: &RistrettoPoint,
) -> Result<(), VssError> {
    let (b, e) = (point(blinded)?, point(&eval.element)?);
    let (c, s) = (scalar(&eval.c)?, scalar(&eval.s)?);
    let a1 = RistrettoPoint::mul_base(&s) + committed * c;
    let a2 = b * s + e * c;
    if challenge(committed, &b, &e, &a1, &a2) == c {
        Ok(())
    } else {
        Err(VssError::Mismatch)
    }
}

/// The unlock key from the OPRF output `k·P`.
fn unlock_key(name: &[u8], passphrase: &[u8], output: &RistrettoPoint) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"chorus/backup/unlock/v1");
    h.update((name.len() as u64).to_le_bytes());
    h.update(name);
    h.update((passphrase.len() as u64).to_le_bytes());
    h.update(passphrase);
    h.update(output.compress().as_bytes());
    Zeroizing::new(h.finalize().into())
}

/// What a correct passphrase opens: the tag each server compares.
pub struct Unlock(Zeroizing<[u8; 32]>);

impl Unlock {
    /// Directly from the OPRF key (the client that makes the backup knows it).
    pub fn from_key(name: &[u8], passphrase: &[u8], oprf_key: &Scalar) -> Self {
        Self(unlock_key(
            name,
            passphrase,
            &(input_point(name, passphrase) * oprf_key),
        ))
    }

    /// From `t + 1` or more checked evaluations `(server, k_i·B)`.
    pub fn combine(
        name: &[u8],
        passphrase: &[u8],
        blinded: &Blinded,
        evals: &[(ServerIndex, Key32)],
    ) -> Result<Self, VssError> {
        let at: Vec<ServerIndex> = evals.iter().map(|(i, _)| *i).collect();
        let mut sum = RistrettoPoint::default();
        for ((_, e), l) in evals.iter().zip(lagrange_at_zero(&at)) {
            sum += point(e)? * l;
        }
        let r = scalar(&Fixed(*blinded.r))?;
        Ok(Self(unlock_key(name, passphrase, &(sum * r.invert()))))
    }

    /// Server `server`'s tag.
    pub fn tag(&self, server: ServerIndex) -> Key32 {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0) else {
            unreachable!("HMAC accepts any key length")
        };
        m.update(b"chorus/backup/tag/v1");
        m.update(&server.to_le_bytes());
        Fixed(m.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::super::vss::{committed_at, share};
    use super::*;

    #[test]
    fn t_plus_one_evaluations_give_the_tags_of_the_right_passphrase_only() {
        let k = Scalar::random(&mut OsRng);
        let (shares, c) = share(&k, 1, 3, &mut OsRng).expect("share");
        let points: Vec<_> = c.iter().map(|c| point(c).expect("p")).collect();
        let made = Unlock::from_key(b"alice", b"correct horse", &k);
        for (guess, right) in [(&b"correct horse"[..], true), (b"wrong horse", false)] {
            let bl = blind(b"alice", guess, &mut OsRng);
            let evals: Vec<_> = [0u16, 2]
                .iter()
                .map(|&i| {
                    let e = evaluate(&shares[i as usize], &bl.blinded, &mut OsRng).expect("eval");
                    check(&e, &bl.blinded, &committed_at(&points, i)).expect("proof holds");
                    assert!(check(&e, &bl.blinded, &committed_at(&points, 1)).is_err());
                    (i, e.element)
                })
                .collect();
            let got = Unlock::combine(b"alice", guess, &bl, &evals).expect("combine");
            assert_eq!(got.tag(1) == made.tag(1), right);
        }
    }
}
