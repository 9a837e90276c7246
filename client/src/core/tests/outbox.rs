//! Submissions, outbox states, retries, failure and restore.

use super::*;
use crate::core::outbox::{LOST_AFTER_ROUNDS, MAX_ATTEMPTS};
use crate::delivery::{FailReason, RetryReason};
use crate::store::{Direction, HistoryEntry, OutboxRecord};
use protocol::wire::RejectReason;

/// Submit in round `r` and return the submission.
fn submit_round(sim: &mut Sim, r: Round) -> Submission {
    sim.status(status(r, None, &[]));
    let sub = sim.accept_submit();
    assert_eq!(sub.round, r);
    sub
}

/// Garble every non-empty slot of an output (another writer in the same slot).
fn garble(out: &mut RoundOutput) {
    let mut slots = out.slots.as_slice().to_vec();
    for s in &mut slots {
        if s.data.as_slice().iter().any(|b| *b != 0) {
            let bytes: Vec<u8> = s.data.as_slice().iter().map(|b| b ^ 0x5a).collect();
            s.data = Bytes::new(bytes).unwrap();
        }
    }
    out.slots = BoundedVec::new(slots).unwrap();
}

#[test]
fn exactly_one_submission_per_open_round() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.status(status(5, None, &[]));
    let (id, sub) = sim.take_submit().expect("round 5 gets a submission");
    assert_eq!(sub.round, 5);
    // Ticks while it is out, and after it was taken, add none for round 5.
    sim.status(status(5, None, &[]));
    assert!(sim.take_submit().is_none());
    sim.reply(id, ClientResponse::Accepted { round: 5 });
    sim.status(status(5, None, &[]));
    sim.status(status(5, None, &[]));
    assert!(sim.take_submit().is_none());
    sim.status(status(6, None, &[]));
    assert_eq!(sim.take_submit().map(|(_, s)| s.round), Some(6));
    // Idle rounds carry cover: an all-zero vector.
    assert!(c.vector_of(&sub).iter().all(|b| *b == 0));
}

#[test]
fn idle_and_sending_submissions_have_the_same_size() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.status(status(1, None, &[]));
    let idle = sim.accept_submit();
    sim.send_to_key(&bob, "hello");
    sim.status(status(2, None, &[]));
    let busy = sim.accept_submit();
    let len = |s: &Submission| protocol::encode(s).unwrap().len();
    assert_eq!(len(&idle), len(&busy));
    assert!(c.vector_of(&busy).iter().any(|b| *b != 0));
}

#[test]
fn a_message_goes_queued_in_round_sent_and_the_store_follows() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "hello bob");
    assert_eq!(sim.core.store().outbox.len(), 1);
    assert_eq!(sim.core.store().history[&id].state, "queued");
    // Round 3 carries its reservation, and lays out round 4, which carries the message.
    let mut rounds = Rounds::default();
    let (_, out3) = rounds.play(&c, &mut sim, 3);
    assert_eq!(out3.reservations.len(), 1);
    assert!(out3.slots.is_empty());
    assert_eq!(sim.states(id), vec![Delivery::Queued]);
    let (_, out4) = rounds.play(&c, &mut sim, 4);
    assert_eq!(out4.slots.len(), 1);
    assert_eq!(
        sim.states(id),
        vec![Delivery::Queued, Delivery::InRound(4), Delivery::Sent(4)]
    );
    assert!(sim.core.store().outbox.is_empty());
    assert_eq!(sim.core.store().history[&id].state, "sent");
    assert_eq!(sim.core.store().history[&id].round, 4);
}

