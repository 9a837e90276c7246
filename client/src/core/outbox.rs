//! The sending side: queued messages, and each fragment's way through reserved slots.
//!
//! A fragment first reserves: the client writes a random footprint (asking for the
//! length the fragment needs) into a random reservation cell of its next submission. If
//! that round's output decodes the footprint and the layout fits it, round `r + 1` has a
//! slot for it ([`protocol::vector::layout`], [`RESERVE_AHEAD`]), and the client's
//! submission for `r + 1` carries the sealed fragment there. The output of `r + 1` shows
//! it intact (sent), garbled (collision), empty or missing (excluded), or never comes
//! (void or lost): the fragment reserves again, and a message fails after
//! [`MAX_ATTEMPTS`] sends. A
//! reservation that was lost (three in a cell, or no room left) only reserves again.
//! Every round carries at most one reservation and one fragment; several messages are
//! in flight at once, one fragment each.
//!
//! [`super::ClientCore`] owns one [`Outbox`]; it asks it for this round's vector, tells
//! it which round took the submission, and hands it every accepted output and status.
//! The outbox writes the final state of a message to the [`LocalStore`] and returns the
//! state events.

use std::collections::BTreeMap;

use protocol::reserve::{footprint, Slot};
use protocol::room::{fragment_room, room_slot_len_for, seal_room_slot, RoomFragment, RoomKeys};
use protocol::slot::{body_capacity, fragment, seal_slot, slot_len_for, Sender, SlotMessage};
use protocol::vector::{layout, Vector};
use protocol::wire::{Round, RoundOutput};
use protocol::Params;
use rand::rngs::StdRng;
use rand::Rng;
use x25519_dalek::{PublicKey, StaticSecret};

use super::local::LocalStore;

mod files;
mod stale;
use crate::delivery::{Delivery, FailReason, RetryReason};
use crate::event::Event;
use crate::store::OutboxRecord;
pub use files::MAX_FILE_FAILURES;

/// Sends per fragment before a message fails.
pub const MAX_ATTEMPTS: u32 = 8;
/// Rounds after which a submission with no output and no void notice counts as lost.
pub const LOST_AFTER_ROUNDS: u64 = 20;
/// One-time reply keys remembered (to open replies to anonymous messages).
pub const MAX_REPLY_KEYS: usize = crate::store::MAX_REPLY_KEYS;
pub use protocol::vector::RESERVE_AHEAD;

/// Where a message's next fragment is on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting to reserve (from `not_before` on).
    Idle,
    /// Its reservation went out in `round`.
    Reserved { round: Round, footprint: u64 },
    /// Round `round` lays out `slot` for it.
    Granted { round: Round, slot: Slot },
    /// The fragment went out (its round is its key in `Outbox::pending`).
    Sent,
}

/// One queued message.
struct Out {
    id: u64,
    rec: OutboxRecord,
    fragments: Vec<Vec<u8>>,
    next_fragment: usize,
    attempts: u32,
    not_before: Round,
    reply_key: Option<StaticSecret>,
    stage: Stage,
    /// A file: which chunks are done and in flight (several may be at once).
    file: Option<files::Sending>,
}

/// A fragment submitted in a round, waiting for that round's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Outbox id.
    pub out_id: u64,
    /// Which fragment.
    pub fragment: usize,
    /// The reservation whose slot it took.
    pub footprint: u64,
    /// The sealed slot bytes, to compare with the output.
    pub bytes: Vec<u8>,
}

/// What one round's vector carries for the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// A fragment in its granted slot.
    pub sent: Option<Pending>,
    /// A reservation: (outbox id, footprint).
    pub reserved: Option<(u64, u64)>,
}

/// The vector for one round.
pub struct Built {
    /// Zero but for at most one reservation and one sealed slot.
    pub vector: Vector,
    /// What it carries.
    pub carried: Carried,
    /// A message that could not be sealed (reported, the round goes out as cover).
    pub error: Option<String>,
}

