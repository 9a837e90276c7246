//! Queueing a message: to a contact, to a key, or to the public board.
//!
//! Part of [`super::ClientCore`]. A message is written to the history and the outbox in
//! one transaction before anything else happens to it, so a restart never loses it.
//! A board post ([`BOARD_ADDRESS`]) goes out like any message (one reservation, one
//! slot), sealed to the board's public key from a one-time key that is never kept: it
//! names nobody, and nobody can answer it.

use protocol::board::{board_public, BOARD_CONVERSATION};
use x25519_dalek::StaticSecret;

use super::{conversation_id, inbox, Answer, ClientCore, LocalStore, Token};
use crate::event::Event;

/// The address of the public board, wherever a recipient is named (`send --to`, the
/// daemon's `send`, the app). Not a valid registered name, so it cannot be taken.
pub const BOARD_ADDRESS: &str = "#board";

impl<S: LocalStore> ClientCore<S> {
    /// Queue a post to the public board.
    pub(super) fn queue_board_post(&mut self, token: Token, text: String, now_ms: u64) {
        let to_dh = board_public().to_bytes();
        self.queue(token, BOARD_ADDRESS.into(), text, true, to_dh, now_ms);
    }

    /// Put a message in the outbox (the recipient's key is known).
    pub(super) fn queue(
        &mut self,
        token: Token,
        to: String,
        text: String,
        anonymous: bool,
        to_dh: [u8; 32],
        now_ms: u64,
    ) {
        let r = self.try_queue(to, text, anonymous, to_dh, now_ms);
        self.answer(token, Answer::Send(r));
    }

    fn try_queue(
        &mut self,
        to: String,
        text: String,
        anonymous: bool,
        to_dh: [u8; 32],
        now_ms: u64,
    ) -> Result<u64, String> {
        use crate::store::OutboxRecord;
        use rand::Rng;
        let slot_bytes = self.cfg.params.slot_bytes as usize;
        if text.len() > inbox::MAX_MESSAGE_BYTES {
            return Err(format!(
                "message too long: {} bytes, at most {} per message",
                text.len(),
                inbox::MAX_MESSAGE_BYTES
            ));
        }
        protocol::slot::fragment(text.as_bytes(), slot_bytes).ok_or("message too long")?;
        if text.starts_with('\0') {
            return Err("a message cannot start with a NUL character".into());
        }
        let board = to == BOARD_ADDRESS;
        // An anonymous message comes from a fresh one-time key, and its conversation id
        // depends on that key alone (with the recipient's): nothing in the slot can be
        // tested against anyone's long-term key. A board post is always anonymous, and
        // its conversation is the board's.
        let reply_key = (anonymous || board).then(|| StaticSecret::random_from_rng(&mut self.rng));
        let from_dh = match &reply_key {
            Some(k) => x25519_dalek::PublicKey::from(k).to_bytes(),
            None => self.cfg.identity.public().dh,
        };
        let conversation = if board {
            BOARD_CONVERSATION
        } else {
            conversation_id(&from_dh, &to_dh)
        };
        let rec = OutboxRecord {
            to_name: to.clone(),
            to_dh,
            text: text.clone(),
            conversation,
            seq: self.rng.gen(),
            timestamp_ms: now_ms,
            anonymous: reply_key.is_some(),
            reply_secret: reply_key.as_ref().map(StaticSecret::to_bytes),
            room: None,
            body: None,
            file: None,
        };
        let id = self.queue_record(rec, reply_key.clone(), now_ms)?;
        // Nobody replies to a board post: its one-time key is kept only with the post
        // (to resend it after a restart), never among the keys we try on every slot.
        if let Some(k) = reply_key.as_ref().filter(|_| !board) {
            if let Err(e) = self.store.add_reply_key(&k.to_bytes()) {
                self.events.push_back(Event::Error {
                    message: format!("cannot keep the reply key: {e}"),
                });
            }
            self.outbox.remember_reply_key(k.clone());
        }
        Ok(id)
    }
}
