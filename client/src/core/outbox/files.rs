//! Files in the outbox: one message of many fragments, fragment 0 the offer
//! ([`protocol::file::FileOffer`]) and the rest its chunks, each in a file slot.
//!
//! A message sends one fragment at a time; a file keeps reserving while its chunks are
//! in flight, so it moves a chunk every round it wins a slot. Messages still come first:
//! a file reserves only in a round no message of ours wants, and the layout puts file
//! slots after every message slot ([`protocol::reserve::layout`]). The chunks go out
//! only once the offer is in an output, so the recipient knows the file before its
//! first chunk. Which chunks are done is written to the transfer's record as each
//! output shows it, so a restart resends only the rest.

use std::collections::BTreeSet;

use protocol::file::{seal_chunk, FileOffer};
use protocol::slot::slot_len_for;
use protocol::wire::Round;
use protocol::Params;

use super::{Out, Outbox, Pending, Stage};
use crate::core::local::LocalStore;
use crate::delivery::{Delivery, RetryReason};
use crate::event::Event;
use crate::store::{FileEntry, FileState, OutboxRecord};

/// Chunks of one file that fail in a row (collisions, exclusions, void rounds) before
/// the file gives up.
pub const MAX_FILE_FAILURES: u32 = 32;

/// A file on its way.
pub(super) struct Sending {
    /// Sealed into room slots (their overhead differs).
    room: bool,
    entry: FileEntry,
    key: [u8; 16],
    offer_len: usize,
    chunk_len: usize,
    offer_done: bool,
    in_flight: BTreeSet<usize>,
    failures: u32,
    /// The first round a chunk got through in this run, and chunks since.
    started: Option<Round>,
    done_now: u64,
    last_round: Round,
}

impl Sending {
    /// The next fragment to seal: the offer until it is out, then the first chunk
    /// neither done nor in flight.
    pub(super) fn next_to_seal(&self) -> Option<usize> {
        if !self.offer_done {
            return (!self.in_flight.contains(&0)).then_some(0);
        }
        (0..self.entry.chunks as usize)
            .find(|i| !self.entry.is_done(*i) && !self.in_flight.contains(&(i + 1)))
            .map(|i| i + 1)
    }

    /// Fragments that could still be sealed.
    fn unsent(&self) -> usize {
        if !self.offer_done {
            return usize::from(!self.in_flight.contains(&0));
        }
        (0..self.entry.chunks as usize)
            .filter(|i| !self.entry.is_done(*i) && !self.in_flight.contains(&(i + 1)))
            .count()
    }

    /// Fragment `i` went out; true for the offer's (the message's first send).
    pub(super) fn in_flight(&mut self, i: usize) -> bool {
        self.in_flight.insert(i);
        i == 0
    }

    /// The slot length the next reservation asks for.
    pub(super) fn slot_len(&self, params: &Params) -> u16 {
        let body = if self.offer_done {
            self.chunk_len
        } else {
            self.offer_len
        };
        match self.room {
            true => protocol::room::room_slot_len_for(body, params.longest_slot()),
            false => slot_len_for(body, params.longest_slot()),
        }
    }

    fn progress(&self) -> Event {
        let left = u64::from(self.entry.chunks).saturating_sub(self.entry.done_chunks() as u64);
        let eta_rounds = self.started.filter(|_| self.done_now > 0).map(|s| {
            let per = (self.last_round.saturating_sub(s) + 1) as f64 / self.done_now as f64;
            (left as f64 * per).ceil() as u64
        });
        Event::file(&self.entry, eta_rounds)
    }
}

/// Whether file item `o` reserves in `round` (`sealing`: it seals a chunk in this round).
pub(super) fn wants_slot(o: &Out, round: Round, sealing: bool) -> bool {
    let Some(f) = &o.file else {
        return false;
    };
    let free =
        o.stage == Stage::Idle || matches!(o.stage, Stage::Granted { round: g, .. } if g == round);
    free && o.not_before <= round && f.unsent() > usize::from(sealing)
}

