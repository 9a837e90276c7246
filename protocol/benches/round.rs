//! Microbenchmarks of the per-round crypto, beside baselines measured in the same run.
//!
//! S = 16 slots × 256 B (a 4 KiB vector), n ∈ {3, 5}:
//! - `split_seal`: one client's split + seal of every share + signature.
//! - `open_add`: one server opening its share (or seed) of one submission and adding it in.
//! - `combine`: reconstructing one round's output from t+1 sums.
//! - baselines: `memcpy` of the vector and raw ChaCha20-Poly1305 of the vector.
//!
//! Throughput is reported in bytes of *vector* processed, so MB/s compare directly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keys::Identity;
use protocol::seal::open_share;
use protocol::shamir::{add_into, combine_vector, split_vector, x_of};
use protocol::submission::build_submission;
use protocol::submission::share_from_opened;
use protocol::{Admission, Params};
use rand::SeedableRng;

const SLOTS: usize = 16;
const SLOT_BYTES: usize = 256;
const VECTOR: usize = SLOTS * SLOT_BYTES;

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let vector = vec![0x5Au8; VECTOR];

    let mut g = c.benchmark_group("baseline");
    g.throughput(Throughput::Bytes(VECTOR as u64));
    g.bench_function("memcpy", |b| {
        let mut dst = vec![0u8; VECTOR];
        b.iter(|| dst.copy_from_slice(black_box(&vector)))
    });
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&[7u8; 32]));
    g.bench_function("chacha20poly1305", |b| {
        b.iter(|| cipher.encrypt(Nonce::from_slice(&[0u8; 12]), black_box(vector.as_slice())))
    });
    g.finish();

    for (n, t) in [(3usize, 1usize), (5, 2)] {
        let servers: Vec<Identity> = (0..n).map(|_| Identity::generate(&mut rng)).collect();
        let keys: Vec<_> = servers.iter().map(|s| s.public().x25519()).collect();
        let params = Params::new(n, t, SLOTS, SLOT_BYTES, 1, 4, Admission::Open).expect("params");
        let client = Identity::generate(&mut rng);
        // A sending client's vector: the message region full, one reservation.
        let mut full = protocol::vector::Vector::zero(&params);
        let whole = protocol::reserve::Slot {
            footprint: 1,
            offset: 0,
            len: params.message_bytes(),
        };
        full.write(&whole, &vector);
        full.reserve(0, 1 << 20);

        let mut g = c.benchmark_group("round");
        g.throughput(Throughput::Bytes(VECTOR as u64));
        g.bench_with_input(
            BenchmarkId::new("split_seal", format!("n{n}")),
            &n,
            |b, _| {
                b.iter(|| {
                    build_submission(&params, 1, &full, &client, &keys, &mut rng).expect("build")
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("split_only", format!("n{n}")),
            &n,
            |b, _| b.iter(|| split_vector(&vector, n, t, &mut rng).expect("split")),
        );
        let sub = build_submission(&params, 1, &full, &client, &keys, &mut rng).expect("build");
        let mut acc = vec![0u8; params.share_bytes()];
        // Server n-1 gets a whole share or a seed, as the rotation says for this client.
        let server = n - 1;
        g.bench_with_input(BenchmarkId::new("open_add", format!("n{n}")), &n, |b, _| {
            b.iter(|| {
                let opened = open_share(
                    &sub.shares.as_slice()[server],
                    1,
                    &sub.client,
                    server as u16,
                    servers[server].x25519_secret(),
                )
                .expect("open");
                let share =
                    share_from_opened(&params, 1, &sub.client, server, &opened).expect("share");
                add_into(&mut acc, &share).expect("add");
            })
        });
        let shares = split_vector(&vector, n, t, &mut rng).expect("split");
        let picked: Vec<(u8, &[u8])> = (0..=t).map(|i| (x_of(i), shares[i].as_slice())).collect();
        g.bench_with_input(BenchmarkId::new("combine", format!("n{n}")), &n, |b, _| {
            b.iter(|| combine_vector(black_box(&picked), VECTOR).expect("combine"))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
