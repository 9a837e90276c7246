//! Shamir sharing of whole vectors over the Goldilocks field ([`crate::field`]).
//!
//! A vector of bytes is packed 7 bytes to an element; each element is the constant term
//! of its own random polynomial of degree `t`, and server `i` gets the evaluations at
//! the fixed point `x = i + 1`. Fixed points are what make shares *addable*: adding two
//! clients' shares for the same `x` gives a share of the sum of their vectors, so
//! servers aggregate a whole round without learning any single vector.
//!
//! **Seed-compressed shares.** The `t` random values that fix each polynomial are taken
//! as the shares of `t` *seed servers*: share_j = PRG(seed_j). Together with f(0) = the
//! vector they determine f, so the other `n − t` shares follow by interpolation. A seed
//! server is sent 32 bytes instead of a whole share, so a client uploads about
//! `(n − t) · V`. Any `t` shares are still uniform and independent of the vector (the map
//! from the seed shares to any other `t` shares, with f(0) fixed, is a bijection), so
//! privacy is unchanged. Which servers get seeds is the submission's public rotation
//! ([`crate::submission::seed_servers`]).
//!
//! Shares and sums are encoded field elements (8 bytes each, canonical). Field values
//! are `prio`'s constant-time `Field64`.

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::field::{self, fe, Fe, FieldDecodeError};
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
    /// A seed server out of range or named twice.
    #[error("seed server {0} is out of range or repeated")]
    BadSeedServer(usize),
    /// A share is not whole canonical field elements.
    #[error(transparent)]
    Field(#[from] FieldDecodeError),
}

/// The Shamir x-coordinate of server `i`. Fixed, never random: see the module docs.
pub fn x_of(server: usize) -> u8 {
    debug_assert!(server < MAX_SERVERS);
    (server + 1) as u8
}

fn x_fe(x: u8) -> Fe {
    fe(u64::from(x))
}

/// Lagrange coefficient at `target` for the point `xs[i]` among `xs` (distinct, public):
/// the product over m != i of (target - x_m) / (x_i - x_m).
fn lagrange_at(xs: &[Fe], i: usize, target: Fe) -> Fe {
    let mut num = fe(1);
    let mut den = fe(1);
    for (m, &xm) in xs.iter().enumerate() {
        if m != i {
            num *= target - xm;
            den *= xs[i] - xm;
        }
    }
    num * field::inv(den)
}

/// Split `secret` into `n` shares, with the given servers' shares expanded from their
/// seeds (`t` = the number of seeds; any `t` shares reveal nothing, any `t + 1` recover
/// the secret). Returns every server's share, encoded; a caller that sends seeds keeps
/// only the others.
pub fn split_with_seeds(
    secret: &[u8],
    n: usize,
    seeds: &[(usize, [u8; 32])],
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    split_encoded_with_seeds(&field::pack(secret), n, seeds)
}

/// [`split_with_seeds`] for a secret that is already a vector of encoded field elements
/// (a round's vector: reservation cells and the packed message region,
/// [`crate::vector::Vector::encode`]).
pub fn split_encoded_with_seeds(
    secret: &[u8],
    n: usize,
    seeds: &[(usize, [u8; 32])],
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    let t = seeds.len();
    if !(1 <= t && t < n && n <= MAX_SERVERS) {
        return Err(ShamirError::BadParams { n, t });
    }
    for (k, (server, _)) in seeds.iter().enumerate() {
        if *server >= n || seeds[..k].iter().any(|(s, _)| s == server) {
            return Err(ShamirError::BadSeedServer(*server));
        }
    }
    let elements = secret.len() / field::ELEMENT_BYTES;
    let expanded: Vec<Zeroizing<Vec<u8>>> = seeds
        .iter()
        .map(|(_, seed)| field::expand_seed(seed, elements))
        .collect();
    // The points that fix each polynomial: x = 0 (the secret) and the seed servers.
    let xs: Vec<Fe> = std::iter::once(fe(0))
        .chain(seeds.iter().map(|(s, _)| x_fe(x_of(*s))))
        .collect();
    // The interpolated shares, each with its Lagrange coefficients over (0, seeds…).
    let mut computed: Vec<(usize, Vec<Fe>, Zeroizing<Vec<u8>>)> = (0..n)
        .filter(|server| !seeds.iter().any(|(s, _)| s == server))
        .map(|server| {
            let target = x_fe(x_of(server));
            let coef = (0..xs.len()).map(|i| lagrange_at(&xs, i, target)).collect();
            let share = Zeroizing::new(vec![0u8; elements * field::ELEMENT_BYTES]);
            (server, coef, share)
        })
        .collect();
    // Each input element is read (and converted into the field) once for all shares.
    let mut inputs = vec![fe(0); 1 + t];
    for j in 0..elements {
        inputs[0] = field::element(secret, j);
        for (slot, e) in inputs[1..].iter_mut().zip(&expanded) {
            *slot = field::element(e, j);
        }
        for (_, coef, share) in computed.iter_mut() {
            let v = coef
                .iter()
                .zip(inputs.iter())
                .fold(fe(0), |acc, (c, x)| acc + *c * *x);
            field::put(share, j, v);
        }
    }
    inputs.fill(fe(0));
    let mut expanded: Vec<Option<Zeroizing<Vec<u8>>>> = expanded.into_iter().map(Some).collect();
    let mut computed = computed.into_iter();
    let mut shares = Vec::with_capacity(n);
    for server in 0..n {
        let share = match seeds.iter().position(|(s, _)| *s == server) {
            Some(k) => expanded[k].take(),
            None => computed.next().map(|(_, _, share)| share),
        };
        shares.extend(share);
    }
    Ok(shares)
}

