//! What room members say to each other, and what travels one-to-one for rooms.
//!
//! Inside the room envelope ([`protocol::room`]) a reassembled message is a
//! [`Signed`]: the sender's ed25519 key, its clock, a [`Body`] and a signature over the
//! room id and all of those, so a member cannot speak as another (the envelope key is
//! shared) and a message cannot be moved to another room. Room requests that go to one
//! person (a join request to the member one knows, the Welcome to a newcomer, a
//! decline) are ordinary one-to-one messages whose body starts with [`DIRECT_MAGIC`]
//! and holds a [`Direct`].

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::mls::{MemberKeys, RoomId};

/// A one-to-one body that is a room request, not text (a text cannot start with NUL).
pub const DIRECT_MAGIC: &[u8; 8] = b"\0chorus\x01";

/// Who may approve a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Any member.
    AnyMember,
    /// Admins only (the creator, and whom admins name).
    AdminsOnly,
}

/// A membership change a commit carries, in words members (and newcomers reading the
/// history) can show without the MLS state of that epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Note {
    /// Adds this user.
    Add(String),
    /// Removes this user.
    Remove(String),
}

/// What a room message says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Chat text.
    Text(String),
    /// An MLS commit, and what it does.
    Commit {
        /// The MLS message.
        mls: Vec<u8>,
        /// In words.
        note: Note,
    },
    /// A user asked a member to join: every member sees it, and any who may approve can.
    Request {
        /// The user's registered name.
        name: String,
        /// Its MLS key package.
        key_package: Vec<u8>,
    },
    /// A member declined a request.
    Declined(String),
    /// A new name for the room.
    Rename(String),
    /// The sender leaves; the next member in line commits its removal.
    Leave,
    /// A file: its offer. This is fragment 0 of a room message whose further fragments
    /// are the file's chunks (under the offer's key), not parts of this body.
    File(protocol::file::FileOffer),
}

/// A room message as sent: signed by its sender for this room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The sender's ed25519 key.
    pub sender: [u8; 32],
    /// The sender's clock, ms since the epoch.
    pub at_ms: u64,
    /// What it says.
    pub body: Body,
    /// ed25519 over ("chorus/room-msg/v1", room, sender, at_ms, body).
    pub sig: Vec<u8>,
}

fn signed_bytes(room: &RoomId, sender: &[u8; 32], at_ms: u64, body: &Body) -> Option<Vec<u8>> {
    let mut out = b"chorus/room-msg/v1".to_vec();
    out.extend_from_slice(room);
    out.extend_from_slice(sender);
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend(protocol::encode(body).ok()?);
    Some(out)
}

impl Signed {
    /// `body` from `identity`, for `room`.
    pub fn new(identity: &keys::Identity, room: &RoomId, at_ms: u64, body: Body) -> Option<Self> {
        let sender = identity.public().sign;
        let sig = identity
            .sign(&signed_bytes(room, &sender, at_ms, &body)?)
            .to_vec();
        Some(Self {
            sender,
            at_ms,
            body,
            sig,
        })
    }

    /// Whether the signature holds for `room`.
    pub fn verify(&self, room: &RoomId) -> bool {
        let Some(msg) = signed_bytes(room, &self.sender, self.at_ms, &self.body) else {
            return false;
        };
        let (Ok(key), Ok(sig)) = (
            VerifyingKey::from_bytes(&self.sender),
            <[u8; 64]>::try_from(self.sig.as_slice()),
        ) else {
            return false;
        };
        key.verify(&msg, &Signature::from_bytes(&sig)).is_ok()
    }
}

/// A past epoch's keys, handed to a newcomer so it can read the room's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastEpoch {
    /// `protocol::room::RoomKeys::to_bytes`.
    pub keys: Vec<u8>,
    /// The round whose output started it.
    pub from_round: u64,
}

/// A one-to-one room request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direct {
    /// "Let me into your room `room`."
    JoinRequest {
        /// The room's name as the asker knows it.
        room: String,
        /// The asker's registered name.
        name: String,
        /// Its MLS key package.
        key_package: Vec<u8>,
    },
    /// "You are in": the MLS Welcome and what the room's state holds beyond MLS.
    Welcome {
        /// The room's name now.
        room: String,
        /// The MLS Welcome.
        welcome: Vec<u8>,
        /// The round whose output holds the commit that added the newcomer.
        added_in: u64,
        /// The room's rule for approvals.
        approval: Approval,
        /// Admins' ed25519 keys.
        admins: Vec<[u8; 32]>,
        /// Whether the room hands newcomers its history.
        shares_history: bool,
        /// Earlier epochs' keys, oldest first, as far back as the room keeps history
        /// (none when it does not share it).
        history: Vec<PastEpoch>,
        /// Who approved.
        approved_by: String,
    },
    /// "No."
    Declined {
        /// The room's name as the asker gave it.
        room: String,
        /// Who declined.
        by: String,
    },
}

impl Direct {
    /// The one-to-one body carrying this request.
    pub fn to_body(&self) -> Option<Vec<u8>> {
        let mut out = DIRECT_MAGIC.to_vec();
        out.extend(protocol::encode(self).ok()?);
        Some(out)
    }

    /// A one-to-one body, if it is a room request (`None` for text or garbage).
    pub fn from_body(body: &[u8]) -> Option<Self> {
        protocol::decode(body.strip_prefix(DIRECT_MAGIC.as_slice())?).ok()
    }
}

/// A member's keys as `Signed::sender` names them, from the room's member list.
pub fn member_by_sign<'a>(members: &'a [MemberKeys], sign: &[u8; 32]) -> Option<&'a MemberKeys> {
    members.iter().find(|m| &m.sign == sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_signature_holds_for_its_room_only_and_for_its_sender_only() {
        let alice = keys::Identity::generate(&mut rand_core::OsRng);
        let m = Signed::new(&alice, &[1; 16], 5, Body::Text("hi".into())).expect("signed");
        assert!(m.verify(&[1; 16]));
        assert!(!m.verify(&[2; 16]), "moved to another room");
        let mut forged = m.clone();
        forged.body = Body::Text("hello".into());
        assert!(!forged.verify(&[1; 16]));
        let bob = keys::Identity::generate(&mut rand_core::OsRng);
        let mut claimed = m;
        claimed.sender = bob.public().sign;
        assert!(!claimed.verify(&[1; 16]), "claims another sender");
    }

    #[test]
    fn a_direct_request_round_trips_and_text_is_not_one() {
        let d = Direct::Declined {
            room: "ops".into(),
            by: "bob".into(),
        };
        assert_eq!(Direct::from_body(&d.to_body().expect("body")), Some(d));
        assert_eq!(Direct::from_body(b"just text"), None);
    }

    proptest! {
        #[test]
        fn random_bodies_decode_to_nothing_or_something_without_panicking(
            bytes in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let mut body = DIRECT_MAGIC.to_vec();
            body.extend(&bytes);
            let _ = Direct::from_body(&body);
            let _ = protocol::decode::<Signed>(&bytes);
        }
    }
}
