//! What an accepted output does, and when.
//!
//! An output accepted from gossip is settled at once (the watermark moves in memory, so
//! no catch-up asks for it again) but its processing waits until this client's next
//! submission is on its way: opening our slots, reassembly, the history and outbox
//! writes (each a disk sync), the watermark write and the events. So the time between
//! an output and the next submission is the same for a client that just received a
//! message, one whose message was just sent and one with nothing going on: its own disk
//! never holds up its next submission.
//!
//! The shell reports "requests handed to the network" with
//! [`ClientCore::handle_sent`]; deferred work runs then if a submission was among them.
//! A client that is not submitting (no round open to it yet) runs it after
//! [`DEFER_LIMIT_ROUNDS`] round lengths, and catch-up pages, which arrive in bursts
//! long after their rounds, are processed at once.

use protocol::wire::RoundOutput;

use super::{inbox, names, ClientCore, LocalStore};
use crate::event::Event;

/// Deferred outputs processed without waiting for a submission beyond this many.
pub const MAX_DEFERRED: usize = 16;
/// Round lengths an output may wait for a submission before it is processed anyway.
pub const DEFER_LIMIT_ROUNDS: u64 = 2;

impl<S: LocalStore> ClientCore<S> {
    /// Output `output` was accepted (f+1 vouches): settle its round now, and process
    /// it now or, if `defer`, after the next submission.
    pub(super) fn accept(&mut self, output: RoundOutput, now_ms: u64, defer: bool) {
        let r = output.round;
        if defer {
            // f+1 servers published round r, so they closed it: round r + 1 is open, and
            // this output lays it out. No status request is needed to submit to it.
            self.open_round = self.open_round.max(r + 1);
            self.last_live_output_ms = now_ms;
        }
        // Reservations are settled at once: the next submission may use their slots.
        self.outbox.on_reservations(&output, &self.cfg.params);
        self.deferred.push_back((output, now_ms));
        self.settle(r);
        if !defer || self.deferred.len() > MAX_DEFERRED {
            self.process_deferred(now_ms);
        }
        self.maybe_submit(false);
    }

    /// The shell has handed every request so far to the network. Returns true if
    /// deferred work ran (its commands and events are waiting).
    pub fn handle_sent(&mut self, now_ms: u64) -> bool {
        if !self.flush_ready {
            return false;
        }
        self.flush_ready = false;
        self.process_deferred(now_ms);
        true
    }

    /// Deferred outputs that waited [`DEFER_LIMIT_ROUNDS`] for a submission.
    pub(super) fn expire_deferred(&mut self, now_ms: u64) {
        let limit = self.cfg.round_ms.saturating_mul(DEFER_LIMIT_ROUNDS);
        if self
            .deferred
            .front()
            .is_some_and(|(_, at)| now_ms.saturating_sub(*at) >= limit)
        {
            self.process_deferred(now_ms);
        }
    }

    /// A submission left the core: deferred outputs may run once it is on its way.
    pub(super) fn on_submission_out(&mut self) {
        self.flush_ready |= !self.deferred.is_empty();
    }

    /// Process every deferred output in round order, then persist the watermark.
    fn process_deferred(&mut self, now_ms: u64) {
        while let Some((output, _)) = self.deferred.pop_front() {
            self.process(output, now_ms);
        }
        self.persist_watermark();
    }

    /// Report an output, open our slots, settle our fragments in it.
    fn process(&mut self, output: RoundOutput, now_ms: u64) {
        let r = output.round;
        self.events.push_back(Event::Round {
            round: r,
            participants: output.participants,
            leader: self.leader,
            hash: hex::encode(output.hash()),
        });
        let keys = std::iter::once(self.cfg.identity.x25519_secret())
            .chain(self.outbox.reply_keys().iter());
        let slots = inbox::open_slots(&output, keys);
        let mut opened: Vec<inbox::Complete> = Vec::new();
        for msg in slots {
            // A file's fragments go to the file's record, not to reassembly.
            if let Some(msg) = self.take_file_fragment(msg, r, now_ms) {
                opened.extend(self.reassembly.offer(msg));
            }
        }
        for done in opened {
            self.receive(done, r, now_ms);
        }
        self.open_board_posts(&output);
        self.open_room_slots(&output, now_ms);
        let ev = self
            .outbox
            .on_output(&output, &mut self.store, self.open_round);
        self.events.extend(self.outbox.take_file_events());
        self.events.extend(ev);
        let voided = self.outbox.reservations_voided(r);
        self.events.extend(voided);
        self.flush_inbound(now_ms);
    }

