//! Rooms in the client core, the receiving side: room slots in an output, one-to-one
//! room requests, and what each does to a room, in output order.
//!
//! Part of [`super::ClientCore`] (the sending side is [`super::rooms`]). Every member
//! applies the same messages in the same order (slot order within a round), so every
//! member reaches the same membership: a commit counts in the epoch it was made for;
//! the committer merges its own when it comes back, everyone else applies it if the
//! room's rules allow its committer to do what it does.

use protocol::room::{has_tag, open_room_slot, RoomKeys};
use protocol::slot::Sender;
use protocol::wire::{Round, RoundOutput};

use super::room_files::{self, RoomFiles};
use super::rooms::EPOCH_LAG_ROUNDS;
use super::{ClientCore, LocalStore};
use crate::event::Event;
use crate::rooms::book::{self, Op, Request, Room};
use crate::rooms::mls::{MemberKeys, Mls, RoomId};
use crate::rooms::wire::{Body, Direct, Note, Signed};
use crate::store::{Direction, HistoryEntry};

impl<S: LocalStore> ClientCore<S> {
    /// Room slots in `output` for every active room, by tag under each epoch that may
    /// still be written in this round; whole messages whose signature holds, in order.
    fn room_messages(&mut self, output: &RoundOutput) -> (Vec<(RoomId, Signed)>, RoomFiles) {
        let r = output.round;
        let mut found: Vec<(RoomId, Vec<u8>)> = Vec::new();
        let mut files = RoomFiles::default();
        let mut receiving = None;
        for room in self.rooms.rooms.iter().filter(|room| room.active) {
            let readable: Vec<RoomKeys> = room
                .epochs
                .iter()
                .enumerate()
                .filter(|(k, e)| {
                    let ended = room.epochs.get(k + 1).map(|n| n.from_round);
                    e.from_round < r && ended.is_none_or(|end| r <= end + EPOCH_LAG_ROUNDS)
                })
                .filter_map(|(_, e)| {
                    let b: [u8; 64] = e.keys.as_slice().try_into().ok()?;
                    Some(RoomKeys::from_bytes(&b))
                })
                .collect();
            for s in output.slots.as_slice() {
                let data = s.data.as_slice();
                let Some(keys) = readable.iter().find(|k| has_tag(k, r, s.footprint, data)) else {
                    continue;
                };
                if let Some(f) = open_room_slot(keys, r, s.footprint, data) {
                    // A file's offer and chunks are no parts of a room message.
                    if let Some(m) = room_files::offer_of(&f) {
                        files.offers.push((room.id, f.message, f.count, m));
                        continue;
                    }
                    if f.index > 0 {
                        let ours =
                            receiving.get_or_insert_with(|| room_files::receiving(&self.store));
                        if ours.contains(&room_files::room_file_key(&room.id, f.message)) {
                            files.chunks.push((room.id, f));
                            continue;
                        }
                    }
                    if let Some(whole) = self.room_parts.offer(room.id, f) {
                        found.push((room.id, whole));
                    }
                }
            }
        }
        let messages = found
            .into_iter()
            .filter_map(|(id, bytes)| {
                let signed = protocol::decode::<Signed>(&bytes).ok()?;
                signed.verify(&id).then_some((id, signed))
            })
            .collect();
        (messages, files)
    }

    /// The room messages of an output, applied in slot order.
    pub(super) fn open_room_slots(&mut self, output: &RoundOutput, now_ms: u64) {
        let (found, files) = self.room_messages(output);
        self.on_room_files(files, output.round);
        if found.is_empty() {
            return;
        }
        for (id, signed) in found {
            if let Some(i) = self.rooms.by_id(&id) {
                self.on_room_message(i, signed, output.round, now_ms);
            }
        }
        self.save_rooms();
    }

    /// An output from before we joined, read for history only: its texts and
    /// membership notes are stored; nothing in it changes the room.
    pub(super) fn read_room_history(&mut self, output: &RoundOutput, _now_ms: u64) {
        let r = output.round;
        for (id, m) in self.room_messages(output).0 {
            let Some(i) = self.rooms.by_id(&id) else {
                continue;
            };
            let from = self.rooms.rooms[i].name_of(&m.sender);
            match m.body.clone() {
                Body::Text(text) => self.room_text(i, from, text, r, &m),
                Body::Commit {
                    note: Note::Add(name),
                    ..
                } => self.notice(i, format!("{name} joined, approved by {from}"), r, m.at_ms),
                Body::Commit {
                    note: Note::Remove(name),
                    ..
                } => self.notice(i, format!("{name} was removed by {from}"), r, m.at_ms),
                _ => {}
            }
        }
    }

