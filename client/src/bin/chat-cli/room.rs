//! `chat-cli room …`: rooms, through this identity's running daemon (a room lives in the
//! rounds: only an always-online client sees its requests and commits when they come).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use client::daemon::DaemonClient;
use serde_json::{json, Value};

/// What `chat-cli room` does.
#[derive(Subcommand, Debug)]
pub enum RoomCommand {
    /// Create room NAME; you are its admin.
    Create {
        /// The room's name.
        name: String,
        /// Only admins approve newcomers, remove members or rename (default: any member).
        #[arg(long)]
        admins_only: bool,
        /// Newcomers read only what is said after they join (default: they are handed
        /// the room's history, as far back as the servers keep it).
        #[arg(long)]
        no_history: bool,
    },
    /// Ask MEMBER, someone in room NAME, to let you in; members then approve or decline.
    Join {
        /// The room's name.
        name: String,
        /// A member you know (a registered name).
        #[arg(long, value_name = "MEMBER")]
        via: String,
    },
    /// Requests waiting in your rooms, and rooms you wait to join.
    Requests,
    /// Let USER into room NAME (commits the add; USER is welcomed with the history).
    Approve {
        /// Room.
        name: String,
        /// Who asked.
        user: String,
    },
    /// Turn down USER's request to join NAME.
    Decline {
        /// Room.
        name: String,
        /// Who asked.
        user: String,
    },
    /// Say TEXT in room NAME; waits until it is sent.
    Send {
        /// Room.
        name: String,
        /// The message.
        text: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Send the file at PATH to everyone in room NAME (as `send-file`: a progress bar,
    /// waits until every chunk is out).
    SendFile {
        /// Room.
        name: String,
        /// Stop waiting after this many seconds (the daemon goes on sending).
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// The file.
        path: std::path::PathBuf,
    },
    /// Room NAME's messages and membership changes, oldest first.
    History {
        /// Room.
        name: String,
    },
    /// Room NAME's members, with their fingerprints.
    Members {
        /// Room.
        name: String,
    },
    /// Leave room NAME.
    Leave {
        /// Room.
        name: String,
    },
    /// Remove USER from room NAME: a new epoch, so USER reads nothing sent after.
    Remove {
        /// Room.
        name: String,
        /// Member.
        user: String,
    },
    /// Rename room NAME to TO.
    Rename {
        /// Room.
        name: String,
        /// New name.
        to: String,
    },
    /// Your rooms.
    List,
}

async fn room(d: &mut DaemonClient, params: Value) -> anyhow::Result<Value> {
    d.request("room", params)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Run a room command; `history` reads the local history (through the daemon if one
/// runs), everything else needs the daemon.
pub async fn run(
    socket: &Path,
    running: bool,
    history: Vec<client::store::HistoryEntry>,
    cmd: RoomCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let RoomCommand::History { name } = &cmd {
        let peer = format!("#room/{}", name.trim());
        let mut entries: Vec<_> = history.into_iter().filter(|e| e.peer == peer).collect();
        entries.sort_by_key(|e| if e.round == 0 { u64::MAX } else { e.round });
        for e in entries {
            if json {
                println!("{}", serde_json::to_string(&e)?);
                continue;
            }
            let mine = e.direction == client::store::Direction::Sent;
            let text = if mine {
                format!("you: {}", e.text)
            } else {
                e.text
            };
            match e.round {
                0 => println!("[{}] {text}", e.state),
                r => println!("round {r:>6} {text}"),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !running {
        bail!(
            "no daemon is running (socket {}): rooms live in the rounds, so they need this \
             identity's always-online client. Start it with `chat-cli --config FILE listen`.",
            socket.display()
        );
    }
    let mut d = DaemonClient::connect(socket).await?;
    let say = |v: &Value| {
        if json {
            println!("{v}");
        }
    };
    match cmd {
        RoomCommand::Create {
            name,
            admins_only,
            no_history,
        } => {
            let v = room(
                &mut d,
                json!({"op": "create", "name": name, "admins_only": admins_only, "history": !no_history}),
            )
            .await?;
            say(&v);
            if !json {
                println!("created room {}", v["room"].as_str().unwrap_or(&name));
            }
        }
        RoomCommand::Join { name, via } => {
            let v = room(&mut d, json!({"op": "join", "name": name, "via": via})).await?;
            say(&v);
            if !json {
                println!("asked {via} to let you into {name}: waiting for approval");
            }
        }
        RoomCommand::Approve { name, user } => {
            let v = room(&mut d, json!({"op": "approve", "name": name, "user": user})).await?;
            say(&v);
            if !json {
                println!("approving {user} in {name}: adding them once the commit is in a round");
            }
        }
        RoomCommand::Decline { name, user } => {
            let v = room(&mut d, json!({"op": "decline", "name": name, "user": user})).await?;
            say(&v);
            if !json {
                println!("declined {user} in {name}");
            }
        }
        RoomCommand::Leave { name } => {
            let v = room(&mut d, json!({"op": "leave", "name": name})).await?;
            say(&v);
            if !json {
                println!("leaving {name}");
            }
        }
        RoomCommand::Remove { name, user } => {
            let v = room(&mut d, json!({"op": "remove", "name": name, "user": user})).await?;
            say(&v);
            if !json {
                println!("removing {user} from {name}");
            }
        }
        RoomCommand::Rename { name, to } => {
            let v = room(&mut d, json!({"op": "rename", "name": name, "to": to})).await?;
            say(&v);
            if !json {
                println!("renaming {name} to {to}");
            }
        }
        RoomCommand::Send {
            name,
            text,
            timeout_secs,
        } => {
            let params = json!({"op": "send", "name": name, "text": text});
            let timeout = Duration::from_secs(timeout_secs);
            return super::follow_via_daemon(socket, "room", params, &name, timeout, json).await;
        }
        RoomCommand::Requests | RoomCommand::List | RoomCommand::Members { .. } => {
            let v = room(&mut d, json!({"op": "list"})).await?;
            print_list(&cmd, &v, json).context("the daemon's room list")?;
        }
        RoomCommand::History { .. } | RoomCommand::SendFile { .. } => {
            unreachable!("handled before")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(cmd: &RoomCommand, v: &Value, json: bool) -> anyhow::Result<()> {
    let rooms = v["rooms"].as_array().cloned().unwrap_or_default();
    let waiting = v["waiting"].as_array().cloned().unwrap_or_default();
    match cmd {
        RoomCommand::Members { name } => {
            let r = rooms
                .iter()
                .find(|r| r["name"] == name.trim())
                .with_context(|| format!("you are in no room named {name:?}"))?;
            for m in r["members"].as_array().cloned().unwrap_or_default() {
                if json {
                    println!("{m}");
                } else {
                    let admin = if m["admin"] == true { " (admin)" } else { "" };
                    let fp = m["fingerprint"].as_str().unwrap_or("");
                    println!("{}{admin}  {}", m["name"].as_str().unwrap_or("?"), fp);
                }
            }
        }
        RoomCommand::Requests => {
            for r in &rooms {
                for q in r["requests"].as_array().cloned().unwrap_or_default() {
                    let (room, user) = (r["name"].as_str(), q.as_str());
                    if json {
                        println!("{}", json!({"room": room, "user": user}));
                    } else {
                        println!(
                            "{} asks to join {}",
                            user.unwrap_or("?"),
                            room.unwrap_or("?")
                        );
                    }
                }
            }
            for w in &waiting {
                if json {
                    println!("{w}");
                } else {
                    println!(
                        "you: waiting for approval to join {} (asked {})",
                        w["room"].as_str().unwrap_or("?"),
                        w["via"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        _ => {
            if json {
                println!("{v}");
                return Ok(());
            }
            for r in &rooms {
                let members = r["members"].as_array().map_or(0, Vec::len);
                let requests = r["requests"].as_array().map_or(0, Vec::len);
                println!(
                    "{}: {members} member(s), {requests} request(s)",
                    r["name"].as_str().unwrap_or("?")
                );
            }
            for w in &waiting {
                println!(
                    "{}: waiting for approval",
                    w["room"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