#[test]
fn a_garbled_slot_reserves_again_and_eight_failures_fail_the_message() {
    let mut c = Cluster::new(1);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 3);
    let id = sim.send_to_key(&bob, "contested");
    let mut rounds = Rounds::default();
    let mut round = 1;
    let mut tries = 0;
    while tries < MAX_ATTEMPTS {
        let (_, out) = rounds.play_with(&c, &mut sim, round, garble);
        tries += out.slots.len() as u32;
        round += 1;
        assert!(round < 100, "the message never got a slot");
    }
    // A reservation, then the send: every failure reserves again at once.
    assert_eq!(round, 1 + 2 * u64::from(MAX_ATTEMPTS));
    let states = sim.states(id);
    let retries = states
        .iter()
        .filter(|d| {
            matches!(
                d,
                Delivery::Retrying {
                    reason: RetryReason::Collision,
                    ..
                }
            )
        })
        .count();
    assert_eq!(retries as u32, MAX_ATTEMPTS - 1);
    assert!(matches!(
        states.last(),
        Some(Delivery::Failed {
            reason: FailReason::GaveUp {
                attempts: MAX_ATTEMPTS,
                last: RetryReason::Collision
            },
            ..
        })
    ));
    let stored = &sim.core.store().history[&id];
    assert!(
        stored.state.starts_with("failed: gave up after 8 tries"),
        "{}",
        stored.state
    );
    assert_eq!(
        Delivery::from_stored(&stored.state, stored.round),
        *states.last().unwrap()
    );
    assert!(sim.core.store().outbox.is_empty());
}

#[test]
fn a_void_round_sends_the_fragment_back_to_the_outbox() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "not yet");
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 3);
    submit_round(&mut sim, 4);
    assert_eq!(sim.states(id).last(), Some(&Delivery::InRound(4)));
    sim.status(status(5, None, &[4]));
    assert!(sim.states(id).contains(&Delivery::Retrying {
        round: 4,
        reason: RetryReason::Void
    }));
    // It reserves again at once.
    let sub = sim.accept_submit();
    assert_eq!(sub.round, 5);
    assert_eq!(rounds.publish(&c, 5, &[&sub]).reservations.len(), 1);
}

#[test]
fn a_void_round_f_plus_one_servers_publish_retries_and_opens_the_next_round() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "not this round");
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 3);
    let sent = submit_round(&mut sim, 4);
    assert!(
        c.vector_of(&sent).iter().any(|b| *b != 0),
        "the message went out"
    );
    assert_eq!(sim.states(id).last(), Some(&Delivery::InRound(4)));
    // One server's word is not enough; f+1 servers' is, with no status request.
    let void = RoundOutput::void(4, 1);
    for i in [0u16, 1] {
        assert!(sim.take_submit().is_none(), "nothing opened round 5 yet");
        let bytes = protocol::encode(&c.vouch(&void, i)).unwrap();
        sim.core.handle_gossip(&bytes, sim.now);
        sim.pump();
    }
    let sub = sim.accept_submit();
    assert_eq!(sub.round, 5, "the void round opened the next one");
    assert!(sim.core.handle_sent(sim.now));
    sim.pump();
    assert!(sim.states(id).contains(&Delivery::Retrying {
        round: 4,
        reason: RetryReason::Void
    }));
    assert!(sim
        .reqs
        .iter()
        .all(|(_, _, r)| !matches!(r, ClientRequest::Status)));
}

#[test]
fn a_reservation_in_a_void_round_is_reported_and_reserves_again() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "k not reached");
    let first = submit_round(&mut sim, 2);
    let void = RoundOutput::void(2, 2);
    sim.vouched(&c, &void, &[0, 1]);
    assert!(sim.states(id).contains(&Delivery::Retrying {
        round: 2,
        reason: RetryReason::Void
    }));
    // It reserves again, with a fresh footprint.
    let again = submit_round(&mut sim, 3);
    assert!(c.vector_of(&again).iter().any(|b| *b != 0));
    assert_ne!(c.vector_of(&first), c.vector_of(&again));
}

#[test]
fn a_round_with_no_output_for_twenty_rounds_counts_as_lost() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "into the void");
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 2);
    submit_round(&mut sim, 3);
    sim.status(status(3 + LOST_AFTER_ROUNDS, None, &[]));
    assert!(!sim
        .states(id)
        .iter()
        .any(|d| matches!(d, Delivery::Retrying { .. })));
    sim.status(status(4 + LOST_AFTER_ROUNDS, None, &[]));
    assert!(sim.states(id).contains(&Delivery::Retrying {
        round: 3,
        reason: RetryReason::Lost
    }));
}

