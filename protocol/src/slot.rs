//! What goes inside one slot: a sealed box to the recipient, with a collision check.
//!
//! Layout of an `L`-byte slot:
//! ```text
//! check (16) | ephemeral x25519 (32) | ChaCha20-Poly1305( inner (L-64) ) + tag (16)
//! inner = kind (1) | sender x25519 (32) | mac (16) | conversation (16) | seq (4)
//!       | timestamp_ms (8) | fragment index (2) | fragment count (2) | body_len (2)
//!       | body, zero-padded
//! ```
//! `check` is the first 16 bytes of SHA-256 over the rest of the slot. An all-zero slot
//! is empty; a non-zero slot whose check fails was garbled by a collision (two senders
//! picked the same slot, and their sum came out). Anyone can tell intact from garbled;
//! only the recipient can open an intact slot.
//!
//! The sender field is either the sender's long-term x25519 key, authenticated by a MAC
//! keyed from DH(sender, recipient), or a one-time reply key when the sender hides from
//! the recipient too (the MAC then proves only possession of that one-time key).

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

const CHECK: usize = 16;
const EPH: usize = 32;
const TAG: usize = 16;
/// Bytes of a slot not available to the inner plaintext.
pub const SLOT_OVERHEAD: usize = CHECK + EPH + TAG;
const INNER_HEADER: usize = 1 + 32 + 16 + 16 + 4 + 8 + 2 + 2 + 2;
/// Smallest slot that can carry at least one body byte.
pub const MIN_SLOT_BYTES: usize = SLOT_OVERHEAD + INNER_HEADER + 1;

/// Body bytes one slot of `slot_bytes` carries.
pub fn body_capacity(slot_bytes: usize) -> usize {
    slot_bytes.saturating_sub(SLOT_OVERHEAD + INNER_HEADER)
}

/// The slot length (for a reservation) that carries a `body`-byte fragment: at least
/// [`MIN_SLOT_BYTES`], at most `slot_bytes` (a fragment never needs more).
pub fn slot_len_for(body: usize, slot_bytes: usize) -> u16 {
    let overhead = SLOT_OVERHEAD + INNER_HEADER;
    let len = (body + overhead).clamp(MIN_SLOT_BYTES, slot_bytes.max(MIN_SLOT_BYTES));
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Who the recipient should think sent the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The sender's long-term x25519 public key (authenticated).
    Identity([u8; 32]),
    /// A one-time key the recipient may reply to; the sender stays anonymous.
    ReplyKey([u8; 32]),
}

impl Sender {
    fn kind(&self) -> u8 {
        match self {
            Self::Identity(_) => 1,
            Self::ReplyKey(_) => 2,
        }
    }
    /// The x25519 key a reply should be sealed to.
    pub fn reply_to(&self) -> [u8; 32] {
        match self {
            Self::Identity(k) | Self::ReplyKey(k) => *k,
        }
    }
}

/// One fragment of a message, as carried in one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMessage {
    /// The sender.
    pub sender: Sender,
    /// Conversation id chosen by the sender.
    pub conversation: [u8; 16],
    /// Message sequence number within the conversation.
    pub seq: u32,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// This fragment's index.
    pub fragment_index: u16,
    /// Fragments in the message.
    pub fragment_count: u16,
    /// This fragment's body bytes.
    pub body: Vec<u8>,
}

/// Why a slot could not be built or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The slot is too small for the header, or the body too big for the slot.
    #[error("body of {body} bytes does not fit a {slot}-byte slot (capacity {capacity})")]
    DoesNotFit {
        /// Body bytes.
        body: usize,
        /// Slot bytes.
        slot: usize,
        /// Capacity.
        capacity: usize,
    },
    /// Not for this recipient (or garbled): the AEAD did not authenticate.
    #[error("not addressed to this key")]
    NotForMe,
    /// Opened, but the sender MAC or the header is wrong.
    #[error("sender authentication failed")]
    BadSender,
    /// Opened, but the header is inconsistent.
    #[error("malformed slot: {0}")]
    Malformed(&'static str),
    /// A fragment header that cannot be (index >= count, or count 0).
    #[error("bad fragment header {index}/{count}")]
    BadFragment {
        /// Index.
        index: u16,
        /// Count.
        count: u16,
    },
}

/// What anyone can tell about a slot without keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// All zero: nobody wrote here.
    Empty,
    /// Check matches: exactly one sender wrote here.
    Intact,
    /// Check fails: a collision (or jamming).
    Garbled,
}

