//! The round state machine end to end, with no network: clients build real submissions,
//! servers open their shares and reveal sums, and the output decrypts for the recipient.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use std::collections::BTreeSet;

use keys::Identity;
use protocol::bounded::{Bytes, Fixed};
use protocol::seal::open_share;
use protocol::shamir::add_into;
use protocol::slot::{open_slot, seal_slot, Sender, SlotMessage};
use protocol::submission::build_submission;
use protocol::submission::share_from_opened;
use protocol::wire::{Register, Reveal};
use protocol::{Admission, Command, Effect, Params, RejectReason, RoundMachine};
use rand::SeedableRng;
use x25519_dalek::PublicKey;

struct World {
    params: Params,
    servers: Vec<Identity>,
    server_keys: Vec<PublicKey>,
    rng: rand::rngs::StdRng,
}

impl World {
    fn new(n: usize, t: usize, k: usize, admission: Admission) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let servers: Vec<Identity> = (0..n).map(|_| Identity::generate(&mut rng)).collect();
        let server_keys = servers.iter().map(|s| s.public().x25519()).collect();
        let params = Params::new(n, t, 8, 256, k, 4, admission)
            .and_then(|p| {
                p.with_server_keys(servers.iter().map(|s| Fixed(s.public().sign)).collect())
            })
            .expect("params");
        Self {
            params,
            servers,
            server_keys,
            rng,
        }
    }

    fn vector(&mut self, from: &Identity, to: &Identity, slot: usize, text: &[u8]) -> Vec<u8> {
        let msg = SlotMessage {
            sender: Sender::Identity(from.public().dh),
            conversation: [1; 16],
            seq: 1,
            timestamp_ms: 0,
            fragment_index: 0,
            fragment_count: 1,
            body: text.to_vec(),
        };
        let sealed = seal_slot(
            &msg,
            from.x25519_secret(),
            &to.public().x25519(),
            256,
            &mut self.rng,
        )
        .expect("seal slot");
        let mut v = vec![0u8; self.params.vector_bytes()];
        v[slot * 256..(slot + 1) * 256].copy_from_slice(&sealed);
        v
    }

    fn submit(&mut self, round: u64, who: &Identity, vector: &[u8]) -> Command {
        let keys = self.server_keys.clone();
        let params = self.params.clone();
        Command::Submit(
            build_submission(&params, round, vector, who, &keys, &mut self.rng).expect("build"),
        )
    }

    /// Each server's share-keeper: open its share of every included submission, add.
    fn reveals(&self, machine: &RoundMachine, round: u64) -> Vec<Command> {
        (0..self.servers.len())
            .map(|i| {
                let mut sum = vec![0u8; self.params.share_bytes()];
                for sub in machine.pending_submissions(round) {
                    let share = open_share(
                        &sub.shares.as_slice()[i],
                        round,
                        &sub.client,
                        i as u16,
                        self.servers[i].x25519_secret(),
                    )
                    .expect("open own share");
                    let share = share_from_opened(&self.params, round, &sub.client, i, &share)
                        .expect("a well-formed share");
                    add_into(&mut sum, &share).expect("add");
                }
                Command::Reveal(Reveal::new(
                    round,
                    i as u16,
                    Bytes::new(sum).expect("fits"),
                    &self.servers[i],
                ))
            })
            .collect()
    }
}

#[test]
fn message_reaches_only_its_recipient_through_a_full_round() {
    let mut w = World::new(5, 2, 3, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let carol = Identity::generate(&mut rng);
    let mut m = RoundMachine::new(w.params.clone());

    let va = w.vector(&alice, &bob, 3, b"hello bob");
    let cover = vec![0u8; w.params.vector_bytes()];
    for (who, v) in [(&alice, &va), (&bob, &cover), (&carol, &cover)] {
        let cmd = w.submit(1, who, v);
        assert!(matches!(m.apply(&cmd), Effect::Accepted { round: 1, .. }));
    }
    // Reveal before close is impossible: the round is not awaiting reveals.
    let early = w.reveals(&m, 1);
    assert_eq!(
        m.apply(&early[0]),
        Effect::Rejected(RejectReason::NotAwaitingReveal { round: 1 })
    );

    assert_eq!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Closed {
            round: 1,
            participants: 3
        }
    );
    let reveals = w.reveals(&m, 1);
    assert!(matches!(
        m.apply(&reveals[4]),
        Effect::RevealRecorded { .. }
    ));
    assert!(matches!(
        m.apply(&reveals[0]),
        Effect::RevealRecorded { .. }
    ));
    // t + 1 = 3 reveals reconstruct, but nothing checks them yet: wait for a fourth.
    assert!(matches!(
        m.apply(&reveals[2]),
        Effect::RevealRecorded { .. }
    ));
    let Effect::Output(out) = m.apply(&reveals[1]) else {
        panic!("the fourth reveal, agreeing, must output")
    };
    assert!(m.state().dissent.is_empty());
    assert_eq!(out.participants, 3);
    // Only the used slot is non-empty, and only bob opens it.
    let slot = out.slot(3).expect("slot 3");
    assert_eq!(
        open_slot(slot, bob.x25519_secret())
            .expect("bob opens")
            .body,
        b"hello bob"
    );
    assert!(open_slot(slot, carol.x25519_secret()).is_err());
    assert!(open_slot(slot, alice.x25519_secret()).is_err());
    assert!(out.slot(0).expect("slot 0").iter().all(|b| *b == 0));
    // The round's submissions are forgotten once revealed.
    assert!(m.pending_submissions(1).is_empty());
    assert!(m.state().awaiting.is_empty());
}