    /// A whole message for us, from round `r`: stored and shown (once).
    pub(super) fn receive(&mut self, done: inbox::Complete, r: protocol::wire::Round, now_ms: u64) {
        {
            // A room request (join, Welcome, decline) is for the rooms, not the history.
            if let Some(d) = crate::rooms::wire::Direct::from_body(&done.body) {
                if self
                    .store
                    .mark_delivered(&done.dedupe_key(), r)
                    .unwrap_or(false)
                {
                    self.on_direct(d, done.sender, r, now_ms);
                }
                return;
            }
            // Delivered and written to history in one transaction, under the name we
            // know now (corrected once a directory sync names it); a repeat (a catch-up
            // overlap or a retransmission) writes nothing.
            let shown = names::shown_name(&done.sender, &self.directory);
            let since = (now_ms, self.sync_steps);
            let entry = crate::store::HistoryEntry {
                direction: crate::store::Direction::Received,
                peer: shown.clone(),
                text: String::from_utf8_lossy(&done.body).into_owned(),
                timestamp_ms: done.timestamp_ms,
                round: r,
                state: String::new(),
            };
            match self.store.deliver(&done.dedupe_key(), r, &entry) {
                Ok(Some(id)) => {
                    let history = Some((id, shown));
                    self.inbound.push(r, done, &self.directory, history, since)
                }
                Ok(None) => {}
                Err(e) => {
                    self.events.push_back(Event::Error {
                        message: format!("cannot store a received message: {e}"),
                    });
                    self.inbound.push(r, done, &self.directory, None, since);
                }
            }
        }
    }

    /// Board posts in `output`: stored once each (a catch-up overlap writes nothing) and
    /// shown. Our own post coming back is marked delivered only: its history entry is
    /// the one it was queued with.
    fn open_board_posts(&mut self, output: &RoundOutput) {
        let r = output.round;
        let board = protocol::board::board_secret();
        let posts: Vec<inbox::Complete> = inbox::open_slots(output, std::iter::once(&board))
            .into_iter()
            .filter(|m| m.conversation == protocol::board::BOARD_CONVERSATION)
            .filter_map(|m| self.board_parts.offer(m))
            .collect();
        for post in posts {
            let mut key = b"board/".to_vec();
            key.extend_from_slice(&post.dedupe_key());
            let text = String::from_utf8_lossy(&post.body).into_owned();
            let stored = if self.outbox.sends_from(&post.sender.reply_to()) {
                self.store.mark_delivered(&key, r).map(|_| None)
            } else {
                let entry = crate::store::HistoryEntry {
                    direction: crate::store::Direction::Received,
                    peer: super::BOARD_ADDRESS.into(),
                    text: text.clone(),
                    timestamp_ms: post.timestamp_ms,
                    round: r,
                    state: String::new(),
                };
                self.store.deliver(&key, r, &entry)
            };
            match stored {
                Ok(Some(_)) => self.events.push_back(Event::Board {
                    text,
                    round: r,
                    timestamp_ms: post.timestamp_ms,
                }),
                Ok(None) => {}
                Err(e) => self.events.push_back(Event::Error {
                    message: format!("cannot store a board post: {e}"),
                }),
            }
        }
    }

    /// Show received messages whose sender is named, in order.
    pub(super) fn flush_inbound(&mut self, now_ms: u64) {
        while let Some(m) = self.inbound.pop_ready() {
            let from = m.from.unwrap_or_default();
            let text = String::from_utf8_lossy(&m.msg.body).into_owned();
            if let Some((id, stored)) = &m.history {
                if *stored != from {
                    let _ = self.store.set_history_peer(*id, &from);
                }
            }
            self.events.push_back(Event::Message {
                from,
                text,
                round: m.round,
                timestamp_ms: m.msg.timestamp_ms,
                latency_ms: now_ms.saturating_sub(m.msg.timestamp_ms),
                anonymous: matches!(m.msg.sender, protocol::slot::Sender::ReplyKey(_)),
                reply_to: format!("key:{}", hex::encode(m.msg.sender.reply_to())),
            });
        }
    }
}
