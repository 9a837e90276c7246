//! `keygen`: create identities and ready-to-run configs for a Chorus cluster.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use keys::generate::{even_servers_note, write_cluster, ClusterSpec};
use keys::manifest::Policy;

/// Create Chorus key files (mode 0600) and TOML configs.
#[derive(Parser, Debug)]
#[command(name = "keygen", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PolicyArg {
    /// Any client key may submit.
    Open,
    /// Only the client keys generated here may submit.
    Listed,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a local cluster: per server a key and `node-<i>.toml`, per client a key and
    /// `client-<j>.toml`, and the public `cluster.toml`.
    Cluster {
        /// Number of servers n (2..=32). Tolerates f = (n-1)/2 crashed servers.
        #[arg(long, default_value_t = 3)]
        servers: u32,
        /// Number of client identities to create (client-1 .. client-M).
        #[arg(long, default_value_t = 0)]
        clients: u32,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// First TCP port. Server i listens for libp2p on BASE+i and serves its admin
        /// endpoint on 127.0.0.1:BASE+100+i.
        #[arg(long, default_value_t = 7100)]
        base_port: u16,
        /// Privacy threshold t: up to t colluding servers learn nothing. Default: the
        /// largest t that still reveals with f servers down (t <= n-f-1) and that cannot
        /// vouch for an output alone (t <= f); for odd n that is f.
        #[arg(long)]
        threshold: Option<u32>,
        /// Round length in milliseconds.
        #[arg(long, default_value_t = 1000)]
        round_ms: u64,
        /// Slots per round (S).
        #[arg(long, default_value_t = 16)]
        slots: u32,
        /// Bytes per slot (L).
        #[arg(long, default_value_t = 512)]
        slot_bytes: u32,
        /// Minimum distinct clients for a round to be revealed (k); smaller rounds are void.
        #[arg(long, default_value_t = 3)]
        min_anonymity_set: u32,
        /// Revealed rounds kept on the servers for clients that were offline.
        #[arg(long, default_value_t = 3600)]
        retention_rounds: u64,
        /// Client admission: `open` (any key) or `listed` (only keys generated here).
        #[arg(long, value_enum, default_value_t = PolicyArg::Open)]
        policy: PolicyArg,
        /// Replace existing key files (destroys those identities).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Cluster {
            servers,
            clients,
            out,
            base_port,
            threshold,
            round_ms,
            slots,
            slot_bytes,
            min_anonymity_set,
            retention_rounds,
            policy,
            force,
        } => {
            let spec = ClusterSpec {
                servers,
                clients,
                out: out.clone(),
                base_port,
                threshold,
                round_ms,
                slots,
                slot_bytes,
                min_anonymity_set,
                retention_rounds,
                policy: match policy {
                    PolicyArg::Open => Policy::Open,
                    PolicyArg::Listed => Policy::Listed,
                },
                force,
            };
            if threshold.is_none() {
                if let Some(note) = even_servers_note(servers) {
                    eprintln!("{note}");
                }
            }
            let written = write_cluster(&spec, &mut rand_core::OsRng)
                .with_context(|| format!("generating a cluster in {}", out.display()))?;
            for f in &written.files {
                println!("wrote {}", f.display());
            }
            println!(
                "cluster of {servers} servers and {clients} clients ready in {}",
                out.display()
            );
        }
    }
    Ok(())
}