    /// A member's text in room `i`: stored and shown once (its signature marks it
    /// delivered in the same write, so an output processed again, after a crash or in a
    /// catch-up overlap, shows nothing twice).
    pub(super) fn room_text(
        &mut self,
        i: usize,
        from: String,
        text: String,
        round: Round,
        m: &Signed,
    ) {
        let room = &self.rooms.rooms[i];
        let entry = HistoryEntry {
            direction: Direction::Received,
            peer: room.address(),
            text: format!("{from}: {text}"),
            timestamp_ms: m.at_ms,
            round,
            state: String::new(),
        };
        let mut key = b"room/".to_vec();
        key.extend_from_slice(&m.sig);
        match self.store.deliver(&key, round, &entry) {
            Ok(Some(_)) => self.events.push_back(Event::RoomMessage {
                room: room.name.clone(),
                from,
                text,
                round,
                timestamp_ms: m.at_ms,
            }),
            Ok(None) => {}
            Err(e) => self.events.push_back(Event::Error {
                message: format!("cannot store a room message: {e}"),
            }),
        }
    }

    fn notice(&mut self, i: usize, text: String, round: Round, at_ms: u64) {
        let room = &self.rooms.rooms[i];
        let entry = HistoryEntry {
            direction: Direction::Received,
            peer: room.address(),
            text: text.clone(),
            timestamp_ms: at_ms,
            round,
            state: String::new(),
        };
        let _ = self.store.add_history(&entry);
        self.events.push_back(Event::RoomNotice {
            room: room.name.clone(),
            notice: text,
            round,
        });
    }

    fn on_room_message(&mut self, i: usize, m: Signed, r: Round, now_ms: u64) {
        let me = MemberKeys::of(&self.cfg.identity);
        let mine = m.sender == me.sign;
        let members = self
            .mls
            .members(&self.rooms.rooms[i].id)
            .unwrap_or_default();
        let from = self.rooms.rooms[i].name_of(&m.sender);
        // Only a member now speaks in the room: a removed member still holds the last
        // epoch's keys for a while, but nothing it writes is taken.
        let known = members.iter().any(|k| k.sign == m.sender);
        if !known {
            return; // not a member of this room now
        }
        match m.body.clone() {
            Body::Text(text) => {
                if mine {
                    return; // its history entry is the one it was queued with
                }
                self.room_text(i, from, text, r, &m);
            }
            Body::Commit { mls, note } => self.on_commit(i, m.sender, &mls, note, r, now_ms),
            Body::Request { name, key_package } => {
                if protocol::names::check(&name).is_err() {
                    return; // not a name anyone can have registered
                }
                let Ok((_, member)) = self.mls.check_key_package(&key_package) else {
                    return;
                };
                let room = &mut self.rooms.rooms[i];
                if members.contains(&member) || room.requests.iter().any(|q| q.member == member) {
                    return;
                }
                // Requests wait for a member's answer; a flood of them (from a member
                // passing on junk) keeps the newest, every member alike.
                if room.requests.len() >= book::MAX_REQUESTS {
                    room.requests.remove(0);
                }
                room.requests.push(Request {
                    name: name.clone(),
                    member,
                    key_package,
                });
                self.notice(i, format!("{name} asks to join (via {from})"), r, m.at_ms);
            }
            Body::Declined(name) => {
                let room = &mut self.rooms.rooms[i];
                if !room.may_manage(&m.sender) {
                    return;
                }
                room.requests.retain(|q| q.name != name);
                self.notice(i, format!("{name} was declined by {from}"), r, m.at_ms);
            }
            Body::Rename(to) => {
                if !self.rooms.rooms[i].may_manage(&m.sender) {
                    return;
                }
                let Some(to) = self.rooms.fit_name(&to, &self.rooms.rooms[i].id, Some(i)) else {
                    return;
                };
                self.rooms.rooms[i].name = to.clone();
                self.notice(i, format!("{from} renamed the room to {to}"), r, m.at_ms);
            }
            // A file's offer comes as fragment 0 of its own message (`room_files`).
            Body::File(_) => {}
            Body::Leave => {
                let id = self.rooms.rooms[i].id;
                if mine {
                    self.notice(i, "you left".into(), r, m.at_ms);
                    self.rooms.rooms[i].active = false;
                    self.mls.forget(&id);
                    return;
                }
                self.notice(i, format!("{from} is leaving"), r, m.at_ms);
                // The first remaining member (by key) commits the removal.
                let Some(leaver) = members.iter().find(|k| k.sign == m.sender).copied() else {
                    return;
                };
                let first = members.iter().filter(|k| **k != leaver).min().copied();
                if first == Some(me) {
                    self.rooms.rooms[i].ops.push_back(Op::Remove {
                        name: from,
                        member: leaver,
                    });
                    self.rooms.rooms[i].leaving.insert(leaver.sign);
                    self.next_commit(i, now_ms);
                } else {
                    self.rooms.rooms[i].leaving.insert(leaver.sign);
                }
            }
        }
    }