/// Queued messages and fragments in flight.
#[derive(Default)]
pub struct Outbox {
    items: Vec<Out>,
    pending: BTreeMap<Round, Pending>,
    reply_keys: Vec<StaticSecret>,
    /// Reservations whose round was published void, to report once the output is
    /// processed (after the next submission, like every other event).
    void_reserved: Vec<(u64, Round)>,
    /// The round our grant is in and the footprints it is laid out from: the vector's
    /// validity proof is made for that layout, which is the round's.
    grant_layout: Option<(Round, Vec<u64>)>,
    /// Files' progress, for the core to report.
    file_events: Vec<Event>,
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
        let fragments = match (&rec.room, &rec.body) {
            (Some(_), Some(b)) => fragment_room(b, slot_bytes),
            (None, Some(b)) => fragment(b, slot_bytes),
            _ => fragment(rec.text.as_bytes(), slot_bytes),
        }
        .unwrap_or_default();
        self.items.push(Out {
            id,
            rec,
            fragments,
            next_fragment: 0,
            attempts: 0,
            not_before: 0,
            reply_key,
            stage: Stage::Idle,
            file: None,
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

    /// Whether one of our queued messages is sent from the one-time key `public` (a
    /// board post of ours coming back in an output).
    pub fn sends_from(&self, public: &[u8; 32]) -> bool {
        self.items.iter().any(|o| {
            o.reply_key
                .as_ref()
                .is_some_and(|k| PublicKey::from(k).as_bytes() == public)
        })
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

    /// Build round `round`'s vector: the fragment granted a slot in this round goes
    /// into it, and the first message whose fragment waits to reserve (and whose backoff
    /// allows it) reserves. An idle client does the same work and drops it.
    pub fn build(
        &mut self,
        round: Round,
        params: &Params,
        identity: &keys::Identity,
        rng: &mut StdRng,
        room_keys: &dyn Fn(&[u8; 16]) -> Option<RoomKeys>,
    ) -> Built {
        let slot_bytes = params.slot_bytes as usize;
        let mut vector = match &self.grant_layout {
            Some((r, footprints)) if *r == round => Vector::laid_out(params, footprints),
            _ => Vector::zero(params),
        };
        let mut carried = Carried::default();
        let mut error = None;
        // A grant for a round we did not submit in is gone: reserve again.
        for o in &mut self.items {
            if matches!(o.stage, Stage::Granted { round: g, .. } if g < round) {
                o.stage = Stage::Idle;
            }
        }
        let granted = self.items.iter().find_map(|o| match o.stage {
            Stage::Granted { round: g, slot } if g == round => Some((o.id, slot)),
            _ => None,
        });
        let room_granted = granted.is_some_and(|(id, _)| {
            self.items
                .iter()
                .any(|o| o.id == id && o.rec.room.is_some())
        });
        if let Some((id, slot)) = granted {
            match self.seal(id, &slot, round, identity, rng, room_keys) {
                Ok(Some(p)) => {
                    vector.write(&slot, &p.bytes);
                    carried.sent = Some(p);
                }
                Ok(None) => {}
                Err(e) => error = Some(e),
            }
        }
        match granted {
            Some(_) if !room_granted => {}
            _ => {
                // An idle client does the sending client's work too: it seals a slot (to
                // a throwaway key) and drops it, so the time from an output to its next
                // submission does not tell whether it is sending.
                let dummy = SlotMessage {
                    sender: Sender::Identity(identity.public().dh),
                    conversation: [0; 16],
                    seq: rng.gen(),
                    timestamp_ms: 0,
                    fragment_index: 0,
                    fragment_count: 1,
                    body: vec![0; body_capacity(slot_bytes)],
                };
                let throwaway = PublicKey::from(&StaticSecret::random_from_rng(&mut *rng));
                let _ = seal_slot(
                    &dummy,
                    identity.x25519_secret(),
                    &throwaway,
                    slot_bytes,
                    rng,
                );
            }
        }
        // Messages reserve first; a file reserves only when no message waits.
        let sealing = carried.sent.as_ref().map(|p| p.out_id);
        let message = self
            .items
            .iter()
            .find(|o| o.file.is_none() && o.stage == Stage::Idle && o.not_before <= round);
        let wants = match message {
            Some(o) => Some(o),
            None => self
                .items
                .iter()
                .find(|o| files::wants_slot(o, round, sealing == Some(o.id))),
        }
        .map(|o| {
            if let Some(f) = &o.file {
                return (o.id, f.slot_len(params));
            }
            {
                let body = o.fragments.get(o.next_fragment).map_or(0, Vec::len);
                let len = if o.rec.room.is_some() {
                    room_slot_len_for(body, slot_bytes)
                } else {
                    slot_len_for(body, slot_bytes)
                };
                (o.id, len)
            }
        });
        let fp = loop {
            let len = wants.map_or(slot_bytes as u16, |(_, len)| len);
            if let Some(fp) = footprint(rng.gen(), len) {
                break fp;
            }
        };
        let cell = rng.gen_range(0..vector.cells());
        if let Some((id, _)) = wants {
            vector.reserve(cell, fp);
            carried.reserved = Some((id, fp));
        }
        Built {
            vector,
            carried,
            error,
        }
    }

    /// Seal message `id`'s next fragment for `slot`.
    fn seal(
        &self,
        id: u64,
        slot: &Slot,
        round: Round,
        identity: &keys::Identity,
        rng: &mut StdRng,
        room_keys: &dyn Fn(&[u8; 16]) -> Option<RoomKeys>,
    ) -> Result<Option<Pending>, String> {
        let o = self
            .items
            .iter()
            .find(|o| o.id == id)
            .ok_or_else(|| format!("message {id} is gone"))?;
        let index = match &o.file {
            Some(f) => match f.next_to_seal() {
                Some(i) => i,
                None => return Ok(None),
            },
            None => o.next_fragment,
        };
        let body = o.fragments.get(index).cloned().unwrap_or_default();
        if let Some(room) = &o.rec.room {
            let keys = room_keys(room).ok_or_else(|| {
                format!(
                    "message {id} to {}: you are no longer in the room",
                    o.rec.to_name
                )
            })?;
            let mut message = [0u8; 8];
            message.copy_from_slice(&o.rec.conversation[..8]);
            let frag = RoomFragment {
                message: u64::from_le_bytes(message),
                index: index as u16,
                count: o.fragments.len() as u16,
                body,
            };
            let bytes = seal_room_slot(&keys, round, slot.footprint, &frag, slot.len, rng)
                .map_err(|e| format!("cannot seal message {id}: {e}"))?;
            return Ok(Some(Pending {
                out_id: id,
                fragment: index,
                footprint: slot.footprint,
                bytes,
            }));
        }
        let msg = SlotMessage {
            sender: match &o.reply_key {
                Some(k) => Sender::ReplyKey(PublicKey::from(k).to_bytes()),
                None => Sender::Identity(identity.public().dh),
            },
            conversation: o.rec.conversation,
            seq: o.rec.seq,
            timestamp_ms: o.rec.timestamp_ms,
            fragment_index: index as u16,
            fragment_count: o.fragments.len() as u16,
            body,
        };
        let secret = o
            .reply_key
            .clone()
            .unwrap_or_else(|| identity.x25519_secret().clone());
        let to = PublicKey::from(o.rec.to_dh);
        let bytes = seal_slot(&msg, &secret, &to, slot.len, rng)
            .map_err(|e| format!("cannot seal message {id}: {e}"))?;
        Ok(Some(Pending {
            out_id: id,
            fragment: index,
            footprint: slot.footprint,
            bytes,
        }))
    }

    /// Round `r` took our submission carrying `c`: its reservation waits for `r`'s
    /// output, its fragment is in flight until the output (or its absence) says.
    pub fn submitted(&mut self, r: Round, c: Carried) -> Option<Event> {
        let mut event = None;
        if let Some(p) = c.sent {
            let id = p.out_id;
            if let Some(o) = self.items.iter_mut().find(|o| o.id == id) {
                // A file's next chunk may reserve at once; a message's waits.
                let first = match &mut o.file {
                    Some(f) => {
                        o.stage = Stage::Idle;
                        f.in_flight(p.fragment)
                    }
                    None => {
                        o.stage = Stage::Sent;
                        true
                    }
                };
                self.pending.insert(r, p);
                if first {
                    event = self.state(id, Delivery::InRound(r));
                }
            }
        }
        if let Some((id, footprint)) = c.reserved {
            if let Some(o) = self.items.iter_mut().find(|o| o.id == id) {
                let grant_used = matches!(o.stage, Stage::Granted { round: g, .. } if g == r);
                if o.stage == Stage::Idle || grant_used {
                    o.stage = Stage::Reserved {
                        round: r,
                        footprint,
                    };
                }
            }
        }
        event
    }

    /// Round `r`'s output was accepted: a reservation made in `r` either has a slot in
    /// round `r + 1` (the layout of `r`'s decoded footprints fits it) or reserves again.
    /// Called at once, before the next submission is built.
    pub fn on_reservations(&mut self, output: &RoundOutput, params: &Params) {
        let r = output.round;
        let mut laid_out = None;
        for o in &mut self.items {
            let Stage::Reserved { round, footprint } = o.stage else {
                continue;
            };
            if round != r {
                continue;
            }
            let slots =
                laid_out.get_or_insert_with(|| layout(params, output.reservations.as_slice()));
            o.stage = match slots.iter().find(|s| s.footprint == footprint) {
                Some(slot) => {
                    self.grant_layout =
                        Some((r + RESERVE_AHEAD, output.reservations.as_slice().to_vec()));
                    Stage::Granted {
                        round: r + RESERVE_AHEAD,
                        slot: *slot,
                    }
                }
                None => Stage::Idle,
            };
            if output.void {
                self.void_reserved.push((o.id, r));
            }
        }
    }

    /// Round `r`'s output was accepted: our fragment in it either arrived intact (sent),
    /// was garbled (collision), or is absent (a server serving the round missed our
    /// share, or the round was not laid out as we expected).
    pub fn on_output(
        &mut self,
        output: &RoundOutput,
        store: &mut impl LocalStore,
        open_round: Round,
    ) -> Option<Event> {
        let r = output.round;
        let p = self.pending.remove(&r)?;
        let why = match output.slot(p.footprint) {
            _ if output.void => RetryReason::Void,
            Some(slot) if slot == p.bytes.as_slice() => {
                return match self.is_file(p.out_id) {
                    true => self.chunk_sent(&p, r, store),
                    false => self.fragment_sent(p, r, store),
                };
            }
            Some(slot) if slot.iter().any(|b| *b != 0) => RetryReason::Collision,
            _ => RetryReason::Excluded,
        };
        self.retry(&p, r, why, open_round, store)
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
        o.stage = Stage::Idle;
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

    /// A fragment of `out_id` did not get through in `round`: it reserves again at once
    /// (slots are reserved, so nobody else is likely to want the same one), or the
    /// message gives up after [`MAX_ATTEMPTS`] sends.
    pub fn retry(
        &mut self,
        p: &Pending,
        round: Round,
        why: RetryReason,
        open_round: Round,
        store: &mut impl LocalStore,
    ) -> Option<Event> {
        let out_id = p.out_id;
        if self.is_file(out_id) {
            return self.chunk_failed(p, round, why, open_round, store);
        }
        let o = self.items.iter_mut().find(|o| o.id == out_id)?;
        o.attempts += 1;
        o.stage = Stage::Idle;
        if o.attempts >= MAX_ATTEMPTS {
            let attempts = o.attempts;
            return self.give_up(out_id, round, attempts, why, store);
        }
        o.not_before = open_round;
        self.state(out_id, Delivery::Retrying { round, reason: why })
    }

    /// Message `id` failed after `attempts` sends: recorded, dropped, reported.
    fn give_up(
        &mut self,
        id: u64,
        round: Round,
        attempts: u32,
        last: RetryReason,
        store: &mut impl LocalStore,
    ) -> Option<Event> {
        let d = Delivery::Failed {
            round,
            reason: FailReason::GaveUp { attempts, last },
        };
        let _ = store.update_history(id, round, &d.stored());
        let _ = store.remove_outbox(id);
        let ev = self.state(id, d);
        self.items.retain(|o| o.id != id);
        ev
    }
}