impl Outbox {
    /// Add a file (new, or restored after a restart with the chunks its record says are
    /// done): the offer and `data` in chunks under the offer's key.
    pub fn add_file(&mut self, id: u64, rec: OutboxRecord, data: &[u8], entry: FileEntry) {
        let Some((offer, key)) = rec.file.clone() else {
            return;
        };
        let offer: FileOffer = offer;
        let chunk = offer.chunk_bytes.max(1) as usize;
        // A room file's offer is the signed room message kept as the record's body.
        let mut fragments = vec![rec.body.clone().unwrap_or_else(|| offer.to_body())];
        fragments.extend(
            data.chunks(chunk)
                .enumerate()
                .map(|(i, c)| seal_chunk(&offer.key.0, &offer.sha256.0, i, c)),
        );
        let sending = Sending {
            room: rec.room.is_some(),
            offer_len: fragments[0].len(),
            chunk_len: chunk + protocol::file::CHUNK_TAG,
            offer_done: entry.done_chunks() > 0,
            entry,
            key,
            in_flight: BTreeSet::new(),
            failures: 0,
            started: None,
            done_now: 0,
            last_round: 0,
        };
        self.items.push(Out {
            id,
            rec,
            fragments,
            next_fragment: 0,
            attempts: 0,
            not_before: 0,
            reply_key: None,
            stage: Stage::Idle,
            file: Some(sending),
        });
    }

    pub(super) fn is_file(&self, id: u64) -> bool {
        self.items.iter().any(|o| o.id == id && o.file.is_some())
    }

    /// Events about files since the last call.
    pub fn take_file_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.file_events)
    }

    /// Progress of every file we send (announced when the engine starts).
    pub fn file_progress(&self) -> Vec<Event> {
        self.items
            .iter()
            .filter_map(|o| o.file.as_ref().map(Sending::progress))
            .collect()
    }

    /// Fragment `p` of a file is in round `round`'s output: record it; the file is sent
    /// once every chunk is.
    pub(super) fn chunk_sent(
        &mut self,
        p: &Pending,
        round: Round,
        store: &mut impl LocalStore,
    ) -> Option<Event> {
        let o = self.items.iter_mut().find(|o| o.id == p.out_id)?;
        let f = o.file.as_mut()?;
        f.in_flight.remove(&p.fragment);
        f.failures = 0;
        o.not_before = 0;
        if p.fragment == 0 {
            f.offer_done = true;
        } else {
            f.entry.set_done(p.fragment - 1);
            f.done_now += 1;
            f.started.get_or_insert(round);
            f.last_round = round;
        }
        if f.offer_done && f.entry.done_chunks() == f.entry.chunks as usize {
            f.entry.state = FileState::Sent;
        }
        if let Err(e) = store.put_file(&f.key, &f.entry) {
            self.file_events.push(Event::Error {
                message: format!("cannot record the progress of {}: {e}", f.entry.name),
            });
        }
        self.file_events.push(f.progress());
        if f.entry.state != FileState::Sent {
            return None;
        }
        let id = o.id;
        let _ = store.put_file_data(id, None);
        let d = Delivery::Sent(round);
        let _ = store.update_history(id, round, &d.stored());
        let _ = store.remove_outbox(id);
        let ev = self.state(id, d);
        self.items.retain(|o| o.id != id);
        ev
    }

    /// Fragment `p` of a file did not get through: it goes again, unless chunks failed
    /// [`MAX_FILE_FAILURES`] times in a row.
    pub(super) fn chunk_failed(
        &mut self,
        p: &Pending,
        round: Round,
        why: RetryReason,
        open_round: Round,
        store: &mut impl LocalStore,
    ) -> Option<Event> {
        let o = self.items.iter_mut().find(|o| o.id == p.out_id)?;
        let f = o.file.as_mut()?;
        f.in_flight.remove(&p.fragment);
        f.failures += 1;
        o.not_before = open_round;
        if f.failures < MAX_FILE_FAILURES {
            return None;
        }
        let id = o.id;
        f.entry.state = FileState::Failed {
            reason: format!("{} chunks in a row did not get through", f.failures),
        };
        let _ = store.put_file(&f.key, &f.entry);
        self.file_events.push(f.progress());
        let _ = store.put_file_data(id, None);
        let attempts = f.failures;
        self.give_up(id, round, attempts, why, store)
    }
}
