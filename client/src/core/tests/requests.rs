//! Asking servers: rotation past unavailable ones, concurrency, bounds, answers.

use super::*;
use crate::core::MAX_USER_REQUESTS;

#[test]
fn an_ask_moves_past_unavailable_servers_and_reports_the_last_failure() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let t = sim.user(UserRequest::Register {
        name: "alice".into(),
    });
    let (id, s0, _) = sim
        .take(|r| matches!(r, ClientRequest::Register(_)))
        .unwrap();
    assert_eq!(s0, 0);
    sim.reply(
        id,
        ClientResponse::Unavailable(Bytes::new(b"no leader".to_vec()).unwrap()),
    );
    let (id, s1, _) = sim
        .take(|r| matches!(r, ClientRequest::Register(_)))
        .unwrap();
    assert_eq!(s1, 1);
    sim.fail(id, Failure::Conn("server 1: connection refused".into()));
    let (id, s2, _) = sim
        .take(|r| matches!(r, ClientRequest::Register(_)))
        .unwrap();
    assert_eq!(s2, 2);
    sim.fail(id, Failure::TimedOut);
    assert_eq!(
        sim.answers,
        vec![(
            t,
            Answer::Register(Err("cluster unreachable: server 2 timed out".into()))
        )]
    );
    // The next ask starts one further along.
    sim.tick();
    let (id, s, _) = sim.take(|r| matches!(r, ClientRequest::Status)).unwrap();
    assert_eq!(s, 1);
    // An answer moves the rotation past the server that gave it.
    sim.reply(id, status(1, None, &[]));
    let t = sim.user(UserRequest::Register {
        name: "alice".into(),
    });
    let (id, s, _) = sim
        .take(|r| matches!(r, ClientRequest::Register(_)))
        .unwrap();
    assert_eq!(s, 2);
    sim.reply(
        id,
        ClientResponse::Rejected(protocol::RejectReason::NameTaken),
    );
    assert_eq!(
        sim.answers.last(),
        Some(&(
            t,
            Answer::Register(Err("the name \"alice\" is taken".into()))
        ))
    );
}

#[test]
fn a_paused_server_holds_up_only_the_request_waiting_for_it() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.sync(&[register(&bob, "bob")]);
    let (status_id, _, _) = sim.take(|r| matches!(r, ClientRequest::Status)).unwrap();
    // Server 0 sits on the status request; a lookup and more ticks still go on.
    let t = sim.user(UserRequest::Lookup { name: "bob".into() });
    assert_eq!(
        sim.answers,
        vec![(
            t,
            Answer::Lookup(Ok(Some(protocol::wire::PublicKeys::from_identity(
                &bob.public()
            ))))
        )]
    );
    // Gossip is handled meanwhile too.
    let out = c.output(1, vec![1]);
    sim.vouched(&c, &out, &[0, 1]);
    assert_eq!(sim.rounds(), vec![1]);
    // No second status request piles up while the first is out.
    sim.tick();
    assert!(sim.take(|r| matches!(r, ClientRequest::Status)).is_none());
    sim.fail(status_id, Failure::TimedOut);
    let (id, s, _) = sim.take(|r| matches!(r, ClientRequest::Status)).unwrap();
    assert_eq!(s, 1, "the same status request moved on to the next server");
    sim.reply(id, status(2, Some(1), &[]));
    assert!(sim.take_submit().is_some());
}

#[test]
fn user_requests_in_progress_are_bounded() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    for _ in 0..MAX_USER_REQUESTS {
        assert!(sim.core.accepts_user_requests());
        sim.user(UserRequest::LookupFingerprint {
            fingerprint: [1; 32],
        });
    }
    assert!(!sim.core.accepts_user_requests());
    assert_eq!(sim.core.requests_in_flight(), 0, "they wait for a sync");
    sim.sync(&[]);
    assert!(sim.core.accepts_user_requests());
    assert_eq!(sim.answers.len(), MAX_USER_REQUESTS);
    assert!(matches!(
        sim.answers.last(),
        Some((_, Answer::LookupFingerprint(Ok(None))))
    ));
}

#[test]
fn answers_to_unknown_requests_are_ignored_and_names_too_long_are_refused() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.reply(999, ClientResponse::Accepted { round: 3 });
    assert!(sim.events.is_empty() && sim.answers.is_empty());
    let long = "n".repeat(protocol::limits::MAX_NAME_BYTES + 1);
    let t = sim.user(UserRequest::Lookup { name: long.clone() });
    assert!(
        matches!(sim.answers.last(), Some((x, Answer::Lookup(Err(e)))) if *x == t && e.contains("longer than 32")),
        "{:?}",
        sim.answers
    );
    let t = sim.user(UserRequest::Register { name: long });
    assert!(
        matches!(sim.answers.last(), Some((x, Answer::Register(Err(e)))) if *x == t && e.starts_with("invalid name"))
    );
    // Names outside the safe set never reach a server either.
    let t = sim.user(UserRequest::Register {
        name: "bob\u{202e}".into(),
    });
    assert!(
        matches!(sim.answers.last(), Some((x, Answer::Register(Err(e)))) if *x == t && e.contains("not allowed"))
    );
    assert!(sim.reqs.is_empty());
}

