//! Reconstructing a round's output when a server may lie about its sum.
//!
//! Every honest server's revealed sum is a point on one polynomial of degree `t` per
//! field element (the sum of the clients' sharing polynomials). With `m` reveals, a liar is
//! *detected* once `m >= t + 2` (its point is off the polynomial the others agree on),
//! and `e` liars are *corrected* once `m >= t + 1 + 2e`: this is the unique-decoding
//! bound of Reed-Solomon codes, the one Berlekamp-Welch reaches. A lying server lies in
//! the same place, its own x, for every element, so the error locations are shared by the
//! whole vector. We therefore decode by locating the liars once for the whole vector,
//! not element by element: try interpolation sets of `t + 1` reveals in a fixed order and
//! accept the first polynomial that at least `m - e_max` reveals agree with, where
//! `e_max = (m - t - 1) / 2`. If at most `e_max` servers lie, every accepted polynomial
//! shares at least `t + 1` points with the honest ones and so *is* the honest one; the
//! reveals off it are exactly the servers that lied.
//!
//! Deterministic: the order of the tries depends only on the server indices, so every
//! replica of the state machine reaches the same output and names the same servers.

use crate::shamir::{interpolate_at, x_of};
use crate::wire::ServerIndex;

/// Interpolation sets tried before giving up (C(9, 5) = 126, so every cluster of up to
/// nine servers is searched exhaustively; larger ones that exceed it simply wait for
/// more reveals or are voided, never decoded wrongly).
pub const MAX_TRIES: usize = 4096;

/// A decoded output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The round's vector, as encoded field elements (see [`crate::field::unpack`]).
    pub data: Vec<u8>,
    /// Servers whose reveal is off the polynomial the others agree on.
    pub dissenters: Vec<ServerIndex>,
}

/// Decode `reveals` (server index and its sum, in any order; distinct servers, equal
/// lengths) of a degree-`t` sharing, correcting up to `(m - t - 1) / 2` wrong reveals.
/// `None` when there are fewer than `t + 2` reveals (nothing can be checked) or no
/// polynomial has enough agreement (more liars than `m` can correct: wait for more
/// reveals, or give the round up).
pub fn decode(reveals: &[(ServerIndex, &[u8])], t: usize) -> Option<Decoded> {
    let m = reveals.len();
    if m < t + 2 {
        return None;
    }
    let e_max = (m - t - 1) / 2;
    let mut sorted: Vec<(ServerIndex, &[u8])> = reveals.to_vec();
    sorted.sort_by_key(|(s, _)| *s);
    let points: Vec<(u8, &[u8])> = sorted
        .iter()
        .map(|(s, b)| (x_of(usize::from(*s)), *b))
        .collect();
    for (tries, set) in Subsets::new(m, t + 1).enumerate() {
        if tries >= MAX_TRIES {
            break;
        }
        let basis: Vec<(u8, &[u8])> = set.iter().map(|&i| points[i]).collect();
        let mut dissenters = Vec::new();
        for (j, &(x, bytes)) in points.iter().enumerate() {
            if set.contains(&j) {
                continue;
            }
            // Equal lengths and distinct x are the caller's contract; a failure here
            // counts as disagreement, never as a panic.
            let agrees = interpolate_at(&basis, x).is_ok_and(|p| p.as_slice() == bytes);
            if !agrees {
                dissenters.push(sorted[j].0);
                if dissenters.len() > e_max {
                    break;
                }
            }
        }
        if dissenters.len() <= e_max {
            let data = interpolate_at(&basis, 0).ok()?.to_vec();
            return Some(Decoded { data, dissenters });
        }
    }
    None
}

/// The `k`-element subsets of `0..n` in lexicographic order.
struct Subsets {
    n: usize,
    next: Option<Vec<usize>>,
}

impl Subsets {
    fn new(n: usize, k: usize) -> Self {
        Self {
            n,
            next: (k <= n).then(|| (0..k).collect()),
        }
    }
}