#[test]
fn a_stale_round_answer_moves_on_only_as_far_as_f_plus_one_servers_agree() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "late");
    sim.status(status(3, None, &[]));
    let (sid, _) = sim.take_submit().unwrap();
    // One server says round 9 is open: one past what the others said, no further.
    sim.reply(
        sid,
        ClientResponse::Rejected(RejectReason::StaleRound { got: 3, open: 9 }),
    );
    assert_eq!(sim.states(id), vec![Delivery::Queued]);
    sim.status(status(3, None, &[]));
    let (sid, sub) = sim.take_submit().unwrap();
    assert_eq!(sub.round, 4);
    sim.reply(
        sid,
        ClientResponse::Rejected(RejectReason::StaleRound { got: 4, open: 9 }),
    );
    // One server's status says 9: still one past what f+1 agree on.
    sim.status(status(9, None, &[]));
    let (sid, sub) = sim.take_submit().unwrap();
    assert_eq!(sub.round, 4);
    sim.reply(
        sid,
        ClientResponse::Rejected(RejectReason::StaleRound { got: 4, open: 9 }),
    );
    // Once f+1 servers report round 9, it is the one.
    sim.status(status(9, None, &[]));
    let (sid, sub) = sim.take_submit().unwrap();
    assert_eq!(sub.round, 9);
    // A duplicate answer means the submission is held: its reservation is in round 9.
    sim.reply(
        sid,
        ClientResponse::Rejected(RejectReason::DuplicateSubmission { round: 9 }),
    );
    let mut rounds = Rounds::default();
    let out = rounds.publish(&c, 9, &[&sub]);
    sim.vouched(&c, &out, &[0, 1]);
    rounds.play(&c, &mut sim, 10);
    assert_eq!(sim.states(id).last(), Some(&Delivery::Sent(10)));
}

#[test]
fn one_lying_server_cannot_send_the_client_into_rounds_nobody_opens() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    // Servers answer in turn: 0 and 1 honest (round 5), 2 claims round 1,000,000.
    sim.status(status(5, Some(4), &[]));
    sim.accept_submit();
    sim.status(status(5, Some(4), &[]));
    sim.status(status(1_000_000, Some(999_999), &[]));
    let rounds: Vec<Round> =
        std::iter::from_fn(|| sim.take_submit().map(|(_, s)| s.round)).collect();
    assert!(rounds.iter().all(|r| *r <= 6), "submitted for {rounds:?}");
}

#[test]
fn a_refused_submission_is_reported_and_tried_again_next_tick() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.status(status(2, None, &[]));
    let (sid, _) = sim.take_submit().unwrap();
    sim.reply(sid, ClientResponse::Rejected(RejectReason::UnknownClient));
    let err = sim.events.iter().find_map(|e| match e {
        Event::Error { message } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        err.as_deref(),
        Some("submission for round 2 failed: unknown client")
    );
    sim.status(status(2, None, &[]));
    assert_eq!(sim.take_submit().map(|(_, s)| s.round), Some(2));
}

#[test]
fn the_outbox_is_restored_after_a_restart() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut store = MemStore::default();
    let rec = OutboxRecord {
        to_name: "bob".into(),
        to_dh: bob.public().dh,
        text: "survives".into(),
        conversation: [3; 16],
        seq: 77,
        timestamp_ms: T0,
        anonymous: false,
        reply_secret: None,
        room: None,
        body: None,
        file: None,
    };
    let entry = HistoryEntry {
        direction: Direction::Sent,
        peer: "bob".into(),
        text: "survives".into(),
        timestamp_ms: T0,
        round: 0,
        state: "queued".into(),
    };
    let id = crate::core::LocalStore::add_history(&mut store, &entry).unwrap();
    crate::core::LocalStore::put_outbox(&mut store, id, &rec).unwrap();
    let mut sim = c.sim(me, store, 1);
    assert_eq!(sim.states(id), vec![Delivery::Queued], "announced at start");
    let mut rounds = Rounds::default();
    for r in 1..=2 {
        rounds.play(&c, &mut sim, r);
    }
    assert_eq!(sim.states(id).last(), Some(&Delivery::Sent(2)));
    assert!(sim.core.store().outbox.is_empty());
}

