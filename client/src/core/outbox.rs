//! The sending side: queued messages, the fragment each round carries, and what happens
//! when a round's output shows it (sent), garbles it (collision), or never comes (void or
//! lost round): random backoff, and failure after [`MAX_ATTEMPTS`].
//!
//! [`super::ClientCore`] owns one [`Outbox`]; it asks it for this round's vector, tells
//! it which round took the submission, and hands it every accepted output and status.
//! The outbox writes the final state of a message to the [`LocalStore`] and returns the
//! state events.

use std::collections::{BTreeMap, BTreeSet};

use protocol::slot::{fragment, seal_slot, Sender, SlotMessage};
use protocol::wire::{Round, RoundOutput};
use protocol::Params;
use rand::rngs::StdRng;
use rand::Rng;
use x25519_dalek::{PublicKey, StaticSecret};

use super::local::LocalStore;
use crate::delivery::{Delivery, FailReason, RetryReason};
use crate::event::Event;
use crate::store::OutboxRecord;

/// Tries per fragment before a message fails.
pub const MAX_ATTEMPTS: u32 = 8;
/// Rounds after which a submission with no output and no void notice counts as lost.
pub const LOST_AFTER_ROUNDS: u64 = 20;
/// One-time reply keys remembered (to open replies to anonymous messages).
pub const MAX_REPLY_KEYS: usize = crate::store::MAX_REPLY_KEYS;

/// One queued message.
struct Out {
    id: u64,
    rec: OutboxRecord,
    fragments: Vec<Vec<u8>>,
    next_fragment: usize,
    attempts: u32,
    not_before: Round,
    reply_key: Option<StaticSecret>,
}

/// A fragment submitted in a round, waiting for that round's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Outbox id.
    pub out_id: u64,
    /// Which fragment.
    pub fragment: usize,
    /// The slot it took.
    pub slot: usize,
    /// The sealed slot bytes, to compare with the output.
    pub bytes: Vec<u8>,
}

/// The vector for one round.
pub struct Built {
    /// `S * L` bytes: zero but for at most one sealed slot.
    pub vector: Vec<u8>,
    /// The fragment it carries, if any.
    pub pending: Option<Pending>,
    /// A message that could not be sealed (reported, the round goes out as cover).
    pub error: Option<String>,
}

/// Queued messages and fragments in flight.
#[derive(Default)]
pub struct Outbox {
    items: Vec<Out>,
    pending: BTreeMap<Round, Pending>,
    reply_keys: Vec<StaticSecret>,
}

impl Outbox {
    /// Add a message (new, or restored from the store after a restart).
    pub fn add(
        &mut self,
        id: u64,
        rec: OutboxRecord,
        slot_bytes: usize,
        reply_key: Option<StaticSecret>,
    ) {
        let fragments = fragment(rec.text.as_bytes(), slot_bytes).unwrap_or_default();
        self.items.push(Out {
            id,
            rec,
            fragments,
            next_fragment: 0,
            attempts: 0,
            not_before: 0,
            reply_key,
        });
    }

    /// Remember a one-time key so replies to it can be opened (the oldest is forgotten).
    pub fn remember_reply_key(&mut self, k: StaticSecret) {
        self.reply_keys.push(k);
        if self.reply_keys.len() > MAX_REPLY_KEYS {
            self.reply_keys.remove(0);
        }
    }

    /// One-time keys that may receive replies.
    pub fn reply_keys(&self) -> &[StaticSecret] {
        &self.reply_keys
    }

    /// Messages queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Rounds with a fragment in flight.
    pub fn pending_rounds(&self) -> Vec<Round> {
        self.pending.keys().copied().collect()
    }

    /// The state event for message `id`.
    pub fn state(&self, id: u64, delivery: Delivery) -> Option<Event> {
        let o = self.items.iter().find(|o| o.id == id)?;
        Some(Event::State {
            id,
            to: o.rec.to_name.clone(),
            delivery,
            fragments: o.fragments.len(),
        })
    }

    /// `Queued` events for every message (announced when the engine starts).
    pub fn all_queued(&self) -> Vec<Event> {
        let ids: Vec<u64> = self.items.iter().map(|o| o.id).collect();
        ids.into_iter()
            .filter_map(|id| self.state(id, Delivery::Queued))
            .collect()
    }

