//! The round state machine end to end, with no network: clients build real submissions,
//! each server checks and opens only its own share, lists what it holds, and the
//! serving servers reveal sums over the included clients; the output decrypts for the
//! recipient. Reveals, liars, retention, the directory and `Init`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use std::collections::BTreeSet;

use common::{closed_round, World};
use keys::Identity;
use protocol::bounded::{Bytes, Fixed};
use protocol::slot::open_slot;
use protocol::vector::Vector;
use protocol::wire::{Register, Reveal};
use protocol::{Admission, Command, Effect, RejectReason, RoundMachine};
use rand::SeedableRng;

#[test]
fn message_reaches_only_its_recipient_through_a_full_round() {
    let mut w = World::new(5, 2, 3, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let carol = Identity::generate(&mut rng);
    let mut m = RoundMachine::new(w.params.clone());
    let r = w.warm(&mut m);

    let va = w.vector(&alice, &bob, 3, b"hello bob");
    let cover = Vector::zero(&w.params);
    for (who, v) in [(&alice, &va), (&bob, &cover), (&carol, &cover)] {
        w.submit(r, who, v);
    }
    // Nothing of a submission is in the log; sums before a decision are refused.
    let applied_before = m.state().applied;
    let early = w.reveals(&m, r);
    assert_eq!(
        m.apply(&early[0]),
        Effect::Rejected(RejectReason::NotAwaitingReveal { round: r })
    );
    assert_eq!(
        m.apply(&w.haves(r)[0]),
        Effect::Rejected(RejectReason::NotAwaitingHaves { round: r })
    );
    assert_eq!(m.state().applied, applied_before + 2);

    assert_eq!(
        m.apply(&Command::Close { round: r }),
        Effect::Closed { round: r }
    );
    let haves = w.haves(r);
    for have in &haves[..4] {
        assert!(matches!(
            m.apply(have),
            Effect::HaveRecorded { round, .. } if round == r
        ));
    }
    // The last list decides: every server serves, and all three clients are in.
    let Effect::Decided {
        servers, included, ..
    } = m.apply(&haves[4])
    else {
        panic!("the fifth list decides the round")
    };
    assert_eq!(servers, vec![0, 1, 2, 3, 4]);
    assert_eq!(included.len(), 3);
    let reveals = w.reveals(&m, r);
    for i in [4usize, 0, 2] {
        // t + 1 = 3 reveals reconstruct, but nothing checks them yet: wait for a fourth.
        assert!(matches!(
            m.apply(&reveals[i]),
            Effect::RevealRecorded { .. }
        ));
    }
    let Effect::Output(out) = m.apply(&reveals[1]) else {
        panic!("the fourth reveal, agreeing, must output")
    };
    assert!(m.state().dissent.is_empty());
    assert_eq!(out.participants, 3);
    // Only the used slot is non-empty, and only bob opens it.
    let slot = w.slot(&out, 3).expect("slot 3");
    assert_eq!(
        open_slot(slot, bob.x25519_secret())
            .expect("bob opens")
            .body,
        b"hello bob"
    );
    assert!(open_slot(slot, carol.x25519_secret()).is_err());
    assert!(open_slot(slot, alice.x25519_secret()).is_err());
    assert!(w.slot(&out, 0).expect("slot 0").iter().all(|b| *b == 0));
    assert_eq!(
        out.slots.len(),
        w.layout.len(),
        "only laid-out slots are kept"
    );
    // Nothing of the round is left but its output.
    assert!(m.state().awaiting.is_empty());
}

/// A fresh machine run through rounds `1..=rounds`, each with one client's cover.
fn cover_rounds(w: &mut World, rounds: u64) -> RoundMachine {
    let a = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
    let mut m = RoundMachine::new(w.params.clone());
    let v = Vector::zero(&w.params);
    for r in 1..=rounds {
        w.submit(r, &a, &v);
        w.close_and_decide(&mut m, r);
        for rev in w.reveals(&m, r).iter() {
            m.apply(rev);
        }
    }
    m
}

#[test]
fn outputs_beyond_retention_are_dropped() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let m = cover_rounds(&mut w, 10);
    let kept: Vec<u64> = m.state().outputs.keys().copied().collect();
    assert_eq!(kept, vec![7, 8, 9, 10], "retention_rounds = 4");
}

