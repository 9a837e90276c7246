//! Rooms in the client core: user requests, room slots in outputs, and the one-to-one
//! room requests, all applied in output order so that every member reaches the same
//! membership.
//!
//! Part of [`super::ClientCore`]. A room message (text, a commit, a forwarded join
//! request, a rename, a leave) goes out as one outbox item sealed into room slots
//! ([`protocol::room`]) under the epoch's keys when its slot comes up; members find it
//! by tag. A commit counts when it comes back in an output in the epoch it was made for:
//! the committer merges its own then, everyone else applies it, and a commit that lost
//! its epoch to one earlier in output order is made again. Join requests, Welcomes and
//! declines travel one-to-one. Servers see none of this: no request names a room, and
//! every slot looks like every other.

use protocol::room::RoomKeys;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{conversation_id, Answer, ClientCore, LocalStore, Token};
use crate::delivery::Delivery;
use crate::event::Event;
use crate::rooms::book::{self, Committing, Op, Room, Waiting};
use crate::rooms::mls::{MemberKeys, Mls, RoomId};
use crate::rooms::wire::{Approval, Body, Direct, Note, Signed};
use crate::store::{Direction, HistoryEntry, OutboxRecord};

/// Rounds after an epoch ended in which its keys still open new slots (a sender that had
/// not yet processed the commit sealed under the old keys).
pub(super) const EPOCH_LAG_ROUNDS: u64 = 32;

/// What a user asks of rooms (the `room` method of the daemon takes the same JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RoomRequest {
    /// Create a room; we are its admin.
    Create {
        /// Its name.
        name: String,
        /// Only admins approve newcomers (default: any member).
        #[serde(default)]
        admins_only: bool,
        /// Newcomers are handed the room's history (default); false: they read only
        /// what is said after they join.
        #[serde(default = "yes")]
        history: bool,
    },
    /// Ask `via`, a member, to let us into `name`.
    Join {
        /// The room's name.
        name: String,
        /// The member we know.
        via: String,
    },
    /// Approve `user`'s request to join `name`.
    Approve {
        /// Room.
        name: String,
        /// Asker.
        user: String,
    },
    /// Decline it.
    Decline {
        /// Room.
        name: String,
        /// Asker.
        user: String,
    },
    /// Say `text` in `name`.
    Send {
        /// Room.
        name: String,
        /// Text.
        text: String,
    },
    /// Remove `user` (a new epoch: it reads nothing sent after).
    Remove {
        /// Room.
        name: String,
        /// Member.
        user: String,
    },
    /// Leave `name`.
    Leave {
        /// Room.
        name: String,
    },
    /// Rename `name` to `to`.
    Rename {
        /// Room.
        name: String,
        /// New name.
        to: String,
    },
    /// Every room: members, requests, rooms we wait for.
    List,
}

/// The rooms and MLS state saved in `store` (fresh ones if none; a damaged record is
/// reported and started afresh, never a panic).
pub(super) fn load<S: LocalStore>(
    store: &S,
    identity: &keys::Identity,
    events: &mut std::collections::VecDeque<Event>,
) -> (book::Book, Mls) {
    let mut report = |what: String| events.push_back(Event::Error { message: what });
    let (book_bytes, mls_bytes) = match store.rooms() {
        Ok(saved) => saved,
        Err(e) => {
            report(format!("cannot read rooms: {e}"));
            (None, None)
        }
    };
    let book = match book_bytes.map(|b| serde_json::from_slice::<book::Book>(&b)) {
        None => book::Book::default(),
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            report(format!(
                "saved rooms are damaged ({e}); starting without them"
            ));
            book::Book::default()
        }
    };
    let mls = match mls_bytes.map(|b| Mls::restore(identity, &b)) {
        None => Mls::new(identity),
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            report(format!(
                "saved room keys are damaged ({e}); starting without them"
            ));
            Mls::new(identity)
        }
    };
    (book, mls)
}

fn yes() -> bool {
    true
}

impl<S: LocalStore> ClientCore<S> {
    /// A room request from the user.
    pub(super) fn room_request(&mut self, token: Token, req: RoomRequest, now_ms: u64) {
        let r = self.try_room_request(req, now_ms);
        if r.is_ok() {
            self.save_rooms();
        }
        self.answer(token, Answer::Room(r));
    }

    pub(super) fn room_index(&self, name: &str) -> Result<usize, String> {
        self.rooms
            .by_name(name.trim())
            .ok_or_else(|| format!("you are in no room named {name:?}"))
    }