#[test]
fn every_bad_submission_gets_its_named_reason() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let listed = Identity::generate(&mut rng);
    let stranger = Identity::generate(&mut rng);
    let allowed: BTreeSet<_> = [Fixed(listed.public().sign)].into_iter().collect();
    let mut w = World::new(3, 1, 1, Admission::Listed(allowed));
    let mut m = RoundMachine::new(w.params.clone());
    let v = vec![0u8; w.params.vector_bytes()];

    let good = w.submit(1, &listed, &v);
    assert!(matches!(m.apply(&good), Effect::Accepted { .. }));
    assert_eq!(
        m.apply(&good),
        Effect::Rejected(RejectReason::DuplicateSubmission { round: 1 })
    );
    let unknown = w.submit(1, &stranger, &v);
    assert_eq!(
        m.apply(&unknown),
        Effect::Rejected(RejectReason::UnknownClient)
    );
    let future = w.submit(2, &listed, &v);
    assert_eq!(
        m.apply(&future),
        Effect::Rejected(RejectReason::FutureRound { got: 2, open: 1 })
    );

    let Command::Submit(mut forged) = w.submit(1, &listed, &v) else {
        unreachable!()
    };
    forged.signature.0[0] ^= 1;
    assert_eq!(
        m.apply(&Command::Submit(forged.clone())),
        Effect::Rejected(RejectReason::BadSignature)
    );
    let mut short = forged.clone();
    short.shares =
        protocol::bounded::BoundedVec::new(forged.shares.as_slice()[..2].to_vec()).expect("2");
    assert_eq!(
        m.apply(&Command::Submit(short)),
        Effect::Rejected(RejectReason::WrongShareCount {
            expected: 3,
            got: 2
        })
    );
    let mut sized = forged.clone();
    let mut shares = forged.shares.as_slice().to_vec();
    shares[1].ciphertext = Bytes::new(vec![0u8; 10]).expect("small");
    sized.shares = protocol::bounded::BoundedVec::new(shares).expect("3");
    assert!(matches!(
        m.apply(&Command::Submit(sized)),
        Effect::Rejected(RejectReason::WrongShareSize { got: 10, .. })
    ));

    assert!(matches!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Closed { .. }
    ));
    // Replaying round 1's good submission in round 2 is stale.
    assert_eq!(
        m.apply(&good),
        Effect::Rejected(RejectReason::StaleRound { got: 1, open: 2 })
    );
    assert_eq!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Rejected(RejectReason::WrongClose { got: 1, open: 2 })
    );
}

#[test]
fn prechecks_refuse_only_what_the_log_would_refuse_too() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let mut w = World::new(3, 1, 1, Admission::Open);
    let mut m = RoundMachine::new(w.params.clone());
    let v = vec![0u8; w.params.vector_bytes()];
    let sub = |w: &mut World, round: u64, who: &Identity| match w.submit(round, who, &v) {
        Command::Submit(s) => s,
        _ => unreachable!(),
    };
    let first = sub(&mut w, 1, &a);
    assert_eq!(m.precheck_submission(&first), Ok(()));
    assert!(matches!(
        m.apply(&Command::Submit(first.clone())),
        Effect::Accepted { .. }
    ));
    // Collected already: a duplicate, as the log would say.
    assert_eq!(
        m.precheck_submission(&first),
        Err(RejectReason::DuplicateSubmission { round: 1 })
    );
    // Another client, same round: fine. A round within the window ahead: left to the log.
    assert_eq!(m.precheck_submission(&sub(&mut w, 1, &b)), Ok(()));
    let near = sub(&mut w, 1 + protocol::round::FUTURE_WINDOW, &b);
    assert_eq!(m.precheck_submission(&near), Ok(()));
    let far = sub(&mut w, 2 + protocol::round::FUTURE_WINDOW, &b);
    assert_eq!(
        m.precheck_submission(&far),
        Err(RejectReason::FutureRound {
            got: 2 + protocol::round::FUTURE_WINDOW,
            open: 1
        })
    );
    assert!(matches!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Closed { .. }
    ));
    assert_eq!(
        m.precheck_submission(&first),
        Err(RejectReason::StaleRound { got: 1, open: 2 })
    );
    // The log agrees with every refusal above.
    assert_eq!(
        m.apply(&Command::Submit(first)),
        Effect::Rejected(RejectReason::StaleRound { got: 1, open: 2 })
    );
}