fn check_of(rest: &[u8]) -> [u8; CHECK] {
    let mut h = Sha256::new();
    h.update(b"chorus/slot-check/v1");
    h.update(rest);
    let d = h.finalize();
    let mut out = [0u8; CHECK];
    out.copy_from_slice(&d[..CHECK]);
    out
}

/// Classify a slot.
pub fn inspect_slot(slot: &[u8]) -> SlotState {
    if slot.iter().all(|b| *b == 0) {
        return SlotState::Empty;
    }
    if slot.len() < CHECK || check_of(&slot[CHECK..]) != slot[..CHECK] {
        return SlotState::Garbled;
    }
    SlotState::Intact
}

fn kdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    if hk.expand(info, out.as_mut()).is_err() {
        unreachable!("32-byte HKDF output is always valid");
    }
    out
}

fn mac(
    key: &[u8; 32],
    eph: &[u8; 32],
    inner_after_mac: &[u8],
    sender: &[u8; 32],
    kind: u8,
) -> [u8; 16] {
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC accepts any key length");
    };
    m.update(b"chorus/slot-mac/v1");
    m.update(&[kind]);
    m.update(sender);
    m.update(eph);
    m.update(inner_after_mac);
    let d = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Seal `msg` into a slot of `slot_bytes` for the recipient `recipient`.
/// `sender_secret` is the secret matching `msg.sender` (long-term or one-time key).
pub fn seal_slot<R: RngCore + CryptoRng>(
    msg: &SlotMessage,
    sender_secret: &StaticSecret,
    recipient: &PublicKey,
    slot_bytes: usize,
    rng: &mut R,
) -> Result<Vec<u8>, SlotError> {
    let capacity = body_capacity(slot_bytes);
    if slot_bytes < MIN_SLOT_BYTES || msg.body.len() > capacity {
        return Err(SlotError::DoesNotFit {
            body: msg.body.len(),
            slot: slot_bytes,
            capacity,
        });
    }
    if msg.fragment_count == 0 || msg.fragment_index >= msg.fragment_count {
        return Err(SlotError::BadFragment {
            index: msg.fragment_index,
            count: msg.fragment_count,
        });
    }
    debug_assert_eq!(
        PublicKey::from(sender_secret).to_bytes(),
        msg.sender.reply_to()
    );
    let eph = EphemeralSecret::random_from_rng(rng);
    let eph_pub = PublicKey::from(&eph).to_bytes();
    let es = eph.diffie_hellman(recipient);
    let ss = sender_secret.diffie_hellman(recipient);
    let box_key = kdf(es.as_bytes(), &eph_pub, b"chorus/slot-box/v1");
    let mac_key = kdf(ss.as_bytes(), &eph_pub, b"chorus/slot-sender/v1");

    let mut inner = Zeroizing::new(vec![0u8; slot_bytes - SLOT_OVERHEAD]);
    let sender = msg.sender.reply_to();
    inner[0] = msg.sender.kind();
    inner[1..33].copy_from_slice(&sender);
    // inner[33..49] is the MAC, filled below over everything after it.
    let mut p = 49;
    for field in [
        &msg.conversation[..],
        &msg.seq.to_le_bytes(),
        &msg.timestamp_ms.to_le_bytes(),
        &msg.fragment_index.to_le_bytes(),
        &msg.fragment_count.to_le_bytes(),
        &(msg.body.len() as u16).to_le_bytes(),
        &msg.body,
    ] {
        inner[p..p + field.len()].copy_from_slice(field);
        p += field.len();
    }
    let tag = mac(&mac_key, &eph_pub, &inner[49..], &sender, inner[0]);
    inner[33..49].copy_from_slice(&tag);

    let cipher = ChaCha20Poly1305::new(Key::from_slice(box_key.as_ref()));
    let ct = cipher
        .encrypt(Nonce::from_slice(&[0u8; 12]), inner.as_slice())
        .map_err(|_| SlotError::Malformed("encryption failed"))?;
    let mut slot = vec![0u8; slot_bytes];
    slot[CHECK..CHECK + EPH].copy_from_slice(&eph_pub);
    slot[CHECK + EPH..].copy_from_slice(&ct);
    let check = check_of(&slot[CHECK..]);
    slot[..CHECK].copy_from_slice(&check);
    Ok(slot)
}

