//! The cost of one backup refresh epoch at N backups, per server: dealing its own
//! zero-sharings, applying every committed part to the replicated book, and opening,
//! checking and adding its sub-shares in its private store (the same functions the
//! nodes run: `protocol::backup` and `actors::backup_keeper::add_sub_shares` over a real
//! redb store). Dealers' parts are interleaved as if all dealt at once, and the epoch
//! ends when `t + 1` dealers' last parts are in, as in a cluster. Also the bytes the
//! epoch writes to the log. Prints one JSON line per N.
//!
//!   cargo run --release -p tests --bin bench_backup -- --backups 1000 --backups 10000

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failure

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actors::backup_keeper::add_sub_shares;
use actors::backup_store::{BackupStore, StoredShare};
use actors::metrics::BackupMetrics;
use clap::Parser;
use protocol::backup::book::{BackupBook, BackupEffect, UNSIGNED};
use protocol::backup::make::{deal_part, open_registration, registration};
use protocol::backup::{vss, BackupCommand, BackupName, EpochKey, ServerSigned, MAX_DEAL_ENTRIES};
use protocol::bounded::{Bytes, Fixed};
use protocol::wire::{Command, PublicKeys};
use rand::rngs::OsRng;
use x25519_dalek::{PublicKey, StaticSecret};

/// One refresh epoch at N backups.
#[derive(Parser, Debug)]
struct Args {
    /// Backups stored (repeat for several runs).
    #[arg(long, default_values_t = vec![1000u64])]
    backups: Vec<u64>,
    /// Servers.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Bytes of each backup's plaintext (identity and contacts are about 300).
    #[arg(long, default_value_t = 512)]
    blob: usize,
}

struct Server {
    id: keys::Identity,
    secret: StaticSecret,
    store: BackupStore,
    _dir: tempfile::TempDir,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for &n in &args.backups {
        run(n as usize, args.servers, args.blob)?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(backups: usize, n: usize, blob: usize) -> anyhow::Result<()> {
    let t = keys::generate::default_threshold(n as u32) as usize;
    let mut servers: Vec<Server> = (0..n)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let id = keys::Identity::generate(&mut OsRng);
            let store = BackupStore::open(&dir.path().join("backup.redb"), &id).unwrap();
            Server {
                id,
                secret: StaticSecret::random_from_rng(OsRng),
                store,
                _dir: dir,
            }
        })
        .collect();
    let mut params = protocol::Params::new(n, t, 4, 256, 1, 4, protocol::Admission::Open)?;
    params.server_keys = servers.iter().map(|s| Fixed(s.id.public().sign)).collect();
    let mut book = BackupBook::default();
    let mut names: BTreeMap<BackupName, PublicKeys> = BTreeMap::new();
    for (i, s) in servers.iter().enumerate() {
        let k = EpochKey {
            server: i as u16,
            key: Fixed(PublicKey::from(&s.secret).to_bytes()),
            signature: UNSIGNED,
        }
        .signed(&s.id);
        book.apply(&params, &names, &BackupCommand::Key(k)).unwrap();
    }

    // N backups, registered as clients would, each server holding its shares.
    let setup = Instant::now();
    let keys = book.all_keys(n).unwrap();
    let plain = vec![7u8; blob];
    let mut txns: Vec<_> = servers.iter().map(|s| s.store.begin().unwrap()).collect();
    for b in 0..backups {
        let user = keys::Identity::generate(&mut OsRng);
        let name: BackupName = Bytes::new(format!("user-{b:06}").into_bytes()).unwrap();
        names.insert(name.clone(), PublicKeys::from_identity(&user.public()));
        let mut r = registration(
            &name,
            Fixed(user.public().sign),
            0,
            &keys,
            t,
            b"a passphrase",
            &plain,
            &mut OsRng,
        )?;
        r.signature = Fixed(user.sign(&r.signed_bytes()));
        let Ok(BackupEffect::Registered { version, .. }) =
            book.apply(&params, &names, &BackupCommand::Register(r.clone()))
        else {
            anyhow::bail!("registration refused");
        };
        for (i, (s, txn)) in servers.iter().zip(txns.iter_mut()).enumerate() {
            let o = open_registration(&r, i as u16, &s.secret)?;
            txn.put_share(
                name.as_slice(),
                &StoredShare {
                    version,
                    key: o.key,
                    oprf: o.oprf,
                    tag: o.tag,
                    valid: true,
                },
            )?;
        }
    }
    for txn in txns {
        txn.commit(1)?;
    }
    let setup = setup.elapsed();

