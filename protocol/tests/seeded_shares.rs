//! Seed-compressed submissions over the prime field: what a client uploads, what a
//! server refuses before the log, and reveals that are not field elements.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod common;

use keys::Identity;
use protocol::bounded::{Bytes, Fixed};
use protocol::round::check_upload;
use protocol::seal::open_share;
use protocol::submission::{build_submission, seed_servers, share_from_opened};
use protocol::vector::Vector;
use protocol::wire::{Reveal, SealedShare};
use protocol::{Admission, Command, Effect, Params, RejectReason};
use rand::SeedableRng;
use x25519_dalek::PublicKey;

fn cluster(n: usize, t: usize) -> (Params, Vec<Identity>, Vec<PublicKey>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64 * 100 + t as u64);
    let servers: Vec<Identity> = (0..n).map(|_| Identity::generate(&mut rng)).collect();
    let keys = servers.iter().map(|s| s.public().x25519()).collect();
    let params = Params::new(n, t, 16, 512, 1, 4, Admission::Open)
        .and_then(|p| p.with_server_keys(servers.iter().map(|s| Fixed(s.public().sign)).collect()))
        .expect("params");
    (params, servers, keys)
}

#[test]
fn a_client_uploads_n_minus_t_shares_and_t_seeds() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (n, t) in [(3usize, 1usize), (5, 2), (7, 3)] {
        let (params, servers, keys) = cluster(n, t);
        let client = Identity::generate(&mut rng);
        let vector = Vector::zero(&params);
        let sub = build_submission(&params, 9, &vector, &client, &keys, &mut rng).expect("build");
        let seeds = seed_servers(&params, 9, &sub.client);
        assert_eq!(seeds.len(), t);
        let sizes: Vec<usize> = sub
            .shares
            .as_slice()
            .iter()
            .map(|s| s.ciphertext.len())
            .collect();
        for (i, size) in sizes.iter().enumerate() {
            let want = if seeds.contains(&i) {
                32 + 16
            } else {
                params.share_bytes() + 16
            };
            assert_eq!(*size, want, "n={n} t={t} server {i}");
        }
        let upload: usize = sizes.iter().map(|s| s + 32).sum();
        // V: the vector as field elements (reservation cells, packed message region).
        let v = params.share_bytes();
        assert!(
            upload <= (n - t) * v + 1024,
            "n={n} t={t}: {upload} bytes for a {v}-byte vector"
        );
        // Every server, seed or not, opens a well-formed share.
        for (i, server) in servers.iter().enumerate() {
            let opened = open_share(
                &sub.shares.as_slice()[i],
                9,
                &sub.client,
                i as u16,
                server.x25519_secret(),
            )
            .expect("open");
            let share = share_from_opened(&params, 9, &sub.client, i, &opened).expect("share");
            assert_eq!(share.len(), params.share_bytes());
        }
    }
}

#[test]
fn the_rotation_spreads_seeds_evenly_over_the_servers() {
    let (params, _, _) = cluster(5, 2);
    let mut seeded = [0u32; 5];
    let clients = 5_000u32;
    for c in 0..clients {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&c.to_le_bytes());
        for s in seed_servers(&params, 3, &Fixed(id)) {
            seeded[s] += 1;
        }
    }
    // Each server is a seed server for t/n = 40% of clients (2,000 ± a few sd of ~35).
    for (s, count) in seeded.iter().enumerate() {
        assert!(
            (1800..=2200).contains(count),
            "server {s} seeded {count} times"
        );
    }
}

#[test]
fn a_whole_share_where_a_seed_belongs_is_refused_before_the_log() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (params, _, keys) = cluster(3, 1);
    let client = Identity::generate(&mut rng);
    let vector = Vector::zero(&params);
    let sub = build_submission(&params, 4, &vector, &client, &keys, &mut rng).expect("build");
    let seed_server = seed_servers(&params, 4, &sub.client)[0];
    let whole = (0..3u16)
        .find(|i| usize::from(*i) != seed_server)
        .expect("a non-seed server");
    let seed_server = seed_server as u16;
    for i in 0..3u16 {
        let up = sub.upload_for(i).expect("upload");
        assert_eq!(check_upload(&params, &up, i), Ok(()));
    }
    // Swap a seed and a whole share: both sizes are now wrong for their servers.
    let mut shares: Vec<SealedShare> = sub.shares.as_slice().to_vec();
    shares.swap(usize::from(seed_server), usize::from(whole));
    let mut tampered = sub.clone();
    tampered.shares = protocol::bounded::BoundedVec::new(shares).expect("fits");
    for i in [seed_server, whole] {
        let up = tampered.upload_for(i).expect("upload");
        assert!(matches!(
            check_upload(&params, &up, i),
            Err(RejectReason::WrongShareSize { .. })
        ));
    }
}

#[test]
fn a_reveal_that_is_not_field_elements_is_refused() {
    let mut w = common::World::new(3, 1, 1, Admission::Open);
    let (mut m, r, _) = common::closed_round(&mut w);
    let sum = Bytes::new(vec![0xff; w.params.share_bytes()]).expect("fits");
    let reveal = Reveal::new(r, 0, sum, &w.servers[0]);
    assert_eq!(
        m.apply(&Command::Reveal(reveal)),
        Effect::Rejected(RejectReason::NotFieldElements)
    );
}
