//! Trial decryption, reassembly and the name shown for a sender.

use super::*;
use crate::core::inbox::{Reassembly, MAX_MESSAGE_BYTES};

fn frag(seq: u32, index: u16, count: u16, body: &[u8], ts: u64) -> SlotMessage {
    SlotMessage {
        sender: Sender::Identity([5; 32]),
        conversation: [1; 16],
        seq,
        timestamp_ms: ts,
        fragment_index: index,
        fragment_count: count,
        body: body.to_vec(),
    }
}

#[test]
fn fragments_out_of_order_and_duplicated_reassemble_once() {
    let mut r = Reassembly::new(SLOT_BYTES);
    assert!(r.offer(frag(1, 2, 3, b"!", 10)).is_none());
    assert!(r.offer(frag(1, 0, 3, b"hello", 10)).is_none());
    assert!(
        r.offer(frag(1, 2, 3, b"!", 10)).is_none(),
        "a duplicate does not complete"
    );
    let done = r.offer(frag(1, 1, 3, b" world", 10)).expect("complete");
    assert_eq!(done.body, b"hello world!");
    assert_eq!(done.timestamp_ms, 10);
    assert!(r.is_empty());
    // A late duplicate starts a new partial message, never a second delivery.
    assert!(r.offer(frag(1, 0, 3, b"hello", 10)).is_none());
    assert_eq!(r.len(), 1);
}

#[test]
fn inconsistent_fragment_counts_and_indices_are_ignored() {
    let mut r = Reassembly::new(SLOT_BYTES);
    assert!(r.offer(frag(4, 0, 2, b"a", 1)).is_none());
    // Same message, another count: a stray, ignored.
    assert!(r.offer(frag(4, 1, 5, b"x", 1)).is_none());
    // An index past the count is ignored too.
    assert!(r.offer(frag(4, 7, 2, b"y", 1)).is_none());
    let done = r.offer(frag(4, 1, 2, b"b", 1)).expect("complete");
    assert_eq!(done.body, b"ab");
}

#[test]
fn partial_messages_are_bounded_and_the_earliest_to_arrive_is_dropped() {
    let mut r = Reassembly::with_limits(SLOT_BYTES, 3, 1 << 20);
    // The sender's clock says nothing about arrival: seq 1 claims to be the newest.
    for (seq, ts) in [(1, u64::MAX), (2, 10), (3, 30)] {
        assert!(r.offer(frag(seq, 0, 2, b"a", ts)).is_none());
    }
    assert!(r.offer(frag(4, 0, 2, b"a", 40)).is_none());
    assert_eq!(r.len(), 3);
    // seq 1 arrived first and was dropped, whatever its timestamp...
    assert!(r.offer(frag(1, 1, 2, b"b", u64::MAX)).is_none());
    // ...while seq 3 still completes.
    assert!(r.offer(frag(3, 1, 2, b"b", 30)).is_some());
}

#[test]
fn an_announced_fragment_count_beyond_the_largest_message_is_refused_unallocated() {
    let mut r = Reassembly::new(SLOT_BYTES);
    let cap = r.max_fragments();
    assert!(usize::from(cap) * protocol::slot::body_capacity(SLOT_BYTES) >= MAX_MESSAGE_BYTES);
    assert!(r.offer(frag(1, 0, u16::MAX, b"a", 1)).is_none());
    assert!(r.offer(frag(2, 0, cap + 1, b"a", 1)).is_none());
    assert!(
        r.is_empty(),
        "nothing held for a message longer than we accept"
    );
    assert!(r.offer(frag(3, 0, cap, b"a", 1)).is_none());
    assert_eq!(r.len(), 1);
    assert_eq!(r.held_bytes(), 1, "only what arrived is held");
}

#[test]
fn fragments_are_held_within_a_byte_budget() {
    let body = vec![7u8; 40];
    let mut r = Reassembly::with_limits(SLOT_BYTES, 1024, 100);
    assert!(r.offer(frag(1, 0, 3, &body, 1)).is_none());
    assert!(r.offer(frag(2, 0, 3, &body, 1)).is_none());
    assert_eq!(r.held_bytes(), 80);
    // A third would exceed 100 bytes: the earliest partial message makes room.
    assert!(r.offer(frag(3, 0, 3, &body, 1)).is_none());
    assert_eq!(r.held_bytes(), 80);
    assert_eq!(r.len(), 2);
    // seq 1 lost its first fragment: its other two no longer complete it.
    assert!(r.offer(frag(1, 1, 3, b"x", 1)).is_none());
    assert!(
        r.offer(frag(1, 2, 3, b"y", 1)).is_none(),
        "seq 1 was dropped"
    );
    assert!(r.held_bytes() <= 100);
}

