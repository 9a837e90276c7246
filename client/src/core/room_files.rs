//! Files in rooms, the receiving side: a file sent to a room is one room message whose
//! fragment 0 is the signed offer ([`Body::File`]) and whose further fragments are the
//! chunks, under the offer's key. Every member that is in the room when the offer comes
//! receives it like a one-to-one file ([`super::files`]); the sender's own offer and
//! chunks coming back are not received again. A member that joins later does not get
//! files sent before.

use std::collections::HashSet;

use protocol::room::RoomFragment;
use protocol::wire::Round;
use sha2::{Digest, Sha256};

use super::{ClientCore, LocalStore};
use crate::rooms::mls::{MemberKeys, RoomId};
use crate::rooms::wire::{Body, Signed};
use crate::store::FileState;

/// A room file's transfer key: the room and the message id its fragments share.
pub fn room_file_key(room: &RoomId, message: u64) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"chorus room file");
    h.update(room);
    h.update(message.to_le_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.finalize()[..16]);
    k
}

/// Room file fragments found in one output.
#[derive(Default)]
pub(super) struct RoomFiles {
    /// Offers: room, message id, fragments in the file's message, the signed offer.
    pub offers: Vec<(RoomId, u64, u16, Signed)>,
    /// Chunks of files we are receiving.
    pub chunks: Vec<(RoomId, RoomFragment)>,
}

/// The signed offer in a fragment 0, if it is one.
pub(super) fn offer_of(f: &RoomFragment) -> Option<Signed> {
    if f.index != 0 || f.count < 2 {
        return None;
    }
    let s: Signed = protocol::decode(&f.body).ok()?;
    matches!(s.body, Body::File(_)).then_some(s)
}

/// The keys of the files we are receiving.
pub(super) fn receiving(store: &impl LocalStore) -> HashSet<[u8; 16]> {
    store
        .files()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.outgoing && e.state == FileState::Receiving)
        .filter_map(|e| <[u8; 16]>::try_from(hex::decode(&e.id).ok()?).ok())
        .collect()
}

impl<S: LocalStore> ClientCore<S> {
    /// The file offers and chunks of one output's room slots.
    pub(super) fn on_room_files(&mut self, files: RoomFiles, r: Round) {
        for (id, message, count, m) in files.offers {
            self.on_room_offer(id, message, count, m, r);
        }
        for (id, f) in files.chunks {
            let key = room_file_key(&id, f.message);
            if let Ok(Some(entry)) = self.store.file(&key) {
                if !entry.outgoing {
                    self.on_chunk(f.index, f.count, &f.body, entry, &key);
                }
            }
        }
    }

    fn on_room_offer(&mut self, id: RoomId, message: u64, count: u16, m: Signed, r: Round) {
        let Body::File(offer) = &m.body else {
            return;
        };
        let Some(i) = self.rooms.by_id(&id) else {
            return;
        };
        let me = MemberKeys::of(&self.cfg.identity);
        let members = self.mls.members(&id).unwrap_or_default();
        let known = members.iter().any(|k| k.sign == m.sender);
        if !m.verify(&id) || m.sender == me.sign || !known {
            return; // forged, ours coming back, or not a member now
        }
        if usize::from(count) != offer.chunks() + 1 {
            return;
        }
        let key = room_file_key(&id, message);
        let from = self.rooms.rooms[i].name_of(&m.sender);
        let peer = format!("{from} in {}", self.rooms.rooms[i].address());
        let Some(shown) = self.admit_offer(offer, peer, key) else {
            return;
        };
        self.room_text(i, from, shown, r, &m);
    }
}
