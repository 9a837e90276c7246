//! Property tests: every decoder on random and truncated bytes, and determinism of the
//! state machine.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use keys::Identity;
use proptest::prelude::*;
use protocol::bounded::{Bytes, Fixed};
use protocol::submission::build_submission;
use protocol::vector::Vector;
use protocol::wire::{
    ClientRequest, ClientResponse, Command, Have, HeldEntry, Reveal, SignedOutput,
};
use protocol::{decode, encode, Admission, DecodeError, Params, RoundMachine, State};
use rand::{Rng, SeedableRng};

const CASES: u32 = 10_000;

fn sample_submission() -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let servers: Vec<_> = (0..3)
        .map(|_| Identity::generate(&mut rng).public().x25519())
        .collect();
    let params = Params::new(3, 1, 2, 256, 1, 4, Admission::Open).expect("params");
    let client = Identity::generate(&mut rng);
    let sub = build_submission(
        &params,
        1,
        &Vector::zero(&params),
        &client,
        &servers,
        &mut rng,
    )
    .expect("build");
    encode(&ClientRequest::Share(sub.upload_for(1).expect("upload"))).expect("encode")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn command_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Command>(&bytes);
    }

    #[test]
    fn client_request_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<ClientRequest>(&bytes);
    }

    #[test]
    fn client_response_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<ClientResponse>(&bytes);
    }

    #[test]
    fn signed_output_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<SignedOutput>(&bytes);
    }

    #[test]
    fn state_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = protocol::codec::decode_large::<State>(&bytes);
    }

    #[test]
    fn truncated_or_mutated_submissions_are_rejected_not_panicking(
        cut in 0usize..10_000, flip in any::<(usize, u8)>()
    ) {
        let good = sample_submission();
        let cut = cut % good.len();
        match decode::<ClientRequest>(&good[..cut]) {
            Err(DecodeError::Truncated(_)) | Err(DecodeError::Malformed(_)) | Err(DecodeError::FieldTooLong(_)) => {}
            other => prop_assert!(false, "truncated at {cut}: {other:?}"),
        }
        let mut bad = good.clone();
        let i = flip.0 % bad.len();
        bad[i] ^= flip.1 | 1;
        let _ = decode::<ClientRequest>(&bad);
    }
}