#[test]
fn a_message_in_an_accepted_output_is_delivered_with_the_sender_name() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(
        Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes()),
        MemStore::default(),
        1,
    );
    let slot = c.slot(&bob, &me, 1, 0, 1, b"hi alice", T0 - 250);
    let out = c.output_with(4, &[(2, slot)]);
    sim.vouched(&c, &out, &[0, 1]);
    assert!(sim.messages().is_empty(), "waits for the sender's name");
    assert!(
        sim.reqs.is_empty(),
        "and asks nobody for it: {:?}",
        sim.reqs
    );
    // The next scheduled directory sync names the sender.
    sim.sync(&[register(&bob, "bob")]);
    assert_eq!(
        sim.messages(),
        vec![("bob".to_string(), "hi alice".to_string())]
    );
    let latency = sim.events.iter().find_map(|e| match e {
        Event::Message {
            latency_ms,
            anonymous,
            reply_to,
            ..
        } => {
            assert!(!anonymous);
            assert_eq!(reply_to, &format!("key:{}", hex::encode(bob.public().dh)));
            Some(*latency_ms)
        }
        _ => None,
    });
    let waited = crate::core::directory::SYNC_PERIOD_MS;
    assert_eq!(
        latency,
        Some(250 + waited),
        "latency uses the time passed in"
    );
    let stored: Vec<_> = sim.core.store().history.values().cloned().collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].peer, "bob", "the stored name is corrected");
    assert_eq!(stored[0].round, 4);
    // Bob is in the local directory now: the next message is shown at once.
    sim.reqs.clear();
    let slot = c.slot(&bob, &me, 2, 0, 1, b"again", T0);
    let out = c.output_with(5, &[(0, slot)]);
    sim.vouched(&c, &out, &[1, 2]);
    assert!(sim.reqs.is_empty());
    assert_eq!(sim.messages().len(), 2);
}

#[test]
fn an_unregistered_sender_is_shown_by_key_after_a_sync() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let eve = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, MemStore::default(), 1);
    let slot = c.slot(&eve, &me, 1, 0, 1, b"boo", T0);
    sim.vouched(&c, &c.output_with(1, &[(1, slot)]), &[0, 1]);
    assert!(
        sim.messages().is_empty(),
        "eve may have registered just now"
    );
    sim.sync(&[]);
    let unknown = format!("unknown-{}", hex::encode(&eve.public().dh[..4]));
    assert_eq!(sim.messages(), vec![(unknown.clone(), "boo".to_string())]);
    // Her next message waits for the next sync in turn (she may register meanwhile).
    let slot = c.slot(&eve, &me, 2, 0, 1, b"boo2", T0);
    sim.vouched(&c, &c.output_with(2, &[(1, slot)]), &[0, 1]);
    assert_eq!(sim.messages().len(), 1);
    sim.sync(&[register(&eve, "eve")]);
    assert_eq!(sim.messages()[1], ("eve".to_string(), "boo2".to_string()));
}

#[test]
fn with_no_server_answering_a_waiting_message_is_shown_after_the_park_limit() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let eve = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, MemStore::default(), 1);
    let slot = c.slot(&eve, &me, 1, 0, 1, b"boo", T0);
    sim.vouched(&c, &c.output_with(1, &[(1, slot)]), &[0, 1]);
    sim.now += crate::core::directory::PARK_LIMIT_MS - 1;
    sim.tick();
    assert!(sim.messages().is_empty());
    sim.now += 1;
    sim.tick();
    assert_eq!(sim.messages().len(), 1, "shown under its key, not lost");
}

#[test]
fn messages_keep_their_order_while_a_name_is_awaited_and_repeats_are_dropped() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let carol = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, MemStore::default(), 1);
    let mut dir = vec![register(&carol, "carol")];
    sim.sync(&dir);
    let s = c.slot(&carol, &me, 1, 0, 1, b"c1", T0);
    sim.vouched(&c, &c.output_with(1, &[(0, s)]), &[0, 1]);
    assert_eq!(sim.messages().len(), 1, "carol is known: shown at once");
    // Bob (not in the directory yet) then carol in the next round.
    let b = c.slot(&bob, &me, 1, 0, 1, b"b1", T0);
    let k = c.slot(&carol, &me, 2, 0, 1, b"c2", T0);
    let out = c.output_with(2, &[(0, b), (3, k)]);
    sim.vouched(&c, &out, &[0, 1]);
    assert_eq!(
        sim.messages().len(),
        1,
        "carol's message waits behind bob's"
    );
    dir.push(register(&bob, "bob"));
    sim.sync(&dir);
    let texts: Vec<String> = sim.messages().into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["c1", "b1", "c2"]);
    // The same output again (a catch-up overlap under a new round number is still the
    // same message): delivered once.
    let b = c.slot(&bob, &me, 1, 0, 1, b"b1", T0);
    sim.vouched(&c, &c.output_with(3, &[(1, b)]), &[1, 2]);
    assert_eq!(sim.messages().len(), 3);
}

#[test]
fn a_long_message_arrives_over_several_rounds() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, MemStore::default(), 1);
    sim.sync(&[register(&bob, "bob")]);
    let text = "x".repeat(60);
    let parts = protocol::slot::fragment(text.as_bytes(), SLOT_BYTES).unwrap();
    assert_eq!(parts.len(), 2);
    let second = c.slot(&bob, &me, 3, 1, 2, &parts[1], T0);
    sim.vouched(&c, &c.output_with(1, &[(2, second)]), &[0, 2]);
    let first = c.slot(&bob, &me, 3, 0, 2, &parts[0], T0);
    sim.vouched(&c, &c.output_with(2, &[(0, first)]), &[0, 2]);
    assert_eq!(sim.messages(), vec![("bob".to_string(), text)]);
}