/// Split `secret` into `n` shares with threshold `t`, seeds drawn from `rng` for servers
/// `0..t`. Share `i` is for server `i` (x = i + 1).
pub fn split_vector<R: RngCore + CryptoRng>(
    secret: &[u8],
    n: usize,
    t: usize,
    rng: &mut R,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    let seeds: Vec<(usize, [u8; 32])> = (0..t)
        .map(|s| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            (s, seed)
        })
        .collect();
    split_with_seeds(secret, n, &seeds)
}

/// Recover the `len`-byte secret from shares `(x, encoded)`. With `t + 1` or more distinct
/// shares of a degree-`t` sharing, the result is the secret.
pub fn combine_vector(shares: &[(u8, &[u8])], len: usize) -> Result<Vec<u8>, ShamirError> {
    Ok(field::unpack(&interpolate_at(shares, 0)?, len))
}

/// Evaluate at `target` the polynomial through the shares `(x, encoded)`, element by
/// element, encoded. At `target = 0` this is the (packed) secret; at another server's x
/// it predicts what that server's share must be if every share lies on one polynomial
/// of degree `shares.len() - 1` (see [`crate::robust`]).
pub fn interpolate_at(
    shares: &[(u8, &[u8])],
    target: u8,
) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let Some(&(_, first)) = shares.first() else {
        return Err(ShamirError::Empty);
    };
    let mut xs = Vec::with_capacity(shares.len());
    for &(x, bytes) in shares {
        if x == 0 || xs.contains(&x_fe(x)) {
            return Err(ShamirError::BadX(x));
        }
        if bytes.len() != first.len() {
            return Err(ShamirError::LengthMismatch(first.len(), bytes.len()));
        }
        field::check(bytes)?;
        xs.push(x_fe(x));
    }
    let target = x_fe(target);
    let coef: Vec<Fe> = (0..xs.len()).map(|i| lagrange_at(&xs, i, target)).collect();
    let elements = first.len() / field::ELEMENT_BYTES;
    let mut out = Zeroizing::new(vec![0u8; first.len()]);
    for j in 0..elements {
        let mut v = fe(0);
        for (c, &(_, bytes)) in coef.iter().zip(shares) {
            v += *c * field::element(bytes, j);
        }
        field::put(&mut out, j, v);
    }
    Ok(out)
}