/// Try to open a slot with our x25519 secret.
pub fn open_slot(slot: &[u8], my_secret: &StaticSecret) -> Result<SlotMessage, SlotError> {
    if slot.len() < MIN_SLOT_BYTES || inspect_slot(slot) != SlotState::Intact {
        return Err(SlotError::NotForMe);
    }
    let mut eph_pub = [0u8; 32];
    eph_pub.copy_from_slice(&slot[CHECK..CHECK + EPH]);
    let es = my_secret.diffie_hellman(&PublicKey::from(eph_pub));
    if !es.was_contributory() {
        return Err(SlotError::NotForMe);
    }
    let box_key = kdf(es.as_bytes(), &eph_pub, b"chorus/slot-box/v1");
    let cipher = ChaCha20Poly1305::new(Key::from_slice(box_key.as_ref()));
    let inner = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(&[0u8; 12]), &slot[CHECK + EPH..])
            .map_err(|_| SlotError::NotForMe)?,
    );
    if inner.len() < INNER_HEADER {
        return Err(SlotError::Malformed("inner too short"));
    }
    let mut sender_key = [0u8; 32];
    sender_key.copy_from_slice(&inner[1..33]);
    let sender = match inner[0] {
        1 => Sender::Identity(sender_key),
        2 => Sender::ReplyKey(sender_key),
        _ => return Err(SlotError::Malformed("unknown sender kind")),
    };
    let ss = my_secret.diffie_hellman(&PublicKey::from(sender_key));
    if !ss.was_contributory() {
        return Err(SlotError::BadSender);
    }
    let mac_key = kdf(ss.as_bytes(), &eph_pub, b"chorus/slot-sender/v1");
    let expect = mac(&mac_key, &eph_pub, &inner[49..], &sender_key, inner[0]);
    // Constant-time comparison is not needed for a MAC checked once on public data,
    // but costs nothing.
    let diff = expect
        .iter()
        .zip(&inner[33..49])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(SlotError::BadSender);
    }
    let u16_at = |i: usize| u16::from_le_bytes([inner[i], inner[i + 1]]);
    let mut conversation = [0u8; 16];
    conversation.copy_from_slice(&inner[49..65]);
    let seq = u32::from_le_bytes([inner[65], inner[66], inner[67], inner[68]]);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&inner[69..77]);
    let fragment_index = u16_at(77);
    let fragment_count = u16_at(79);
    let body_len = usize::from(u16_at(81));
    if fragment_count == 0 || fragment_index >= fragment_count {
        return Err(SlotError::BadFragment {
            index: fragment_index,
            count: fragment_count,
        });
    }
    let body = inner
        .get(INNER_HEADER..INNER_HEADER + body_len)
        .ok_or(SlotError::Malformed("body length beyond slot"))?
        .to_vec();
    Ok(SlotMessage {
        sender,
        conversation,
        seq,
        timestamp_ms: u64::from_le_bytes(ts),
        fragment_index,
        fragment_count,
        body,
    })
}

/// Split `body` into fragments that each fit a slot of `slot_bytes`.
/// Returns `None` if the message would need more than `u16::MAX` fragments.
pub fn fragment(body: &[u8], slot_bytes: usize) -> Option<Vec<Vec<u8>>> {
    chunks(body, body_capacity(slot_bytes))
}