    fn try_room_request(&mut self, req: RoomRequest, now_ms: u64) -> Result<Value, String> {
        let me = MemberKeys::of(&self.cfg.identity);
        match req {
            RoomRequest::Create {
                name,
                admins_only,
                history,
            } => {
                let name = book::check_name(&name)?;
                if self.rooms.by_name(&name).is_some() {
                    return Err(format!("you are already in a room named {name:?}"));
                }
                let id: RoomId = self.rng.gen();
                self.mls.create(id).map_err(|e| e.0)?;
                let (_, keys) = self.mls.room_keys(&id).map_err(|e| e.0)?;
                let mut room = Room {
                    id,
                    name: name.clone(),
                    approval: if admins_only {
                        Approval::AdminsOnly
                    } else {
                        Approval::AnyMember
                    },
                    admins: vec![me.sign],
                    history,
                    names: Default::default(),
                    epochs: Vec::new(),
                    requests: Vec::new(),
                    ops: Default::default(),
                    committing: None,
                    active: true,
                    leaving: Default::default(),
                };
                room.learn(&me.sign, &self.own_name());
                room.push_epoch(&keys, self.last_processed.unwrap_or(0));
                self.rooms.rooms.push(room);
                Ok(json!({ "room": name }))
            }
            RoomRequest::Join { name, via } => {
                let name = book::check_name(&name)?;
                let via = protocol::names::normalise(&via)
                    .map_err(|e| format!("no user {via:?}: {e}"))?;
                let keys = self
                    .directory
                    .keys_of(&via)
                    .ok_or_else(|| format!("no user named {via:?} is registered (yet)"))?;
                let key_package = self.mls.key_package().map_err(|e| e.0)?;
                let direct = Direct::JoinRequest {
                    room: name.clone(),
                    name: self.own_name(),
                    key_package,
                };
                let shown = format!("(asks to join {name})");
                self.queue_direct(&via, keys.dh.0, &direct, shown, now_ms)?;
                self.rooms.waiting.retain(|w| w.room != name);
                self.rooms.waiting.push(Waiting {
                    room: name.clone(),
                    via,
                });
                Ok(json!({ "room": name, "state": "waiting for approval" }))
            }
            RoomRequest::Approve { name, user } => {
                let (i, user, req) = self.request_of(&name, &user, "approve newcomers")?;
                let listed = self.directory.keys_of(&req.name);
                if listed.is_none_or(|k| k.sign.0 != req.member.sign || k.dh.0 != req.member.dh) {
                    return Err(format!(
                        "the keys {user:?} asked with are not the keys registered under that name"
                    ));
                }
                self.rooms.rooms[i].ops.push_back(Op::Add(req));
                self.next_commit(i, now_ms);
                Ok(json!({ "room": name, "approved": user }))
            }
            RoomRequest::Decline { name, user } => {
                let (i, user, req) = self.request_of(&name, &user, "decline requests")?;
                let room = &self.rooms.rooms[i];
                let direct = Direct::Declined {
                    room: room.name.clone(),
                    by: self.own_name(),
                };
                let shown = format!("(declines {user} in {})", room.name);
                self.queue_direct(&user, req.member.dh, &direct, shown, now_ms)?;
                self.queue_room(i, Body::Declined(user.clone()), now_ms)?;
                Ok(json!({ "room": name, "declined": user }))
            }
            RoomRequest::Send { name, text } => {
                let i = self.room_index(&name)?;
                let id = self.queue_room(i, Body::Text(text), now_ms)?;
                Ok(json!({ "id": id }))
            }
            RoomRequest::Remove { name, user } => {
                let i = self.room_index(&name)?;
                let room = &self.rooms.rooms[i];
                if !room.may_manage(&me.sign) {
                    return Err(format!("only admins remove members of {:?}", room.name));
                }
                let user = user.trim().to_ascii_lowercase();
                let member = self
                    .mls
                    .members(&room.id)
                    .map_err(|e| e.0)?
                    .into_iter()
                    .find(|m| room.name_of(&m.sign) == user)
                    .ok_or_else(|| format!("{user:?} is not a member of {:?}", room.name))?;
                if member == me {
                    return Err("to go, leave the room".into());
                }
                self.rooms.rooms[i]
                    .ops
                    .push_back(Op::Remove { name: user, member });
                self.next_commit(i, now_ms);
                Ok(json!({ "room": name }))
            }
            RoomRequest::Leave { name } => {
                let i = self.room_index(&name)?;
                self.queue_room(i, Body::Leave, now_ms)?;
                Ok(json!({ "room": name, "state": "leaving" }))
            }
            RoomRequest::Rename { name, to } => {
                let i = self.room_index(&name)?;
                let to = book::check_name(&to)?;
                if !self.rooms.rooms[i].may_manage(&me.sign) {
                    return Err("only admins rename this room".into());
                }
                if self.rooms.by_name(&to).is_some() {
                    return Err(format!("you are already in a room named {to:?}"));
                }
                self.queue_room(i, Body::Rename(to), now_ms)?;
                Ok(json!({ "room": name }))
            }
            RoomRequest::List => Ok(self.room_list()),
        }
    }

