//! `chat-cli send-file` and `chat-cli files`: files through the rounds.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use client::core::size_text;
use client::daemon::{DaemonClient, Incoming};
use client::store::{FileEntry, FileState};
use serde_json::{json, Value};

/// Send the file at `path` to `to` through the running daemon and follow it until every
/// chunk is in an output (success) or it fails; a progress bar on a terminal.
pub async fn send(
    socket: &Path,
    to: &str,
    path: &Path,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let path: PathBuf =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut d = DaemonClient::connect(socket).await?;
    d.request("subscribe", json!({})).await?;
    let params = json!({"to": to, "path": path.display().to_string()});
    let call = d.call("send_file", params).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut id: Option<u64> = None;
    let mut early: Vec<Value> = Vec::new();
    let mut bar = Bar::new(json);
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, d.next()).await else {
            bar.end();
            bail!(
                "{} was not sent to {to} within {} s; it goes on while the daemon runs \
                 (see `chat-cli files`)",
                path.display(),
                timeout.as_secs()
            );
        };
        let events = match next? {
            None => bail!("the daemon stopped before {} was sent", path.display()),
            Some(Incoming::Reply { id: i, result }) if i == call => {
                let v = result.map_err(|e| anyhow::anyhow!("send-file to {to:?}: {e}"))?;
                id = v.get("id").and_then(Value::as_u64);
                std::mem::take(&mut early)
            }
            Some(Incoming::Event(ev)) if id.is_none() => {
                early.push(ev);
                continue;
            }
            Some(Incoming::Event(ev)) => vec![ev],
            Some(_) => continue,
        };
        for ev in events {
            let kind = ev.get("event").and_then(Value::as_str);
            match kind {
                Some("file") if ev.get("outbox_id").and_then(Value::as_u64) == id => {
                    let Ok(f) = serde_json::from_value::<FileEntry>(ev.clone()) else {
                        continue;
                    };
                    let eta = ev.get("eta_rounds").and_then(Value::as_u64);
                    bar.show(&f, eta, &ev);
                    match f.state {
                        FileState::Sent => {
                            bar.end();
                            if !json {
                                println!("{} sent to {to}", f.name);
                            }
                            return Ok(ExitCode::SUCCESS);
                        }
                        FileState::Failed { reason } => {
                            bar.end();
                            eprintln!("{} to {to} failed: {reason}", f.name);
                            return Ok(ExitCode::FAILURE);
                        }
                        _ => {}
                    }
                }
                Some("state")
                    if ev.get("id").and_then(Value::as_u64) == id
                        && ev.get("state").and_then(Value::as_str) == Some("failed") =>
                {
                    bar.end();
                    let why = ev.get("reason").and_then(Value::as_str).unwrap_or("?");
                    eprintln!("{} to {to} failed: {why}", path.display());
                    return Ok(ExitCode::FAILURE);
                }
                _ => {}
            }
        }
    }
}

/// Progress: a bar redrawn in place on a terminal, else a line every tenth.
struct Bar {
    json: bool,
    tty: bool,
    shown_tenth: Option<u64>,
    drawn: bool,
}

impl Bar {
    fn new(json: bool) -> Self {
        Self {
            json,
            tty: std::io::stderr().is_terminal(),
            shown_tenth: None,
            drawn: false,
        }
    }

    fn show(&mut self, f: &FileEntry, eta: Option<u64>, ev: &Value) {
        if self.json {
            println!("{ev}");
            return;
        }
        let done = f.done_bytes();
        let frac = if f.size == 0 {
            1.0
        } else {
            done as f64 / f.size as f64
        };
        let eta = eta
            .map(|r| format!(", about {r} rounds left"))
            .unwrap_or_default();
        let words = format!(
            "{} / {} ({:.0}%), {} of {} chunks{eta}",
            size_text(done),
            size_text(f.size),
            frac * 100.0,
            f.done_chunks(),
            f.chunks
        );
        if self.tty {
            let filled = (frac * 30.0).round() as usize;
            let bar = format!("{}{}", "#".repeat(filled), " ".repeat(30 - filled.min(30)));
            eprint!("\r{} [{bar}] {words}   ", f.name);
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            let tenth = (frac * 10.0).floor() as u64;
            if self.shown_tenth != Some(tenth) {
                self.shown_tenth = Some(tenth);
                println!("{}: {words}", f.name);
            }
        }
    }

    fn end(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// Print every transfer.
pub fn list(files: &[FileEntry], json: bool) -> anyhow::Result<()> {
    for f in files {
        if json {
            println!("{}", serde_json::to_string(f)?);
            continue;
        }
        let (arrow, dir) = if f.outgoing {
            ("→", "to")
        } else {
            ("←", "from")
        };
        let state = match &f.state {
            FileState::Sending => format!(
                "sending, {} of {}",
                size_text(f.done_bytes()),
                size_text(f.size)
            ),
            FileState::Receiving => format!(
                "receiving, {} of {}",
                size_text(f.done_bytes()),
                size_text(f.size)
            ),
            FileState::Sent => "sent".into(),
            FileState::Received { path } => format!("saved at {path}"),
            FileState::Failed { reason } => format!("failed: {reason}"),
            FileState::Refused { reason } => format!("refused: {reason}"),
        };
        println!(
            "{arrow} {} ({}, {}) {dir} {}: {state}",
            f.name,
            size_text(f.size),
            f.mime,
            f.peer
        );
    }
    Ok(())
}

/// Every transfer: from the running daemon, else from the store.
pub async fn all(data_dir: &Path, socket: &Path) -> anyhow::Result<Vec<FileEntry>> {
    if client::daemon::running(socket).await {
        let mut d = DaemonClient::connect(socket).await?;
        let v = d.request("files", json!({})).await?;
        return serde_json::from_value(v).context("the daemon's file list");
    }
    let store = client::store::Store::open(data_dir)?;
    let mut files = store.files()?;
    for f in &mut files {
        f.key = None;
    }
    Ok(files)
}
