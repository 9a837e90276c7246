//! `chat-cli`: Chorus from the command line, for people, scripts and tests.
//!
//! Every command takes `--config FILE` (a `client-<j>.toml` from keygen). With `--json`
//! each event is printed as one JSON object per line.
//!
//! `listen` (alias `daemon`) is the always-online client: it takes part in every round
//! and serves the identity's local JSON-RPC socket ([`client::daemon`]). While it runs,
//! `send`, `register` and `history` go through it; `send` without one refuses, since a
//! client online only to send shows when its user writes.

#[path = "chat-cli/backup.rs"]
mod backup;
#[path = "chat-cli/files.rs"]
mod files;
#[path = "chat-cli/room.rs"]
mod room;
#[path = "chat-cli/show.rs"]
mod show;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use client::config::Settings;
use client::daemon::{self, Daemon, DaemonClient, Incoming};
use client::engine::{self, Delivery, Event};
use client::store::{Direction, HistoryEntry, Store};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

/// Anonymous chat over a Chorus cluster.
#[derive(Parser, Debug)]
#[command(name = "chat-cli", version, about, long_about = None)]
struct Cli {
    /// Client config file (as written by `keygen cluster`).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Print one JSON object per event instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register NAME (default: the name in the config) for this identity.
    Register {
        /// The name to claim.
        name: Option<String>,
    },
    /// Send TEXT to the user registered as NAME through this identity's running
    /// `listen`/`daemon`; waits until it is sent or fails.
    Send {
        /// Recipient: a registered name, or `key:<hex>` (the `reply_to` of a message,
        /// which is how to answer an anonymous sender).
        #[arg(long)]
        to: String,
        /// Hide from the recipient too: send from a one-time reply key.
        #[arg(long)]
        anonymous: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Send from a client started just for this message. Weaker: servers and anyone
        /// watching the network see a client come online exactly when you write.
        #[arg(long)]
        without_daemon: bool,
        /// The message.
        text: String,
    },
    /// Stay online: take part in every round, print what arrives, and serve the local
    /// socket that `send`, scripts and bots use (JSON-RPC, `chat.sock` in the data
    /// folder). With --stdin, lines of the form `NAME: text` are sent as messages.
    #[command(alias = "daemon")]
    Listen {
        /// Read `NAME: text` lines from standard input and send them.
        #[arg(long)]
        stdin: bool,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        for_secs: Option<u64>,
    },
    /// Show the local message history.
    History {
        /// Only the conversation with NAME.
        #[arg(long)]
        with: Option<String>,
    },
    /// Show each server's view of the cluster.
    Status,
    /// Rooms: group conversations whose members approve newcomers (needs the daemon).
    Room {
        #[command(subcommand)]
        action: room::RoomCommand,
    },
    /// The public board: posts anyone can read, naming no sender.
    Board {
        #[command(subcommand)]
        action: BoardCommand,
    },
    /// Send the file at PATH to NAME through this identity's running `listen`/`daemon`,
    /// in chunks over as many rounds as it needs; shows progress and waits until every
    /// chunk is out. At most `client.max_file_bytes` (default 8 MiB).
    SendFile {
        /// Recipient: a registered name, `key:<hex>`, or `#room/NAME` (everyone in a room;
        /// also `room send-file NAME PATH`).
        #[arg(long)]
        to: String,
        /// Stop waiting after this many seconds (the daemon goes on sending).
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// The file.
        path: PathBuf,
    },
    /// Files sent and received, with their progress; received files are saved in the
    /// data folder's `files/`.
    Files,
    /// Key backup: keys and contacts, encrypted, the key shared across the servers and
    /// opened with a passphrase.
    Backup {
        #[command(subcommand)]
        action: backup::BackupCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BoardCommand {
    /// Post TEXT to the board through this identity's running `listen`/`daemon`; waits
    /// until it is on the board or failed. The post names nobody (a one-time key seals
    /// it), and nobody can reply to it.
    Post {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Post from a client started just for this (servers and observers see a client
        /// come online exactly when something appears on the board).
        #[arg(long)]
        without_daemon: bool,
        /// The post.
        text: String,
    },
    /// Show the board posts this client has seen (received while online or caught up
    /// from the servers' retained rounds), and its own, oldest first.
    Read {
        /// Only the newest N posts.
        #[arg(long)]
        last: Option<usize>,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    // A restore runs on a machine with no identity yet: it needs no client config.
    if let Command::Backup { action } = cli.command {
        return backup::run(action, cli.config.as_deref(), cli.json).await;
    }
    let config = cli
        .config
        .clone()
        .context("--config FILE is required (a client-<j>.toml from keygen)")?;
    let settings = Settings::load(&config)?;
    let json = cli.json;
    // A board post is a message to the board's address: the same path, daemon rule
    // and states.
    let command = match cli.command {
        Command::Board {
            action:
                BoardCommand::Post {
                    timeout_secs,
                    without_daemon,
                    text,
                },
        } => Command::Send {
            to: client::core::BOARD_ADDRESS.into(),
            anonymous: false,
            timeout_secs,
            without_daemon,
            text,
        },
        Command::Room {
            action:
                room::RoomCommand::SendFile {
                    name,
                    timeout_secs,
                    path,
                },
        } => Command::SendFile {
            to: client::rooms::book::address(&name),
            timeout_secs,
            path,
        },
        other => other,
    };
    let socket = daemon::socket_path(&settings.data_dir);
    match command {
        Command::Board {
            action: BoardCommand::Read { last },
        } => {
            let board = client::core::BOARD_ADDRESS;
            let entries = history(&settings, &socket, Some(board)).await?;
            let entries: Vec<HistoryEntry> =
                entries.into_iter().filter(|e| e.peer == board).collect();
            let skip = last.map_or(0, |n| entries.len().saturating_sub(n));
            for e in entries.into_iter().skip(skip) {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                    continue;
                }
                let when = if e.round == 0 {
                    format!("[{}]", e.state)
                } else {
                    format!("round {:>6}", e.round)
                };
                let mine = if e.direction == Direction::Sent {
                    " (you)"
                } else {
                    ""
                };
                println!("{when}{mine}: {}", e.text);
            }
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Files => {
            let all = files::all(&settings.data_dir, &socket).await?;
            files::list(&all, json)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::SendFile {
            to,
            timeout_secs,
            path,
        } => {
            if !daemon::running(&socket).await {
                bail!(
                    "no daemon is running for {} (socket {}); a file takes many rounds, so it \
                     goes through one: start it with `chat-cli --config {} listen` and send again",
                    settings.name,
                    socket.display(),
                    config.display()
                );
            }
            let timeout = Duration::from_secs(timeout_secs);
            return files::send(&socket, &to, &path, timeout, json).await;
        }
        Command::Room { action } => {
            let running = daemon::running(&socket).await;
            let entries = match &action {
                room::RoomCommand::History { .. } => history(&settings, &socket, None).await?,
                _ => Vec::new(),
            };
            return room::run(&socket, running, entries, action, json).await;
        }
        Command::History { with } => {
            let entries = history(&settings, &socket, with.as_deref()).await?;
            for e in entries {
                if with.as_ref().is_some_and(|w| w != &e.peer) {
                    continue;
                }
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    let arrow = if e.direction == Direction::Sent {
                        "→"
                    } else {
                        "←"
                    };
                    let state = if e.state.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", e.state)
                    };
                    println!("round {:>6} {arrow} {}: {}{state}", e.round, e.peer, e.text);
                }
            }
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Status => {
            let (conn, _events) = client::conn::ClusterConn::connect(settings.servers.clone())?;
            for s in &settings.servers {
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    conn.request(s.index, protocol::wire::ClientRequest::Status),
                )
                .await;
                match r {
                    Ok(Ok(protocol::wire::ClientResponse::Status(st))) => {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"server": s.index, "up": true, "leader": st.leader, "open_round": st.open_round, "last_revealed": st.last_revealed, "last_participants": st.last_participants})
                            );
                        } else {
                            println!("server {}: up, leader {:?}, round {}, last revealed {:?}, last anonymity set {}", s.index, st.leader, st.open_round, st.last_revealed, st.last_participants);
                        }
                    }
                    other => {
                        let why = match other {
                            Ok(Ok(resp)) => format!("{resp:?}"),
                            Ok(Err(e)) => e.to_string(),
                            Err(_) => "timed out".into(),
                        };
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"server": s.index, "up": false, "error": why})
                            );
                        } else {
                            println!("server {}: down ({why})", s.index);
                        }
                    }
                }
            }
            return Ok(std::process::ExitCode::SUCCESS);
        }
        _ => {}
    }
    let name = settings.name.clone();
    let with_daemon = daemon::running(&socket).await;
    match command {
        Command::Send {
            to,
            anonymous,
            timeout_secs,
            text,
            without_daemon: false,
        } => {
            if !with_daemon {
                bail!(
                    "no daemon is running for {name} (socket {}).\n\
                     A client started just to send is online only when you write, so the \
                     servers and anyone watching the network see when you send. Start one with \
                     `chat-cli --config {} listen` and send again, or pass --without-daemon \
                     to send anyway.",
                    socket.display(),
                    config.display()
                );
            }
            let timeout = Duration::from_secs(timeout_secs);
            let params = json!({"to": to, "text": text, "anonymous": anonymous});
            return follow_via_daemon(&socket, "send", params, &to, timeout, json).await;
        }
        Command::Register { name: n } if with_daemon => {
            let n = n.unwrap_or(name);
            let mut d = DaemonClient::connect(&socket).await?;
            let v = d
                .request("register", json!({ "name": n }))
                .await
                .map_err(|e| anyhow::anyhow!("register {n:?}: {e}"))?;
            let n = v.get("name").and_then(Value::as_str).unwrap_or(&n);
            registered(json, n);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        Command::Listen { .. } if with_daemon => {
            bail!(
                "a daemon for {name} is already running (socket {}): it is in every round; \
                 use `chat-cli send` to write through it",
                socket.display()
            );
        }
        _ => {}
    }
    let store = Store::open(&settings.data_dir)?;
    let (engine, mut events) = engine::start_with(settings, store.clone())?;
    match command {
        Command::Register { name: n } => {
            let n = n.unwrap_or(name);
            match engine.register(&n).await {
                Ok(()) => {
                    registered(json, &protocol::names::normalise(&n).unwrap_or(n));
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(e) => bail!("register {n:?}: {e}"),
            }
        }
        Command::Send {
            to,
            anonymous,
            timeout_secs,
            text,
            ..
        } => {
            let id = engine
                .send(&to, &text, anonymous)
                .await
                .map_err(|e| anyhow::anyhow!("send to {to:?}: {e}"))?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_secs);
            loop {
                let ev = tokio::time::timeout_at(deadline, events.recv()).await;
                let Ok(Some(ev)) = ev else {
                    bail!("message {id} to {to} was not sent within {timeout_secs} s");
                };
                show::print(json, &ev);
                if let Event::State {
                    id: i, delivery, ..
                } = &ev
                {
                    match delivery {
                        Delivery::Sent(_) if *i == id => {
                            return Ok(std::process::ExitCode::SUCCESS)
                        }
                        Delivery::Failed { .. } if *i == id => {
                            return Ok(std::process::ExitCode::FAILURE)
                        }
                        _ => {}
                    }
                }
            }
        }
        Command::Listen { stdin, for_secs } => {
            let listener = daemon::bind(&socket).await?;
            let server = Daemon::new(engine.clone(), store);
            let fan_out = server.events.clone();
            let serving = tokio::spawn(server.serve(listener));
            eprintln!("in every round; local socket {}", socket.display());
            let stop = async move {
                match for_secs {
                    Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::pin!(stop);
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            let mut stdin_open = stdin;
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    ev = events.recv() => match ev {
                        Some(ev) => {
                            show::print(json, &ev);
                            let _ = fan_out.send(ev);
                        }
                        None => break,
                    },
                    line = lines.next_line(), if stdin_open => match line {
                        Ok(Some(line)) => {
                            let Some((to, text)) = line.split_once(':') else {
                                eprintln!("error: expected `NAME: text`, got {line:?}");
                                continue;
                            };
                            if let Err(e) = engine.send(to.trim(), text.trim(), false).await {
                                show::print(json, &Event::Error { message: format!("send to {}: {e}", to.trim()) });
                            }
                        }
                        _ => stdin_open = false,
                    },
                }
            }
            serving.abort();
            let _ = std::fs::remove_file(&socket);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::History { .. }
        | Command::Status
        | Command::Board { .. }
        | Command::SendFile { .. }
        | Command::Files
        | Command::Backup { .. }
        | Command::Room { .. } => {
            unreachable!("handled above")
        }
    }
}

/// The local history, read through the daemon when one runs (it holds the store open).
async fn history(
    settings: &Settings,
    socket: &std::path::Path,
    with: Option<&str>,
) -> anyhow::Result<Vec<HistoryEntry>> {
    if daemon::running(socket).await {
        let mut d = DaemonClient::connect(socket).await?;
        let v = d.request("history", json!({ "with": with })).await?;
        return serde_json::from_value(v).context("the daemon's history");
    }
    let store = Store::open(&settings.data_dir)?;
    Ok(store.history()?.into_iter().map(|(_, e)| e).collect())
}

fn registered(json: bool, name: &str) {
    if json {
        println!("{}", json!({"event": "registered", "name": name}));
    } else {
        println!("registered as {name}");
    }
}

/// A message queued through the running daemon (`method` answers with its `id`): its
/// states as they happen, until it is sent (success) or failed.
async fn follow_via_daemon(
    socket: &std::path::Path,
    method: &str,
    params: Value,
    to: &str,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let mut d = DaemonClient::connect(socket).await?;
    d.request("subscribe", json!({})).await?;
    let call = d.call(method, params).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    // States may arrive before the reply that names the message's id.
    let mut id: Option<u64> = None;
    let mut early: Vec<Value> = Vec::new();
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, d.next()).await else {
            bail!(
                "the message to {to} was not sent within {} s",
                timeout.as_secs()
            );
        };
        let states = match next? {
            None => bail!("the daemon stopped before the message to {to} was sent"),
            Some(Incoming::Reply { id: i, result }) if i == call => {
                let v = result.map_err(|e| anyhow::anyhow!("send to {to:?}: {e}"))?;
                id = v.get("id").and_then(Value::as_u64);
                std::mem::take(&mut early)
            }
            Some(Incoming::Event(ev))
                if ev.get("event").and_then(Value::as_str) == Some("state") =>
            {
                if id.is_none() {
                    early.push(ev);
                    continue;
                }
                vec![ev]
            }
            Some(_) => continue,
        };
        for ev in states {
            if ev.get("id").and_then(Value::as_u64) != id {
                continue;
            }
            show::print_state(json, &ev);
            match ev.get("state").and_then(Value::as_str) {
                Some("sent") => return Ok(std::process::ExitCode::SUCCESS),
                Some("failed") => return Ok(std::process::ExitCode::FAILURE),
                _ => {}
            }
        }
    }
}
