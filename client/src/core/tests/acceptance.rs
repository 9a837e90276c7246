//! f+1 acceptance: distinct valid signatures over one hash, whatever else servers send.

use super::*;
use crate::core::vouch::{Offer, Refused, VouchBook, MAX_PENDING_ROUNDS, VOUCH_WINDOW};

fn book(c: &Cluster) -> VouchBook {
    VouchBook::new(
        c.servers.iter().map(|s| s.public().sign).collect(),
        2,
        c.params.reserve_cells,
        c.params.slot_bytes,
    )
}

#[test]
fn an_output_is_accepted_once_f_plus_one_servers_vouch() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let out = c.output(5, vec![1, 2, 3]);
    sim.vouched(&c, &out, &[0]);
    assert!(
        sim.rounds().is_empty(),
        "one vouch of three servers (f = 1) is not enough"
    );
    sim.vouched(&c, &out, &[2]);
    assert_eq!(sim.rounds(), vec![5]);
    assert_eq!(sim.core.last_processed(), Some(5));
    assert_eq!(sim.core.store().last_round, Some(5));
    // The third vouch comes late: the round is not accepted twice.
    sim.vouched(&c, &out, &[1]);
    assert_eq!(sim.rounds(), vec![5]);
}

#[test]
fn with_only_one_server_reachable_nothing_is_accepted() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    for r in 1..=10 {
        let out = c.output(r, vec![r as u8]);
        sim.vouched(&c, &out, &[1]);
    }
    assert!(sim.rounds().is_empty());
}

#[test]
fn a_duplicate_vouch_from_the_same_server_counts_once() {
    let c = Cluster::new(4);
    let mut b = book(&c);
    let out = c.output(3, vec![7]);
    assert_eq!(b.offer(c.vouch(&out, 1), None), Offer::Counted);
    assert_eq!(b.offer(c.vouch(&out, 1), None), Offer::Counted);
    assert_eq!(b.offer(c.vouch(&out, 1), None), Offer::Counted);
    assert!(!b.is_accepted(3));
    assert!(matches!(b.offer(c.vouch(&out, 0), None), Offer::Accepted(o) if o == out));
}

#[test]
fn a_bad_signature_or_a_foreign_signer_does_not_count() {
    let mut c = Cluster::new(4);
    let mut b = book(&c);
    let out = c.output(3, vec![7]);
    // Signed by someone who is not server 1, but claiming to be.
    let impostor = c.identity();
    let mut forged = c.vouch(&out, 1);
    forged.vouch.signature = Fixed(impostor.sign(&OutputVouch::signed_bytes(3, &out.hash())));
    assert_eq!(b.offer(forged, None), Offer::Refused(Refused::BadVouch));
    let mut unknown = c.vouch(&out, 0);
    unknown.vouch.server = 9;
    assert_eq!(
        b.offer(unknown, None),
        Offer::Refused(Refused::UnknownServer)
    );
    assert_eq!(b.offer(c.vouch(&out, 0), None), Offer::Counted);
    assert!(!b.is_accepted(3), "refused vouches must not make up f+1");
}

#[test]
fn a_vouch_for_another_round_or_hash_is_refused() {
    let c = Cluster::new(4);
    let mut b = book(&c);
    let out = c.output(3, vec![7]);
    // A valid signature for round 4 attached to round 3's output.
    let other = c.output(4, vec![7]);
    let mut wrong_round = c.vouch(&out, 0);
    wrong_round.vouch = c.vouch(&other, 0).vouch;
    assert_eq!(
        b.offer(wrong_round, None),
        Offer::Refused(Refused::BadVouch)
    );
    // A vouch whose hash is not the output's.
    let mut wrong_hash = c.vouch(&out, 1);
    wrong_hash.output.lost_cells += 1;
    assert_eq!(b.offer(wrong_hash, None), Offer::Refused(Refused::BadVouch));
    // An output of another shape than the cluster's: a slot longer than L, or more
    // reservations than two per cell.
    let long = c.output(3, vec![7; SLOT_BYTES + 1]);
    assert_eq!(
        b.offer(c.vouch(&long, 2), None),
        Offer::Refused(Refused::WrongShape)
    );
    let mut crowded = c.output(3, vec![7]);
    let too_many = 2 * c.params.reserve_cells as usize + 1;
    crowded.reservations = BoundedVec::new((1..=too_many as u64).collect()).unwrap();
    assert_eq!(
        b.offer(c.vouch(&crowded, 2), None),
        Offer::Refused(Refused::WrongShape)
    );
}

