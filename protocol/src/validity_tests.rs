use super::*;
use crate::bounded::Fixed;
use crate::params::Admission;
use crate::reserve::footprint;
use crate::shamir::split_encoded_with_seeds;
use crate::vector::{layout, Vector};
use rand::{Rng, RngCore, SeedableRng};

const N: usize = 3;
const T: usize = 1;

fn params() -> Params {
    Params::new(N, T, 4, 200, 1, 4, Admission::Open).expect("params")
}

fn laid_out() -> Vec<u64> {
    vec![
        footprint(7 << 20, 150).expect("a"),
        footprint(9 << 20, 90).expect("b"),
    ]
}

/// A client's shares of `vector` and of its extra elements, with `joint` bound to
/// `digests`; what each server reports.
struct Shared {
    vectors: Vec<Zeroizing<Vec<u8>>>,
    extras: Vec<Zeroizing<Vec<u8>>>,
}

fn share(bytes: &[u8], rng: &mut rand::rngs::StdRng) -> Vec<Zeroizing<Vec<u8>>> {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    split_encoded_with_seeds(bytes, N, &[(0, seed)]).expect("split")
}

fn submit(
    circuit: &Validity,
    vector: &[u8],
    digests: &[Key32],
    round: Round,
    rng: &mut rand::rngs::StdRng,
) -> Shared {
    let client = Fixed([5u8; 32]);
    let joint = joint_rand(round, &client, digests);
    let extra = prove(circuit, vector, &joint, rng).expect("prove");
    Shared {
        vectors: share(vector, rng),
        extras: share(&extra, rng),
    }
}

fn checks(
    circuit: &Validity,
    shared: &Shared,
    key: &ValidityKey,
    round: Round,
    digests: &[Key32],
) -> Vec<[u8; CHECK_BYTES]> {
    let challenge = key.challenge(round, &Fixed([5u8; 32]), digests);
    (0..N)
        .map(|i| query(circuit, &shared.vectors[i], &shared.extras[i], &challenge).expect("query"))
        .collect()
}

fn verdict(all: &[[u8; CHECK_BYTES]], servers: &[usize]) -> Verdict {
    let picked: Vec<(usize, &[u8; CHECK_BYTES])> = servers.iter().map(|&s| (s, &all[s])).collect();
    decide(&picked, T)
}

fn digests(tag: u8) -> Vec<Key32> {
    (0..N as u8).map(|i| Fixed([tag ^ i; 32])).collect()
}

/// The four honest vectors: empty, a reservation, a message in a laid-out slot, both.
fn honest(params: &Params, rng: &mut rand::rngs::StdRng) -> Vec<(&'static str, Vector)> {
    let slots = layout(params, &laid_out());
    let fp = footprint(rng.gen::<u32>() as u64 >> 2 << 20, 120).expect("fp");
    let mut reserving = Vector::zero(params);
    assert!(reserving.reserve(3, fp));
    let mut sending = Vector::zero(params);
    assert!(sending.write(&slots[1], &vec![0xab; slots[1].len]));
    let mut both = Vector::zero(params);
    assert!(both.write(&slots[0], &vec![0xff; slots[0].len]));
    assert!(both.reserve(11, fp));
    vec![
        ("empty", Vector::zero(params)),
        ("reserving", reserving),
        ("sending", sending),
        ("both", both),
    ]
}

#[test]
fn slots_start_on_elements_and_become_the_circuits_groups() {
    let params = params();
    let circuit = Validity::for_round(&params, &laid_out());
    let cells = 3 * params.reserve_cells as usize;
    let slots = layout(&params, &laid_out());
    assert!(slots.iter().all(|s| s.offset % PACK == 0));
    let group = |s: &crate::reserve::Slot| {
        (
            cells + s.offset / PACK,
            cells + (s.offset + s.len).div_ceil(PACK),
        )
    };
    let end = group(&slots[1]).1;
    assert_eq!(
        circuit.groups(),
        &[
            group(&slots[0]),
            group(&slots[1]),
            (end, params.vector_elements())
        ]
    );
    let none = Validity::for_round(&params, &[]);
    assert_eq!(none.groups(), &[(cells, params.vector_elements())]);
}

#[test]
fn honest_vectors_are_valid_from_any_servers() {
    let params = params();
    let circuit = Validity::for_round(&params, &laid_out());
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let key = ValidityKey::generate(&mut rng);
    for (what, vector) in honest(&params, &mut rng) {
        let d = digests(9);
        let shared = submit(&circuit, &vector.encode(), &d, 4, &mut rng);
        let all = checks(&circuit, &shared, &key, 4, &d);
        for servers in [&[0, 1, 2][..], &[0, 1], &[1, 2], &[2, 0]] {
            assert_eq!(verdict(&all, servers), Verdict::Valid, "{what} {servers:?}");
        }
    }
}

