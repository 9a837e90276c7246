//! The public board: a channel anyone can read and post to, whose posts carry no sender.
//!
//! A board post is an ordinary slot ([`crate::slot`]) sealed to the board's key pair,
//! whose secret is derived from a public label: everyone can open it, and nothing in it
//! names the poster. The poster seals from a fresh one-time key it never reuses, so two
//! posts by one client are not linkable through the slot either; the sender field of a
//! board slot proves nothing (anyone holding the board secret can make its MAC) and is
//! never shown.
//!
//! Posting costs what any message costs: one reservation, one slot, the same sealing
//! work, so a round's observers and servers cannot tell a board post from a private
//! message by its size or timing. Spam is bounded as every write is: one validity-checked
//! slot per client per round ([`crate::validity`]).

use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

/// The conversation id every board post carries (the board is one conversation).
pub const BOARD_CONVERSATION: [u8; 16] = *b"chorus/board/v1\0";

/// The board's secret key: public by design (derived from a fixed label).
pub fn board_secret() -> StaticSecret {
    let d = Sha256::new()
        .chain_update(b"chorus/board/key/v1")
        .finalize();
    let mut k = [0u8; 32];
    k.copy_from_slice(&d);
    StaticSecret::from(k)
}

/// The key board posts are sealed to.
pub fn board_public() -> PublicKey {
    PublicKey::from(&board_secret())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::{open_slot, seal_slot, Sender, SlotMessage};
    use rand::SeedableRng;

    #[test]
    fn anyone_opens_a_board_post_and_it_names_no_long_term_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let poster = StaticSecret::random_from_rng(&mut rng);
        let msg = SlotMessage {
            sender: Sender::ReplyKey(PublicKey::from(&poster).to_bytes()),
            conversation: BOARD_CONVERSATION,
            seq: 7,
            timestamp_ms: 1,
            fragment_index: 0,
            fragment_count: 1,
            body: b"hello, everyone".to_vec(),
        };
        let slot = seal_slot(&msg, &poster, &board_public(), 256, &mut rng).expect("seal");
        assert_eq!(open_slot(&slot, &board_secret()).expect("open"), msg);
        // A private key does not open it: it is not addressed to anyone in particular.
        let someone = StaticSecret::random_from_rng(&mut rng);
        assert!(open_slot(&slot, &someone).is_err());
    }
}
