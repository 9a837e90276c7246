//! From close to decision: what each server checks on an upload, the signed `Have`
//! lists, and which servers serve and which clients a round includes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use std::collections::BTreeSet;

use common::World;
use keys::Identity;
use protocol::bounded::{Bytes, Fixed};
use protocol::round::check_upload;
use protocol::slot::open_slot;
use protocol::vector::Vector;
use protocol::wire::Have;
use protocol::{Admission, Command, Effect, RejectReason, RoundMachine};
use rand::SeedableRng;

#[test]
fn every_bad_upload_gets_its_named_reason() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let listed = Identity::generate(&mut rng);
    let stranger = Identity::generate(&mut rng);
    let allowed: BTreeSet<_> = [Fixed(listed.public().sign)].into_iter().collect();
    let mut w = World::new(3, 1, 1, Admission::Listed(allowed));
    let v = Vector::zero(&w.params);
    let p = w.params.clone();

    let good = w.build(1, &listed, &v);
    let up = good.upload_for(1).expect("upload");
    assert_eq!(check_upload(&p, &up, 1), Ok(()));
    assert_eq!(check_upload(&p, &up, 2), Err(RejectReason::WrongServer(1)));
    let unknown = w.build(1, &stranger, &v).upload_for(1).expect("upload");
    assert_eq!(
        check_upload(&p, &unknown, 1),
        Err(RejectReason::UnknownClient)
    );

    let mut forged = up.clone();
    forged.signature.0[0] ^= 1;
    assert_eq!(
        check_upload(&p, &forged, 1),
        Err(RejectReason::BadSignature)
    );
    let mut short = up.clone();
    short.digests =
        protocol::bounded::BoundedVec::new(up.digests.as_slice()[..2].to_vec()).expect("2");
    assert_eq!(
        check_upload(&p, &short, 1),
        Err(RejectReason::WrongDigestCount {
            expected: 3,
            got: 2
        })
    );
    let mut sized = up.clone();
    sized.share.ciphertext = Bytes::new(vec![0u8; 10]).expect("small");
    assert!(matches!(
        check_upload(&p, &sized, 1),
        Err(RejectReason::WrongShareSize { got: 10, .. })
    ));
    // Same size, other bytes: not the share the client signed for.
    let mut swapped = up.clone();
    let mut ct = up.share.ciphertext.as_slice().to_vec();
    ct[0] ^= 1;
    swapped.share.ciphertext = Bytes::new(ct).expect("same size");
    assert_eq!(
        check_upload(&p, &swapped, 1),
        Err(RejectReason::DigestMismatch)
    );

    // Rounds: the open one and a little ahead are held; a closed one is stale.
    let mut m = RoundMachine::new(p);
    assert_eq!(m.precheck_share(1), Ok(()));
    assert_eq!(m.precheck_share(1 + protocol::round::FUTURE_WINDOW), Ok(()));
    assert_eq!(
        m.precheck_share(2 + protocol::round::FUTURE_WINDOW),
        Err(RejectReason::FutureRound {
            got: 2 + protocol::round::FUTURE_WINDOW,
            open: 1
        })
    );
    assert_eq!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Closed { round: 1 }
    );
    assert_eq!(
        m.precheck_share(1),
        Err(RejectReason::StaleRound { got: 1, open: 2 })
    );
    assert_eq!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Rejected(RejectReason::WrongClose { got: 1, open: 2 })
    );
}

#[test]
fn a_have_list_is_signed_ordered_and_once_per_server() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let (a, b) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let v = Vector::zero(&w.params);
    w.submit(1, &a, &v);
    w.submit(1, &b, &v);
    let mut m = RoundMachine::new(w.params.clone());
    m.apply(&Command::Close { round: 1 });
    let haves = w.haves(1);
    let Command::Have(h0) = &haves[0] else {
        unreachable!()
    };
    // Server 1 signs a list under server 0's index.
    let forged = Have::new(1, 0, h0.clients.as_slice().to_vec(), &w.servers[1]).expect("fits");
    assert_eq!(
        m.apply(&Command::Have(forged)),
        Effect::Rejected(RejectReason::BadSignature)
    );
    let mut unordered = h0.clone();
    let mut list = h0.clients.as_slice().to_vec();
    list.reverse();
    unordered.clients = protocol::bounded::BoundedVec::new(list).expect("2");
    assert_eq!(
        m.apply(&Command::Have(unordered)),
        Effect::Rejected(RejectReason::UnorderedHave)
    );
    let mut stranger = h0.clone();
    stranger.server = 9;
    assert_eq!(
        m.apply(&Command::Have(stranger)),
        Effect::Rejected(RejectReason::UnknownServer(9))
    );
    assert!(matches!(m.apply(&haves[0]), Effect::HaveRecorded { .. }));
    assert_eq!(
        m.apply(&haves[0]),
        Effect::Rejected(RejectReason::DuplicateHave {
            round: 1,
            server: 0
        })
    );
}

