//! What validity proofs cost one client and one server per submission, beside what the
//! rest of a submission costs them, measured in the same run.
//!
//! At the round benchmark's shapes (n = 3, t = 1, L = 256 B, S = C/14, R = 3S) for 100
//! and 1,000 clients:
//! - client: `prove` (both proofs over the vector) and `build` (the whole submission:
//!   split, seal, prove, share and seal the proofs, sign);
//! - server: `query` (one share's verifier shares and tags) and `open_add` (opening one
//!   upload, vector and proof shares, and adding the vector share into a sum);
//! - state machine: `decide` (one client's verdict from three servers' checks).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keys::Identity;
use protocol::reserve::footprint;
use protocol::seal::OpenCache;
use protocol::shamir::add_into;
use protocol::submission::{build_submission, open_upload};
use protocol::validity::{self, Validity, ValidityKey};
use protocol::vector::{layout, Vector};
use protocol::{Admission, Params};
use rand::{Rng, SeedableRng};

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for clients in [100usize, 1000] {
        let slots = clients / 14;
        let params = Params::new(3, 1, slots, 256, 1, 4, Admission::Open).expect("params");
        let servers: Vec<Identity> = (0..3).map(|_| Identity::generate(&mut rng)).collect();
        let keys: Vec<_> = servers.iter().map(|s| s.public().x25519()).collect();
        // Every slot laid out; this client writes one of them and reserves.
        let footprints: Vec<u64> = (0..slots)
            .map(|_| footprint(rng.gen(), 200).expect("fp"))
            .collect();
        let laid = layout(&params, &footprints);
        let mut vector = Vector::laid_out(&params, &footprints);
        assert!(vector.write(&laid[0], &vec![0x5a; laid[0].len]));
        assert!(vector.reserve(1, footprint(rng.gen(), 100).expect("fp")));
        let circuit = Validity::for_round(&params, &footprints);
        let client = Identity::generate(&mut rng);
        let encoded = vector.encode();
        let joint = validity::joint_rand(1, &protocol::bounded::Fixed(client.public().sign), &[]);

        let mut g = c.benchmark_group(format!("client/{clients}"));
        g.bench_function("prove", |b| {
            b.iter(|| {
                validity::prove(&circuit, black_box(&encoded), &joint, &mut rng).expect("prove")
            })
        });
        g.bench_function("build", |b| {
            b.iter(|| {
                build_submission(&params, 1, &vector, &client, &keys, &mut rng).expect("build")
            })
        });
        g.finish();

        let sub = build_submission(&params, 1, &vector, &client, &keys, &mut rng).expect("build");
        // Server 0 or 1: whichever gets a whole share (the costlier case).
        let me = (0..3)
            .find(|&i| !protocol::submission::is_seed_server(&params, 1, &sub.client, i))
            .expect("a share server");
        let up = sub.upload_for(me as u16).expect("upload");
        let mut opener = OpenCache::new(servers[me].x25519_secret().clone());
        let key = opener
            .share_key(&up.share, 1, &up.client, me as u16)
            .expect("key");
        let (share, proof) = open_upload(&params, &key, &up, me).expect("opens");
        let vkey = ValidityKey::from_bytes([9; 32]);
        let challenge = vkey.challenge(1, &up.client, up.digests.as_slice());
        let mut g = c.benchmark_group(format!("server/{clients}"));
        g.bench_function("query", |b| {
            b.iter(|| validity::query(&circuit, black_box(&share), &proof, &challenge).expect("q"))
        });
        g.bench_function("open_add", |b| {
            let mut sum = vec![0u8; params.share_bytes()];
            b.iter(|| {
                let (share, _) = open_upload(&params, &key, black_box(&up), me).expect("opens");
                add_into(&mut sum, &share).expect("add");
            })
        });
        let checks: Vec<[u8; validity::CHECK_BYTES]> = (0..3)
            .map(|i| {
                let up = sub.upload_for(i as u16).expect("upload");
                let mut o = OpenCache::new(servers[i].x25519_secret().clone());
                let k = o
                    .share_key(&up.share, 1, &up.client, i as u16)
                    .expect("key");
                let (s, p) = open_upload(&params, &k, &up, i).expect("opens");
                validity::query(&circuit, &s, &p, &challenge).expect("q")
            })
            .collect();
        let picked: Vec<(usize, &[u8; validity::CHECK_BYTES])> =
            checks.iter().enumerate().collect();
        assert_eq!(validity::decide(&picked, 1), validity::Verdict::Valid);
        g.bench_function("decide", |b| {
            b.iter(|| validity::decide(black_box(&picked), 1))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
