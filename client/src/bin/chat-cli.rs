//! `chat-cli`: Chorus from the command line, for people, scripts and tests.
//!
//! Every command takes `--config FILE` (a `client-<j>.toml` from keygen). With `--json`
//! each event is printed as one JSON object per line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use client::config::Settings;
use client::engine::{self, Delivery, Event};
use client::store::{Direction, Store};
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
    /// Send TEXT to the user registered as NAME; waits until it is sent or fails.
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
        /// The message.
        text: String,
    },
    /// Take part in every round and print what arrives. With --stdin, lines of the form
    /// `NAME: text` are sent as messages.
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
}

fn print(json: bool, ev: &Event) {
    if json {
        if let Ok(line) = serde_json::to_string(ev) {
            println!("{line}");
        }
        return;
    }
    match ev {
        Event::Message {
            from,
            text,
            round,
            latency_ms,
            anonymous,
            reply_to,
            ..
        } => {
            if *anonymous {
                println!(
                    "[round {round}, {latency_ms} ms] {from}: {text}  (reply with --to {reply_to})"
                )
            } else {
                println!("[round {round}, {latency_ms} ms] {from}: {text}")
            }
        }
        Event::State {
            id,
            to,
            delivery,
            fragments,
        } => {
            let r = delivery
                .round()
                .map(|r| format!(" round {r}"))
                .unwrap_or_default();
            let why = delivery
                .reason()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            println!("message {id} to {to} ({fragments} slot(s)): {delivery}{r}{why}");
        }
        Event::ServerUp { server } => eprintln!("server {server} up"),
        Event::ServerDown { server } => eprintln!("server {server} down"),
        Event::Round { .. } => {}
        Event::Gap {
            from_round,
            to_round,
        } => {
            println!("rounds {from_round}..={to_round} are no longer kept by the servers; messages sent then are lost")
        }
        Event::Error { message } => eprintln!("error: {message}"),
    }
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
    let config = cli
        .config
        .clone()
        .context("--config FILE is required (a client-<j>.toml from keygen)")?;
    let settings = Settings::load(&config)?;
    let json = cli.json;
    match cli.command {
        Command::History { with } => {
            let store = Store::open(&settings.data_dir)?;
            for (_, e) in store.history()? {
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
    let (engine, mut events) = engine::start(settings)?;
    match cli.command {
        Command::Register { name: n } => {
            let n = n.unwrap_or(name);
            match engine.register(&n).await {
                Ok(()) => {
                    if json {
                        println!("{}", serde_json::json!({"event": "registered", "name": n}));
                    } else {
                        println!("registered as {n}");
                    }
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
                print(json, &ev);
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
                        Some(ev) => print(json, &ev),
                        None => break,
                    },
                    line = lines.next_line(), if stdin_open => match line {
                        Ok(Some(line)) => {
                            let Some((to, text)) = line.split_once(':') else {
                                eprintln!("error: expected `NAME: text`, got {line:?}");
                                continue;
                            };
                            if let Err(e) = engine.send(to.trim(), text.trim(), false).await {
                                print(json, &Event::Error { message: format!("send to {}: {e}", to.trim()) });
                            }
                        }
                        _ => stdin_open = false,
                    },
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::History { .. } | Command::Status => unreachable!("handled above"),
    }
}
