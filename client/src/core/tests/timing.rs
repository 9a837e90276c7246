//! Indistinguishable timing: between an output and the next submission, idle, sending
//! and receiving clients do the same thing, and none of them writes to disk.

use super::*;

/// What one client did between an output arriving on gossip and its next submission.
#[derive(Debug, PartialEq)]
struct Between {
    /// Requests emitted, by kind, in order.
    requests: Vec<&'static str>,
    /// Store write transactions.
    writes: usize,
    /// Events reported.
    events: usize,
}

/// Run one client through round 1 (idle, sending to bob, or receiving from bob), then
/// deliver round 1's output on gossip, which opens round 2. Returns what happened in
/// between, and the sim after `handle_sent`.
fn run(role: &str) -> (Between, Sim) {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, MemStore::default(), 1);
    sim.sync(&[register(&bob, "bob")]);
    if role == "sending" {
        sim.send_to_key(&bob, "hello bob");
    }
    sim.status(status(1, None, &[]));
    let sub1 = sim.accept_submit();
    let output = match role {
        // Round 1 decodes our reservation: round 2 carries the message.
        "sending" => c.round_output(1, &[&sub1], &[]),
        "receiving" => {
            let slot = c.slot(&bob, &me, 1, 0, 1, b"hi", T0);
            c.output_with(1, &[(2, slot)])
        }
        _ => c.round_output(1, &[&sub1], &[]),
    };
    sim.reqs.clear();
    let (writes, events) = (sim.core.store().writes, sim.events.len());
    for i in [0, 1] {
        let bytes = protocol::encode(&c.vouch(&output, i)).unwrap();
        sim.core.handle_gossip(&bytes, sim.now);
        sim.pump();
    }
    assert_eq!(sim.core.last_processed(), Some(1), "settled at once");
    // The output opened round 2 and laid it out: its submission went out at once.
    let between = Between {
        requests: sim.reqs.iter().map(|(_, _, r)| r.kind()).collect(),
        writes: sim.core.store().writes - writes,
        events: sim.events.len() - events,
    };
    assert!(sim.core.handle_sent(sim.now), "deferred work runs now");
    sim.pump();
    if role == "sending" {
        // Round 2 carries the message, in the slot round 1's reservation laid out.
        let (_, sub2) = sim.take_submit().expect("round 2's submission");
        assert_eq!(sub2.round, 2);
        let out2 = c.round_output(2, &[&sub2], output.reservations.as_slice());
        assert_eq!(out2.slots.len(), 1);
        let opened = crate::core::inbox::open_slots(&out2, std::iter::once(bob.x25519_secret()));
        assert_eq!(opened[0].body, b"hello bob");
    }
    (between, sim)
}

#[test]
fn idle_sending_and_receiving_clients_do_the_same_before_the_next_submission() {
    let (idle, idle_sim) = run("idle");
    let (sending, sending_sim) = run("sending");
    let (receiving, receiving_sim) = run("receiving");
    assert_eq!(
        idle,
        Between {
            // One share to each of the three servers.
            requests: vec!["submit"; 3],
            writes: 0,
            events: 0
        }
    );
    assert_eq!(sending, idle);
    assert_eq!(receiving, idle);
    // After the submission is out, each does its own work.
    assert_eq!(receiving_sim.messages(), vec![("bob".into(), "hi".into())]);
    assert!(
        sending_sim.reqs.is_empty(),
        "round 2's shares were taken in run()"
    );
    assert_eq!(
        idle_sim.core.store().last_round,
        Some(1),
        "watermark stored"
    );
    assert_eq!(receiving_sim.core.store().history.len(), 1);
}

#[test]
fn a_client_that_is_not_submitting_processes_a_deferred_output_after_two_rounds() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mine = Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes());
    let mut sim = c.sim(mine, MemStore::default(), 1);
    sim.sync(&[register(&bob, "bob")]);
    let slot = c.slot(&bob, &me, 1, 0, 1, b"hi", T0);
    let output = c.output_with(1, &[(2, slot)]);
    for i in [0, 1] {
        let bytes = protocol::encode(&c.vouch(&output, i)).unwrap();
        sim.core.handle_gossip(&bytes, sim.now);
    }
    sim.pump();
    assert!(sim.messages().is_empty());
    assert_eq!(
        sim.core.store().last_round,
        None,
        "not stored before processing"
    );
    sim.now += 2 * 1000;
    sim.tick();
    assert_eq!(sim.messages(), vec![("bob".into(), "hi".into())]);
    assert_eq!(sim.core.store().last_round, Some(1));
}

/// Status requests the client made in `ticks` quarter-round ticks, answering each.
fn status_asks(sim: &mut Sim, ticks: u32, open: Round) -> usize {
    let mut asks = 0;
    for _ in 0..ticks {
        sim.now += 250;
        sim.tick();
        while let Some((id, _, _)) = sim.take(|r| matches!(r, ClientRequest::Status)) {
            asks += 1;
            sim.reply(id, status(open, open.checked_sub(1), &[]));
        }
    }
    asks
}

#[test]
fn outputs_open_rounds_and_status_is_asked_only_when_they_stop() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    // Until f+1 servers have answered, every tick asks.
    assert_eq!(status_asks(&mut sim, 2, 1), 2);
    let mut sub = sim.accept_submit();
    assert_eq!(sub.round, 1);
    // Twenty rounds whose outputs come on gossip: each opens the next round, and the
    // client submits to it on the output alone.
    let mut asks = 0;
    let mut rounds = Rounds::default();
    for r in 1..=20 {
        let out = rounds.publish(&c, r, &[&sub]);
        for i in [0, 1] {
            let bytes = protocol::encode(&c.vouch(&out, i)).unwrap();
            sim.core.handle_gossip(&bytes, sim.now);
        }
        sim.pump();
        sub = sim.accept_submit();
        assert_eq!(sub.round, r + 1, "submitted on the output");
        asks += status_asks(&mut sim, 4, r + 1);
    }
    // Twenty rounds of 1 s: one status every 8 s.
    assert!(
        (2..=3).contains(&asks),
        "{asks} status requests in 20 rounds"
    );
    // The outputs stop (a void round, lost gossip): 3 rounds after the last one, every
    // tick asks (before that, at most the periodic one).
    assert!(status_asks(&mut sim, 7, 21) <= 1);
    assert_eq!(status_asks(&mut sim, 8, 21), 8);
}
