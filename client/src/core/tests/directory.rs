//! The local directory: f+1 agreement, self-signed entries, paging, persistence, and
//! that nothing the user does causes a request.

use super::*;
use crate::core::directory::SYNC_PERIOD_MS;

fn mine(me: &Identity) -> Identity {
    Identity::from_secret_bytes(&me.ed25519_seed(), &me.x25519_secret().to_bytes())
}

#[test]
fn sends_lookups_and_receipts_resolve_locally_and_cause_no_request() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let carol = c.identity();
    let mut sim = c.sim(mine(&me), MemStore::default(), 1);
    sim.sync(&[register(&bob, "bob"), register(&carol, "carol")]);
    sim.reqs.clear();
    // Ten sends, ten lookups by name and fingerprint, ten received messages.
    for i in 0..10u32 {
        sim.user(UserRequest::Send {
            to: "bob".into(),
            text: format!("m{i}"),
            anonymous: false,
        });
        sim.user(UserRequest::Lookup {
            name: "carol".into(),
        });
        sim.user(UserRequest::LookupFingerprint {
            fingerprint: carol.public().fingerprint().0,
        });
        let slot = c.slot(&carol, &me, i, 0, 1, b"hello", T0);
        sim.vouched(&c, &c.output_with(u64::from(i) + 1, &[(1, slot)]), &[0, 1]);
    }
    assert!(sim.reqs.is_empty(), "requests: {:?}", sim.reqs);
    assert_eq!(sim.answers.len(), 30);
    assert!(sim.answers.iter().all(|(_, a)| match a {
        Answer::Send(r) => r.is_ok(),
        Answer::Lookup(r) => matches!(r, Ok(Some(_))),
        Answer::LookupFingerprint(r) => matches!(r, Ok(Some((n, _))) if n == "carol"),
        Answer::Register(_) | Answer::Room(_) | Answer::Files(_) => false,
    }));
    assert_eq!(sim.messages().len(), 10);
    assert!(sim.messages().iter().all(|(from, _)| from == "carol"));
}

#[test]
fn an_entry_is_taken_only_where_f_plus_1_servers_agree() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let carol = c.identity();
    let mallory = c.identity();
    let mut sim = c.sim(mine(&me), MemStore::default(), 1);
    // Servers hold the committed bytes (XEdDSA proofs are randomised: build each once).
    let honest = vec![register(&bob, "bob"), register(&carol, "carol")];
    // Server 0 substitutes mallory's (validly self-signed) claim on "bob"; server 2
    // lags one registration behind.
    let lying = vec![register(&mallory, "bob"), honest[1].clone()];
    let lagging = vec![honest[0].clone()];
    for i in 0..3 {
        sim.core.handle_server_up(i);
    }
    sim.now += SYNC_PERIOD_MS;
    sim.tick();
    sim.answer_directory(|s| match s {
        0 => Some(lying.as_slice()),
        1 => Some(honest.as_slice()),
        _ => Some(lagging.as_slice()),
    });
    let dir = sim.core.directory();
    assert_eq!(dir.len(), 2);
    assert_eq!(
        dir.keys_of("bob"),
        Some(protocol::wire::PublicKeys::from_identity(&bob.public()))
    );
    assert_eq!(dir.name_of(&mallory.public().dh), None);
    assert_eq!(dir.name_of(&carol.public().dh), Some(&"carol".to_string()));
    assert_eq!(
        sim.core.store().directory,
        honest,
        "what was taken is stored"
    );
}

#[test]
fn one_server_alone_moves_nothing_and_a_forged_entry_is_refused() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let bob = c.identity();
    let mut sim = c.sim(mine(&me), MemStore::default(), 1);
    let only = vec![register(&bob, "bob")];
    for i in 0..3 {
        sim.core.handle_server_up(i);
    }
    sim.now += SYNC_PERIOD_MS;
    sim.tick();
    sim.answer_directory(|s| (s == 0).then_some(only.as_slice()));
    assert_eq!(
        sim.core.directory().len(),
        0,
        "one server's word is not enough"
    );
    // Two servers agree on an entry whose name was changed after signing.
    let mut forged = register(&bob, "bob");
    forged.name = protocol::bounded::Bytes::new(b"alice".to_vec()).unwrap();
    let bad = vec![forged];
    sim.now += SYNC_PERIOD_MS;
    sim.tick();
    sim.answer_directory(|_| Some(bad.as_slice()));
    assert_eq!(sim.core.directory().len(), 0);
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, Event::Error { message } if message.contains("bad signature"))));
    assert!(sim.core.store().directory.is_empty());
}

#[test]
fn a_large_directory_arrives_page_by_page_and_survives_a_restart() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let n = protocol::limits::MAX_DIRECTORY_PAGE * 2 + 100;
    let dir: Vec<_> = (0..n)
        .map(|i| register(&c.identity(), &format!("user-{i}")))
        .collect();
    let mut sim = c.sim(mine(&me), MemStore::default(), 1);
    sim.sync(&dir);
    assert_eq!(sim.core.directory().len(), n as u64);
    assert_eq!(sim.core.store().directory.len(), n);
    // A restarted client reads its copy back and asks only for what is new.
    let store = sim.core.store().clone();
    let mut again = c.sim(mine(&me), store, 2);
    assert_eq!(again.core.directory().len(), n as u64);
    assert!(again.core.directory().keys_of("user-7").is_some());
    for i in 0..3 {
        again.core.handle_server_up(i);
    }
    again.tick();
    let froms: Vec<_> = again
        .reqs
        .iter()
        .filter_map(|(_, _, r)| match r {
            ClientRequest::Directory { from } => Some(*from),
            _ => None,
        })
        .collect();
    assert_eq!(froms, vec![n as u64; 3]);
}

#[test]
fn the_sync_schedule_does_not_depend_on_what_the_user_does() {
    // Two clients, one busy and one idle, over the same minute: the same directory
    // requests at the same times.
    let mut c = Cluster::new(4);
    let bob = c.identity();
    let dir = vec![register(&bob, "bob")];
    let mut runs = Vec::new();
    for busy in [false, true] {
        let me = c.identity();
        let mut sim = c.sim(mine(&me), MemStore::default(), 1);
        for i in 0..3 {
            sim.core.handle_server_up(i);
        }
        let mut asked = Vec::new();
        for step in 0..240u64 {
            sim.now = T0 + step * 250;
            if busy && step % 10 == 0 {
                sim.user(UserRequest::Send {
                    to: if step % 20 == 0 { "bob" } else { "nobody" }.into(),
                    text: "hi".into(),
                    anonymous: false,
                });
                let slot = c.slot(&bob, &me, step as u32, 0, 1, b"yo", T0);
                sim.vouched(&c, &c.output_with(step + 1, &[(0, slot)]), &[0, 1]);
            }
            sim.tick();
            for (_, s, r) in &sim.reqs {
                if let ClientRequest::Directory { from } = r {
                    asked.push((sim.now, *s, *from));
                }
            }
            sim.answer_directory(|_| Some(dir.as_slice()));
        }
        runs.push(asked);
    }
    assert!(runs[0].len() >= 3 * 10, "a sync every {SYNC_PERIOD_MS} ms");
    assert_eq!(runs[0], runs[1]);
}
