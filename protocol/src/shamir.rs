//! Byte-wise Shamir sharing of whole vectors over GF(2^8).
//!
//! Each byte of the secret vector is the constant term of its own random polynomial of
//! degree `t`; server `i` gets the evaluations at the fixed point `x = i + 1`. Fixed
//! points are what make shares *addable*: XOR-ing two clients' shares for the same `x`
//! gives a share of the XOR of their vectors (addition in GF(2^8) is XOR), so servers can
//! aggregate a whole round without learning any single vector.
//!
//! Field arithmetic on public values (x powers, Lagrange coefficients) uses vsss-rs
//! [`Gf256`]. The per-byte work multiplies *secret* bytes by a *public* constant, done
//! here with masks instead of lookup tables indexed by secret data, so it runs in
//! constant time and fast enough for whole vectors. Tests check our shares against
//! vsss-rs's own `split_array`/`combine_array`.

use rand_core::{CryptoRng, RngCore};
use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::limits::MAX_SERVERS;

/// Why sharing or combining failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// Not `1 <= t < n <= 32`.
    #[error("invalid sharing parameters n={n}, t={t}: need 1 <= t < n <= {MAX_SERVERS}")]
    BadParams {
        /// Servers.
        n: usize,
        /// Threshold (polynomial degree).
        t: usize,
    },
    /// Shares of different lengths.
    #[error("share lengths differ: {0} vs {1}")]
    LengthMismatch(usize, usize),
    /// The same x twice, or x = 0 (which would be the secret itself).
    #[error("invalid or repeated x-coordinate {0}")]
    BadX(u8),
    /// No shares at all.
    #[error("no shares to combine")]
    Empty,
}

/// The Shamir x-coordinate of server `i`. Fixed, never random: see the module docs.
pub fn x_of(server: usize) -> u8 {
    debug_assert!(server < MAX_SERVERS);
    (server + 1) as u8
}

/// `base^exp` by repeated field multiplication. (vsss-rs 5.4's `Gf256::pow` multiplies
/// as plain integers and overflows, so it is not used.) Only called on public values.
fn gf_pow(base: Gf256, exp: u32) -> Gf256 {
    (0..exp).fold(Gf256(1), |acc, _| acc * base)
}

/// `c * 2^k` for k in 0..8: with these, `c * b` is the XOR of the entries selected by
/// `b`'s bits.
fn basis(c: Gf256) -> [u8; 8] {
    let mut out = [0u8; 8];
    let mut v = c;
    for slot in out.iter_mut() {
        *slot = v.0;
        v *= Gf256(2);
    }
    out
}

/// `acc[j] ^= c * src[j]` for every j, in constant time with respect to `src`.
fn mul_acc(acc: &mut [u8], src: &[u8], basis: &[u8; 8]) {
    debug_assert_eq!(acc.len(), src.len());
    for (a, &s) in acc.iter_mut().zip(src) {
        let mut r = 0u8;
        for (k, &b) in basis.iter().enumerate() {
            // mask is 0xff when bit k of s is set, else 0 — no branch, no table.
            let mask = ((s >> k) & 1).wrapping_neg();
            r ^= b & mask;
        }
        *a ^= r;
    }
}

/// Split `secret` into `n` shares with threshold `t` (any `t` shares reveal nothing; any
/// `t + 1` recover the secret). Share `i` is for server `i` (x = i + 1).
pub fn split_vector<R: RngCore + CryptoRng>(
    secret: &[u8],
    n: usize,
    t: usize,
    rng: &mut R,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if !(1 <= t && t < n && n <= MAX_SERVERS) {
        return Err(ShamirError::BadParams { n, t });
    }
    let mut shares: Vec<Zeroizing<Vec<u8>>> =
        (0..n).map(|_| Zeroizing::new(secret.to_vec())).collect();
    let mut coef = Zeroizing::new(vec![0u8; secret.len()]);
    for degree in 1..=t {
        rng.fill_bytes(&mut coef);
        for (i, share) in shares.iter_mut().enumerate() {
            let x_pow = gf_pow(Gf256(x_of(i)), degree as u32);
            mul_acc(share, &coef, &basis(x_pow));
        }
    }
    Ok(shares)
}