/// The jamming vectors a proof must refuse, each with an honest proof of itself.
fn jamming(
    params: &Params,
    rng: &mut rand::rngs::StdRng,
) -> Vec<(&'static str, Zeroizing<Vec<u8>>)> {
    let slots = layout(params, &laid_out());
    let fp = footprint(77 << 20, 100).expect("fp");
    let mut two_slots = Vector::zero(params);
    assert!(two_slots.write(&slots[0], &vec![1; slots[0].len]));
    assert!(two_slots.write(&slots[1], &vec![1; slots[1].len]));
    let mut slot_and_tail = Vector::zero(params);
    assert!(slot_and_tail.write(&slots[0], &vec![1; slots[0].len]));
    let tail = crate::reserve::Slot {
        footprint: 0,
        offset: params.message_bytes() - 7,
        len: 7,
    };
    assert!(slot_and_tail.write(&tail, &[1; 7]));
    let mut two_cells = Vector::zero(params);
    assert!(two_cells.reserve(0, fp) && two_cells.reserve(5, fp));
    let malformed = |cell: [u64; 3]| {
        let mut v = Vector::zero(params).encode();
        for (k, x) in cell.into_iter().enumerate() {
            field::put(&mut v, 3 * 2 + k, fe(x));
        }
        v
    };
    let a = 1u64 << 40 | 100;
    let not_squared = malformed([1, a, 12345]);
    let count_two = malformed([2, 2 * a, 2 * (u64::from(fe(a) * fe(a)))]);
    let no_count = malformed([0, a, u64::from(fe(a) * fe(a))]);
    let random: Zeroizing<Vec<u8>> = {
        let bytes: Vec<u64> = (0..params.vector_elements())
            .map(|_| rng.gen::<u64>() % field::MODULUS)
            .collect();
        encode_elements(&bytes.into_iter().map(fe).collect::<Vec<_>>())
    };
    vec![
        ("two message slots", two_slots.encode()),
        ("a slot and the unused tail", slot_and_tail.encode()),
        ("two reservations", two_cells.encode()),
        ("a reservation whose b is not a²", not_squared),
        ("a reservation counted twice", count_two),
        ("a footprint without its count", no_count),
        ("a random vector", random),
    ]
}

#[test]
fn every_jamming_vector_fails_its_proof() {
    let params = params();
    let circuit = Validity::for_round(&params, &laid_out());
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let key = ValidityKey::generate(&mut rng);
    for (what, vector) in jamming(&params, &mut rng) {
        let d = digests(3);
        let shared = submit(&circuit, &vector, &d, 8, &mut rng);
        let all = checks(&circuit, &shared, &key, 8, &d);
        assert_eq!(verdict(&all, &[0, 1, 2]), Verdict::BadProof, "{what}");
        assert_eq!(verdict(&all, &[1, 2]), Verdict::BadProof, "{what}");
    }
}

#[test]
fn a_random_proof_a_replayed_proof_and_inconsistent_shares_are_caught() {
    let params = params();
    let circuit = Validity::for_round(&params, &laid_out());
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let key = ValidityKey::generate(&mut rng);
    let vector = honest(&params, &mut rng).remove(3).1.encode();
    let d = digests(1);

    // Random bytes where the proof should be.
    let mut shared = submit(&circuit, &vector, &d, 5, &mut rng);
    let junk: Vec<Fe> = (0..EXTRA_ELEMENTS)
        .map(|_| fe(rng.gen::<u32>().into()))
        .collect();
    shared.extras = share(&encode_elements(&junk), &mut rng);
    let all = checks(&circuit, &shared, &key, 5, &d);
    assert_eq!(verdict(&all, &[0, 1, 2]), Verdict::BadProof);

    // A valid proof from round 5 sent again with the same vector in round 6: the joint
    // randomness is the round's, so it no longer holds.
    let replayed = submit(&circuit, &vector, &d, 5, &mut rng);
    assert_eq!(
        verdict(&checks(&circuit, &replayed, &key, 6, &d), &[0, 1, 2]),
        Verdict::BadProof
    );
    // Nor under other share digests (another submission) in the same round.
    assert_eq!(
        verdict(
            &checks(&circuit, &replayed, &key, 5, &digests(2)),
            &[0, 1, 2]
        ),
        Verdict::BadProof
    );

    // Server 2 gets a share of another vector: with all three reporting, the checks lie
    // on no line; with two, the vector they define is checked as usual.
    let mut shared = submit(&circuit, &vector, &d, 5, &mut rng);
    let other = share(&Vector::zero(&params).encode(), &mut rng);
    shared.vectors[2] = other[2].clone();
    let all = checks(&circuit, &shared, &key, 5, &d);
    assert_eq!(verdict(&all, &[0, 1, 2]), Verdict::Inconsistent);
    // One element off in the proof share alone is caught too.
    let mut shared = submit(&circuit, &vector, &d, 5, &mut rng);
    let mut bent = shared.extras[1].to_vec();
    let bumped = field::element(&bent, TAGS + 3) + fe(1);
    field::put(&mut bent, TAGS + 3, bumped);
    shared.extras[1] = Zeroizing::new(bent);
    let all = checks(&circuit, &shared, &key, 5, &d);
    assert_eq!(verdict(&all, &[0, 1, 2]), Verdict::Inconsistent);
}

