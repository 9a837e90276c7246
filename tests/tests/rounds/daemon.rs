//! The always-online client as a user and a script use it: `chat-cli listen` serves the
//! identity's socket, `chat-cli send` goes through it, JSON-RPC works and refuses bad
//! input by name, and `send` without a daemon refuses unless told otherwise.

use std::process::Stdio;
use std::time::{Duration, Instant};

use client::daemon::{DaemonClient, Incoming};
use serde_json::{json, Value};
use tests::cluster::ClusterOpts;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::util::{cli, cluster, register_cli, run, until, Client, DEADLINE};

/// Call `method` on a fresh connection and return the raw reply line.
async fn raw(socket: &std::path::Path, line: &[u8]) -> Value {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(line).await.unwrap();
    let mut lines = BufReader::new(read).lines();
    let reply = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a reply")
        .unwrap()
        .unwrap_or_default();
    serde_json::from_str(&reply).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_serves_send_history_and_json_rpc_over_its_private_socket() {
    let c = cluster(ClusterOpts {
        clients: 4,
        round_ms: 400,
        min_anonymity_set: 3,
        ..ClusterOpts::default()
    })
    .await;
    let mut others = vec![Client::start(&c, 2).await, Client::start(&c, 3).await];
    register_cli(&c, 1).await;

    let mut daemon = cli(&c, 1)
        .args(["--json", "listen"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut daemon_out = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let socket = c.dir.path().join("data/client-1/chat.sock");
    let end = Instant::now() + DEADLINE;
    while !client::daemon::running(&socket).await {
        assert!(Instant::now() < end, "the daemon never opened {socket:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode");

    // A second daemon for the same identity refuses.
    let (ok, _, err) = run(&c, 1, &["listen", "--for-secs", "5"]).await;
    assert!(!ok && err.contains("already running"), "{err}");

    // `chat-cli send` through the daemon waits until the message is sent.
    let (ok, out, err) = run(&c, 1, &["send", "--to", "client-2", "via the daemon"]).await;
    assert!(ok, "send failed: {out}\n{err}");
    assert!(out.contains(": sent round"), "{out}");
    until(&c, &mut others, "client-2 hears the daemon", |cl| {
        cl[0]
            .received()
            .contains(&("client-1".into(), "via the daemon".into()))
    })
    .await;

    // JSON-RPC from a script: subscribe, look up, send, and follow the message.
    let mut rpc = DaemonClient::connect(&socket).await.unwrap();
    assert_eq!(
        rpc.request("subscribe", json!({})).await.unwrap(),
        json!(true)
    );
    let found = rpc
        .request("lookup", json!({"name": "Client-3"}))
        .await
        .unwrap();
    assert_eq!(found["name"], "client-3");
    assert_eq!(found["fingerprint"].as_str().map(str::len), Some(64));
    let id = rpc
        .request("send", json!({"to": "client-3", "text": "from a script"}))
        .await
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let sent = tokio::time::timeout(DEADLINE, async {
        loop {
            match rpc.next().await.unwrap() {
                Some(Incoming::Event(ev))
                    if ev["event"] == "state" && ev["id"] == id && ev["state"] == "sent" =>
                {
                    return true
                }
                Some(_) => {}
                None => return false,
            }
        }
    })
    .await;
    assert_eq!(sent.ok(), Some(true), "no sent state for message {id}");
    let err = rpc
        .request("send", json!({"to": "client-3"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("params.text"), "{err}");

    // Bad input is answered by name, and the daemon goes on serving.
    let reply = raw(&socket, b"this is not json\n").await;
    assert_eq!(reply["error"]["code"], -32700);
    let reply = raw(
        &socket,
        b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"nope\"}\n",
    )
    .await;
    assert_eq!(reply["error"]["code"], -32601);
    assert_eq!(reply["id"], 7);
    let mut huge = vec![b'x'; client::daemon::MAX_LINE_BYTES + 10];
    huge.push(b'\n');
    let reply = raw(&socket, &huge).await;
    assert_eq!(reply["error"]["code"], -32600);

    // What arrives for client-1 is printed by its daemon.
    others[1]
        .engine
        .send("client-1", "to the daemon", false)
        .await
        .unwrap();
    let heard = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = daemon_out.next_line().await {
            if line.contains("\"event\":\"message\"") && line.contains("to the daemon") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard.ok(), Some(true), "the daemon printed the message");

    // History while the daemon holds the store: read through it.
    let (ok, out, err) = run(&c, 1, &["history"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("via the daemon") && out.contains("to the daemon"),
        "{out}"
    );

    // Without a daemon, `send` refuses and says how to go on; told to, it sends.
    let (ok, _, err) = run(&c, 4, &["send", "--to", "client-2", "one-shot"]).await;
    assert!(!ok && err.contains("--without-daemon"), "{err}");
    let (ok, out, err) = run(
        &c,
        4,
        &["send", "--without-daemon", "--to", "client-2", "one-shot"],
    )
    .await;
    assert!(ok, "send --without-daemon: {out}\n{err}");
    let _ = daemon.kill().await;
}
