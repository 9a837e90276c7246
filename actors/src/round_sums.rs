//! What a share-keeper holds: one running sum per open round, never anything per client.
//! Pure data, no actor: [`crate::share_keeper`] owns one.

use std::collections::BTreeMap;

use protocol::shamir::add_into;
use protocol::wire::Round;
use zeroize::Zeroizing;

struct RoundSum {
    sum: Zeroizing<Vec<u8>>,
    included: u32,
}

/// What a share-keeper holds: one running sum per open round, never anything per client.
/// An opened share is added in and dropped at once (it is `Zeroizing`, so its bytes are
/// wiped); a round's sum leaves when the round closes (to be revealed) or is void.
pub struct RoundSums {
    share_bytes: usize,
    rounds: BTreeMap<Round, RoundSum>,
}

impl RoundSums {
    /// No rounds yet; every sum is `share_bytes` long (encoded field elements).
    pub fn new(share_bytes: usize) -> Self {
        Self {
            share_bytes,
            rounds: BTreeMap::new(),
        }
    }

    /// Count a submission in `round`, with our opened share if it opened.
    pub fn add(&mut self, round: Round, opened: Option<Zeroizing<Vec<u8>>>) {
        let entry = self.rounds.entry(round).or_insert_with(|| RoundSum {
            sum: Zeroizing::new(vec![0u8; self.share_bytes]),
            included: 0,
        });
        entry.included += 1;
        if let Some(share) = opened {
            // A share of the wrong length or off the field leaves the sum unchanged
            // (the keeper checked it when opening; this only keeps the sum well formed).
            let _ = add_into(&mut entry.sum, &share);
        }
    }

    /// Submissions counted in `round` so far.
    pub fn included(&self, round: Round) -> Option<u32> {
        self.rounds.get(&round).map(|s| s.included)
    }

    /// The round's sum, removed (zeros if nothing was added).
    pub fn take(&mut self, round: Round) -> Zeroizing<Vec<u8>> {
        self.rounds
            .remove(&round)
            .map(|s| s.sum)
            .unwrap_or_else(|| Zeroizing::new(vec![0u8; self.share_bytes]))
    }

    /// Drop `round`'s sum (a void round).
    pub fn forget(&mut self, round: Round) {
        self.rounds.remove(&round);
    }

    /// Drop sums for rounds below `floor` (they can never be revealed).
    pub fn forget_below(&mut self, floor: Round) {
        while self
            .rounds
            .first_key_value()
            .is_some_and(|(r, _)| *r < floor)
        {
            self.rounds.pop_first();
        }
    }

    /// Bytes of secret material held.
    pub fn held_bytes(&self) -> usize {
        self.rounds.values().map(|s| s.sum.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An opened share whose every element is `value` (`len` bytes, whole elements).
    fn opened(value: u8, len: usize) -> Option<Zeroizing<Vec<u8>>> {
        let mut v = vec![0u8; len];
        for w in v.chunks_exact_mut(8) {
            w[0] = value;
        }
        Some(Zeroizing::new(v))
    }

    #[test]
    fn a_keeper_holds_one_sum_per_open_round_and_nothing_after_close() {
        let mut sums = RoundSums::new(64);
        for client in 0..50u8 {
            sums.add(7, opened(client, 64));
        }
        sums.add(8, opened(1, 64));
        // Fifty clients' openings are folded into one 64-byte sum, not kept each.
        assert_eq!(sums.held_bytes(), 2 * 64);
        assert_eq!(sums.included(7), Some(50));
        let sum = sums.take(7);
        let expected: u64 = (0..50u64).sum();
        assert!(sum
            .chunks_exact(8)
            .all(|w| w == expected.to_le_bytes().as_slice()));
        // After round 7 closes nothing of it remains; round 8 is still collecting.
        assert_eq!(sums.included(7), None);
        assert_eq!(sums.held_bytes(), 64);
        sums.forget(8);
        assert_eq!(sums.held_bytes(), 0);
    }

    #[test]
    fn unopened_or_odd_sized_shares_count_but_add_nothing() {
        let mut sums = RoundSums::new(16);
        sums.add(1, None);
        sums.add(1, opened(9, 15));
        sums.add(1, Some(Zeroizing::new(vec![0xff; 16])));
        assert_eq!(sums.included(1), Some(3));
        assert!(sums.take(1).iter().all(|b| *b == 0));
    }

    #[test]
    fn rounds_that_can_no_longer_be_revealed_are_dropped() {
        let mut sums = RoundSums::new(8);
        for r in 1..=10 {
            sums.add(r, opened(1, 8));
        }
        sums.forget_below(8);
        assert_eq!(sums.held_bytes(), 3 * 8);
        assert_eq!(sums.included(7), None);
        assert_eq!(sums.included(8), Some(1));
    }
}
