//! Room slots: what a room member writes into its slot, readable only by the room's
//! members who hold that epoch's keys.
//!
//! Layout of an `L`-byte room slot:
//! ```text
//! check (16) | tag (16) | nonce (24) | XChaCha20-Poly1305_env( inner (L-72) ) + tag (16)
//! inner = message id (8) | fragment index (2) | fragment count (2) | body_len (2)
//!       | body, zero-padded
//! ```
//! `check` is the collision check of every slot ([`crate::slot`]). `tag` lets members find
//! their room's slots by lookup instead of trying every key on every slot: it is a PRF of
//! the epoch's tag key over the round and the slot's footprint, so two slots of one room
//! in one round carry unrelated tags, and a tag says nothing to anyone without the key.
//! The envelope names no group, epoch or sender (MLS puts group id and epoch in the
//! clear; nothing of MLS is visible here): the keys come from the epoch's MLS exporter
//! secret ([`RoomKeys::from_exporter`]). Whoever holds an epoch's keys reads that epoch's
//! slots, which is how a newcomer is handed a room's history.
//!
//! A nonce is drawn at random for every slot: members share the key, so nothing they
//! could agree on without talking would keep two of them from reusing one.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::slot::{inspect_slot, SlotError, SlotState};
use crate::wire::Round;

const CHECK: usize = 16;
const TAG: usize = 16;
const NONCE: usize = 24;
const AEAD_TAG: usize = 16;
const INNER_HEADER: usize = 8 + 2 + 2 + 2;
/// Bytes of a room slot not available to its body.
pub const ROOM_OVERHEAD: usize = CHECK + TAG + NONCE + AEAD_TAG + INNER_HEADER;

/// Body bytes one room slot of `slot_bytes` carries.
pub fn room_body_capacity(slot_bytes: usize) -> usize {
    slot_bytes.saturating_sub(ROOM_OVERHEAD)
}

/// The slot length (for a reservation) that carries a `body`-byte room fragment.
pub fn room_slot_len_for(body: usize, slot_bytes: usize) -> u16 {
    let len = (body + ROOM_OVERHEAD).clamp(ROOM_OVERHEAD + 1, slot_bytes.max(ROOM_OVERHEAD + 1));
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Split a room message into fragments that each fit a slot of `slot_bytes`; `None` if
/// it would need more than `u16::MAX` of them or no body fits.
pub fn fragment_room(body: &[u8], slot_bytes: usize) -> Option<Vec<Vec<u8>>> {
    crate::slot::chunks(body, room_body_capacity(slot_bytes))
}

/// One epoch's envelope keys.
pub struct RoomKeys {
    env: Zeroizing<[u8; 32]>,
    tag: Zeroizing<[u8; 32]>,
}

impl RoomKeys {
    /// Bytes of exporter secret the keys are derived from.
    pub const EXPORTER_BYTES: usize = 32;
    /// The label the exporter secret is asked for with.
    pub const EXPORTER_LABEL: &'static str = "chorus/env";

    /// The keys of an epoch, from its exporter secret.
    pub fn from_exporter(secret: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"chorus/room/v1"), secret);
        let mut env = Zeroizing::new([0u8; 32]);
        let mut tag = Zeroizing::new([0u8; 32]);
        if hk.expand(b"envelope", env.as_mut()).is_err()
            || hk.expand(b"slot tag", tag.as_mut()).is_err()
        {
            unreachable!("32-byte HKDF outputs are always valid");
        }
        Self { env, tag }
    }

    /// The raw keys (to hand a newcomer the room's history, sealed to it).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(self.env.as_ref());
        out[32..].copy_from_slice(self.tag.as_ref());
        out
    }

    /// Keys handed over by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut env = Zeroizing::new([0u8; 32]);
        let mut tag = Zeroizing::new([0u8; 32]);
        env.copy_from_slice(&bytes[..32]);
        tag.copy_from_slice(&bytes[32..]);
        Self { env, tag }
    }

    /// The tag of the slot laid out for `footprint` in round `round`.
    pub fn tag(&self, round: Round, footprint: u64) -> [u8; TAG] {
        let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(self.tag.as_ref()) else {
            unreachable!("HMAC accepts any key length");
        };
        m.update(b"chorus/room-tag/v1");
        m.update(&round.to_le_bytes());
        m.update(&footprint.to_le_bytes());
        let d = m.finalize().into_bytes();
        let mut out = [0u8; TAG];
        out.copy_from_slice(&d[..TAG]);
        out
    }
}