#[test]
fn a_client_missed_by_a_serving_server_or_split_between_submissions_is_left_out() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let (a, b, c) = (
        Identity::generate(&mut rng),
        Identity::generate(&mut rng),
        Identity::generate(&mut rng),
    );
    let bob = Identity::generate(&mut rng);
    let mut m = RoundMachine::new(w.params.clone());
    let r = w.warm(&mut m);
    let va = w.vector(&a, &bob, 2, b"a got through");
    let v = Vector::zero(&w.params);
    w.submit(r, &a, &va);
    // b's share never reached server 2.
    let sb = w.build(r, &b, &v);
    w.deliver(&sb, 0);
    w.deliver(&sb, 1);
    // c sent one submission to servers 0 and 1 and another to server 2.
    let c1 = w.build(r, &c, &v);
    let c2 = w.build(r, &c, &v);
    w.deliver(&c1, 0);
    w.deliver(&c1, 1);
    w.deliver(&c2, 2);
    let Effect::Decided { included, .. } = w.close_and_decide(&mut m, r) else {
        panic!("decided")
    };
    assert_eq!(included, vec![Fixed(a.public().sign)]);
    // The sums leave b and c out, so a's message is intact, not garbled.
    let reveals = w.reveals(&m, r);
    m.apply(&reveals[0]);
    m.apply(&reveals[1]);
    let Effect::Output(out) = m.apply(&reveals[2]) else {
        panic!("output")
    };
    let opened = open_slot(w.slot(&out, 2).expect("slot"), bob.x25519_secret()).expect("bob opens");
    assert_eq!(opened.body, b"a got through");
}

#[test]
fn the_leader_decides_with_the_lists_in_and_only_those_servers_serve() {
    let mut w = World::new(5, 2, 1, Admission::Open);
    let a = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(14));
    let bob = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(15));
    let mut m = RoundMachine::new(w.params.clone());
    let r = w.warm(&mut m);
    let va = w.vector(&a, &bob, 0, b"two servers down");
    w.submit(r, &a, &va);
    m.apply(&Command::Close { round: r });
    let haves = w.haves(r);
    // Servers 1 and 3 are down: three lists, then the leader stops waiting.
    for i in [0usize, 2, 4] {
        assert!(matches!(m.apply(&haves[i]), Effect::HaveRecorded { .. }));
    }
    let Effect::Decided { servers, .. } = m.apply(&Command::Decide { round: r }) else {
        panic!("decided")
    };
    assert_eq!(servers, vec![0, 2, 4]);
    // A list or a sum from outside Q comes too late.
    assert_eq!(
        m.apply(&haves[1]),
        Effect::Rejected(RejectReason::NotAwaitingHaves { round: r })
    );
    let reveals = w.reveals(&m, r);
    assert_eq!(
        m.apply(&reveals[3]),
        Effect::Rejected(RejectReason::NotServing {
            round: r,
            server: 3
        })
    );
    m.apply(&reveals[0]);
    m.apply(&reveals[2]);
    // All of Q (t + 1 = 3) revealed: the output, unchecked.
    let Effect::Output(out) = m.apply(&reveals[4]) else {
        panic!("output")
    };
    assert_eq!(m.state().unchecked_outputs, 1);
    let opened = open_slot(w.slot(&out, 0).expect("slot"), bob.x25519_secret()).expect("opens");
    assert_eq!(opened.body, b"two servers down");

    // With fewer than t + 1 lists the round is void, and its senders retry.
    w.submit(r + 1, &a, &va);
    m.apply(&Command::Close { round: r + 1 });
    m.apply(&w.haves(r + 1)[0]);
    m.apply(&w.haves(r + 1)[1]);
    assert!(matches!(
        m.apply(&Command::Decide { round: r + 1 }),
        Effect::Void { round, .. } if round == r + 1
    ));
    assert!(m.state().recent_void.contains(&(r + 1)));
}

