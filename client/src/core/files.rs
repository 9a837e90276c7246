//! Files, in the core: queueing one (refused before anything is sent when it is over
//! the limit), listing transfers, and the receiving side: the fragments of a file sent
//! to us are taken out of the slots we open before reassembly, kept in the store chunk by
//! chunk (so a restart keeps them, and memory holds none), checked, put together,
//! checked against the offer's hash, and saved beside the store.
//!
//! What may arrive is bounded: an offer over our limit ([`ClientCore::set_max_file_bytes`])
//! is refused, files coming in at once hold at most [`INCOMING_BUDGET_BYTES`], and a chunk
//! counts only if it opens under the file's key at its index and has the offer's length.

use protocol::file::{open_chunk, FileOffer};
use protocol::slot::SlotMessage;
use protocol::wire::Round;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

use super::room_files::room_file_key;
use super::{conversation_id, inbox, names, Answer, ClientCore, LocalStore, Token};
use crate::event::Event;
use crate::rooms::wire::{Body, Signed};
use crate::store::{FileEntry, FileState, OutboxRecord};

/// The largest file sent or accepted unless configured (`client.max_file_bytes`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes of files being received at once, at most (an offer past it is refused).
pub const INCOMING_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// The start of a room's address (`#room/NAME`) as a file's recipient.
pub const ROOM_PREFIX: &str = "#room/";

/// A transfer's key: its sender's key, conversation and sequence number, hashed (the
/// same at both ends, and for nobody else).
pub fn file_key(sender: &[u8; 32], conversation: &[u8; 16], seq: u32) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"chorus file");
    h.update(sender);
    h.update(conversation);
    h.update(seq.to_le_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.finalize()[..16]);
    k
}

/// A size in words: `812 B`, `100.0 KiB`, `8.0 MiB`.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn entry_for(offer: &FileOffer, peer: String, outgoing: bool, key: &[u8; 16]) -> FileEntry {
    FileEntry {
        id: hex::encode(key),
        outgoing,
        peer,
        name: protocol::file::plain_name(&offer.name()),
        mime: offer.mime(),
        size: offer.size,
        sha256: hex::encode(offer.sha256.0),
        chunk_bytes: offer.chunk_bytes,
        chunks: offer.chunks() as u32,
        done: String::new(),
        state: if outgoing {
            FileState::Sending
        } else {
            FileState::Receiving
        },
        outbox_id: None,
        key: None,
    }
}

impl<S: LocalStore> ClientCore<S> {
    /// The largest file this client sends or accepts.
    pub fn set_max_file_bytes(&mut self, limit: u64) {
        self.max_file_bytes = limit;
    }

    /// Queue file `name` (`data`) for `to`, whose key is `to_dh`.
    pub(super) fn queue_file(
        &mut self,
        token: Token,
        to: String,
        (name, data): (String, Vec<u8>),
        to_dh: [u8; 32],
        now_ms: u64,
    ) {
        let r = self.try_queue_file(to, name, data, to_dh, now_ms);
        self.answer(token, Answer::Send(r));
    }

