//! What a server holds between a client's upload and the round's decision: per round,
//! each client's opened share (round protocol v2 keeps shares off the log). Pure data,
//! no actor: the client API holds shares as they arrive, the share-keeper lists them at
//! `Close`, sums the included ones at the decision and forgets the round at its output.
//!
//! Shares are `Zeroizing`, so forgotten ones are wiped. A round stops taking shares the
//! moment it is listed ([`HeldShares::close`]), under the same lock, so a client told
//! "held" is always in this server's list.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::limits::MAX_ROUND_CLIENTS;
use protocol::round::FUTURE_WINDOW;
use protocol::shamir::add_into;
use protocol::validity::Challenge;
use protocol::wire::{ClientId, HeldEntry, ProofCheck, RejectReason, Round, SubmissionDigest};
use zeroize::Zeroizing;

/// A client's validity proof as held: its proof share, the randomness to query it
/// with, and the check once made against a layout (the round's own, or, for a share
/// that came before this server knew the round's layout, a guess checked again at close).
pub struct HeldProof {
    /// The proof share (tags' masks and proofs), encoded.
    pub share: Zeroizing<Vec<u8>>,
    /// Query and joint randomness.
    pub challenge: Challenge,
    /// The check, and the footprints of the layout it was made for.
    pub checked: Option<(Arc<Vec<u64>>, ProofCheck)>,
}

struct Held {
    digest: SubmissionDigest,
    share: Arc<Zeroizing<Vec<u8>>>,
    proof: Arc<HeldProof>,
}

/// A held client whose check must be made (again) for the round's layout at close.
pub struct Unchecked {
    /// The client and its submission's digest.
    pub client: ClientId,
    /// Its submission's digest.
    pub digest: SubmissionDigest,
    /// Its vector share.
    pub share: Arc<Zeroizing<Vec<u8>>>,
    /// Its proof.
    pub proof: Arc<HeldProof>,
}

#[derive(Default)]
struct RoundHeld {
    clients: BTreeMap<ClientId, Held>,
    closed: bool,
}

/// Most bytes of shares a server holds in all (the open round and the ones just ahead):
/// under the `open` policy anyone can make identities, so memory is bounded here, not by
/// who shows up.
pub const HELD_BUDGET_BYTES: usize = 1 << 30;

/// Shares held, by round and client.
pub struct HeldShares {
    share_bytes: usize,
    /// Clients held per round: [`MAX_ROUND_CLIENTS`] (what one `Have` list can name), or
    /// fewer where the budget says so.
    cap: usize,
    rounds: BTreeMap<Round, RoundHeld>,
    /// Rounds below this were closed or dropped: they take no more shares.
    floor: Round,
}

impl HeldShares {
    /// Nothing held; every share is `share_bytes` long (encoded field elements).
    pub fn new(share_bytes: usize) -> Self {
        Self::with_budget(share_bytes, HELD_BUDGET_BYTES)
    }

    /// Nothing held, with `budget` bytes of shares at most over the rounds that can be
    /// collecting at once.
    pub fn with_budget(share_bytes: usize, budget: usize) -> Self {
        let rounds = FUTURE_WINDOW as usize + 1;
        let cap = (budget / (share_bytes.max(1) * rounds)).clamp(1, MAX_ROUND_CLIENTS);
        Self {
            share_bytes,
            cap,
            rounds: BTreeMap::new(),
            floor: 0,
        }
    }

    /// Hold `client`'s opened share of `round`. One share per client per round: a
    /// second (a retry or a replay) is refused as a duplicate; a closed round as stale.
    pub fn hold(
        &mut self,
        round: Round,
        client: ClientId,
        digest: SubmissionDigest,
        share: Zeroizing<Vec<u8>>,
        proof: HeldProof,
    ) -> Result<(), RejectReason> {
        let closed = round < self.floor || self.rounds.get(&round).is_some_and(|r| r.closed);
        if closed {
            let open = self.floor.max(round.saturating_add(1));
            return Err(RejectReason::StaleRound { got: round, open });
        }
        if share.len() != self.share_bytes {
            return Err(RejectReason::ShareDoesNotOpen);
        }
        let cap = self.cap;
        let r = self.rounds.entry(round).or_default();
        if r.clients.contains_key(&client) {
            return Err(RejectReason::DuplicateSubmission { round });
        }
        if r.clients.len() >= cap {
            return Err(RejectReason::RoundFull {
                round,
                cap: cap as u32,
            });
        }
        r.clients.insert(
            client,
            Held {
                digest,
                share: Arc::new(share),
                proof: Arc::new(proof),
            },
        );
        Ok(())
    }

    /// Stop taking shares of `round`, laid out from `laid_out`, and list the clients
    /// held, in client order: those checked for that layout as entries, the others to
    /// be checked now.
    pub fn close(&mut self, round: Round, laid_out: &[u64]) -> (Vec<HeldEntry>, Vec<Unchecked>) {
        let r = self.rounds.entry(round).or_default();
        r.closed = true;
        let (mut ready, mut unchecked) = (Vec::new(), Vec::new());
        for (client, h) in &r.clients {
            match &h.proof.checked {
                Some((layout, check)) if layout.as_slice() == laid_out => ready.push(HeldEntry {
                    client: *client,
                    digest: h.digest,
                    check: *check,
                }),
                _ => unchecked.push(Unchecked {
                    client: *client,
                    digest: h.digest,
                    share: h.share.clone(),
                    proof: h.proof.clone(),
                }),
            }
        }
        (ready, unchecked)
    }

    /// Whether `round` was closed here (its list can be made again).
    pub fn is_closed(&self, round: Round) -> bool {
        self.rounds.get(&round).is_some_and(|r| r.closed)
    }

