//! Submissions being written right now, by (client, round), so that copies of one signed
//! submission sent concurrently reach the log once. Shared by the client gateway (calls
//! arriving here) and the consensus actor (writes forwarded to us as leader), so on the
//! leader every path into the log passes through one set.
//!
//! A copy that arrives after the first committed is refused by the state machine's
//! pre-check ("already collected this round"); this closes the window before that.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use protocol::wire::{ClientId, Round};

/// The set of (client, round) pairs being written.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<(ClientId, Round)>>>);

/// Proof that a (client, round) pair is being written by its holder; dropping it
/// releases the pair.
pub struct Claim {
    set: InFlight,
    key: (ClientId, Round),
}

impl InFlight {
    /// Claim (client, round), or `None` if another call is writing it now.
    pub fn claim(&self, client: ClientId, round: Round) -> Option<Claim> {
        let key = (client, round);
        let fresh = self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        fresh.then(|| Claim {
            set: self.clone(),
            key,
        })
    }

    /// Pairs claimed now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is claimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::bounded::Fixed;

    #[test]
    fn a_pair_is_claimed_once_until_its_claim_is_dropped() {
        let set = InFlight::default();
        let (alice, bob) = (Fixed([1u8; 32]), Fixed([2u8; 32]));
        let first = set.claim(alice, 7).expect("free");
        assert!(
            set.claim(alice, 7).is_none(),
            "a concurrent copy is refused"
        );
        let other_round = set.claim(alice, 8).expect("another round is another pair");
        let other_client = set.claim(bob, 7).expect("another client is another pair");
        assert_eq!(set.len(), 3);
        drop(first);
        assert!(set.claim(alice, 7).is_some(), "free again once written");
        drop((other_round, other_client));
        assert!(set.is_empty());
    }
}