#[test]
fn memory_holds_the_newest_outputs_only_whatever_the_retention() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    w.params.retention_rounds = 10_000;
    let m = cover_rounds(&mut w, 30);
    let kept: Vec<u64> = m.state().outputs.keys().copied().collect();
    let window = protocol::round::RECENT_OUTPUTS;
    assert_eq!(kept, ((31 - window)..=30).collect::<Vec<_>>());
}

#[test]
fn directory_names_are_unique_and_signed() {
    let w = World::new(3, 1, 1, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let (a, b) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let mut m = RoundMachine::new(w.params.clone());
    let reg = Register::new("alice", &a).expect("name");
    assert!(matches!(
        m.apply(&Command::Register(reg.clone())),
        Effect::Registered { .. }
    ));
    assert!(
        matches!(m.apply(&Command::Register(reg)), Effect::Registered { .. }),
        "idempotent"
    );
    let taken = Register::new("alice", &b).expect("name");
    assert_eq!(
        m.apply(&Command::Register(taken)),
        Effect::Rejected(RejectReason::NameTaken)
    );
    let second = Register::new("alice2", &a).expect("name");
    assert_eq!(
        m.apply(&Command::Register(second)),
        Effect::Rejected(RejectReason::KeysTaken)
    );
    let mut forged = Register::new("mallory", &b).expect("name");
    forged.keys = protocol::wire::PublicKeys::from_identity(&a.public());
    assert_eq!(
        m.apply(&Command::Register(forged)),
        Effect::Rejected(RejectReason::BadSignature)
    );
    // Mallory's own signature, but Alice's x25519 key: she cannot prove possession.
    let mut stolen = protocol::wire::PublicKeys::from_identity(&b.public());
    stolen.dh = Fixed(a.public().dh);
    let signed = Register::signed_bytes(b"mallory", &stolen);
    let theft = Register {
        name: Bytes::new(b"mallory".to_vec()).expect("name"),
        keys: stolen,
        signature: Fixed(b.sign(&signed)),
        dh_proof: Fixed(b.sign_with_dh(&signed)),
    };
    assert_eq!(
        m.apply(&Command::Register(theft)),
        Effect::Rejected(RejectReason::BadKeyProof)
    );
    for bad in [" spaced", "Alice", "\u{430}lice", "al\u{202e}ice"] {
        let reg = Register::new(bad, &b).expect("name");
        assert!(
            matches!(
                m.apply(&Command::Register(reg)),
                Effect::Rejected(RejectReason::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        m.lookup_name(b"alice").map(|k| k.sign.0),
        Some(a.public().sign)
    );
    let dh = Fixed(a.public().dh);
    assert_eq!(
        m.lookup_dh(&dh).map(|(n, _)| n.into_vec()),
        Some(b"alice".to_vec())
    );
}

#[test]
fn under_the_listed_policy_only_listed_keys_register() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let (listed, stranger) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let allowed: BTreeSet<_> = [Fixed(listed.public().sign)].into_iter().collect();
    let w = World::new(3, 1, 1, Admission::Listed(allowed));
    let mut m = RoundMachine::new(w.params.clone());
    let theirs = Register::new("stranger", &stranger).expect("name");
    // Refused by the pre-log check servers run, and again at apply.
    assert_eq!(
        protocol::round::check_register(&w.params, &theirs),
        Err(RejectReason::UnknownClient)
    );
    assert_eq!(
        m.apply(&Command::Register(theirs)),
        Effect::Rejected(RejectReason::UnknownClient)
    );
    assert!(m.lookup_name(b"stranger").is_none());
    let ours = Register::new("listed", &listed).expect("name");
    assert_eq!(protocol::round::check_register(&w.params, &ours), Ok(()));
    assert!(matches!(
        m.apply(&Command::Register(ours)),
        Effect::Registered { .. }
    ));
}

fn lie(cmd: &Command, signer: &Identity) -> Command {
    let Command::Reveal(r) = cmd else {
        unreachable!()
    };
    let mut sum = r.sum.as_slice().to_vec();
    sum[1] ^= 0x5a;
    Command::Reveal(Reveal::new(
        r.round,
        r.server,
        Bytes::new(sum).expect("fits"),
        signer,
    ))
}

#[test]
fn a_lying_server_is_outvoted_and_named_on_every_replica() {
    let mut w = World::new(5, 2, 1, Admission::Open);
    let (mut m, r, reveals) = closed_round(&mut w);
    let honest = {
        let mut h = m.clone();
        for c in &reveals {
            h.apply(c);
        }
        h.state().outputs.get(&r).cloned().expect("honest output")
    };
    // Server 1 lies about its sum, signing its lie: its reveal arrives among the first.
    let bad = lie(&reveals[1], &w.servers[1]);
    for (i, cmd) in reveals.iter().enumerate().take(4) {
        let cmd = if i == 1 { &bad } else { cmd };
        let effect = m.apply(cmd);
        // 4 reveals, one a lie: detected, not yet correctable (needs t + 1 + 2 = 5).
        assert!(
            matches!(effect, Effect::RevealRecorded { .. }),
            "{i}: {effect:?}"
        );
    }
    let Effect::Output(out) = m.apply(&reveals[4]) else {
        panic!("five reveals correct one liar")
    };
    assert_eq!(out, honest, "the output is the honest one");
    let bob = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(78));
    let opened = open_slot(w.slot(&out, 1).expect("slot"), bob.x25519_secret()).expect("bob opens");
    assert_eq!(opened.body, b"for bob");
    let named: Vec<u16> = m.state().dissent.keys().copied().collect();
    assert_eq!(named, vec![1]);
}

#[test]
fn a_reveal_is_bound_to_its_server() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let (mut m, r, reveals) = closed_round(&mut w);
    // Server 0 signs a reveal under server 2's index.
    let Command::Reveal(rev) = &reveals[2] else {
        unreachable!()
    };
    let forged = Command::Reveal(Reveal::new(r, 2, rev.sum.clone(), &w.servers[0]));
    assert_eq!(
        m.apply(&forged),
        Effect::Rejected(RejectReason::BadSignature)
    );
    assert!(matches!(
        m.apply(&reveals[2]),
        Effect::RevealRecorded { .. }
    ));
}

#[test]
fn finalize_decides_with_what_is_in() {
    // t + 1 reveals (a server down): unchecked output, counted.
    let mut w = World::new(3, 1, 1, Admission::Open);
    let (mut m, r, reveals) = closed_round(&mut w);
    assert_eq!(
        m.apply(&Command::Finalize { round: r }),
        Effect::Rejected(RejectReason::TooFewReveals {
            round: r,
            got: 0,
            needed: 2
        })
    );
    m.apply(&reveals[0]);
    m.apply(&reveals[2]);
    assert!(matches!(
        m.apply(&Command::Finalize { round: r }),
        Effect::Output(_)
    ));
    assert_eq!(m.state().unchecked_outputs, 1);

    // n = 5, one down, one lying: four reveals disagree and cannot be corrected, so
    // the round is void (its senders retry) rather than wrong.
    let mut w = World::new(5, 2, 1, Admission::Open);
    let (mut m, r, reveals) = closed_round(&mut w);
    let bad = lie(&reveals[3], &w.servers[3]);
    for cmd in [&reveals[0], &reveals[1], &reveals[2], &bad] {
        assert!(matches!(m.apply(cmd), Effect::RevealRecorded { .. }));
    }
    assert!(matches!(
        m.apply(&Command::Finalize { round: r }),
        Effect::Void { round, .. } if round == r
    ));
    assert_eq!(m.state().inconsistent_rounds, 1);
    assert!(m.state().outputs[&r].void, "nothing of it is revealed");
}

#[test]
fn open_registrations_are_capped_per_round_and_in_total() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    w.params.registrations_per_round = 2;
    w.params.max_names = 3;
    let mut m = RoundMachine::new(w.params.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let mut reg = |name: &str| {
        let id = Identity::generate(&mut rng);
        Command::Register(Register::new(name, &id).expect("name"))
    };
    assert!(matches!(m.apply(&reg("u1")), Effect::Registered { .. }));
    assert!(matches!(m.apply(&reg("u2")), Effect::Registered { .. }));
    assert_eq!(
        m.apply(&reg("u3")),
        Effect::Rejected(RejectReason::RegistrationsBusy { round: 1, cap: 2 })
    );
    m.apply(&Command::Close { round: 1 });
    assert!(matches!(m.apply(&reg("u3")), Effect::Registered { .. }));
    assert_eq!(
        m.apply(&reg("u4")),
        Effect::Rejected(RejectReason::DirectoryFull { cap: 3 })
    );
}

#[test]
fn init_fixes_the_parameters_and_a_differing_node_learns_which_field() {
    let w = World::new(3, 1, 1, Admission::Open);
    let mut m = RoundMachine::new(w.params.clone());
    assert_eq!(
        m.apply(&Command::Init(Box::new(w.params.clone()))),
        Effect::Initialised
    );
    assert_eq!(
        m.apply(&Command::Init(Box::new(w.params.clone()))),
        Effect::Initialised
    );
    let mut other = w.params.clone();
    other.slots = 16;
    assert!(matches!(
        m.apply(&Command::Init(Box::new(other.clone()))),
        Effect::Rejected(RejectReason::ConfigMismatch(_))
    ));
    // A node configured with 16 slots applying the cluster's Init.
    let mut differing = RoundMachine::new(other);
    let Effect::ConfigMismatch(field) = differing.apply(&Command::Init(Box::new(w.params.clone())))
    else {
        panic!("must mismatch")
    };
    assert!(field.starts_with("round.slots is 16 here but 8"), "{field}");
    assert_eq!(differing.config_mismatch(), Some(field));
}

#[test]
fn a_round_that_closes_before_the_output_that_would_lay_it_out_has_no_slots() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let a = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(31));
    let mut m = RoundMachine::new(w.params.clone());
    // Round 1 carries a reservation; it is decided but not yet revealed when round 2
    // closes (a client that did not wait for the output got a share in early).
    let mut v = Vector::zero(&w.params);
    assert!(v.reserve(0, w.layout[0].footprint));
    w.submit(1, &a, &v);
    assert!(matches!(
        w.close_and_decide(&mut m, 1),
        Effect::Decided { .. }
    ));
    let reveals = w.reveals(&m, 1);
    assert!(m.state().open_layout.is_empty(), "round 1 is not out yet");
    // A client that did not wait for round 1's output knows no layout: it reserves again
    // and writes no message (a message written for a layout the round does not get would
    // fail its proof).
    let mut early = Vector::zero(&w.params);
    assert!(early.reserve(1, w.layout[1].footprint));
    w.submit(2, &a, &early);
    // A proof that does not hold in such a round is left out but is no strike: the
    // round's layout (none) may not be the one an honest sender proved for.
    let b = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(32));
    let bad = w.build_bad(
        2,
        &b,
        &w.laid_out_vector(),
        protocol::submission::BadProof::Random,
    );
    for i in 0..3 {
        w.deliver(&bad, i);
    }
    assert_eq!(
        m.apply(&Command::Close { round: 2 }),
        Effect::Closed { round: 2 }
    );
    let mut out = None;
    for rev in &reveals {
        if let Effect::Output(o) = m.apply(rev) {
            out = Some(o);
        }
    }
    assert_eq!(
        out.expect("round 1 outputs").reservations.as_slice(),
        &[w.layout[0].footprint]
    );
    assert!(
        m.state().open_layout.is_empty(),
        "round 3 is not laid out from round 1"
    );
    // Round 2 stays unlaid-out: its output has no slot for the footprint.
    for have in w.haves(2) {
        m.apply(&have);
    }
    let mut out2 = None;
    for rev in w.reveals(&m, 2) {
        if let Effect::Output(o) = m.apply(&rev) {
            out2 = Some(o);
        }
    }
    assert!(out2.expect("round 2 outputs").slots.is_empty());
    assert_eq!(m.state().conduct.excluded.bad_proof, 1);
    assert!(m.state().conduct.strikes.is_empty(), "no strike");
}