/// Lagrange coefficient at `target` for the point `xs[i]` among `xs`:
/// the product over m != i of (target - x_m) / (x_i - x_m); subtraction is XOR here.
fn lagrange_at(xs: &[u8], i: usize, target: u8) -> Gf256 {
    let xi = Gf256(xs[i]);
    let mut num = Gf256(1);
    let mut den = Gf256(1);
    for (m, &xm) in xs.iter().enumerate() {
        if m != i {
            num *= Gf256(xm) + Gf256(target);
            den *= Gf256(xm) + xi;
        }
    }
    // den is non-zero: all x distinct (checked by the caller).
    // a^-1 = a^254 in GF(2^8) (a^255 = 1 for a != 0).
    num * gf_pow(den, 254)
}

/// Recover the secret from shares `(x, bytes)`. With `t + 1` or more distinct shares of a
/// degree-`t` sharing, the result is the secret.
pub fn combine_vector(shares: &[(u8, &[u8])]) -> Result<Vec<u8>, ShamirError> {
    interpolate_at(shares, 0)
}

/// Evaluate at `target` the polynomial through the shares `(x, bytes)`, byte by byte.
/// At `target = 0` this is [`combine_vector`]; at another server's x it predicts what
/// that server's share must be if every share lies on one polynomial of degree
/// `shares.len() - 1` (see [`crate::robust`]).
pub fn interpolate_at(shares: &[(u8, &[u8])], target: u8) -> Result<Vec<u8>, ShamirError> {
    let Some(&(_, first)) = shares.first() else {
        return Err(ShamirError::Empty);
    };
    let mut xs = Vec::with_capacity(shares.len());
    for &(x, bytes) in shares {
        if x == 0 || xs.contains(&x) {
            return Err(ShamirError::BadX(x));
        }
        if bytes.len() != first.len() {
            return Err(ShamirError::LengthMismatch(first.len(), bytes.len()));
        }
        xs.push(x);
    }
    let mut out = vec![0u8; first.len()];
    for (i, &(_, bytes)) in shares.iter().enumerate() {
        mul_acc(&mut out, bytes, &basis(lagrange_at(&xs, i, target)));
    }
    Ok(out)
}

