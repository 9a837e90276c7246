//! `chat-cli backup …`: back up this identity and its contacts across the servers,
//! restore it on a fresh machine, and see how a backup stands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use client::backup::{self, Cluster, Step};
use serde_json::json;

/// What `chat-cli backup` does.
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Back up this identity (keys), its name and the app's contacts with their verified
    /// marks, encrypted; the key is shared across the servers and opened only with the
    /// passphrase. A new backup replaces the last one.
    Create {
        /// Read the passphrase from the first line of FILE (default: ask on the terminal,
        /// or $CHORUS_BACKUP_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore NAME's backup into a new folder: writes NAME.key, NAME.toml and the
    /// contacts. Needs the cluster file (--cluster, or --config naming one). Each wrong
    /// passphrase counts at every server; after the limit (10 by default) the servers
    /// erase the backup.
    Restore {
        /// The name the backup was made under.
        #[arg(long)]
        name: String,
        /// The folder to write into (must not hold NAME's files yet).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The cluster file (cluster.toml); default: --config.
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
        /// Read the passphrase from the first line of FILE.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// How the backup under NAME (default: this identity's) stands on each server:
    /// refresh epoch, version, guesses counted.
    Status {
        /// The name (default: the name in --config).
        #[arg(long)]
        name: Option<String>,
        /// The cluster file; default: --config.
        #[arg(long, value_name = "FILE")]
        cluster: Option<PathBuf>,
    },
}

fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Some(f) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("passphrase file {}", f.display()))?,
        );
        return Ok(zeroize::Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Ok(p) = std::env::var("CHORUS_BACKUP_PASSPHRASE") {
        return Ok(zeroize::Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: use --passphrase-file FILE or $CHORUS_BACKUP_PASSPHRASE");
    }
    let p = zeroize::Zeroizing::new(rpassword::prompt_password("Backup passphrase: ")?);
    if confirm {
        let again = zeroize::Zeroizing::new(rpassword::prompt_password("Again: ")?);
        if *again != *p {
            bail!("the two passphrases differ");
        }
    }
    Ok(p)
}

fn progress(json: bool) -> impl FnMut(Step) + Send {
    move |s| {
        if json {
            println!(
                "{}",
                json!({"event": "backup_step", "step": format!("{s:?}").to_lowercase()})
            );
        } else if std::io::stderr().is_terminal() {
            let what = match s {
                Step::Asking => "asking every server",
                Step::Sending => "sealing the shares and sending the backup",
                Step::Checking => "servers are counting this guess and checking the passphrase",
                Step::Unlocking => "asking servers for their shares",
                Step::Opening => "decrypting the backup",
            };
            eprintln!("… {what}");
        }
    }
}

fn cluster_file(cluster: Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    cluster
        .or_else(|| config.map(Path::to_path_buf))
        .context("--cluster FILE is required (the cluster.toml the operators publish)")
}

/// Run a backup command. `config` is --config.
pub async fn run(
    action: BackupCommand,
    config: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match action {
        BackupCommand::Create { passphrase_file } => {
            let config = config.context("--config FILE is required (the identity to back up)")?;
            let settings = client::config::Settings::load(config)?;
            let pass = passphrase(passphrase_file.as_deref(), true)?;
            backup::check_passphrase(&pass, &settings.name).map_err(|e| anyhow::anyhow!(e))?;
            let contacts = std::fs::read_to_string(settings.data_dir.join("contacts.json")).ok();
            let cluster = Cluster::of(&settings);
            let (conn, _events) = client::conn::ClusterConn::connect(cluster.servers.clone())?;
            let created = backup::create(
                &conn,
                &cluster,
                &settings.name,
                &settings.identity,
                contacts,
                &pass,
                &mut progress(json),
            )
            .await?;
            if json {
                println!(
                    "{}",
                    json!({"event": "backup_created", "name": settings.name, "version": created.version, "epoch": created.epoch, "bytes": created.bytes})
                );
            } else {
                println!(
                    "backed up {} ({} bytes encrypted); restore it anywhere with `chat-cli backup restore --name {} --out DIR --cluster CLUSTER.toml` and the passphrase",
                    settings.name, created.bytes, settings.name
                );
            }
        }
        BackupCommand::Restore {
            name,
            out,
            cluster,
            passphrase_file,
        } => {
            let path = cluster_file(cluster, config)?;
            let (cluster_path, cluster) = Cluster::load(&path)?;
            let pass = passphrase(passphrase_file.as_deref(), false)?;
            let (conn, _events) = client::conn::ClusterConn::connect(cluster.servers.clone())?;
            let restored =
                backup::restore(&conn, &cluster, &name, &pass, &mut progress(json)).await?;
            let written = backup::write_restored(&out, &cluster_path, &restored)?;
            let fingerprint = restored
                .contents
                .identity()
                .map_err(|e| anyhow::anyhow!(e))?
                .public()
                .fingerprint();
            if json {
                println!(
                    "{}",
                    json!({"event": "backup_restored", "name": name, "config": written.display().to_string(), "fingerprint": fingerprint.to_string(), "contacts": restored.contents.contacts.is_some()})
                );
            } else {
                println!("restored {name} (fingerprint {fingerprint}) into {}; start it with `chat-cli --config {} listen`", out.display(), written.display());
            }
        }
        BackupCommand::Status { name, cluster } => {
            let (name, path) = match (name, config) {
                (Some(n), _) => (n, cluster_file(cluster, config)?),
                (None, Some(c)) => (
                    client::config::Settings::load(c)?.name,
                    cluster_file(cluster, config)?,
                ),
                (None, None) => bail!("--name NAME or --config FILE is required"),
            };
            let (_, cluster) = Cluster::load(&path)?;
            let (conn, _events) = client::conn::ClusterConn::connect(cluster.servers.clone())?;
            for (i, v) in backup::views(&conn, &cluster, Some(&name)).await? {
                match v {
                    Ok(v) => {
                        let r = v.record.as_ref();
                        if json {
                            println!(
                                "{}",
                                json!({"server": i, "epoch": v.epoch, "stored": r.is_some(), "version": r.map(|r| r.version), "refreshes": r.map(|r| r.refreshes), "guesses": r.map(|r| r.guesses.as_slice().to_vec()), "erased": r.map(|r| r.erased.as_slice().to_vec()), "guess_limit": v.guess_limit})
                            );
                        } else if let Some(r) = r {
                            println!(
                                "server {i}: epoch {}, backup of {name} stored (version {}, refreshed {} times), guesses counted {:?} of {} allowed{}",
                                v.epoch, r.version, r.refreshes, r.guesses.as_slice(), v.guess_limit,
                                if r.erased.is_empty() { String::new() } else { format!(", erased by servers {:?}", r.erased.as_slice()) }
                            );
                        } else {
                            println!("server {i}: epoch {}, no backup under {name}", v.epoch);
                        }
                    }
                    Err(e) => println!("server {i}: {e}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