    fn on_commit(
        &mut self,
        i: usize,
        sender: [u8; 32],
        mls: &[u8],
        note: Note,
        r: Round,
        now_ms: u64,
    ) {
        let me = MemberKeys::of(&self.cfg.identity);
        let id = self.rooms.rooms[i].id;
        let from = self.rooms.rooms[i].name_of(&sender);
        if sender == me.sign {
            let Some(c) = self.rooms.rooms[i].committing.clone() else {
                return; // an old commit of ours that already lost
            };
            let current = self.mls.room_keys(&id).map(|(e, _)| e).ok();
            if Mls::commit_epoch(mls) != Some(c.epoch) || current != Some(c.epoch) {
                return; // not the one out now, or it lost
            }
            if self.mls.merge_own(&id).is_err() {
                return;
            }
            self.rooms.rooms[i].committing = None;
            self.after_epoch(i, r);
            match c.op {
                Op::Add(req) => {
                    self.rooms.rooms[i]
                        .requests
                        .retain(|q| q.member != req.member);
                    self.rooms.rooms[i].learn(&req.member.sign, &req.name);
                    if let Some(welcome) = c.welcome {
                        self.send_welcome(i, &req, welcome, r, now_ms);
                    }
                    self.notice(
                        i,
                        format!("{} joined, approved by you", req.name),
                        r,
                        now_ms,
                    );
                }
                Op::Remove { name, .. } => {
                    self.notice(i, format!("{name} was removed by you"), r, now_ms);
                }
            }
            self.next_commit(i, now_ms);
            return;
        }
        let room = self.rooms.rooms[i].clone();
        let leaving = room.leaving.clone();
        let authorize = |a: &crate::rooms::mls::Applied| {
            let Some(c) = a.committer else {
                return false;
            };
            let manages = room.may_manage(&c.sign);
            let adds_ok = a.added.is_empty() || manages;
            let removes_ok = a
                .removed
                .iter()
                .all(|k| manages || leaving.contains(&k.sign));
            adds_ok && removes_ok
        };
        let Ok(applied) = self.mls.apply(&id, mls, authorize) else {
            return; // it lost its epoch, or the rules refuse it: nobody applies it
        };
        // A commit of ours made in the epoch that just ended lost: make it again.
        if let Some(c) = self.rooms.rooms[i].committing.take() {
            self.rooms.rooms[i].ops.push_front(c.op);
        }
        if applied.we_were_removed {
            self.rooms.rooms[i].active = false;
            self.mls.forget(&id);
            self.notice(i, format!("you were removed by {from}"), r, now_ms);
            return;
        }
        self.after_epoch(i, r);
        match note {
            Note::Add(name) => {
                for k in &applied.added {
                    self.rooms.rooms[i].learn(&k.sign, &name);
                    self.rooms.rooms[i].requests.retain(|q| q.member != *k);
                }
                self.notice(i, format!("{name} joined, approved by {from}"), r, now_ms);
            }
            Note::Remove(name) => {
                for k in &applied.removed {
                    self.rooms.rooms[i].leaving.remove(&k.sign);
                }
                self.notice(i, format!("{name} was removed by {from}"), r, now_ms);
            }
        }
        self.next_commit(i, now_ms);
    }

    /// The room moved to a new epoch in round `r`: its keys open slots from `r + 1` on.
    fn after_epoch(&mut self, i: usize, r: Round) {
        let id = self.rooms.rooms[i].id;
        if let Ok((_, keys)) = self.mls.room_keys(&id) {
            self.rooms.rooms[i].push_epoch(&keys, r);
        }
    }

