//! Reservations and fragments whose round will not tell: voided, or silent too long.

use std::collections::BTreeSet;

use protocol::wire::Round;

use super::{Outbox, Pending, Stage, LOST_AFTER_ROUNDS};
use crate::delivery::{Delivery, RetryReason};
use crate::event::Event;

impl Outbox {
    /// The reservations round `round` took before it was published void, reported.
    pub fn reservations_voided(&mut self, round: Round) -> Vec<Event> {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.void_reserved)
            .into_iter()
            .partition(|(_, r)| *r == round);
        self.void_reserved = later;
        let reason = RetryReason::Void;
        now.into_iter()
            .filter_map(|(id, round)| self.state(id, Delivery::Retrying { round, reason }))
            .collect()
    }

    /// Fragments whose round the servers voided, or that waited more than
    /// [`LOST_AFTER_ROUNDS`] rounds behind `open_round`. Reservations in such rounds
    /// reserve again (no send was tried); a void one is reported in `events`.
    pub fn take_stale(
        &mut self,
        void: &BTreeSet<Round>,
        open_round: Round,
        events: &mut Vec<Event>,
    ) -> Vec<(Round, Pending, RetryReason)> {
        let stale =
            |r: Round| void.contains(&r) || r.saturating_add(LOST_AFTER_ROUNDS) < open_round;
        let mut voided = Vec::new();
        for o in &mut self.items {
            if let Stage::Reserved { round, .. } = o.stage {
                if stale(round) {
                    o.stage = Stage::Idle;
                    if void.contains(&round) {
                        voided.push((o.id, round));
                    }
                }
            }
        }
        for (id, round) in voided {
            let reason = RetryReason::Void;
            events.extend(self.state(id, Delivery::Retrying { round, reason }));
        }
        let rounds: Vec<Round> = self.pending.keys().copied().filter(|r| stale(*r)).collect();
        rounds
            .into_iter()
            .filter_map(|r| {
                let p = self.pending.remove(&r)?;
                let why = if void.contains(&r) {
                    RetryReason::Void
                } else {
                    RetryReason::Lost
                };
                Some((r, p, why))
            })
            .collect()
    }
}