#[test]
fn sending_to_a_name_resolves_it_in_the_local_directory() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    // Before the first sync, a send waits for it (and asks nobody anything).
    let t = sim.user(UserRequest::Send {
        to: "Bob".into(),
        text: "hi".into(),
        anonymous: false,
    });
    assert!(sim.answers.is_empty());
    assert!(sim.reqs.is_empty(), "{:?}", sim.reqs);
    sim.sync(&[register(&bob, "bob")]);
    let Some((tok, Answer::Send(Ok(out_id)))) = sim.answers.first().cloned() else {
        panic!("queued: {:?}", sim.answers)
    };
    assert_eq!(tok, t);
    assert_eq!(sim.core.store().outbox[&out_id].to_dh, bob.public().dh);
    assert_eq!(sim.core.store().outbox[&out_id].timestamp_ms, sim.now);
    // Known now: the next send is queued at once, with no request of any kind.
    sim.reqs.clear();
    sim.user(UserRequest::Send {
        to: "bob".into(),
        text: "again".into(),
        anonymous: false,
    });
    assert!(matches!(sim.answers.last(), Some((_, Answer::Send(Ok(_))))));
    assert!(sim.reqs.is_empty(), "{:?}", sim.reqs);
    // Nobody by that name: the caller hears it after the next sync.
    let t2 = sim.user(UserRequest::Send {
        to: "zed".into(),
        text: "hi".into(),
        anonymous: false,
    });
    assert_eq!(sim.answers.len(), 2);
    sim.sync(&[register(&bob, "bob")]);
    assert_eq!(
        sim.answers.last(),
        Some(&(
            t2,
            Answer::Send(Err(
                "no user named \"zed\" in the directory (1 names held)".into()
            ))
        ))
    );
    let t3 = sim.user(UserRequest::Send {
        to: "key:zz".into(),
        text: "x".into(),
        anonymous: false,
    });
    assert!(
        matches!(sim.answers.last(), Some((t, Answer::Send(Err(e)))) if *t == t3 && e.starts_with("bad reply key"))
    );
}

/// Queue an anonymous message to `to`'s key; returns its id.
fn send_anonymous(sim: &mut Sim, to: &Identity, text: &str) -> u64 {
    let t = sim.user(UserRequest::Send {
        to: format!("key:{}", hex::encode(to.public().dh)),
        text: text.into(),
        anonymous: true,
    });
    match sim.answers.iter().find(|(tok, _)| *tok == t) {
        Some((_, Answer::Send(Ok(id)))) => *id,
        other => panic!("not queued: {other:?}"),
    }
}

#[test]
fn a_recipient_holding_every_registered_key_cannot_tell_who_sent_anonymously() {
    let mut c = Cluster::new(4);
    let alice = c.identity();
    let bob = c.identity();
    // The whole directory, as bob may hold it: alice among twenty users.
    let mut directory: Vec<[u8; 32]> = (0..19).map(|_| c.identity().public().dh).collect();
    directory.push(alice.public().dh);
    let alice_dh = alice.public().dh;
    let mut sim = c.sim(alice, MemStore::default(), 1);
    send_anonymous(&mut sim, &bob, "guess who");
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 2);
    let (_, out) = rounds.play(&c, &mut sim, 3);
    let opened = crate::core::inbox::open_slots(&out, std::iter::once(bob.x25519_secret()));
    assert_eq!(opened.len(), 1, "bob opens it");
    let msg = &opened[0];
    assert_eq!(msg.body, b"guess who");
    // Nothing in what bob opened can be tested against a registered key: not the
    // sender field, not the conversation id, not the authenticating MAC (keyed with the
    // one-time key, which is why it opened under bob's key and the sender field alone).
    let Sender::ReplyKey(one_time) = msg.sender else {
        panic!("an anonymous message names its one-time key, not an identity")
    };
    for dh in &directory {
        assert_ne!(&one_time, dh);
        assert_ne!(
            msg.conversation,
            crate::core::conversation_id(dh, &bob.public().dh)
        );
    }
    assert_eq!(
        msg.conversation,
        crate::core::conversation_id(&one_time, &bob.public().dh),
        "the conversation id depends on the one-time key alone"
    );
    assert_ne!(one_time, alice_dh);
}