    /// Build round `round`'s vector: the first message whose backoff allows it puts its
    /// next fragment in a random slot; otherwise the vector is all zero (cover).
    pub fn build(
        &self,
        round: Round,
        params: &Params,
        identity: &keys::Identity,
        rng: &mut StdRng,
    ) -> Built {
        let slots = params.slots as usize;
        let slot_bytes = params.slot_bytes as usize;
        let mut vector = vec![0u8; params.vector_bytes()];
        let Some(o) = self.items.iter().find(|o| o.not_before <= round) else {
            // An idle client does the sending client's work too: it seals a slot (to a
            // throwaway key) and drops it, so the time from an output to its next
            // submission does not tell whether it is sending.
            let dummy = SlotMessage {
                sender: Sender::Identity(identity.public().dh),
                conversation: [0; 16],
                seq: rng.gen(),
                timestamp_ms: 0,
                fragment_index: 0,
                fragment_count: 1,
                body: vec![0; protocol::slot::body_capacity(slot_bytes)],
            };
            let throwaway = PublicKey::from(&StaticSecret::random_from_rng(&mut *rng));
            let _ = seal_slot(
                &dummy,
                identity.x25519_secret(),
                &throwaway,
                slot_bytes,
                rng,
            );
            let _ = rng.gen_range(0..slots.max(1));
            return Built {
                vector,
                pending: None,
                error: None,
            };
        };
        let msg = SlotMessage {
            sender: match &o.reply_key {
                Some(k) => Sender::ReplyKey(PublicKey::from(k).to_bytes()),
                None => Sender::Identity(identity.public().dh),
            },
            conversation: o.rec.conversation,
            seq: o.rec.seq,
            timestamp_ms: o.rec.timestamp_ms,
            fragment_index: o.next_fragment as u16,
            fragment_count: o.fragments.len() as u16,
            body: o
                .fragments
                .get(o.next_fragment)
                .cloned()
                .unwrap_or_default(),
        };
        let secret = o
            .reply_key
            .clone()
            .unwrap_or_else(|| identity.x25519_secret().clone());
        let to = PublicKey::from(o.rec.to_dh);
        match seal_slot(&msg, &secret, &to, slot_bytes, rng) {
            Ok(bytes) => {
                let slot = rng.gen_range(0..slots);
                if let Some(dst) = vector.get_mut(slot * slot_bytes..(slot + 1) * slot_bytes) {
                    dst.copy_from_slice(&bytes);
                }
                let pending = Pending {
                    out_id: o.id,
                    fragment: o.next_fragment,
                    slot,
                    bytes,
                };
                Built {
                    vector,
                    pending: Some(pending),
                    error: None,
                }
            }
            Err(e) => Built {
                vector,
                pending: None,
                error: Some(format!("cannot seal message {}: {e}", o.id)),
            },
        }
    }

    /// Round `r` took our submission carrying `p`: it is in flight until the output (or
    /// its absence) says otherwise.
    pub fn submitted(&mut self, r: Round, p: Pending) -> Option<Event> {
        let id = p.out_id;
        if let Some(o) = self.items.iter_mut().find(|o| o.id == id) {
            o.not_before = Round::MAX;
        }
        self.pending.insert(r, p);
        self.state(id, Delivery::InRound(r))
    }

    /// Fragments whose round the servers voided, or that waited more than
    /// [`LOST_AFTER_ROUNDS`] rounds behind `open_round`.
    pub fn take_stale(
        &mut self,
        void: &BTreeSet<Round>,
        open_round: Round,
    ) -> Vec<(Round, Pending, RetryReason)> {
        let stale: Vec<Round> = self
            .pending
            .keys()
            .copied()
            .filter(|r| void.contains(r) || r.saturating_add(LOST_AFTER_ROUNDS) < open_round)
            .collect();
        stale
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

    /// Round `r`'s output was accepted: our fragment in it either arrived intact (sent),
    /// collided, or is absent (a server serving the round missed our share, so the
    /// round left us out).
    pub fn on_output(
        &mut self,
        output: &RoundOutput,
        store: &mut impl LocalStore,
        open_round: Round,
        rng: &mut StdRng,
    ) -> Option<Event> {
        let r = output.round;
        let p = self.pending.remove(&r)?;
        match output.slot(p.slot) {
            Some(slot) if slot == p.bytes.as_slice() => self.fragment_sent(p, r, store),
            Some(slot) if slot.iter().all(|b| *b == 0) => {
                self.retry(p.out_id, r, RetryReason::Excluded, open_round, store, rng)
            }
            _ => self.retry(p.out_id, r, RetryReason::Collision, open_round, store, rng),
        }
    }

    fn fragment_sent(
        &mut self,
        p: Pending,
        round: Round,
        store: &mut impl LocalStore,
    ) -> Option<Event> {
        let o = self.items.iter_mut().find(|o| o.id == p.out_id)?;
        o.next_fragment = p.fragment + 1;
        o.attempts = 0;
        o.not_before = 0;
        if o.next_fragment < o.fragments.len() {
            return None;
        }
        let id = o.id;
        let d = Delivery::Sent(round);
        let _ = store.update_history(id, round, &d.stored());
        let _ = store.remove_outbox(id);
        let ev = self.state(id, d);
        self.items.retain(|o| o.id != id);
        ev
    }

    /// A fragment of `out_id` did not get through in `round`: back off a random number
    /// of rounds (so two colliding senders are unlikely to collide again), or give up.
    pub fn retry(
        &mut self,
        out_id: u64,
        round: Round,
        why: RetryReason,
        open_round: Round,
        store: &mut impl LocalStore,
        rng: &mut StdRng,
    ) -> Option<Event> {
        let o = self.items.iter_mut().find(|o| o.id == out_id)?;
        o.attempts += 1;
        if o.attempts >= MAX_ATTEMPTS {
            let d = Delivery::Failed {
                round,
                reason: FailReason::GaveUp {
                    attempts: o.attempts,
                    last: why,
                },
            };
            let _ = store.update_history(out_id, round, &d.stored());
            let _ = store.remove_outbox(out_id);
            let ev = self.state(out_id, d);
            self.items.retain(|o| o.id != out_id);
            return ev;
        }
        let window = 1u64 << o.attempts.min(4);
        o.not_before = open_round.saturating_add(rng.gen_range(0..window));
        self.state(out_id, Delivery::Retrying { round, reason: why })
    }
}
