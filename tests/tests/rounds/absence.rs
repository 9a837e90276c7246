//! A user of `chat-cli` who is away for 500 rounds gets every message sent meanwhile,
//! run as a user runs it: `listen`, Ctrl-C, and `listen` again minutes later.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tests::cluster::{binary, Cluster, ClusterOpts};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{cluster, Client};

/// The open round, as the first server that answers says.
async fn round(c: &Cluster) -> u64 {
    for i in 0..c.nodes.len() {
        if let Some(s) = c.status(i).await {
            if let Some(r) = s["round"].as_u64() {
                return r;
            }
        }
    }
    0
}

/// `chat-cli --json listen` for client `j`, and its stdout lines.
fn listen(
    c: &Cluster,
    j: u32,
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = tokio::process::Command::new(binary("client", "chat-cli"))
        .arg("--config")
        .arg(c.client_config(j))
        .args(["--json", "listen"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-cli listen");
    let out = child.stdout.take().expect("stdout");
    (child, BufReader::new(out).lines())
}

/// Keep the online clients' event queues drained while waiting.
async fn wait_rounds(c: &Cluster, clients: &mut [Client], until_round: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while round(c).await < until_round {
        assert!(
            Instant::now() < deadline,
            "rounds stalled before {until_round}"
        );
        for cl in clients.iter_mut() {
            cl.drain();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_cli_user_away_for_500_rounds_receives_every_message() {
    let c = cluster(ClusterOpts {
        clients: 5,
        round_ms: 200,
        min_anonymity_set: 3,
        retention_rounds: 3600,
        ..ClusterOpts::default()
    })
    .await;
    let mut online = Vec::new();
    for j in 1..=4 {
        online.push(Client::start(&c, j).await);
    }
    // client-5 registers and listens until it has seen a round, then its user quits.
    let cli = binary("client", "chat-cli");
    let mut registered = false;
    for _ in 0..40 {
        let ok = tokio::process::Command::new(&cli)
            .arg("--config")
            .arg(c.client_config(5))
            .args(["register", "client-5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if ok {
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(registered, "chat-cli register failed");
    let (mut child, mut lines) = listen(&c, 5);
    let seen_round = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("\"event\":\"round\"") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        seen_round.ok(),
        Some(true),
        "chat-cli listen never saw a round"
    );
    let pid = child.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;

    // 10 messages over 500 rounds while client-5 is away.
    let start = round(&c).await;
    let mut texts = Vec::new();
    for i in 0..10u64 {
        wait_rounds(&c, &mut online, start + 50 * i).await;
        let text = format!("away message {i} #{:08x}", rand::random::<u32>());
        online[(i % 4) as usize]
            .engine
            .send("client-5", &text, false)
            .await
            .unwrap();
        texts.push(text);
    }
    wait_rounds(&c, &mut online, start + 500).await;

    // Back: every message, once.
    let (_child, mut lines) = listen(&c, 5);
    let mut got: HashMap<String, usize> = HashMap::new();
    let all = tokio::time::timeout(Duration::from_secs(180), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if ev["event"] == "gap" {
                panic!("a gap within retention: {line}");
            }
            if ev["event"] == "message" {
                let text = ev["text"].as_str().unwrap_or_default().to_string();
                *got.entry(text).or_default() += 1;
                if texts.iter().all(|t| got.contains_key(t)) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(
        all.ok(),
        Some(true),
        "missing after 500 rounds away: {:?}",
        texts
            .iter()
            .filter(|t| !got.contains_key(*t))
            .collect::<Vec<_>>()
    );
    assert!(
        got.values().all(|n| *n == 1),
        "a message arrived twice: {got:?}"
    );
}
