//! The public board: a post goes out like a message, everyone opens it, it names nobody.

use super::*;
use crate::core::BOARD_ADDRESS;

fn post(sim: &mut Sim, text: &str) -> u64 {
    let t = sim.user(UserRequest::Send {
        to: BOARD_ADDRESS.into(),
        text: text.into(),
        anonymous: false,
    });
    match sim.answers.iter().find(|(tok, _)| *tok == t) {
        Some((_, Answer::Send(Ok(id)))) => *id,
        other => panic!("not queued: {other:?}"),
    }
}

fn board_posts(sim: &Sim) -> Vec<(String, Round)> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Board { text, round, .. } => Some((text.clone(), *round)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_post_reaches_every_reader_once_names_nobody_and_is_not_shown_twice_to_its_poster() {
    let mut c = Cluster::new(4);
    let alice = c.identity();
    let alice_keys = (alice.public().dh, alice.public().sign);
    let bob = c.identity();
    let carol = c.identity();
    let mut sim = c.sim(alice, MemStore::default(), 1);
    let id = post(&mut sim, "lunch at noon?");
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 3);
    let (_, out) = rounds.play(&c, &mut sim, 4);
    assert_eq!(
        sim.states(id),
        vec![Delivery::Queued, Delivery::InRound(4), Delivery::Sent(4)]
    );
    // The poster's own history holds its post once, as sent; no "received" copy.
    let mine: Vec<_> = sim
        .core
        .store()
        .history
        .values()
        .filter(|e| e.peer == BOARD_ADDRESS)
        .cloned()
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].direction, crate::store::Direction::Sent);
    assert!(board_posts(&sim).is_empty());

    // Two other clients open it from the output (and again from a catch-up page: once).
    for (who, seed) in [(bob, 2), (carol, 3)] {
        let mut reader = c.sim(who, MemStore::default(), seed);
        reader.vouched(&c, &out, &[0, 1]);
        reader
            .core
            .handle_signed_output(c.vouch(&out, 2), reader.now);
        reader.pump();
        assert_eq!(
            board_posts(&reader),
            vec![("lunch at noon?".to_string(), 4)]
        );
        assert!(reader.messages().is_empty(), "not a private message");
        let stored: Vec<_> = reader.core.store().history.values().cloned().collect();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].peer, BOARD_ADDRESS);
        assert_eq!(stored[0].text, "lunch at noon?");
    }

    // Nothing in the slot names the poster: its sender field is a one-time key that is
    // nobody's identity, and nobody can reply to it (the poster does not keep it).
    let opened =
        crate::core::inbox::open_slots(&out, std::iter::once(&protocol::board::board_secret()));
    assert_eq!(opened.len(), 1);
    let Sender::ReplyKey(one_time) = opened[0].sender else {
        panic!("a board post comes from a one-time key");
    };
    assert_ne!(one_time, alice_keys.0);
    assert_ne!(one_time, alice_keys.1);
    assert!(sim.core.store().reply_keys.is_empty());
}

#[test]
fn a_private_message_cannot_pass_for_a_board_post() {
    let mut c = Cluster::new(4);
    let alice = c.identity();
    let bob = c.identity();
    // A slot sealed to bob's own key, with the board's conversation id: it is bob's
    // message, not a post everyone sees.
    let msg = SlotMessage {
        sender: Sender::Identity(alice.public().dh),
        conversation: protocol::board::BOARD_CONVERSATION,
        seq: 1,
        timestamp_ms: T0,
        fragment_index: 0,
        fragment_count: 1,
        body: b"just for you".to_vec(),
    };
    let mut rng = StdRng::seed_from_u64(9);
    let to = bob.public().x25519();
    let slot = seal_slot(&msg, alice.x25519_secret(), &to, SLOT_BYTES, &mut rng).unwrap();
    let mut sim = c.sim(bob, MemStore::default(), 1);
    let out = c.output_with(4, &[(0, slot)]);
    sim.vouched(&c, &out, &[0, 1]);
    assert!(board_posts(&sim).is_empty());
    assert_eq!(
        sim.messages().len(),
        0,
        "waits for alice's name, as a private message"
    );
    assert_eq!(sim.core.store().history.len(), 1);
    assert_ne!(
        sim.core
            .store()
            .history
            .values()
            .next()
            .map(|e| e.peer.clone()),
        Some(BOARD_ADDRESS.to_string())
    );
}
