//! Feldman verifiable secret sharing over Ristretto255, through `vsss-rs`.
//!
//! Server `i` always holds the share at x = `i + 1` (as for round vectors). A sharing of
//! degree `t` has `t + 1` commitments `C_k = g^{a_k}`; a zero-sharing (`a_0 = 0`) is
//! dealt with its `t` commitments `C_1..C_t` only (its `C_0` is the identity).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::{CryptoRng, RngCore};
use vsss_rs::curve25519::{WrappedRistretto, WrappedScalar};
use vsss_rs::{feldman, FeldmanVerifierSet, IdentifierPrimeField, ReadableShareSet, ValueGroup};
use zeroize::Zeroizing;

use crate::bounded::Key32;
use crate::wire::ServerIndex;

type Field = IdentifierPrimeField<WrappedScalar>;
type VShare = (Field, Field);
type Verifier = ValueGroup<WrappedRistretto>;

/// Shares in server order and their commitments.
pub type Sharing = (Vec<Zeroizing<[u8; 32]>>, Vec<Key32>);

/// Why a sharing, share or commitment was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VssError {
    /// Bytes that are not a canonical Ristretto point.
    #[error("a commitment is not a valid group element")]
    BadPoint,
    /// Bytes that are not a canonical scalar.
    #[error("a share is not a canonical scalar")]
    BadScalar,
    /// The share does not lie on the committed polynomial.
    #[error("the share does not match the commitments")]
    Mismatch,
    /// Too few shares, a repeated one, or bad sizes.
    #[error("cannot share or combine: {0}")]
    Shape(&'static str),
}

/// The x-coordinate of server `i` as a scalar.
pub fn x_of(server: ServerIndex) -> Scalar {
    Scalar::from(u64::from(server) + 1)
}

/// A scalar from its canonical 32 bytes.
pub fn scalar(bytes: &Key32) -> Result<Scalar, VssError> {
    Option::from(Scalar::from_canonical_bytes(bytes.0)).ok_or(VssError::BadScalar)
}

/// A point from its compressed 32 bytes.
pub fn point(bytes: &Key32) -> Result<RistrettoPoint, VssError> {
    CompressedRistretto(bytes.0)
        .decompress()
        .ok_or(VssError::BadPoint)
}

/// Compressed bytes of a point.
pub fn point_bytes(p: &RistrettoPoint) -> Key32 {
    crate::bounded::Fixed(p.compress().to_bytes())
}

/// Shares of `secret` for `n` servers, any `t + 1` of which recover it, and the `t + 1`
/// commitments. Shares are in server order.
pub fn share<R: RngCore + CryptoRng>(
    secret: &Scalar,
    threshold: usize,
    servers: usize,
    rng: &mut R,
) -> Result<Sharing, VssError> {
    let value = IdentifierPrimeField(WrappedScalar(*secret));
    let (shares, verifiers): (Vec<VShare>, Vec<Verifier>) =
        feldman::split_secret::<VShare, Verifier>(threshold + 1, servers, &value, None, rng)
            .map_err(|_| VssError::Shape("threshold or server count out of range"))?;
    // verifiers[0] is the generator; the commitments follow.
    let commitments = verifiers[1..]
        .iter()
        .map(|v| point_bytes(&v.0 .0))
        .collect();
    let shares = shares
        .iter()
        .map(|(_, y)| Zeroizing::new(y.0 .0.to_bytes()))
        .collect();
    Ok((shares, commitments))
}

/// A zero-sharing of degree `t` for `n` servers: the sub-shares in server order and the
/// commitments `C_1..C_t`.
pub fn zero_sharing<R: RngCore + CryptoRng>(
    threshold: usize,
    servers: usize,
    rng: &mut R,
) -> Result<Sharing, VssError> {
    let (shares, mut commitments) = share(&Scalar::ZERO, threshold, servers, rng)?;
    // C_0 = g^0 is the identity: implied, never sent.
    commitments.remove(0);
    Ok((shares, commitments))
}

/// `g^{f(x)}` for the committed polynomial: `Σ_k x^k C_k`.
pub fn committed_at(commitments: &[RistrettoPoint], server: ServerIndex) -> RistrettoPoint {
    let x = x_of(server);
    let mut acc = RistrettoPoint::identity();
    for c in commitments.iter().rev() {
        acc = acc * x + c;
    }
    acc
}

/// Check server `server`'s share against the `t + 1` commitments (vsss-rs's check).
pub fn verify(
    share: &[u8; 32],
    commitments: &[Key32],
    server: ServerIndex,
) -> Result<(), VssError> {
    let s = scalar(&crate::bounded::Fixed(*share))?;
    let mut verifiers = vec![ValueGroup(WrappedRistretto(
        curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT,
    ))];
    for c in commitments {
        verifiers.push(ValueGroup(WrappedRistretto(point(c)?)));
    }
    let vs = (
        IdentifierPrimeField(WrappedScalar(x_of(server))),
        IdentifierPrimeField(WrappedScalar(s)),
    );
    verifiers.verify_share(&vs).map_err(|_| VssError::Mismatch)
}

