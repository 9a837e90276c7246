//! `node`: a Chorus server. Reads a TOML config, validates it, starts the actor system
//! and the admin endpoint, and shuts down cleanly on SIGINT/SIGTERM.

mod admin;
mod settings;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// A Chorus server node.
#[derive(Parser, Debug)]
#[command(name = "node", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The node's config file (as written by `keygen cluster`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config file and its key file; exit non-zero naming the bad field.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,libp2p_gossipsub=warn,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match (cli.command, cli.config) {
        (Some(Command::CheckConfig { file }), _) => check(&file),
        (None, Some(config)) => run(&config),
        (None, None) => Err(anyhow::anyhow!(
            "give --config FILE to run a node, or `node check-config FILE` (see --help)"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn check(file: &std::path::Path) -> anyhow::Result<()> {
    let s = settings::load(file)?;
    let identity = keys::load_identity(&s.key_file)?;
    keys::load_shared_secret(&s.validity_key_file)
        .map_err(|e| anyhow::anyhow!("{}: node.validity_key_file: {e}", file.display()))?;
    let me = &s.manifest.servers[s.manifest.node.id as usize];
    let public = identity.public();
    anyhow::ensure!(
        hex::encode(public.sign) == me.ed25519 && hex::encode(public.dh) == me.x25519,
        "{}: node.key_file {} does not hold the keys listed for servers[{}]",
        file.display(),
        s.key_file.display(),
        me.id
    );
    println!(
        "{}: ok (server {} of {}, t = {}, {} slots × {} B)",
        file.display(),
        me.id,
        s.manifest.servers.len(),
        s.params.threshold,
        s.params.slots,
        s.params.slot_bytes
    );
    Ok(())
}

fn run(config: &std::path::Path) -> anyhow::Result<()> {
    check(config)?;
    let s = settings::load(config)?;
    let identity = keys::load_identity(&s.key_file)?;
    let validity_key = keys::load_shared_secret(&s.validity_key_file)?;
    let raft = s.manifest.raft.clone().unwrap_or_default();
    let d = actors::server::RaftTuning::default();
    let server_cfg = actors::server::ServerConfig {
        me: u64::from(s.manifest.node.id),
        identity,
        validity_key: protocol::validity::ValidityKey::from_bytes(*validity_key),
        listen: s.manifest.node.listen.clone(),
        servers: s
            .manifest
            .servers
            .iter()
            .map(|e| (u64::from(e.id), e.peer_id.clone(), e.address.clone()))
            .collect(),
        data_dir: s.data_dir.clone(),
        params: s.params.clone(),
        round_ms: s.manifest.round.round_ms,
        backup: s.backup.clone(),
        faults: faults_from_env(),
        raft: actors::server::RaftTuning {
            heartbeat_ms: raft.heartbeat_ms.unwrap_or(d.heartbeat_ms),
            election_min_ms: raft.election_min_ms.unwrap_or(d.election_min_ms),
            election_max_ms: raft.election_max_ms.unwrap_or(d.election_max_ms),
            snapshot_logs: raft.snapshot_logs.unwrap_or(d.snapshot_logs),
            keep_logs: raft.keep_logs.unwrap_or(d.keep_logs),
        },
    };
    let admin_addr = s.admin;
    let token = s.manifest.node.admin_token.clone();
    // actix actors run on this thread; openraft, libp2p and axum on the worker pool.
    actors::server::run_system(async move {
        let server = Arc::new(
            actors::server::start(server_cfg)
                .await
                .context("starting the server")?,
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let admin = admin::serve(admin_addr, server.clone(), token, stop_rx).await?;
        let admin_task = tokio::spawn(admin);
        tracing::info!(admin = %admin_addr, "node running");
        let fatal = tokio::select! {
            () = wait_for_signal() => None,
            why = server.fatal() => Some(why),
        };
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = admin_task.await;
        match Arc::try_unwrap(server) {
            Ok(server) => server.shutdown().await,
            Err(server) => server.stop_raft().await,
        }
        tracing::info!("stopped");
        match fatal {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => Ok::<(), anyhow::Error>(()),
        }
    })
}

/// Faults, for tests and the abuse run only: `CHORUS_FAULT_WRONG_REVEALS=1` makes this
/// node reveal wrong sums from the start; `CHORUS_FAULTS=1` lets the admin endpoint
/// switch faults at run time (`POST /fault?wrong_reveals=1`).
fn faults_from_env() -> actors::server::Faults {
    let on = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
    actors::server::Faults {
        wrong_reveals: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(on(
            "CHORUS_FAULT_WRONG_REVEALS",
        ))),
        switchable: on("CHORUS_FAULTS"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