#[test]
fn round_below_min_anonymity_set_is_void_and_reveals_nothing() {
    let mut w = World::new(3, 1, 3, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let a = Identity::generate(&mut rng);
    let mut m = RoundMachine::new(w.params.clone());
    let v = Vector::zero(&w.params);
    w.submit(1, &a, &v);
    let reveals = w.reveals(&m, 1);
    assert_eq!(
        w.close_and_decide(&mut m, 1),
        Effect::Void {
            round: 1,
            participants: 1,
            output: protocol::wire::RoundOutput::void(1, 1),
        }
    );
    assert!(m.state().awaiting.is_empty(), "a void round is forgotten");
    // What it publishes says so, and lays out nothing in the round after it.
    let out = &m.state().outputs[&1];
    assert!(out.void && out.slots.is_empty() && out.reservations.is_empty());
    assert!(m.state().open_layout.is_empty());
    assert_eq!(
        m.apply(&reveals[0]),
        Effect::Rejected(RejectReason::NotAwaitingReveal { round: 1 })
    );
    assert!(
        m.state().outputs.values().all(|o| o.void),
        "nothing of it is revealed"
    );
    assert_eq!(
        m.state().recent_void.iter().copied().collect::<Vec<_>>(),
        vec![1],
        "senders learn the round was void"
    );
}

/// Jammers in a round with honest clients: a vector with two message slots and one with
/// a malformed reservation are left out by name, the honest message comes through, and
/// a client excluded `exclusions_before_cooling` times is refused for `cooling_rounds`.
#[test]
fn jammers_are_left_out_by_name_and_cool_off_while_honest_messages_come_through() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let mut m = RoundMachine::new(w.params.clone());
    let mut r = w.warm(&mut m);
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let (alice, bob) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let jammer = Identity::generate(&mut rng);
    let strikes = w.params.exclusions_before_cooling as u64;
    for attempt in 0..strikes {
        let honest = w.vector(&alice, &bob, 2, b"through the jam");
        w.submit(r, &alice, &honest);
        // Two slots written (the test layout's 3 and 4).
        let mut two = w.vector(&jammer, &bob, 3, b"x");
        let slot = w.layout[4];
        assert!(two.write(&slot, &vec![9u8; slot.len]));
        w.submit(r, &jammer, &two);
        match w.close_and_decide(&mut m, r) {
            Effect::Decided { included, .. } => {
                assert_eq!(included, vec![Fixed(alice.public().sign)]);
            }
            other => panic!("round {r}: {other:?}"),
        }
        let mut out = None;
        for rev in w.reveals(&m, r) {
            if let Effect::Output(o) = m.apply(&rev) {
                out = Some(o);
            }
        }
        let out = out.expect("output");
        let sealed = w.slot(&out, 2).expect("slot 2");
        let opened = open_slot(sealed, bob.x25519_secret()).expect("alice's message opens");
        assert_eq!(opened.body, b"through the jam");
        assert_eq!(m.state().conduct.excluded.bad_proof, attempt + 1);
        // Keep the test layout for the next round.
        r = m.state().open_round;
        w.laid_out_rounds.push(r);
        m = RoundMachine::from_state(w.params.clone(), {
            let mut s = m.state().clone();
            s.open_layout = w.footprints.clone();
            s
        });
    }
    let open = m.state().open_round;
    let until = m
        .state()
        .conduct
        .cooling_until(&Fixed(jammer.public().sign), open)
        .expect("the jammer cools off");
    assert_eq!(until, open - 1 + 1 + w.params.cooling_rounds);
    assert!(m
        .state()
        .conduct
        .cooling_until(&Fixed(alice.public().sign), open)
        .is_none());
    // While it cools off, even a well-formed submission of its is left out.
    w.submit(r, &alice, &w.laid_out_vector());
    w.submit(r, &bob, &w.laid_out_vector());
    w.submit(r, &jammer, &w.laid_out_vector());
    match w.close_and_decide(&mut m, r) {
        Effect::Decided { included, .. } => assert_eq!(included.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.state().conduct.excluded.cooling, 1);
}

/// A proof that does not hold, shared and sealed like an honest one (random elements, or
/// one made for the previous round's challenge), is a bad proof at the decision, not
/// inconsistent shares; the honest client in the same round is included.
#[test]
fn consistently_shared_bad_proofs_are_left_out_as_bad_proofs() {
    use protocol::submission::BadProof;
    let mut w = World::new(3, 1, 1, Admission::Open);
    let mut m = RoundMachine::new(w.params.clone());
    let r = w.warm(&mut m);
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let honest = Identity::generate(&mut rng);
    w.submit(r, &honest, &w.laid_out_vector());
    for (k, bad) in [BadProof::Random, BadProof::ForRound(r - 1)]
        .into_iter()
        .enumerate()
    {
        let jammer = Identity::generate(&mut rng);
        let mut v = w.laid_out_vector();
        assert!(v.reserve(k, w.footprints[k]));
        let sub = w.build_bad(r, &jammer, &v, bad);
        for i in 0..3 {
            w.deliver(&sub, i);
        }
    }
    match w.close_and_decide(&mut m, r) {
        Effect::Decided { included, .. } => {
            assert_eq!(included, vec![Fixed(honest.public().sign)]);
        }
        other => panic!("{other:?}"),
    }
    let excluded = m.state().conduct.excluded;
    assert_eq!((excluded.bad_proof, excluded.inconsistent), (2, 0));
}