    /// How many clients' shares of `round` are held (the leader's round clock starts
    /// with the first and closes once they stop arriving).
    pub fn count(&self, round: Round) -> usize {
        self.rounds.get(&round).map_or(0, |r| r.clients.len())
    }

    /// The sum of the shares of `included`, or `None` if one of them is not held (lost
    /// in a restart): this server then cannot serve the round.
    pub fn sum(&self, round: Round, included: &[ClientId]) -> Option<Zeroizing<Vec<u8>>> {
        let r = self.rounds.get(&round)?;
        let mut sum = Zeroizing::new(vec![0u8; self.share_bytes]);
        for client in included {
            let held = r.clients.get(client)?;
            add_into(&mut sum, &held.share).ok()?;
        }
        Some(sum)
    }

    /// Drop `round` (output, void or abandoned).
    pub fn forget(&mut self, round: Round) {
        self.rounds.remove(&round);
    }

    /// Drop rounds below `floor`; they take no more shares.
    pub fn forget_below(&mut self, floor: Round) {
        self.floor = self.floor.max(floor);
        while self
            .rounds
            .first_key_value()
            .is_some_and(|(r, _)| *r < floor)
        {
            self.rounds.pop_first();
        }
    }

    /// Shares held in all.
    pub fn shares(&self) -> usize {
        self.rounds.values().map(|r| r.clients.len()).sum()
    }

    /// Bytes of secret material held.
    pub fn held_bytes(&self) -> usize {
        self.shares() * self.share_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::bounded::Fixed;

    fn share(value: u8, len: usize) -> Zeroizing<Vec<u8>> {
        let mut v = vec![0u8; len];
        for w in v.chunks_exact_mut(8) {
            w[0] = value;
        }
        Zeroizing::new(v)
    }

    /// A proof already checked for the empty layout.
    fn proof() -> HeldProof {
        let key = protocol::validity::ValidityKey::from_bytes([0; 32]);
        HeldProof {
            share: Zeroizing::new(Vec::new()),
            challenge: key.challenge(1, &Fixed([0; 32]), &[]),
            checked: Some((
                Arc::new(Vec::new()),
                Fixed([1; protocol::validity::CHECK_BYTES]),
            )),
        }
    }

    fn client(i: u8) -> ClientId {
        Fixed([i; 32])
    }

    #[test]
    fn shares_are_held_once_listed_in_order_and_summed_over_the_included() {
        let mut h = HeldShares::new(16);
        for i in [3u8, 1, 2] {
            h.hold(7, client(i), Fixed([i; 16]), share(i, 16), proof())
                .expect("held");
        }
        assert_eq!(
            h.hold(7, client(1), Fixed([9; 16]), share(9, 16), proof()),
            Err(RejectReason::DuplicateSubmission { round: 7 })
        );
        assert_eq!(
            h.hold(7, client(4), Fixed([4; 16]), share(4, 15), proof()),
            Err(RejectReason::ShareDoesNotOpen)
        );
        assert_eq!((h.count(7), h.count(8)), (3, 0));
        let (list, unchecked) = h.close(7, &[]);
        let order: Vec<ClientId> = list.iter().map(|e| e.client).collect();
        assert_eq!(order, vec![client(1), client(2), client(3)]);
        assert!(unchecked.is_empty(), "checked for the round's layout");
        // Listed again for another layout (a retry after the layout was known): every
        // client is to be checked again.
        let (list, unchecked) = h.close(7, &[5]);
        assert!(list.is_empty());
        assert_eq!(unchecked.len(), 3);
        // Closed: a late share is stale, so a client told "held" is always listed.
        assert!(matches!(
            h.hold(7, client(5), Fixed([5; 16]), share(5, 16), proof()),
            Err(RejectReason::StaleRound { got: 7, .. })
        ));
        let sum = h.sum(7, &[client(1), client(3)]).expect("all held");
        assert!(sum.chunks_exact(8).all(|w| w[0] == 4 && w[1..] == [0; 7]));
        // A client we do not hold: we cannot serve.
        assert!(h.sum(7, &[client(1), client(9)]).is_none());
        assert_eq!(h.held_bytes(), 3 * 16);
        h.forget(7);
        assert_eq!(h.held_bytes(), 0);
    }

    #[test]
    fn a_round_holds_what_the_budget_allows_and_refuses_the_rest_by_name() {
        // 3 rounds can collect at once: 3 × 2 × 8 bytes.
        let mut h = HeldShares::with_budget(8, 48);
        h.hold(1, client(1), Fixed([0; 16]), share(1, 8), proof())
            .expect("held");
        h.hold(1, client(2), Fixed([0; 16]), share(1, 8), proof())
            .expect("held");
        assert_eq!(
            h.hold(1, client(3), Fixed([0; 16]), share(1, 8), proof()),
            Err(RejectReason::RoundFull { round: 1, cap: 2 })
        );
        // A retry of one held is still a duplicate, not "full".
        assert_eq!(
            h.hold(1, client(2), Fixed([0; 16]), share(1, 8), proof()),
            Err(RejectReason::DuplicateSubmission { round: 1 })
        );
        h.hold(2, client(3), Fixed([0; 16]), share(1, 8), proof())
            .expect("next round");
    }

    #[test]
    fn old_rounds_are_dropped_and_take_no_more_shares() {
        let mut h = HeldShares::new(8);
        for r in 1..=10 {
            h.hold(r, client(1), Fixed([0; 16]), share(1, 8), proof())
                .expect("held");
        }
        h.forget_below(8);
        assert_eq!(h.shares(), 3);
        assert!(matches!(
            h.hold(5, client(2), Fixed([0; 16]), share(1, 8), proof()),
            Err(RejectReason::StaleRound { got: 5, .. })
        ));
    }
}