/// Check a zero-sharing's sub-share against its `t` commitments (`C_0` = identity).
pub fn verify_zero(
    sub: &[u8; 32],
    commitments: &[Key32],
    server: ServerIndex,
) -> Result<(), VssError> {
    let s = scalar(&crate::bounded::Fixed(*sub))?;
    let mut points = vec![RistrettoPoint::identity()];
    for c in commitments {
        points.push(point(c)?);
    }
    if RistrettoPoint::mul_base(&s) == committed_at(&points, server) {
        Ok(())
    } else {
        Err(VssError::Mismatch)
    }
}

/// Add a zero-sharing's commitments `C_1..C_t` to a sharing's `C_0..C_t`.
pub fn add_commitments(sharing: &[Key32], zero: &[Key32]) -> Result<Vec<Key32>, VssError> {
    if zero.len() + 1 != sharing.len() {
        return Err(VssError::Shape("commitment counts differ"));
    }
    let mut out = vec![sharing[0]];
    for (c, d) in sharing[1..].iter().zip(zero) {
        out.push(point_bytes(&(point(c)? + point(d)?)));
    }
    Ok(out)
}

/// `a + b` on canonical scalars.
pub fn add_scalars(a: &[u8; 32], b: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, VssError> {
    let sum = scalar(&crate::bounded::Fixed(*a))? + scalar(&crate::bounded::Fixed(*b))?;
    Ok(Zeroizing::new(sum.to_bytes()))
}

/// Recover the secret from `t + 1` or more `(server, share)` pairs (vsss-rs's combine).
pub fn combine(shares: &[(ServerIndex, [u8; 32])]) -> Result<Zeroizing<[u8; 32]>, VssError> {
    let mut set: Vec<VShare> = Vec::with_capacity(shares.len());
    for (i, s) in shares {
        set.push((
            IdentifierPrimeField(WrappedScalar(x_of(*i))),
            IdentifierPrimeField(WrappedScalar(scalar(&crate::bounded::Fixed(*s))?)),
        ));
    }
    let secret: Field = set
        .combine()
        .map_err(|_| VssError::Shape("too few or repeated shares"))?;
    Ok(Zeroizing::new(secret.0 .0.to_bytes()))
}

/// Whether `g^secret` is `commitment` (the first commitment of a sharing is `g^K`).
pub fn commits_to(secret: &[u8; 32], commitment: &Key32) -> bool {
    match (scalar(&crate::bounded::Fixed(*secret)), point(commitment)) {
        (Ok(s), Ok(c)) => RistrettoPoint::mul_base(&s) == c,
        _ => false,
    }
}

/// Lagrange coefficients at 0 for the servers `at`.
pub fn lagrange_at_zero(at: &[ServerIndex]) -> Vec<Scalar> {
    at.iter()
        .map(|&i| {
            let xi = x_of(i);
            let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
            for &j in at.iter().filter(|&&j| j != i) {
                let xj = x_of(j);
                num *= xj;
                den *= xj - xi;
            }
            num * den.invert()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::*;

    #[test]
    fn any_t_plus_one_shares_recover_and_verify() {
        let k = Scalar::random(&mut OsRng);
        let (shares, c) = share(&k, 2, 5, &mut OsRng).expect("share");
        assert_eq!(c.len(), 3);
        for (i, s) in shares.iter().enumerate() {
            verify(s, &c, i as u16).expect("verifies");
            assert_eq!(verify(s, &c, (i as u16 + 1) % 5), Err(VssError::Mismatch));
        }
        let pick = |ix: &[usize]| -> Vec<(u16, [u8; 32])> {
            ix.iter().map(|&i| (i as u16, *shares[i])).collect()
        };
        assert_eq!(*combine(&pick(&[0, 2, 4])).expect("combine"), k.to_bytes());
        assert_eq!(
            *combine(&pick(&[1, 3, 4, 0])).expect("combine"),
            k.to_bytes()
        );
        assert_ne!(*combine(&pick(&[1, 3])).expect("two combine"), k.to_bytes());
    }

    #[test]
    fn a_refresh_keeps_the_secret_and_separates_epochs() {
        let k = Scalar::random(&mut OsRng);
        let (old, c) = share(&k, 1, 3, &mut OsRng).expect("share");
        let (zero, d) = zero_sharing(1, 3, &mut OsRng).expect("zero");
        let c2 = add_commitments(&c, &d).expect("add");
        assert_eq!(c2[0], c[0], "the secret's commitment does not move");
        let new: Vec<_> = (0..3)
            .map(|i| {
                verify_zero(&zero[i], &d, i as u16).expect("sub-share verifies");
                add_scalars(&old[i], &zero[i]).expect("add")
            })
            .collect();
        for (i, s) in new.iter().enumerate() {
            verify(s, &c2, i as u16).expect("new share verifies");
            assert!(
                verify(&old[i], &c2, i as u16).is_err(),
                "old share is out of date"
            );
        }
        assert_eq!(
            *combine(&[(0, *new[0]), (2, *new[2])]).expect("c"),
            k.to_bytes()
        );
        // An old share with a new one is no sharing of k.
        assert_ne!(
            *combine(&[(0, *old[0]), (2, *new[2])]).expect("c"),
            k.to_bytes()
        );
    }
}