/// One fragment of a room message, as carried in one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomFragment {
    /// The message it belongs to (random, chosen by the sender).
    pub message: u64,
    /// This fragment's index.
    pub index: u16,
    /// Fragments in the message.
    pub count: u16,
    /// This fragment's bytes.
    pub body: Vec<u8>,
}

fn check_of(rest: &[u8]) -> [u8; CHECK] {
    use sha2::Digest;
    let d = Sha256::new()
        .chain_update(b"chorus/slot-check/v1")
        .chain_update(rest)
        .finalize();
    let mut out = [0u8; CHECK];
    out.copy_from_slice(&d[..CHECK]);
    out
}

/// Seal `frag` for the slot laid out for `footprint` in round `round`, `slot_len` bytes.
pub fn seal_room_slot<R: RngCore + CryptoRng>(
    keys: &RoomKeys,
    round: Round,
    footprint: u64,
    frag: &RoomFragment,
    slot_len: usize,
    rng: &mut R,
) -> Result<Vec<u8>, SlotError> {
    let capacity = room_body_capacity(slot_len);
    if slot_len <= ROOM_OVERHEAD || frag.body.len() > capacity {
        return Err(SlotError::DoesNotFit {
            body: frag.body.len(),
            slot: slot_len,
            capacity,
        });
    }
    if frag.count == 0 || frag.index >= frag.count {
        return Err(SlotError::BadFragment {
            index: frag.index,
            count: frag.count,
        });
    }
    let mut inner = Zeroizing::new(vec![0u8; slot_len - CHECK - TAG - NONCE - AEAD_TAG]);
    inner[..8].copy_from_slice(&frag.message.to_le_bytes());
    inner[8..10].copy_from_slice(&frag.index.to_le_bytes());
    inner[10..12].copy_from_slice(&frag.count.to_le_bytes());
    inner[12..14].copy_from_slice(&(frag.body.len() as u16).to_le_bytes());
    inner[INNER_HEADER..INNER_HEADER + frag.body.len()].copy_from_slice(&frag.body);
    let mut nonce = [0u8; NONCE];
    rng.fill_bytes(&mut nonce);
    let tag = keys.tag(round, footprint);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(keys.env.as_ref()));
    let aad = aad(round, footprint);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            chacha20poly1305::aead::Payload {
                msg: inner.as_slice(),
                aad: &aad,
            },
        )
        .map_err(|_| SlotError::Malformed("encryption failed"))?;
    let mut slot = vec![0u8; slot_len];
    slot[CHECK..CHECK + TAG].copy_from_slice(&tag);
    slot[CHECK + TAG..CHECK + TAG + NONCE].copy_from_slice(&nonce);
    slot[CHECK + TAG + NONCE..].copy_from_slice(&ct);
    let check = check_of(&slot[CHECK..]);
    slot[..CHECK].copy_from_slice(&check);
    Ok(slot)
}

/// The slot's place, bound into its ciphertext: a slot copied to another round or
/// footprint does not open there.
fn aad(round: Round, footprint: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..8].copy_from_slice(&round.to_le_bytes());
    a[8..].copy_from_slice(&footprint.to_le_bytes());
    a
}

/// Whether `slot` (laid out for `footprint` in `round`) carries `keys`' tag: a lookup,
/// no decryption.
pub fn has_tag(keys: &RoomKeys, round: Round, footprint: u64, slot: &[u8]) -> bool {
    slot.get(CHECK..CHECK + TAG) == Some(&keys.tag(round, footprint)[..])
}