/// `acc += share`: aggregate shares for the same x. `acc` is unchanged on error.
pub fn add_into(acc: &mut [u8], share: &[u8]) -> Result<(), ShamirError> {
    Ok(field::add_encoded(acc, share)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    fn pick<'a>(shares: &'a [Zeroizing<Vec<u8>>], idx: &[usize]) -> Vec<(u8, &'a [u8])> {
        idx.iter()
            .map(|&i| (x_of(i), shares[i].as_slice()))
            .collect()
    }

    #[test]
    fn shares_lie_on_one_polynomial_of_degree_t() {
        let mut r = rng(3);
        let secret: Vec<u8> = (0..50).map(|_| r.gen()).collect();
        let shares = split_vector(&secret, 5, 2, &mut r).expect("split");
        // The polynomial through servers 2, 3, 4 (none of them a seed server) predicts
        // the seed servers' expanded shares, and gives the secret at 0.
        let basis = pick(&shares, &[2, 3, 4]);
        for i in [0usize, 1] {
            let predicted = interpolate_at(&basis, x_of(i)).expect("interpolate");
            assert_eq!(predicted, shares[i]);
        }
        assert_eq!(
            combine_vector(&basis, secret.len()).expect("combine"),
            secret
        );
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
            let mut summed: Vec<(u8, Vec<u8>)> = Vec::new();
            let mut servers: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                servers.swap(i, r.gen_range(0..=i));
            }
            for &i in &servers[..=t] {
                let mut s = sa[i].to_vec();
                add_into(&mut s, &sb[i]).expect("add");
                summed.push((x_of(i), s));
            }
            let refs: Vec<(u8, &[u8])> = summed.iter().map(|(x, s)| (*x, s.as_slice())).collect();
            let mut expect = field::pack(&a);
            add_into(&mut expect, &field::pack(&b)).expect("add");
            assert_eq!(
                interpolate_at(&refs, 0).expect("combine"),
                expect,
                "case {case} n={n} t={t}"
            );
        }
    }

    #[test]
    fn rejects_bad_params_points_and_encodings() {
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
        assert_eq!(
            split_with_seeds(b"x", 3, &[(1, [0; 32]), (1, [1; 32])]),
            Err(ShamirError::BadSeedServer(1))
        );
        assert_eq!(
            split_with_seeds(b"x", 3, &[(3, [0; 32])]),
            Err(ShamirError::BadSeedServer(3))
        );
        let one = 1u64.to_le_bytes();
        let two = [2u8; 16];
        assert_eq!(combine_vector(&[(0, &one)], 1), Err(ShamirError::BadX(0)));
        assert_eq!(
            combine_vector(&[(1, &one), (1, &one)], 1),
            Err(ShamirError::BadX(1))
        );
        assert_eq!(
            combine_vector(&[(1, &one), (2, &two)], 1),
            Err(ShamirError::LengthMismatch(8, 16))
        );
        assert_eq!(combine_vector(&[], 1), Err(ShamirError::Empty));
        let not_canonical = u64::MAX.to_le_bytes();
        assert!(matches!(
            combine_vector(&[(1, &one), (2, &not_canonical)], 1),
            Err(ShamirError::Field(_))
        ));
    }

    /// Any `t` shares of two different vectors are distributed alike. For an all-zero
    /// vector and one with a message, we compare the histograms of the low byte of one
    /// colluder's share element and of the low byte of the sum of two colluders'
    /// elements, with a chi-squared two-sample test over 256 cells each. The colluders
    /// are a seed server and a computed one, then two computed ones.
    #[test]
    fn any_t_shares_hide_which_slot_is_used() {
        let mut r = rng(2026);
        let (n, t) = (5usize, 2usize);
        let trials = 40_000;
        for colluders in [[1usize, 3], [3, 4]] {
            let mut hist = [[[0u32; 256]; 2]; 2]; // [vector][statistic][value]
            let empty = vec![0u8; 14];
            let used: Vec<u8> = (0..14u8).map(|i| 0xA5 ^ i.wrapping_mul(37)).collect();
            for (v, secret) in [&empty, &used].into_iter().enumerate() {
                for _ in 0..trials {
                    let s = split_vector(secret, n, t, &mut r).expect("split");
                    let [a, b] = colluders;
                    hist[v][0][s[a][0] as usize] += 1;
                    let sum = field::element(&s[a], 1) + field::element(&s[b], 1);
                    hist[v][1][(u64::from(sum) & 0xff) as usize] += 1;
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
                    "colluders {colluders:?}, statistic {stat}: chi-squared {chi} says the shares differ"
                );
            }
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
            prop_assert_eq!(combine_vector(&pick(&shares, &idx), secret.len()).expect("combine"), secret);
        }

        #[test]
        fn interpolation_never_panics_on_random_shares(
            a in proptest::collection::vec(any::<u8>(), 0..40),
            b in proptest::collection::vec(any::<u8>(), 0..40),
            xa in any::<u8>(),
            xb in any::<u8>(),
        ) {
            let _ = interpolate_at(&[(xa, &a), (xb, &b)], 0);
            let mut acc = a.clone();
            let _ = add_into(&mut acc, &b);
        }
    }
}