#[test]
fn an_anonymous_message_resent_after_a_restart_is_the_same_message_and_replies_open() {
    let mut c = Cluster::new(4);
    let alice = c.identity();
    let bob = c.identity();
    let seed = alice.ed25519_seed();
    let x = alice.x25519_secret().to_bytes();
    let mut sim = c.sim(alice, MemStore::default(), 1);
    send_anonymous(&mut sim, &bob, "same after restart");
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 3);
    let first = submit_round(&mut sim, 4);
    // Alice's client restarts before round 4's output: the outbox comes back from the
    // store with its one-time key, and reserves again.
    let store = sim.core.store().clone();
    assert_eq!(store.reply_keys.len(), 1, "the reply key is stored");
    let mut sim = c.sim(Identity::from_secret_bytes(&seed, &x), store, 2);
    let first = rounds.publish(&c, 4, &[&first]);
    sim.vouched(&c, &first, &[0, 1]);
    rounds.play(&c, &mut sim, 5);
    let (_, again) = rounds.play(&c, &mut sim, 6);
    let open = |out: &RoundOutput| {
        crate::core::inbox::open_slots(out, std::iter::once(bob.x25519_secret())).remove(0)
    };
    let (a, b) = (open(&first), open(&again));
    assert_eq!(a.sender, b.sender, "the same one-time key");
    assert_eq!(
        (a.conversation, a.seq),
        (b.conversation, b.seq),
        "the same message"
    );
    // Bob replies to the one-time key; alice's restarted client opens it.
    let Sender::ReplyKey(k) = a.sender else {
        panic!("anonymous")
    };
    let reply = SlotMessage {
        sender: Sender::Identity(bob.public().dh),
        conversation: a.conversation,
        seq: 1,
        timestamp_ms: T0,
        fragment_index: 0,
        fragment_count: 1,
        body: b"who are you?".to_vec(),
    };
    let sealed = protocol::slot::seal_slot(
        &reply,
        bob.x25519_secret(),
        &x25519_dalek::PublicKey::from(k),
        SLOT_BYTES,
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    sim.vouched(&c, &c.output_with(8, &[(1, sealed)]), &[0, 1]);
    sim.sync(&[register(&bob, "bob")]);
    assert_eq!(
        sim.messages(),
        vec![("bob".to_string(), "who are you?".to_string())]
    );
}

#[test]
fn a_lost_reservation_reserves_again_without_counting_a_try() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let id = sim.send_to_key(&bob, "again");
    let mut rounds = Rounds::default();
    // Round 1's cell held three reservations: ours does not decode.
    let (sub1, _) = rounds.play_with(&c, &mut sim, 1, |out| {
        out.reservations = BoundedVec::default();
        out.lost_cells = 1;
    });
    // So round 2 reserves again; its reservation gets round 3's slot.
    let (sub2, out2) = rounds.play(&c, &mut sim, 2);
    assert_ne!(c.vector_of(&sub1), c.vector_of(&sub2), "a fresh footprint");
    assert_eq!(out2.reservations.len(), 1);
    rounds.play(&c, &mut sim, 3);
    assert_eq!(
        sim.states(id),
        vec![Delivery::Queued, Delivery::InRound(3), Delivery::Sent(3)]
    );
}
