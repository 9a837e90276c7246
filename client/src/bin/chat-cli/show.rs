//! How `chat-cli` shows events: text for people, one JSON object per line with `--json`.

use client::engine::Event;
use serde_json::Value;

/// An event from the engine.
pub fn print(json: bool, ev: &Event) {
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
        Event::Board { text, round, .. } => println!("[round {round}] board: {text}"),
        Event::RoomMessage {
            room,
            from,
            text,
            round,
            ..
        } => println!("[round {round}] {room} / {from}: {text}"),
        Event::RoomNotice {
            room,
            notice,
            round,
        } => println!("[round {round}] {room}: {notice}"),
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
        Event::File { file } => {
            let f = &file.entry;
            let what = match &f.state {
                client::store::FileState::Received { path } => format!("saved at {path}"),
                other => serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.get("state").and_then(Value::as_str).map(String::from))
                    .unwrap_or_default(),
            };
            let dir = if f.outgoing { "to" } else { "from" };
            println!(
                "file {} {dir} {}: {} of {} — {what}",
                f.name,
                f.peer,
                client::core::size_text(file.done_bytes),
                client::core::size_text(f.size)
            );
        }
    }
}

/// A `state` event as the daemon sent it (the `--json` shape).
pub fn print_state(json: bool, ev: &Value) {
    if json {
        println!("{ev}");
        return;
    }
    let field = |k: &str| ev.get(k).cloned().unwrap_or(Value::Null);
    let round = field("round")
        .as_u64()
        .map(|r| format!(" round {r}"))
        .unwrap_or_default();
    let why = field("reason")
        .as_str()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    println!(
        "message {} to {} ({} slot(s)): {}{round}{why}",
        field("id"),
        field("to").as_str().unwrap_or("?"),
        field("fragments"),
        field("state").as_str().unwrap_or("?").replace('_', " ")
    );
}