/// Open a room slot with `keys`; `None` if it is not this epoch's (or garbled).
pub fn open_room_slot(
    keys: &RoomKeys,
    round: Round,
    footprint: u64,
    slot: &[u8],
) -> Option<RoomFragment> {
    if slot.len() <= ROOM_OVERHEAD
        || inspect_slot(slot) != SlotState::Intact
        || !has_tag(keys, round, footprint, slot)
    {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(Key::from_slice(keys.env.as_ref()));
    let aad = aad(round, footprint);
    let inner = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&slot[CHECK + TAG..CHECK + TAG + NONCE]),
                chacha20poly1305::aead::Payload {
                    msg: &slot[CHECK + TAG + NONCE..],
                    aad: &aad,
                },
            )
            .ok()?,
    );
    let u16_at = |i: usize| u16::from_le_bytes([inner[i], inner[i + 1]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&inner[..8]);
    let (index, count, len) = (u16_at(8), u16_at(10), usize::from(u16_at(12)));
    if count == 0 || index >= count {
        return None;
    }
    let body = inner.get(INNER_HEADER..INNER_HEADER + len)?.to_vec();
    Some(RoomFragment {
        message: u64::from_le_bytes(id),
        index,
        count,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn keys(seed: u8) -> RoomKeys {
        RoomKeys::from_exporter(&[seed; 32])
    }

    fn frag(body: &[u8]) -> RoomFragment {
        RoomFragment {
            message: 42,
            index: 0,
            count: 1,
            body: body.to_vec(),
        }
    }

    #[test]
    fn members_of_the_epoch_open_it_others_do_not() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let k = keys(1);
        let slot = seal_room_slot(&k, 7, 99, &frag(b"hello room"), 256, &mut rng).expect("seal");
        assert_eq!(slot.len(), 256);
        assert_eq!(inspect_slot(&slot), SlotState::Intact);
        assert_eq!(open_room_slot(&k, 7, 99, &slot), Some(frag(b"hello room")));
        // Another epoch (a removed member's last keys), another round or another slot: no.
        assert_eq!(open_room_slot(&keys(2), 7, 99, &slot), None);
        assert_eq!(open_room_slot(&k, 8, 99, &slot), None);
        assert_eq!(open_room_slot(&k, 7, 98, &slot), None);
        // Keys handed over as bytes open it too (history for a newcomer).
        let handed = RoomKeys::from_bytes(&k.to_bytes());
        assert!(open_room_slot(&handed, 7, 99, &slot).is_some());
    }

    #[test]
    fn two_slots_of_one_room_in_one_round_share_nothing_visible() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let k = keys(1);
        let a = seal_room_slot(&k, 7, 1, &frag(b"x"), 256, &mut rng).expect("seal");
        let b = seal_room_slot(&k, 7, 2, &frag(b"x"), 256, &mut rng).expect("seal");
        assert_ne!(a[CHECK..CHECK + TAG], b[CHECK..CHECK + TAG], "tags differ");
        assert_ne!(
            a[CHECK + TAG..CHECK + TAG + NONCE],
            b[CHECK + TAG..CHECK + TAG + NONCE]
        );
    }

    #[test]
    fn a_body_fills_its_slot_and_not_a_byte_more() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let k = keys(1);
        let cap = room_body_capacity(256);
        assert!(seal_room_slot(&k, 1, 1, &frag(&vec![7; cap]), 256, &mut rng).is_ok());
        assert!(seal_room_slot(&k, 1, 1, &frag(&vec![7; cap + 1]), 256, &mut rng).is_err());
        let len = usize::from(room_slot_len_for(10, 256));
        assert_eq!(room_body_capacity(len), 10);
        let parts = fragment_room(&vec![1; 3 * cap + 1], 256).expect("fits");
        assert_eq!(parts.len(), 4);
    }

    proptest! {
        #[test]
        fn random_bytes_never_open_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), fp in any::<u64>()) {
            let k = keys(3);
            prop_assert!(open_room_slot(&k, 5, fp, &bytes).is_none());
        }
    }
}