    fn try_queue_file(
        &mut self,
        to: String,
        name: String,
        data: Vec<u8>,
        to_dh: [u8; 32],
        now_ms: u64,
    ) -> Result<u64, String> {
        let limit = self.max_file_bytes;
        if data.len() as u64 > limit {
            return Err(format!(
                "{name} is {}; the largest file is {} (client.max_file_bytes = {limit})",
                size_text(data.len() as u64),
                size_text(limit)
            ));
        }
        if data.is_empty() {
            return Err(format!("{name} is empty"));
        }
        let room = match to.strip_prefix(ROOM_PREFIX) {
            Some(n) => Some(self.room_index(n)?),
            None => None,
        };
        let longest = self.cfg.params.longest_slot();
        let capacity = match room {
            Some(_) => protocol::room::room_body_capacity(longest),
            None => protocol::slot::body_capacity(longest),
        };
        let chunk = capacity.saturating_sub(protocol::file::CHUNK_TAG);
        let mut key = [0u8; 32];
        self.rng.fill_bytes(&mut key);
        let offer = FileOffer::new(&name, &data, key, chunk)
            .map_err(|e| format!("cannot send {name}: {e}"))?;
        let text = format!("📎 {} ({})", offer.name(), size_text(offer.size));
        let seq: u32 = self.rng.gen();
        let (rec, fkey) = match room {
            Some(i) => {
                let room = &self.rooms.rooms[i];
                let conversation: [u8; 16] = self.rng.gen();
                let mut message = [0u8; 8];
                message.copy_from_slice(&conversation[..8]);
                let fkey = room_file_key(&room.id, u64::from_le_bytes(message));
                let body = Body::File(offer.clone());
                let signed = Signed::new(&self.cfg.identity, &room.id, now_ms, body)
                    .ok_or("cannot sign the file's offer")?;
                let rec = OutboxRecord {
                    to_name: room.address(),
                    to_dh: [0; 32],
                    text,
                    conversation,
                    seq,
                    timestamp_ms: now_ms,
                    anonymous: false,
                    reply_secret: None,
                    room: Some(room.id),
                    body: Some(protocol::encode(&signed).map_err(|e| e.to_string())?),
                    file: Some((offer.clone(), fkey)),
                };
                (rec, fkey)
            }
            None => {
                let from = self.cfg.identity.public().dh;
                let conversation = conversation_id(&from, &to_dh);
                let fkey = file_key(&from, &conversation, seq);
                let rec = OutboxRecord {
                    to_name: to,
                    to_dh,
                    text,
                    conversation,
                    seq,
                    timestamp_ms: now_ms,
                    anonymous: false,
                    reply_secret: None,
                    room: None,
                    body: None,
                    file: Some((offer.clone(), fkey)),
                };
                (rec, fkey)
            }
        };
        let first = rec.body.as_ref().map_or(offer.to_body().len(), Vec::len);
        if first > capacity {
            return Err(format!(
                "this cluster's slots ({longest} bytes) are too small to carry a file's offer \
                 ({first} bytes); its operators can add file slots (round.file_slots)"
            ));
        }
        let mut entry = entry_for(&offer, rec.to_name.clone(), true, &fkey);
        let id = self.record_outgoing(&rec, now_ms)?;
        entry.outbox_id = Some(id);
        let kept = self
            .store
            .put_file_data(id, Some(&data))
            .and_then(|()| self.store.put_file(&fkey, &entry));
        if let Err(e) = kept {
            let _ = self.store.remove_outbox(id);
            let _ = self.store.put_file_data(id, None);
            let _ = self
                .store
                .update_history(id, 0, "failed: it could not be kept");
            return Err(format!("cannot keep {name} to send it: {e}"));
        }
        self.events.push_back(Event::file(&entry, None));
        self.outbox.add_file(id, rec, &data, entry);
        self.events
            .extend(self.outbox.state(id, crate::delivery::Delivery::Queued));
        Ok(id)
    }

    /// Every transfer, either way.
    pub(super) fn list_files(&self) -> Result<Vec<FileEntry>, String> {
        let mut all = self.store.files().map_err(|e| e.to_string())?;
        for e in &mut all {
            e.key = None;
        }
        Ok(all)
    }

    /// Restore a file of ours after a restart: its content and record from the store.
    pub(super) fn restore_file(&mut self, id: u64, rec: OutboxRecord) {
        let Some((_, key)) = &rec.file else {
            return;
        };
        let data = self.store.file_data(id).ok().flatten();
        let entry = self.store.file(key).ok().flatten();
        match (data, entry) {
            // Every chunk was out when we stopped: only the bookkeeping was left.
            (_, Some(entry)) if entry.done_chunks() == entry.chunks as usize => {
                let _ = self.store.remove_outbox(id);
                let _ = self.store.put_file_data(id, None);
                let _ = self.store.update_history(id, 0, "sent");
                if entry.state != FileState::Sent {
                    let mut entry = entry;
                    entry.state = FileState::Sent;
                    let _ = self.store.put_file(key, &entry);
                }
            }
            (Some(data), Some(entry)) => self.outbox.add_file(id, rec, &data, entry),
            _ => {
                let _ = self.store.remove_outbox(id);
                let _ = self
                    .store
                    .update_history(id, 0, "failed: its content was lost");
                self.events.push_back(Event::Error {
                    message: format!("{}: the file's content was lost; send it again", rec.text),
                });
            }
        }
    }

    /// A fragment we opened: a file's offer or chunk is kept here (`None`); anything
    /// else is handed back for reassembly.
    pub(super) fn take_file_fragment(
        &mut self,
        msg: SlotMessage,
        r: Round,
        now_ms: u64,
    ) -> Option<SlotMessage> {
        if msg.fragment_count < 2 {
            return Some(msg);
        }
        let key = file_key(&msg.sender.reply_to(), &msg.conversation, msg.seq);
        if msg.fragment_index == 0 {
            if let Some(offer) = FileOffer::from_body(&msg.body) {
                if usize::from(msg.fragment_count) == offer.chunks() + 1 {
                    self.on_offer(msg, offer, key, r, now_ms);
                }
                return None;
            }
        }
        match self.store.file(&key) {
            Ok(Some(entry)) if !entry.outgoing => {
                let (index, count) = (msg.fragment_index, msg.fragment_count);
                self.on_chunk(index, count, &msg.body, entry, &key);
                None
            }
            _ => Some(msg),
        }
    }

    fn on_offer(&mut self, msg: SlotMessage, offer: FileOffer, key: [u8; 16], r: Round, now: u64) {
        let peer = names::shown_name(&msg.sender, &self.directory);
        let Some(shown) = self.admit_offer(&offer, peer, key) else {
            return;
        };
        let done = inbox::Complete {
            sender: msg.sender,
            conversation: msg.conversation,
            seq: msg.seq,
            timestamp_ms: msg.timestamp_ms,
            body: shown.into_bytes(),
        };
        self.receive(done, r, now);
    }