/// `body` in pieces of at most `cap` bytes (one empty piece for an empty body); `None`
/// if no byte fits or it would take more than `u16::MAX` pieces.
pub(crate) fn chunks(body: &[u8], cap: usize) -> Option<Vec<Vec<u8>>> {
    if cap == 0 {
        return None;
    }
    let parts: Vec<Vec<u8>> = if body.is_empty() {
        vec![Vec::new()]
    } else {
        body.chunks(cap).map(<[u8]>::to_vec).collect()
    };
    (parts.len() <= usize::from(u16::MAX)).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_reserved_length_fits_its_fragment_exactly() {
        for body in [0usize, 1, 64, body_capacity(256)] {
            let len = usize::from(slot_len_for(body, 256));
            assert!((MIN_SLOT_BYTES..=256).contains(&len));
            assert!(
                body_capacity(len) >= body,
                "{body} bytes in a {len}-byte slot"
            );
            assert!(len == MIN_SLOT_BYTES || body_capacity(len - 1) < body);
        }
    }

    fn msg(sender: Sender, body: &[u8]) -> SlotMessage {
        SlotMessage {
            sender,
            conversation: [3; 16],
            seq: 9,
            timestamp_ms: 1_700_000_000_000,
            fragment_index: 0,
            fragment_count: 1,
            body: body.to_vec(),
        }
    }

    #[test]
    fn recipient_opens_others_cannot() {
        let mut rng = rand_core::OsRng;
        let alice = StaticSecret::random_from_rng(rng);
        let bob = StaticSecret::random_from_rng(rng);
        let eve = StaticSecret::random_from_rng(rng);
        let m = msg(
            Sender::Identity(PublicKey::from(&alice).to_bytes()),
            b"hi bob",
        );
        let slot = seal_slot(&m, &alice, &PublicKey::from(&bob), 256, &mut rng).expect("seal");
        assert_eq!(slot.len(), 256);
        assert_eq!(inspect_slot(&slot), SlotState::Intact);
        assert_eq!(open_slot(&slot, &bob).expect("open"), m);
        assert_eq!(open_slot(&slot, &eve), Err(SlotError::NotForMe));
    }

    #[test]
    fn forged_sender_is_detected() {
        let mut rng = rand_core::OsRng;
        let mallory = StaticSecret::random_from_rng(rng);
        let alice_pub = PublicKey::from(&StaticSecret::random_from_rng(rng)).to_bytes();
        let bob = StaticSecret::random_from_rng(rng);
        // Mallory claims to be Alice but can only key the MAC with her own secret.
        let mut m = msg(Sender::Identity(PublicKey::from(&mallory).to_bytes()), b"x");
        let mut slot =
            seal_slot(&m, &mallory, &PublicKey::from(&bob), 256, &mut rng).expect("seal");
        // Re-seal with the claimed sender field swapped in: build by hand.
        m.sender = Sender::Identity(alice_pub);
        let forged = {
            // Seal needs the matching secret; emulate a forger by sealing with Mallory's
            // secret but Alice's name, which debug builds catch as a bug, so do it by
            // editing the plaintext instead: decrypt, swap, re-encrypt with the box key.
            let eph: [u8; 32] = slot[16..48].try_into().expect("32");
            let es = bob.diffie_hellman(&PublicKey::from(eph));
            let key = kdf(es.as_bytes(), &eph, b"chorus/slot-box/v1");
            let c = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
            let mut inner = c
                .decrypt(Nonce::from_slice(&[0; 12]), &slot[48..])
                .expect("dec");
            inner[1..33].copy_from_slice(&alice_pub);
            let ct = c
                .encrypt(Nonce::from_slice(&[0; 12]), inner.as_slice())
                .expect("enc");
            slot[48..].copy_from_slice(&ct);
            let chk = check_of(&slot[16..]);
            slot[..16].copy_from_slice(&chk);
            slot
        };
        assert_eq!(open_slot(&forged, &bob), Err(SlotError::BadSender));
    }

    #[test]
    fn collision_is_detected_as_garbled() {
        let mut rng = rand_core::OsRng;
        let a = StaticSecret::random_from_rng(rng);
        let b = StaticSecret::random_from_rng(rng);
        let s1 = seal_slot(
            &msg(Sender::ReplyKey(PublicKey::from(&a).to_bytes()), b"one"),
            &a,
            &PublicKey::from(&b),
            256,
            &mut rng,
        )
        .expect("s1");
        let s2 = seal_slot(
            &msg(Sender::ReplyKey(PublicKey::from(&b).to_bytes()), b"two"),
            &b,
            &PublicKey::from(&a),
            256,
            &mut rng,
        )
        .expect("s2");
        let xored: Vec<u8> = s1.iter().zip(&s2).map(|(x, y)| x ^ y).collect();
        assert_eq!(inspect_slot(&xored), SlotState::Garbled);
        assert_eq!(inspect_slot(&[0u8; 256]), SlotState::Empty);
        assert_eq!(open_slot(&xored, &a), Err(SlotError::NotForMe));
    }

    #[test]
    fn body_too_big_is_refused_and_fragments_fit() {
        let mut rng = rand_core::OsRng;
        let a = StaticSecret::random_from_rng(rng);
        let cap = body_capacity(256);
        let big = vec![1u8; cap + 1];
        let m = msg(Sender::ReplyKey(PublicKey::from(&a).to_bytes()), &big);
        assert!(matches!(
            seal_slot(&m, &a, &PublicKey::from(&a), 256, &mut rng),
            Err(SlotError::DoesNotFit { .. })
        ));
        let parts = fragment(&vec![7u8; cap * 3 + 1], 256).expect("fragments");
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| p.len() <= cap));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn opening_random_slots_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let me = StaticSecret::from([9u8; 32]);
            let _ = inspect_slot(&bytes);
            let _ = open_slot(&bytes, &me);
        }
    }
}