#[test]
fn a_proof_for_another_layout_fails() {
    let params = params();
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let key = ValidityKey::generate(&mut rng);
    let vector = honest(&params, &mut rng).remove(2).1.encode();
    let d = digests(7);
    let theirs = Validity::for_round(&params, &laid_out());
    let shared = submit(&theirs, &vector, &d, 2, &mut rng);
    // Ours lays out a longer first slot, so the message straddles two of our slots.
    let longer = vec![footprint(7 << 20, 200).expect("a"), laid_out()[1]];
    let ours = Validity::for_round(&params, &longer);
    assert_eq!(
        verdict(&checks(&ours, &shared, &key, 2, &d), &[0, 1, 2]),
        Verdict::BadProof
    );
}

/// The `t` servers' view of an honest client's proof: what each reports (verifier
/// shares and tags) is uniform whatever the vector, and the verdict and the verifier's
/// output are the same. Compared by the distribution of every reported element's top
/// bit over many submissions, for an empty slot and a used one.
#[test]
fn t_servers_see_the_same_whether_the_slot_is_empty_or_used() {
    let params = params();
    let circuit = Validity::for_round(&params, &laid_out());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let key = ValidityKey::generate(&mut rng);
    let vectors = honest(&params, &mut rng);
    let (empty, used) = (vectors[0].1.encode(), vectors[3].1.encode());
    const RUNS: usize = 600;
    let mut ones = [[0usize; CHECK_ELEMENTS]; 2];
    // What every server sees in the log: the verifier interpolated from the checks.
    let mut verifier_ones = [[0usize; PROOFS * VERIFIER_LEN]; 2];
    for run in 0..RUNS {
        for (which, vector) in [&empty, &used].into_iter().enumerate() {
            let d = digests(run as u8);
            let shared = submit(&circuit, vector, &d, 10 + run as u64, &mut rng);
            let all = checks(&circuit, &shared, &key, 10 + run as u64, &d);
            assert_eq!(verdict(&all, &[0, 1, 2]), Verdict::Valid);
            // Server 1 (not the seed server) stands for the t = 1 colluders.
            let view = decode_elements(&all[1]);
            for (j, v) in view.iter().enumerate() {
                ones[which][j] += usize::from(u64::from(*v) >= field::MODULUS / 2);
            }
            // The verifier's folded output is zero for both.
            let basis: Vec<(u8, &[u8])> = vec![(1, &all[0][..]), (2, &all[1][..])];
            let verifier = decode_elements(&crate::shamir::interpolate_at(&basis, 0).expect("v"));
            assert_eq!(verifier[0], Fe::zero());
            assert_eq!(verifier[VERIFIER_LEN], Fe::zero());
            for (j, v) in verifier.iter().take(PROOFS * VERIFIER_LEN).enumerate() {
                verifier_ones[which][j] += usize::from(u64::from(*v) >= field::MODULUS / 2);
            }
        }
    }
    // Uniform bits: within 5 standard deviations (±61 of 300) of half, for both.
    // The wire and gadget values of the verifier are uniform too (its folded outputs
    // are zero for both).
    for (which, view) in verifier_ones.iter().enumerate() {
        for (j, &k) in view.iter().enumerate() {
            if j % VERIFIER_LEN == 0 {
                assert_eq!(k, 0);
                continue;
            }
            let k = k as i64;
            assert!(
                (k - RUNS as i64 / 2).abs() < 62,
                "verifier element {j} for vector {which}: {k}"
            );
        }
    }
    for (which, view) in ones.iter().enumerate() {
        for (j, &k) in view.iter().enumerate() {
            let k = k as i64;
            assert!(
                (k - RUNS as i64 / 2).abs() < 62,
                "element {j} of view {which}: {k}"
            );
        }
    }
}

proptest::proptest! {
    /// Shares, proofs and checks from the network are random bytes to these functions:
    /// no panic, and random checks never decide valid.
    #[test]
    fn random_bytes_never_panic_nor_pass(
        share in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        checks in proptest::collection::vec(proptest::prelude::any::<u8>(), CHECK_BYTES * 3),
    ) {
        let params = params();
        let circuit = Validity::for_round(&params, &laid_out());
        let key = ValidityKey::from_bytes([1; 32]);
        let challenge = key.challenge(1, &Fixed([0; 32]), &digests(0));
        let _ = query(&circuit, &share, &extra, &challenge);
        let c: Vec<[u8; CHECK_BYTES]> = checks
            .chunks_exact(CHECK_BYTES)
            .map(|c| c.try_into().expect("len"))
            .collect();
        let picked: Vec<(usize, &[u8; CHECK_BYTES])> = c.iter().enumerate().collect();
        proptest::prop_assert_ne!(decide(&picked, T), Verdict::Valid);
        proptest::prop_assert_ne!(decide(&picked[..2], T), Verdict::Valid);
    }
}