    /// Room `name`'s pending request from `user`, if we may `act` on it there: (room
    /// index, normalised user, request).
    fn request_of(
        &self,
        name: &str,
        user: &str,
        act: &str,
    ) -> Result<(usize, String, crate::rooms::book::Request), String> {
        let i = self.room_index(name)?;
        let room = &self.rooms.rooms[i];
        if !room.may_manage(&self.cfg.identity.public().sign) {
            return Err(format!("only admins {act} in {:?}", room.name));
        }
        let user = user.trim().to_ascii_lowercase();
        let req = room
            .requests
            .iter()
            .find(|r| r.name == user)
            .cloned()
            .ok_or_else(|| format!("{user:?} has not asked to join {:?}", room.name))?;
        Ok((i, user, req))
    }

    fn room_list(&self) -> Value {
        let rooms: Vec<Value> = self
            .rooms
            .rooms
            .iter()
            .filter(|r| r.active)
            .map(|r| {
                let members: Vec<Value> = self
                    .mls
                    .members(&r.id)
                    .unwrap_or_default()
                    .iter()
                    .map(|m| {
                        json!({
                            "name": r.name_of(&m.sign),
                            "admin": r.admins.contains(&m.sign),
                            "fingerprint": keys::Fingerprint::of(&keys::PublicIdentity {
                                sign: m.sign,
                                dh: m.dh,
                            })
                            .to_hex(),
                        })
                    })
                    .collect();
                let requests: Vec<&str> = r.requests.iter().map(|q| q.name.as_str()).collect();
                json!({
                    "name": r.name,
                    "approval": r.approval,
                    "members": members,
                    "requests": requests,
                })
            })
            .collect();
        let waiting: Vec<Value> = self
            .rooms
            .waiting
            .iter()
            .map(|w| json!({ "room": w.room, "via": w.via, "state": "waiting for approval" }))
            .collect();
        json!({ "rooms": rooms, "waiting": waiting })
    }

    /// Our registered name, as the local directory has it.
    pub(super) fn own_name(&self) -> String {
        let dh = self.cfg.identity.public().dh;
        self.directory
            .name_of(&dh)
            .cloned()
            .unwrap_or_else(|| super::names::unknown_name(&dh))
    }

    /// Make our next commit in room `i`, if none of ours is out.
    pub(super) fn next_commit(&mut self, i: usize, now_ms: u64) {
        let room = &mut self.rooms.rooms[i];
        if room.committing.is_some() || !room.active {
            return;
        }
        let Some(op) = room.ops.pop_front() else {
            return;
        };
        let id = room.id;
        let epoch = self.mls.room_keys(&id).map(|(e, _)| e).unwrap_or(0);
        let made = match &op {
            Op::Add(req) => self
                .mls
                .add(&id, &req.key_package)
                .map(|(c, w)| (c, Some(w), Note::Add(req.name.clone()))),
            Op::Remove { name, member } => self
                .mls
                .remove(&id, member)
                .map(|c| (c, None, Note::Remove(name.clone()))),
        };
        match made {
            Ok((commit, welcome, note)) => {
                self.rooms.rooms[i].committing = Some(Committing { op, epoch, welcome });
                let body = Body::Commit { mls: commit, note };
                if let Err(e) = self.queue_room(i, body, now_ms) {
                    self.mls.drop_own(&id);
                    self.rooms.rooms[i].committing = None;
                    self.events.push_back(Event::Error { message: e });
                }
            }
            Err(e) => self.events.push_back(Event::Error {
                message: format!("room {}: {}", self.rooms.rooms[i].name, e.0),
            }),
        }
    }