#[test]
fn round_below_min_anonymity_set_is_void_and_reveals_nothing() {
    let mut w = World::new(3, 1, 3, Admission::Open);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let a = Identity::generate(&mut rng);
    let mut m = RoundMachine::new(w.params.clone());
    let v = vec![0u8; w.params.vector_bytes()];
    let cmd = w.submit(1, &a, &v);
    m.apply(&cmd);
    let reveals = w.reveals(&m, 1);
    assert_eq!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Void {
            round: 1,
            participants: 1
        }
    );
    assert!(
        m.pending_submissions(1).is_empty(),
        "void round forgets its submissions"
    );
    assert_eq!(
        m.apply(&reveals[0]),
        Effect::Rejected(RejectReason::NotAwaitingReveal { round: 1 })
    );
    assert!(m.state().outputs.is_empty());
    assert_eq!(
        m.state().recent_void.iter().copied().collect::<Vec<_>>(),
        vec![1],
        "senders learn the round was void"
    );
}

#[test]
fn outputs_beyond_retention_are_dropped() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let a = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
    let mut m = RoundMachine::new(w.params.clone());
    let v = vec![0u8; w.params.vector_bytes()];
    for r in 1..=10u64 {
        let cmd = w.submit(r, &a, &v);
        m.apply(&cmd);
        m.apply(&Command::Close { round: r });
        for rev in w.reveals(&m, r).iter() {
            m.apply(rev);
        }
    }
    let kept: Vec<u64> = m.state().outputs.keys().copied().collect();
    assert_eq!(kept, vec![7, 8, 9, 10], "retention_rounds = 4");
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

/// Reveals for round 1 of a fresh machine with one submission from a fresh client.
fn closed_round(w: &mut World) -> (RoundMachine, Vec<Command>) {
    let a = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(77));
    let mut m = RoundMachine::new(w.params.clone());
    let bob = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(78));
    let v = w.vector(&a, &bob, 1, b"for bob");
    let cmd = w.submit(1, &a, &v);
    assert!(matches!(m.apply(&cmd), Effect::Accepted { .. }));
    assert!(matches!(
        m.apply(&Command::Close { round: 1 }),
        Effect::Closed { .. }
    ));
    let reveals = w.reveals(&m, 1);
    (m, reveals)
}

fn lie(cmd: &Command, signer: &Identity) -> Command {
    let Command::Reveal(r) = cmd else {
        unreachable!()
    };
    let mut sum = r.sum.as_slice().to_vec();
    sum[7] ^= 0x5a;
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
    let (mut m, reveals) = closed_round(&mut w);
    let honest = {
        let mut h = m.clone();
        for c in &reveals {
            h.apply(c);
        }
        h.state().outputs.get(&1).cloned().expect("honest output")
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
    let opened = open_slot(out.slot(1).expect("slot"), bob.x25519_secret()).expect("bob opens");
    assert_eq!(opened.body, b"for bob");
    let named: Vec<u16> = m.state().dissent.keys().copied().collect();
    assert_eq!(named, vec![1]);
}

#[test]
fn a_reveal_is_bound_to_its_server() {
    let mut w = World::new(3, 1, 1, Admission::Open);
    let (mut m, reveals) = closed_round(&mut w);
    // Server 0 signs a reveal under server 2's index.
    let Command::Reveal(r) = &reveals[2] else {
        unreachable!()
    };
    let forged = Command::Reveal(Reveal::new(1, 2, r.sum.clone(), &w.servers[0]));
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
    let (mut m, reveals) = closed_round(&mut w);
    assert_eq!(
        m.apply(&Command::Finalize { round: 1 }),
        Effect::Rejected(RejectReason::TooFewReveals {
            round: 1,
            got: 0,
            needed: 2
        })
    );
    m.apply(&reveals[0]);
    m.apply(&reveals[2]);
    assert!(matches!(
        m.apply(&Command::Finalize { round: 1 }),
        Effect::Output(_)
    ));
    assert_eq!(m.state().unchecked_outputs, 1);

    // n = 5, one down, one lying: four reveals disagree and cannot be corrected, so
    // the round is void (its senders retry) rather than wrong.
    let mut w = World::new(5, 2, 1, Admission::Open);
    let (mut m, reveals) = closed_round(&mut w);
    let bad = lie(&reveals[3], &w.servers[3]);
    for cmd in [&reveals[0], &reveals[1], &reveals[2], &bad] {
        assert!(matches!(m.apply(cmd), Effect::RevealRecorded { .. }));
    }
    assert!(matches!(
        m.apply(&Command::Finalize { round: 1 }),
        Effect::Void { round: 1, .. }
    ));
    assert_eq!(m.state().inconsistent_rounds, 1);
    assert!(m.state().outputs.is_empty());
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