#[test]
fn two_hashes_from_different_servers_do_not_add_up() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    let honest = c.output(8, vec![1]);
    let forged = c.output(8, vec![2]);
    sim.vouched(&c, &honest, &[0]);
    sim.vouched(&c, &forged, &[1]);
    assert!(
        sim.rounds().is_empty(),
        "one vouch each for two hashes is no agreement"
    );
    sim.vouched(&c, &honest, &[2]);
    assert_eq!(sim.rounds(), vec![8]);
    let hash = sim.events.iter().find_map(|e| match e {
        Event::Round { hash, .. } => Some(hash.clone()),
        _ => None,
    });
    assert_eq!(hash, Some(hex::encode(honest.hash())));
}

#[test]
fn an_equivocating_server_counts_for_its_first_hash_only() {
    let c = Cluster::new(4);
    let mut b = book(&c);
    let a = c.output(6, vec![1]);
    let x = c.output(6, vec![2]);
    assert_eq!(b.offer(c.vouch(&a, 1), None), Offer::Counted);
    assert_eq!(
        b.offer(c.vouch(&x, 1), None),
        Offer::Refused(Refused::Equivocation)
    );
    // Server 1's second word does not help `x` reach f+1 with one more signer.
    assert_eq!(b.offer(c.vouch(&x, 2), None), Offer::Counted);
    assert!(!b.is_accepted(6));
    assert!(matches!(b.offer(c.vouch(&a, 0), None), Offer::Accepted(o) if o == a));
}

#[test]
fn vouches_far_behind_the_last_round_are_ignored_and_waiting_rounds_are_bounded() {
    let c = Cluster::new(4);
    let mut b = book(&c);
    let old = c.output(10, vec![1]);
    let last = Some(10 + VOUCH_WINDOW + 1);
    assert_eq!(
        b.offer(c.vouch(&old, 0), last),
        Offer::Refused(Refused::Old)
    );
    let cap = MAX_PENDING_ROUNDS as u64;
    for r in 1..=(cap + 20) {
        let out = c.output(r, vec![r as u8]);
        assert_eq!(b.offer(c.vouch(&out, 0), None), Offer::Counted);
    }
    assert_eq!(b.pending_rounds() as u64, cap);
    // The newest waiting rounds were dropped (catch-up fetches them again); the oldest,
    // which a catch-up step is completing, are kept: their second vouch accepts them.
    let first = c.output(1, vec![1]);
    assert!(matches!(
        b.offer(c.vouch(&first, 1), None),
        Offer::Accepted(_)
    ));
    let newest = c.output(cap + 20, vec![(cap + 20) as u8]);
    assert_eq!(b.offer(c.vouch(&newest, 1), None), Offer::Counted);
}

#[test]
fn garbage_gossip_is_dropped() {
    let mut c = Cluster::new(4);
    let me = c.identity();
    let mut sim = c.sim(me, MemStore::default(), 1);
    sim.core.handle_gossip(b"not a signed output", T0);
    let out = c.output(2, vec![1]);
    let mut bytes = protocol::encode(&c.vouch(&out, 0)).unwrap();
    sim.core.handle_gossip(&bytes, T0);
    bytes.truncate(bytes.len() / 2);
    sim.core.handle_gossip(&bytes, T0);
    sim.pump();
    assert!(sim.events.is_empty());
    sim.core
        .handle_gossip(&protocol::encode(&c.vouch(&out, 1)).unwrap(), T0);
    sim.pump();
    assert_eq!(sim.core.last_processed(), Some(2), "accepted");
    // Processed after our next submission, or two rounds later without one.
    assert!(sim.rounds().is_empty());
    sim.now = T0 + 2000;
    sim.tick();
    assert_eq!(sim.rounds(), vec![2]);
}
