//! `dirsync`: what a fresh client's first directory sync costs at a given directory size.
//!
//! Builds `--names` self-signed registrations, then runs a real client core over a real
//! store (redb, in a temporary folder) against three in-process servers that answer
//! `Directory { from }` pages from those registrations, every page encoded and decoded
//! as on the wire. Reports the bytes each server sent, the time until the copy was
//! complete (signature checks and store writes included; no network), the store's
//! size, and how long a restarted client takes to read its copy back.
//!
//! ```sh
//! cargo build --release -p tests --bin dirsync && target/release/dirsync --names 100000
//! ```

use std::time::Instant;

use clap::Parser;
use client::core::{ClientCore, Command, CoreConfig};
use client::store::Store;
use protocol::bounded::BoundedVec;
use protocol::limits::MAX_DIRECTORY_PAGE;
use protocol::params::Admission;
use protocol::wire::{ClientRequest, ClientResponse, Register};
use protocol::Params;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Measure a fresh client's first directory sync.
#[derive(Parser, Debug)]
#[command(name = "dirsync", about)]
struct Args {
    /// Registrations in the directory.
    #[arg(long, default_value_t = 100_000)]
    names: usize,
}

fn config(servers: &[keys::Identity], rng: &mut StdRng) -> anyhow::Result<CoreConfig> {
    Ok(CoreConfig {
        identity: keys::Identity::generate(rng),
        params: Params::new(3, 1, 16, 256, 3, 100, Admission::Open)?,
        round_ms: 1000,
        server_dh: servers.iter().map(|s| s.public().x25519()).collect(),
        server_sign: servers.iter().map(|s| s.public().sign).collect(),
    })
}

fn rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(1);
    let servers: Vec<_> = (0..3).map(|_| keys::Identity::generate(&mut rng)).collect();
    let t = Instant::now();
    let dir: Vec<Register> = (0..args.names)
        .map(|i| Register::new(&format!("user-{i}"), &keys::Identity::generate(&mut rng)))
        .collect::<Result<_, _>>()?;
    println!(
        "dirsync: {} registrations built in {:.1} s",
        args.names,
        t.elapsed().as_secs_f64()
    );

    let folder = tempfile::tempdir()?;
    let store = Store::open(folder.path())?;
    let rss_before = rss_mib();
    let mut core = ClientCore::new(config(&servers, &mut rng)?, store, StdRng::seed_from_u64(2))?;
    for i in 0..3 {
        core.handle_server_up(i);
    }
    let t = Instant::now();
    let mut now = 1_000_000u64;
    let mut bytes = [0usize; 3];
    let mut pages = 0usize;
    core.handle_tick(now);
    loop {
        let mut asked = false;
        while let Some(cmd) = core.poll_command() {
            let Command::Request {
                id,
                server,
                req: ClientRequest::Directory { from },
                ..
            } = cmd
            else {
                continue;
            };
            asked = true;
            let start = (from as usize).min(dir.len());
            let end = (start + MAX_DIRECTORY_PAGE).min(dir.len());
            let page = ClientResponse::Directory {
                entries: BoundedVec::new(dir[start..end].to_vec())
                    .map_err(|_| anyhow::anyhow!("page too long"))?,
                total: dir.len() as u64,
            };
            let wire = protocol::encode(&page)?;
            bytes[usize::from(server)] += wire.len();
            pages += 1;
            core.handle_response(id, Ok(protocol::decode(&wire)?), now);
        }
        if !asked {
            break;
        }
        now += 1;
    }
    let took = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        core.directory().len() == args.names as u64,
        "synced {} of {}",
        core.directory().len(),
        args.names
    );
    let rss_after = rss_mib();
    let file = std::fs::metadata(folder.path().join("history.redb"))?.len();
    println!(
        "dirsync: first sync {took:.1} s ({:.0} entries/s), {pages} pages, {:.1} MB from each server",
        args.names as f64 / took,
        bytes[0] as f64 / 1e6
    );
    println!(
        "dirsync: store {:.1} MB on disk, client memory +{:.0} MiB",
        file as f64 / 1e6,
        rss_after - rss_before
    );
    drop(core);

    let t = Instant::now();
    let store = Store::open(folder.path())?;
    let held = store.directory()?.len();
    let core = ClientCore::new(config(&servers, &mut rng)?, store, StdRng::seed_from_u64(3))?;
    println!(
        "dirsync: restart reads {held} entries back in {:.2} s ({} held)",
        t.elapsed().as_secs_f64(),
        core.directory().len()
    );
    Ok(())
}