    // One epoch: every dealer makes its parts; parts are committed interleaved.
    let list: Vec<(BackupName, u64)> = book
        .records
        .iter()
        .map(|(n, r)| (n.clone(), r.version))
        .collect();
    let chunks: Vec<&[(BackupName, u64)]> = list.chunks(MAX_DEAL_ENTRIES).collect();
    let mut deal_time = vec![Duration::ZERO; n];
    let mut parts: Vec<Vec<protocol::backup::Deal>> = Vec::new();
    let mut next: Vec<StaticSecret> = Vec::new();
    for (d, s) in servers.iter().enumerate() {
        let started = Instant::now();
        let nk = StaticSecret::random_from_rng(OsRng);
        let mut mine = Vec::new();
        for (p, chunk) in chunks.iter().enumerate() {
            let last = p + 1 == chunks.len();
            let part = deal_part(
                d as u16,
                0,
                p as u32,
                last,
                Fixed(PublicKey::from(&nk).to_bytes()),
                chunk,
                &keys,
                t,
                &mut OsRng,
            )?;
            mine.push(part.signed(&s.id));
        }
        deal_time[d] = started.elapsed();
        parts.push(mine);
        next.push(nk);
    }
    let metrics = BackupMetrics::default();
    let (mut apply_time, mut log_bytes, mut applied_parts, mut refused) =
        (Duration::ZERO, 0usize, 0usize, 0usize);
    let mut process_time = vec![Duration::ZERO; n];
    let mut index = 2;
    'epoch: for p in 0..chunks.len() {
        for dealer_parts in &parts {
            let part = &dealer_parts[p];
            let cmd = BackupCommand::Deal(part.clone());
            log_bytes += protocol::codec::encode(&Command::Backup(Box::new(cmd.clone())))?.len();
            let started = Instant::now();
            let effect = book.apply(&params, &names, &cmd);
            apply_time += started.elapsed();
            let Ok(BackupEffect::Dealt {
                applied, advanced, ..
            }) = effect
            else {
                refused += 1;
                continue;
            };
            applied_parts += 1;
            for (j, s) in servers.iter_mut().enumerate() {
                let started = Instant::now();
                let mut txn = s.store.begin()?;
                add_sub_shares(
                    &mut txn,
                    j as u16,
                    part,
                    &applied,
                    Some(&s.secret),
                    &metrics,
                )?;
                txn.commit(index)?;
                process_time[j] += started.elapsed();
            }
            index += 1;
            if advanced.is_some() {
                break 'epoch;
            }
        }
    }
    // The refresh really happened: shares still lie on the (moved) commitments.
    let mut checked = 0;
    for (name, rec) in book.records.iter().step_by((backups / 50).max(1)) {
        for (j, s) in servers.iter().enumerate() {
            let share = s.store.share(name.as_slice())?.expect("held");
            vss::verify(&share.key, &rec.key_commitments, j as u16)
                .expect("refreshed share verifies");
            checked += 1;
        }
    }
    anyhow::ensure!(book.epoch == 1, "the epoch did not end");
    let per_server_deal = deal_time.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
    let per_server_process = process_time.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
    let per_server = per_server_deal + ms(apply_time) + per_server_process;
    println!(
        "{}",
        serde_json::json!({
            "backups": backups, "servers": n, "threshold": t,
            "parts_per_dealer": chunks.len(), "parts_applied": applied_parts, "parts_refused_after_epoch_end": refused,
            "deal_ms_per_server": per_server_deal, "apply_ms_all_parts": ms(apply_time),
            "process_ms_per_server": per_server_process, "epoch_ms_per_server": per_server,
            "epoch_us_per_backup": per_server * 1000.0 / backups as f64,
            "log_bytes_per_epoch": log_bytes, "log_bytes_per_backup": log_bytes / backups.max(1),
            "sub_shares_verified": metrics.verified.get(), "shares_checked_after": checked,
            "setup_s": setup.as_secs_f64(),
        })
    );
    Ok(())
}