impl Iterator for Subsets {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        let k = current.len();
        let mut following = current.clone();
        // The rightmost index that can still move right.
        if let Some(i) = (0..k).rev().find(|&i| following[i] < self.n - k + i) {
            following[i] += 1;
            for j in i + 1..k {
                following[j] = following[j - 1] + 1;
            }
            self.next = Some(following);
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::unpack;
    use crate::shamir::split_vector;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn shares(secret: &[u8], n: usize, t: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        split_vector(secret, n, t, &mut rng)
            .expect("split")
            .into_iter()
            .map(|s| s.to_vec())
            .collect()
    }

    fn as_reveals(v: &[Vec<u8>], servers: &[usize]) -> Vec<(ServerIndex, Vec<u8>)> {
        servers
            .iter()
            .map(|&i| (i as ServerIndex, v[i].clone()))
            .collect()
    }

    fn run(r: &[(ServerIndex, Vec<u8>)], t: usize) -> Option<Decoded> {
        let refs: Vec<(ServerIndex, &[u8])> = r.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        decode(&refs, t)
    }

    #[test]
    fn subsets_are_all_and_in_order() {
        let all: Vec<Vec<usize>> = Subsets::new(5, 3).collect();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], vec![0, 1, 2]);
        assert_eq!(all[9], vec![2, 3, 4]);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Subsets::new(3, 4).count(), 0);
    }

    #[test]
    fn honest_reveals_decode_with_no_dissenters() {
        let secret = b"hello, round".to_vec();
        let v = shares(&secret, 5, 2, 1);
        let d = run(&as_reveals(&v, &[0, 1, 2, 3, 4]), 2).expect("decoded");
        assert_eq!(unpack(&d.data, secret.len()), secret);
        assert!(d.dissenters.is_empty());
        // t + 1 reveals check nothing: no decision.
        assert_eq!(run(&as_reveals(&v, &[0, 1, 2]), 2), None);
    }

    #[test]
    fn one_liar_among_t_plus_2_is_detected_not_corrected() {
        let v = shares(b"secret", 5, 2, 2);
        let mut r = as_reveals(&v, &[0, 1, 3, 4]);
        r[2].1[0] ^= 0x55;
        assert_eq!(run(&r, 2), None, "4 reveals, t = 2: detect only");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// n = 5, t = 2: any one server changing any bytes of its sum is corrected and
        /// named, whoever it is and whatever order the reveals arrive in.
        #[test]
        fn any_single_liar_of_five_is_corrected_and_named(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            liar in 0usize..5,
            noise in proptest::collection::vec(any::<u8>(), 1..64),
            seed in any::<u64>(),
            rotate in 0usize..5,
        ) {
            let v = shares(&secret, 5, 2, seed);
            let mut r = as_reveals(&v, &[0, 1, 2, 3, 4]);
            let mut changed = false;
            for (b, n) in r[liar].1.iter_mut().zip(&noise) {
                changed |= *n != 0;
                *b ^= n;
            }
            r.rotate_left(rotate);
            let d = run(&r, 2).expect("decoded");
            prop_assert_eq!(&unpack(&d.data, secret.len()), &secret);
            let named = if changed { vec![liar as ServerIndex] } else { vec![] };
            prop_assert_eq!(d.dissenters, named);
        }

        /// n = 7, t = 2: two liars are corrected (7 >= 2 + 1 + 2·2).
        #[test]
        fn two_liars_of_seven_are_corrected(
            secret in proptest::collection::vec(any::<u8>(), 1..32),
            a in 0usize..7,
            b in 0usize..7,
            seed in any::<u64>(),
        ) {
            prop_assume!(a != b);
            let v = shares(&secret, 7, 2, seed);
            let mut r = as_reveals(&v, &[0, 1, 2, 3, 4, 5, 6]);
            r[a].1[0] ^= 1;
            r[b].1[0] ^= 2;
            let d = run(&r, 2).expect("decoded");
            prop_assert_eq!(&unpack(&d.data, secret.len()), &secret);
            let mut named = vec![a as ServerIndex, b as ServerIndex];
            named.sort();
            prop_assert_eq!(d.dissenters, named);
        }

        /// Random reveals never panic.
        #[test]
        fn random_reveals_never_panic(
            r in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 8), 0..7),
            t in 1usize..4,
        ) {
            let reveals: Vec<(ServerIndex, Vec<u8>)> =
                r.into_iter().enumerate().map(|(i, b)| (i as ServerIndex, b)).collect();
            let _ = run(&reveals, t);
        }
    }
}