    /// A file offered to us from `peer`: its record, accepted or refused (over our
    /// limit, or past what may arrive at once); `None` if it was seen before (a resend
    /// or a catch-up overlap) or cannot be kept. Returns the line to show.
    pub(super) fn admit_offer(
        &mut self,
        offer: &FileOffer,
        peer: String,
        key: [u8; 16],
    ) -> Option<String> {
        if self.store.file(&key).ok().flatten().is_some() {
            return None;
        }
        let mut entry = entry_for(offer, peer, false, &key);
        entry.key = Some(hex::encode(offer.key.0));
        let arriving: u64 = self
            .store
            .files()
            .unwrap_or_default()
            .iter()
            .filter(|e| !e.outgoing && e.state == FileState::Receiving)
            .map(|e| e.size)
            .sum();
        let mut note = String::new();
        if offer.size > self.max_file_bytes {
            let reason = format!(
                "{} is over your limit of {} (client.max_file_bytes)",
                size_text(offer.size),
                size_text(self.max_file_bytes)
            );
            note = format!(" — refused: {reason}");
            entry.state = FileState::Refused { reason };
            entry.key = None;
        } else if arriving + offer.size > INCOMING_BUDGET_BYTES {
            let reason = format!("{} of files are already arriving", size_text(arriving));
            note = format!(" — refused: {reason}");
            entry.state = FileState::Refused { reason };
            entry.key = None;
        }
        if let Err(e) = self.store.put_file(&key, &entry) {
            self.events.push_back(Event::Error {
                message: format!("cannot keep the file {}: {e}", entry.name),
            });
            return None;
        }
        self.events.push_back(Event::file(&entry, None));
        Some(format!(
            "📎 {} ({}){note}",
            entry.name,
            size_text(offer.size)
        ))
    }

    /// Fragment `fragment` (of `count`) of a file we receive: chunk `fragment − 1`.
    pub(super) fn on_chunk(
        &mut self,
        fragment: u16,
        count: u16,
        body: &[u8],
        mut entry: FileEntry,
        key: &[u8; 16],
    ) {
        let chunks = entry.chunks as usize;
        let index = usize::from(fragment).wrapping_sub(1);
        if entry.state != FileState::Receiving
            || usize::from(count) != chunks + 1
            || index >= chunks
            || entry.is_done(index)
        {
            return;
        }
        let Some(ck) = entry
            .key
            .as_deref()
            .and_then(|k| keys::identity::parse_hex32(k).ok())
        else {
            return;
        };
        let Some(hash) = keys::identity::parse_hex32(&entry.sha256).ok() else {
            return;
        };
        let Some(plain) = open_chunk(&ck, &hash, index, body) else {
            return; // not this file's chunk at this place
        };
        let want = entry
            .size
            .saturating_sub(index as u64 * u64::from(entry.chunk_bytes));
        if plain.len() as u64 != want.min(u64::from(entry.chunk_bytes)) {
            return;
        }
        entry.set_done(index);
        if let Err(e) = self.store.put_chunk(key, index as u16, body, &entry) {
            self.events.push_back(Event::Error {
                message: format!("cannot keep a chunk of {}: {e}", entry.name),
            });
            return;
        }
        if entry.done_chunks() == chunks {
            self.put_together(entry, key, &ck, &hash);
        } else {
            self.events.push_back(Event::file(&entry, None));
        }
    }

    /// Every chunk is in: decrypt, check the hash, save, drop the chunks.
    fn put_together(
        &mut self,
        mut entry: FileEntry,
        key: &[u8; 16],
        ck: &[u8; 32],
        hash: &[u8; 32],
    ) {
        let chunks = self.store.chunks(key).unwrap_or_default();
        let mut data = Vec::with_capacity(entry.size as usize);
        for (i, sealed) in &chunks {
            data.extend(open_chunk(ck, hash, usize::from(*i), sealed).unwrap_or_default());
        }
        let ok = data.len() as u64 == entry.size && Sha256::digest(&data).as_slice() == hash;
        entry.state = if ok {
            match self.store.save_received(&entry.name, &data) {
                Ok(path) => FileState::Received { path },
                Err(e) => FileState::Failed {
                    reason: format!("cannot save it: {e}"),
                },
            }
        } else {
            FileState::Failed {
                reason: "its content does not match the hash it was announced with".into(),
            }
        };
        entry.key = None;
        let _ = self.store.remove_chunks(key);
        if let Err(e) = self.store.put_file(key, &entry) {
            self.events.push_back(Event::Error {
                message: format!("cannot record the file {}: {e}", entry.name),
            });
        }
        self.events.push_back(Event::file(&entry, None));
    }
}