/// `acc ^= share`: aggregate shares for the same x (addition in GF(2^8)).
pub fn xor_into(acc: &mut [u8], share: &[u8]) {
    debug_assert_eq!(acc.len(), share.len());
    for (a, b) in acc.iter_mut().zip(share) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn pick(shares: &[Zeroizing<Vec<u8>>], idx: &[usize]) -> Vec<(u8, Vec<u8>)> {
        idx.iter().map(|&i| (x_of(i), shares[i].to_vec())).collect()
    }

    fn combine_owned(v: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let refs: Vec<(u8, &[u8])> = v.iter().map(|(x, b)| (*x, b.as_slice())).collect();
        combine_vector(&refs).expect("combine")
    }

    #[test]
    fn mask_multiply_matches_vsss_field() {
        for c in 0..=255u8 {
            let b = basis(Gf256(c));
            for s in 0..=255u8 {
                let mut acc = [0u8];
                mul_acc(&mut acc, &[s], &b);
                assert_eq!(acc[0], (Gf256(c) * Gf256(s)).0);
            }
        }
    }

    #[test]
    fn our_shares_combine_with_vsss_and_theirs_with_ours() {
        let mut r = rng(7);
        let secret: Vec<u8> = (0..64).map(|_| r.gen()).collect();
        // ours -> vsss combine_array (format: x byte then values)
        let ours = split_vector(&secret, 5, 2, &mut r).expect("split");
        let as_vsss: Vec<Vec<u8>> = [0usize, 2, 4]
            .iter()
            .map(|&i| {
                std::iter::once(x_of(i))
                    .chain(ours[i].iter().copied())
                    .collect()
            })
            .collect();
        assert_eq!(
            Gf256::combine_array(&as_vsss).expect("vsss combine"),
            secret
        );
        // vsss split_array (sequential ids from 1) -> ours
        let theirs = Gf256::split_array(3, 5, &secret, &mut r).expect("vsss split");
        let picked: Vec<(u8, Vec<u8>)> = [1usize, 3, 4]
            .iter()
            .map(|&i| (theirs[i][0], theirs[i][1..].to_vec()))
            .collect();
        assert_eq!(picked[0].0, x_of(1), "vsss ids are x = i + 1 as well");
        assert_eq!(combine_owned(&picked), secret);
    }

    #[test]
    fn linearity_over_1000_random_vectors() {
        let mut r = rng(42);
        for case in 0..1000 {
            let n = r.gen_range(2..=7usize);
            let t = r.gen_range(1..n);
            let len = r.gen_range(1..64usize);
            let a: Vec<u8> = (0..len).map(|_| r.gen()).collect();
            let b: Vec<u8> = (0..len).map(|_| r.gen()).collect();
            let sa = split_vector(&a, n, t, &mut r).expect("split a");
            let sb = split_vector(&b, n, t, &mut r).expect("split b");
            let summed: Vec<(u8, Vec<u8>)> = (0..=t)
                .map(|i| {
                    let mut s = sa[i].to_vec();
                    xor_into(&mut s, &sb[i]);
                    (x_of(i), s)
                })
                .collect();
            let expect: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
            assert_eq!(combine_owned(&summed), expect, "case {case} n={n} t={t}");
        }
    }

    #[test]
    fn rejects_bad_params_and_points() {
        let mut r = rng(1);
        assert!(matches!(
            split_vector(b"x", 3, 3, &mut r),
            Err(ShamirError::BadParams { .. })
        ));
        assert!(matches!(
            split_vector(b"x", 33, 2, &mut r),
            Err(ShamirError::BadParams { .. })
        ));
        assert!(matches!(
            split_vector(b"x", 3, 0, &mut r),
            Err(ShamirError::BadParams { .. })
        ));
        assert_eq!(combine_vector(&[(0, b"a")]), Err(ShamirError::BadX(0)));
        assert_eq!(
            combine_vector(&[(1, b"a"), (1, b"b")]),
            Err(ShamirError::BadX(1))
        );
        assert_eq!(
            combine_vector(&[(1, b"a"), (2, b"bb")]),
            Err(ShamirError::LengthMismatch(1, 2))
        );
        assert_eq!(combine_vector(&[]), Err(ShamirError::Empty));
    }

    /// Any `t` shares of two different vectors are distributed alike: for each byte
    /// position and each of the t chosen servers, the share byte is uniform whatever the
    /// secret. We compare the joint histogram of (share_0[0], share_1[0]) pairs for
    /// an all-zero vector and a vector with a message in slot 0, with a chi-squared
    /// two-sample test over 65,536 cells collapsed to 256 (the XOR of the two bytes) and
    /// 256 (the first byte), each needing to look uniform and alike.
    #[test]
    fn any_t_shares_hide_which_slot_is_used() {
        let mut r = rng(2026);
        let (n, t) = (5usize, 2usize);
        let trials = 40_000;
        let mut hist = [[[0u32; 256]; 2]; 2]; // [vector][statistic][value]
        let empty = vec![0u8; 4];
        let used = vec![0xA5u8, 0x01, 0xFF, 0x7E];
        for (v, secret) in [&empty, &used].into_iter().enumerate() {
            for _ in 0..trials {
                let s = split_vector(secret, n, t, &mut r).expect("split");
                // servers 1 and 3 collude (any t of them)
                hist[v][0][s[1][0] as usize] += 1;
                hist[v][1][(s[1][2] ^ s[3][2]) as usize] += 1;
            }
        }
        let [empty_hist, used_hist] = &hist;
        for (stat, (ha, hb)) in empty_hist.iter().zip(used_hist).enumerate() {
            let mut chi = 0.0f64;
            for (&a, &b) in ha.iter().zip(hb) {
                let (a, b) = (f64::from(a), f64::from(b));
                if a + b > 0.0 {
                    chi += (a - b).powi(2) / (a + b);
                }
            }
            // 255 degrees of freedom: mean 255, sd ~22.6; 400 is > 6 sd out.
            assert!(
                chi < 400.0,
                "statistic {stat}: chi-squared {chi} says the shares differ"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn split_combine_round_trip(
            secret in proptest::collection::vec(any::<u8>(), 1..128),
            n in 2usize..=32,
            t_frac in 0.0f64..1.0,
            seed in any::<u64>(),
        ) {
            let t = 1 + ((n - 1) as f64 * t_frac) as usize % (n - 1);
            let mut r = rng(seed);
            let shares = split_vector(&secret, n, t, &mut r).expect("split");
            // any t+1 shares: take a random subset
            let mut idx: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() { idx.swap(i, r.gen_range(0..=i)); }
            idx.truncate(t + 1);
            prop_assert_eq!(combine_owned(&pick(&shares, &idx)), secret.clone());
            // fewer than t+1 shares do not (generally) give the secret; not asserted, as
            // they can by chance for short vectors.
        }
    }
}