#[test]
fn oversized_length_prefixes_are_refused_before_allocation() {
    // A Probe whose payload claims 4 GiB: varint 0xFB + u32.
    let mut frame = encode(&Command::Probe {
        id: 1,
        payload: Bytes::new(vec![]).expect("empty"),
    })
    .expect("enc");
    frame.pop(); // drop the zero length
    frame.extend_from_slice(&[0xFC]);
    frame.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let err = decode::<Command>(&frame).expect_err("refused");
    assert!(
        matches!(
            err,
            DecodeError::FieldTooLong(_) | DecodeError::Truncated(_)
        ),
        "{err:?}"
    );
    // A probe larger than its field limit, with the bytes actually present.
    #[derive(serde::Serialize)]
    enum Raw {
        _Close(()),
        _Have(()),
        _Decide(()),
        _Reveal(()),
        _Finalize(()),
        _Register(()),
        _Init(()),
        Probe {
            id: u64,
            payload: serde_bytes_like::B,
        },
    }
    mod serde_bytes_like {
        pub struct B(pub Vec<u8>);
        impl serde::Serialize for B {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }
    let big = encode(&Raw::Probe {
        id: 1,
        payload: serde_bytes_like::B(vec![0u8; protocol::limits::MAX_PROBE_BYTES + 1]),
    })
    .expect("enc");
    let err = decode::<Command>(&big).expect_err("too long");
    assert!(matches!(err, DecodeError::FieldTooLong(_)), "{err:?}");
    // Frames over the global limit are refused without decoding.
    let huge = vec![0u8; protocol::limits::MAX_FRAME_BYTES + 1];
    assert!(matches!(
        decode::<Command>(&huge),
        Err(DecodeError::FrameTooLarge { .. })
    ));
    // Trailing garbage is refused.
    let mut trailing = encode(&Command::Close { round: 3 }).expect("enc");
    trailing.push(0);
    assert_eq!(
        decode::<Command>(&trailing),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn wire_types_round_trip() {
    let server = Identity::generate(&mut rand::rngs::StdRng::seed_from_u64(3));
    let cmd = Command::Reveal(Reveal::new(
        7,
        2,
        Bytes::new(vec![1, 2, 3]).expect("small"),
        &server,
    ));
    let Command::Reveal(r) = &cmd else {
        unreachable!()
    };
    assert!(r.signature_valid(&server.public().sign));
    assert_eq!(
        decode::<Command>(&encode(&cmd).expect("enc")).expect("dec"),
        cmd
    );
    let req = decode::<ClientRequest>(&sample_submission()).expect("dec");
    assert!(matches!(req, ClientRequest::Share(ref s) if s.signature_valid()));
    let dir = ClientRequest::Directory { from: 9 };
    assert_eq!(
        decode::<ClientRequest>(&encode(&dir).expect("enc")).expect("dec"),
        dir
    );
}

/// Commands drawn from a small alphabet so that many are valid.
fn command_strategy() -> impl Strategy<Value = u8> {
    0u8..8
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn same_commands_give_same_state_hash(script in proptest::collection::vec(command_strategy(), 1..40), seed in any::<u64>()) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let servers: Vec<Identity> = (0..3).map(|_| Identity::generate(&mut rng)).collect();
        let clients: Vec<Identity> = (0..3).map(|_| Identity::generate(&mut rng)).collect();
        let params = Params::new(3, 1, 1, 256, 2, 3, Admission::Open)
            .and_then(|p| p.with_server_keys(servers.iter().map(|s| Fixed(s.public().sign)).collect()))
            .expect("params");
        let mut a = RoundMachine::new(params.clone());
        let mut commands = Vec::new();
        for op in script {
            let round = a.state().open_round;
            let cmd = match op {
                0..=2 => {
                    // Server `op` lists the clients it holds (the first `op + 1` of them).
                    let list = clients[..=op as usize]
                        .iter()
                        .map(|c| HeldEntry { client: Fixed(c.public().sign), digest: Fixed([op; 16]), check: Fixed([op; protocol::validity::CHECK_BYTES]) })
                        .collect();
                    Command::Have(Have::new(round.saturating_sub(1), u16::from(op), list, &servers[op as usize]).expect("fits"))
                }
                3 => Command::Close { round },
                4 => {
                    let server = (seed % 3) as usize;
                    Command::Reveal(Reveal::new(round.saturating_sub(1), server as u16, Bytes::new(vec![0u8; params.share_bytes()]).expect("fits"), &servers[server]))
                }
                5 => Command::Finalize { round: round.saturating_sub(1) },
                6 => Command::Decide { round: round.saturating_sub(1) },
                _ => Command::Probe { id: seed, payload: Bytes::new(vec![op]).expect("fits") },
            };
            a.apply(&cmd);
            commands.push(cmd);
        }
        // A replica applying the same log, and one restored from a snapshot midway.
        let mut b = RoundMachine::new(params.clone());
        let mid = commands.len() / 2;
        for c in &commands[..mid] { b.apply(c); }
        let mut snap = Vec::new();
        protocol::codec::encode_into(b.state(), &mut snap).expect("snapshot");
        let mut c = RoundMachine::from_state(params.clone(), protocol::codec::decode_large(&snap).expect("restore"));
        for cmd in &commands[mid..] { b.apply(cmd); c.apply(cmd); }
        prop_assert_eq!(a.state_hash(), b.state_hash());
        prop_assert_eq!(a.state_hash(), c.state_hash());
    }
}

/// An idle client's cover submission and a sending client's submission are the same
/// size on the wire, so an observer cannot tell who is talking.
#[test]
fn cover_and_message_submissions_have_identical_sizes() {
    use protocol::slot::{seal_slot, Sender, SlotMessage};
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let servers: Vec<_> = (0..3)
        .map(|_| Identity::generate(&mut rng).public().x25519())
        .collect();
    let params = Params::new(3, 1, 4, 256, 1, 4, Admission::Open).expect("params");
    let (alice, bob) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let cover = Vector::zero(&params);
    let mut message = Vector::zero(&params);
    let fp = protocol::reserve::footprint(rng.gen(), 256).expect("footprint");
    let laid_out = protocol::vector::layout(&params, &[fp]);
    let slot = seal_slot(
        &SlotMessage {
            sender: Sender::Identity(alice.public().dh),
            conversation: [1; 16],
            seq: 1,
            timestamp_ms: 1,
            fragment_index: 0,
            fragment_count: 1,
            body: b"the meeting is at six".to_vec(),
        },
        alice.x25519_secret(),
        &bob.public().x25519(),
        256,
        &mut rng,
    )
    .expect("seal");
    assert!(message.write(&laid_out[0], &slot));
    assert!(message.reserve(5, fp));
    let size = |v: &Vector, who: &Identity, round: u64| {
        let sub = build_submission(
            &params,
            round,
            v,
            who,
            &servers,
            &mut rand::rngs::StdRng::seed_from_u64(round),
        )
        .expect("build");
        (0..3u16)
            .map(|i| {
                encode(&ClientRequest::Share(sub.upload_for(i).expect("upload")))
                    .expect("encode")
                    .len()
            })
            .collect::<Vec<usize>>()
    };
    // What each server receives from one client is the same size whether it sends or
    // not; which servers get the small seed depends only on (round, client), both public.
    assert_eq!(size(&cover, &alice, 7), size(&message, &alice, 7));
    // Across clients the total is the same.
    let total = |v: Vec<usize>| v.into_iter().sum::<usize>();
    assert_eq!(
        total(size(&cover, &bob, 7)),
        total(size(&message, &alice, 7))
    );
    // Round numbers are varints: compare within the same round only, and across a
    // realistic range of rounds the size moves for everyone alike.
    assert_eq!(
        total(size(&cover, &bob, 1_000_000)),
        total(size(&message, &alice, 1_000_000))
    );
}