    /// Queue a signed room message into room `i`.
    pub(super) fn queue_room(&mut self, i: usize, body: Body, now_ms: u64) -> Result<u64, String> {
        let room = &self.rooms.rooms[i];
        let shown = match &body {
            Body::Text(t) => t.clone(),
            Body::Commit {
                note: Note::Add(n), ..
            } => format!("(adds {n})"),
            Body::Commit {
                note: Note::Remove(n),
                ..
            } => format!("(removes {n})"),
            Body::Request { name, .. } => format!("(passes on {name}'s request to join)"),
            Body::Declined(n) => format!("(declines {n})"),
            Body::Rename(n) => format!("(renames the room to {n})"),
            Body::Leave => "(leaves)".into(),
            Body::File(o) => format!("📎 {} ({})", o.name(), super::size_text(o.size)),
        };
        let signed = Signed::new(&self.cfg.identity, &room.id, now_ms, body)
            .ok_or("cannot sign the room message")?;
        let bytes = protocol::encode(&signed).map_err(|e| e.to_string())?;
        if bytes.len() > book::MAX_ROOM_MESSAGE {
            return Err(format!(
                "room message too long: {} bytes, at most {}",
                bytes.len(),
                book::MAX_ROOM_MESSAGE
            ));
        }
        let rec = OutboxRecord {
            to_name: room.address(),
            to_dh: [0; 32],
            text: shown,
            conversation: self.rng.gen(),
            seq: self.rng.gen(),
            timestamp_ms: now_ms,
            anonymous: false,
            reply_secret: None,
            room: Some(room.id),
            body: Some(bytes),
            file: None,
        };
        self.queue_record(rec, None, now_ms)
    }

    /// Queue a one-to-one room request to `to` (x25519 key `dh`).
    pub(super) fn queue_direct(
        &mut self,
        to: &str,
        dh: [u8; 32],
        direct: &Direct,
        shown: String,
        now_ms: u64,
    ) -> Result<u64, String> {
        let body = direct.to_body().ok_or("cannot encode the request")?;
        let me = self.cfg.identity.public().dh;
        let rec = OutboxRecord {
            to_name: to.to_string(),
            to_dh: dh,
            text: shown,
            conversation: conversation_id(&me, &dh),
            seq: self.rng.gen(),
            timestamp_ms: now_ms,
            anonymous: false,
            reply_secret: None,
            room: None,
            body: Some(body),
            file: None,
        };
        self.queue_record(rec, None, now_ms)
    }

    /// Write a message to the history and the outbox in one transaction and queue it
    /// (`reply_key`: the one-time key an anonymous message or board post is sent from).
    pub(super) fn queue_record(
        &mut self,
        rec: OutboxRecord,
        reply_key: Option<x25519_dalek::StaticSecret>,
        now_ms: u64,
    ) -> Result<u64, String> {
        let id = self.record_outgoing(&rec, now_ms)?;
        let slot_bytes = self.cfg.params.slot_bytes as usize;
        self.outbox.add(id, rec, slot_bytes, reply_key);
        self.events.extend(self.outbox.state(id, Delivery::Queued));
        Ok(id)
    }

    /// Write a message's history entry and outbox record in one transaction.
    pub(super) fn record_outgoing(
        &mut self,
        rec: &OutboxRecord,
        now_ms: u64,
    ) -> Result<u64, String> {
        let entry = HistoryEntry {
            direction: Direction::Sent,
            peer: rec.to_name.clone(),
            text: rec.text.clone(),
            timestamp_ms: now_ms,
            round: 0,
            state: Delivery::Queued.stored(),
        };
        self.store
            .queue_outgoing(&entry, rec)
            .map_err(|e| e.to_string())
    }

    /// The current keys of room `id`, if we are in it (the outbox seals with them).
    pub(super) fn room_keys_for(rooms: &book::Book, id: &RoomId) -> Option<RoomKeys> {
        rooms.rooms.get(rooms.by_id(id)?)?.current_keys()
    }

    /// Persist the rooms and the MLS state in one write.
    pub(super) fn save_rooms(&mut self) {
        let book = match serde_json::to_vec(&self.rooms) {
            Ok(b) => b,
            Err(e) => {
                self.events.push_back(Event::Error {
                    message: format!("cannot save rooms: {e}"),
                });
                return;
            }
        };
        if let Err(e) = self.store.save_rooms(&book, &self.mls.snapshot()) {
            self.events.push_back(Event::Error {
                message: format!("cannot save rooms: {e}"),
            });
        }
    }
}