    fn send_welcome(&mut self, i: usize, req: &Request, welcome: Vec<u8>, r: Round, now_ms: u64) {
        let room = &self.rooms.rooms[i];
        // Every epoch before the one the newcomer joins in: the room's history, if the
        // room shares it.
        let history = if room.history {
            room.epochs[..room.epochs.len().saturating_sub(1)].to_vec()
        } else {
            Vec::new()
        };
        let direct = Direct::Welcome {
            room: room.name.clone(),
            welcome,
            added_in: r,
            approval: room.approval,
            admins: room.admins.clone(),
            shares_history: room.history,
            history,
            approved_by: self.own_name(),
        };
        let shown = format!("(welcomes you to {})", room.name);
        if let Err(e) = self.queue_direct(&req.name, req.member.dh, &direct, shown, now_ms) {
            self.events.push_back(Event::Error {
                message: format!("cannot send {} the welcome: {e}", req.name),
            });
        }
    }

    /// A one-to-one room request from `sender` (its x25519 key).
    pub(super) fn on_direct(&mut self, d: Direct, sender: Sender, r: Round, now_ms: u64) {
        let Sender::Identity(dh) = sender else {
            return; // room requests name their sender
        };
        let from = self
            .directory
            .name_of(&dh)
            .cloned()
            .unwrap_or_else(|| super::names::unknown_name(&dh));
        match d {
            Direct::JoinRequest {
                room,
                name,
                key_package,
            } => {
                let Some(i) = self.rooms.by_name(&room) else {
                    let direct = Direct::Declined {
                        room: room.clone(),
                        by: self.own_name(),
                    };
                    let shown = format!("(no room {room} here)");
                    let _ = self.queue_direct(&from, dh, &direct, shown, now_ms);
                    return;
                };
                let Ok((_, member)) = self.mls.check_key_package(&key_package) else {
                    return;
                };
                if member.dh != dh {
                    return; // a key package for someone else than who sent it
                }
                let _ = self.queue_room(i, Body::Request { name, key_package }, now_ms);
            }
            Direct::Welcome {
                room,
                welcome,
                added_in,
                approval,
                admins,
                shares_history,
                history,
                approved_by,
            } => {
                let Some(w) = self
                    .rooms
                    .waiting
                    .iter()
                    .position(|w| w.room == room || w.via == from)
                else {
                    return; // nobody asked to join this
                };
                self.rooms.waiting.remove(w);
                let Ok(id) = self.mls.join(&welcome) else {
                    self.events.push_back(Event::Error {
                        message: format!("the welcome to {room} from {from} does not open"),
                    });
                    return;
                };
                let Some(name) = self.rooms.fit_name(&room, &id, None) else {
                    self.mls.forget(&id);
                    self.events.push_back(Event::Error {
                        message: format!("a welcome from {from} names no valid room"),
                    });
                    return;
                };
                // Keys of at most as many epochs as a room keeps, the newest.
                let skip = history.len().saturating_sub(book::MAX_EPOCHS);
                let history = history[skip..].to_vec();
                let mut new = Room {
                    id,
                    name,
                    approval,
                    admins,
                    history: shares_history,
                    names: Default::default(),
                    epochs: history,
                    requests: Vec::new(),
                    ops: Default::default(),
                    committing: None,
                    active: true,
                    leaving: Default::default(),
                };
                for m in self.mls.members(&id).unwrap_or_default() {
                    if let Some(n) = self.directory.name_of(&m.dh) {
                        new.learn(&m.sign, n);
                    }
                }
                if let Ok((_, keys)) = self.mls.room_keys(&id) {
                    new.push_epoch(&keys, added_in);
                }
                let first = new.epochs.first().map_or(added_in, |e| e.from_round);
                self.rooms.rooms.retain(|x| x.id != id);
                self.rooms.rooms.push(new);
                let i = self.rooms.rooms.len() - 1;
                self.notice(
                    i,
                    format!("you joined, approved by {approved_by}"),
                    r,
                    now_ms,
                );
                self.start_backfill(first.saturating_add(1), r);
            }
            Direct::Declined { room, by } => {
                let before = self.rooms.waiting.len();
                self.rooms.waiting.retain(|w| w.room != room);
                if self.rooms.waiting.len() < before {
                    self.events.push_back(Event::RoomNotice {
                        room,
                        notice: format!("your request was declined by {by}"),
                        round: r,
                    });
                }
            }
        }
        self.save_rooms();
    }
}