#[test]
fn the_tick_period_is_a_quarter_round_within_bounds() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut cfg = c.config(me);
    cfg.round_ms = 1000;
    let core = ClientCore::new(cfg, MemStore::default(), StdRng::seed_from_u64(1)).unwrap();
    assert_eq!(core.tick_period_ms(), 250);
    for (round_ms, period) in [(40, 25), (10_000, 500)] {
        let me = c.identity();
        let mut cfg = c.config(me);
        cfg.round_ms = round_ms;
        let core = ClientCore::new(cfg, MemStore::default(), StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(core.tick_period_ms(), period);
    }
}

#[test]
fn an_anonymous_message_uses_a_one_time_key_that_can_open_replies() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let t = sim.user(UserRequest::Send {
        to: format!("key:{}", hex::encode(bob.public().dh)),
        text: "guess who".into(),
        anonymous: true,
    });
    assert!(matches!(sim.answers.last(), Some((x, Answer::Send(Ok(_)))) if *x == t));
    let mut rounds = Rounds::default();
    rounds.play(&c, &mut sim, 1);
    let (_, out) = rounds.play(&c, &mut sim, 2);
    let slot = crate::core::inbox::open_slots(&out, std::iter::once(bob.x25519_secret()))
        .pop()
        .expect("bob opens it");
    let Sender::ReplyKey(one_time) = slot.sender else {
        panic!("sent from the identity key")
    };
    // Bob replies to the one-time key: the core opens it with that key.
    let reply = SlotMessage {
        sender: Sender::Identity(bob.public().dh),
        conversation: [2; 16],
        seq: 1,
        timestamp_ms: T0,
        fragment_index: 0,
        fragment_count: 1,
        body: b"you again".to_vec(),
    };
    let bytes = seal_slot(
        &reply,
        bob.x25519_secret(),
        &x25519_dalek::PublicKey::from(one_time),
        SLOT_BYTES,
        &mut c.rng,
    )
    .unwrap();
    sim.vouched(&c, &c.output_with(4, &[(3, bytes)]), &[0, 2]);
    // Bob's name comes from the local directory at its next sync, asked of nobody.
    assert!(sim.unscheduled_requests().is_empty());
    sim.sync(&[register(&bob, "bob")]);
    assert_eq!(
        sim.messages(),
        vec![("bob".to_string(), "you again".to_string())]
    );
}

#[test]
fn each_server_gets_only_its_share_and_a_busy_one_is_asked_again() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.status(status(3, None, &[]));
    let shares: Vec<(RequestId, u16, ClientRequest)> =
        std::iter::from_fn(|| sim.take(|r| matches!(r, ClientRequest::Share(_)))).collect();
    // One request per server, each carrying that server's share and no other.
    let mut servers: Vec<u16> = shares.iter().map(|(_, s, _)| *s).collect();
    servers.sort_unstable();
    assert_eq!(servers, vec![0, 1, 2]);
    for (_, s, r) in &shares {
        let ClientRequest::Share(up) = r else {
            unreachable!()
        };
        assert_eq!((up.server, up.round), (*s, 3));
    }
    let busy = ClientResponse::Unavailable(Bytes::new(b"server busy".to_vec()).unwrap());
    let (id0, _, first) = shares[0].clone();
    sim.reply(id0, busy.clone());
    // Asked again, the same share to the same server.
    let (id0, s, again) = sim
        .take(|r| matches!(r, ClientRequest::Share(_)))
        .expect("sent again");
    assert_eq!((s, &again), (shares[0].1, &first));
    sim.reply(id0, ClientResponse::Accepted { round: 3 });
    for (id, _, _) in &shares[1..] {
        sim.reply(*id, ClientResponse::Accepted { round: 3 });
    }
    assert!(sim.take(|r| matches!(r, ClientRequest::Share(_))).is_none());
    // A share refused for a reason other than load is not sent again: the answer is
    // the server's own, and the others may hold the submission.
    sim.status(status(4, None, &[]));
    let (id, refused_by, _) = sim
        .take(|r| matches!(r, ClientRequest::Share(u) if u.round == 4))
        .unwrap();
    sim.reply(
        id,
        ClientResponse::Rejected(protocol::RejectReason::ShareDoesNotOpen),
    );
    assert!(sim
        .take(|r| matches!(r, ClientRequest::Share(u) if u.round == 4 && u.server == refused_by))
        .is_none());
    while let Some((id, _, _)) = sim.take(|r| matches!(r, ClientRequest::Share(u) if u.round == 4))
    {
        sim.reply(id, ClientResponse::Accepted { round: 4 });
    }
    // After three busy answers a server is given up on for this round.
    sim.status(status(5, None, &[]));
    let (mut id, server, _) = sim
        .take(|r| matches!(r, ClientRequest::Share(u) if u.round == 5))
        .unwrap();
    for _ in 1..3 {
        sim.reply(id, busy.clone());
        let (next, s, _) = sim
            .take(|r| matches!(r, ClientRequest::Share(u) if u.round == 5 && u.server == server))
            .expect("asked again");
        assert_eq!(s, server);
        id = next;
    }
    sim.reply(id, busy);
    assert!(sim
        .take(|r| matches!(r, ClientRequest::Share(u) if u.round == 5 && u.server == server))
        .is_none());
}
