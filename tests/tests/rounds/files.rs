//! A file through the rounds, from the command line: 1 MiB sent with `chat-cli
//! send-file` through the sender's daemon while two other clients chat; the daemon is
//! killed halfway and started again; the file arrives intact at its recipient alone,
//! the chat never stops, and no server holds a byte of it or its name.

use std::process::Stdio;
use std::time::{Duration, Instant};

use client::engine::Event;
use client::store::{FileEntry, FileState};
use rand::{RngCore, SeedableRng};
use tests::cluster::ClusterOpts;

use crate::util::{cli, cluster, daemon, register_cli, run, until, walk, Client, DEADLINE};

const NAME: &str = "holiday-pictures.bin";
const SIZE: usize = 1024 * 1024;

/// The sender's view of its transfer, through its daemon.
async fn sender_file(c: &tests::cluster::Cluster) -> Option<FileEntry> {
    let (ok, out, _) = run(c, 1, &["--json", "files"]).await;
    if !ok {
        return None;
    }
    out.lines()
        .filter_map(|l| serde_json::from_str::<FileEntry>(l).ok())
        .find(|f| f.outgoing && f.name == NAME)
}

fn received_path(cl: &Client) -> Option<String> {
    cl.seen.iter().find_map(|e| match e {
        Event::File { file } => match &file.entry.state {
            FileState::Received { path } if file.entry.name == NAME => Some(path.clone()),
            _ => None,
        },
        _ => None,
    })
}

fn saw_a_file(cl: &Client) -> bool {
    cl.seen.iter().any(|e| matches!(e, Event::File { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_arrives_intact_only_at_its_recipient_while_others_chat_and_its_sender_restarts() {
    let c = cluster(ClusterOpts {
        clients: 4,
        round_ms: 400,
        min_anonymity_set: 3,
        ..ClusterOpts::default()
    })
    .await;
    let mut data = vec![0u8; SIZE];
    rand::rngs::StdRng::seed_from_u64(16).fill_bytes(&mut data);
    let path = c.dir.path().join(NAME);
    std::fs::write(&path, &data).unwrap();

    let mut clients = vec![
        Client::start(&c, 2).await,
        Client::start(&c, 3).await,
        Client::start(&c, 4).await,
    ];
    register_cli(&c, 1).await;
    let mut d1 = daemon(&c, 1).await;
    let path_arg = path.display().to_string();
    let mut sending = cli(&c, 1)
        .args(["send-file", "--to", "client-2", &path_arg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Client 3 writes to client 4 every few seconds all along.
    let mut said = Vec::new();
    let chat = |k: usize| format!("message {k} while the file goes");
    let end = Instant::now() + DEADLINE;
    let mut halfway = None;
    let mut k = 0;
    while halfway.is_none() {
        assert!(
            Instant::now() < end,
            "the file never got halfway\n{}",
            c.log_tails()
        );
        clients[1]
            .engine
            .send("client-4", &chat(k), false)
            .await
            .unwrap();
        said.push(chat(k));
        k += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
        for cl in &mut clients {
            cl.drain();
        }
        if let Some(f) = sender_file(&c).await {
            if f.done_bytes() >= SIZE as u64 / 2 {
                halfway = Some(f.done_bytes());
            }
        }
    }
    // The sender's daemon dies halfway (the command following it stops too) and comes
    // back: it goes on from where its store says it was.
    let _ = d1.kill().await;
    let _ = d1.wait().await;
    let _ = sending.wait().await;
    let mut d1 = daemon(&c, 1).await;
    let resumed = sender_file(&c)
        .await
        .expect("the transfer survives the restart");
    assert!(
        resumed.done_bytes() >= halfway.unwrap_or(0),
        "started over: {} bytes done after the restart, {halfway:?} before",
        resumed.done_bytes()
    );
    for _ in 0..3 {
        clients[1]
            .engine
            .send("client-4", &chat(k), false)
            .await
            .unwrap();
        said.push(chat(k));
        k += 1;
    }
    until(
        &c,
        &mut clients,
        "the file arrives and the chat is all in",
        |cl| {
            received_path(&cl[0]).is_some()
                && said
                    .iter()
                    .all(|t| cl[2].received().iter().any(|(_, r)| r == t))
        },
    )
    .await;
    let saved = received_path(&clients[0]).unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), data, "the file is intact");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{saved} is private");
    }
    assert!(
        clients[0]
            .received()
            .iter()
            .any(|(from, t)| from == "client-1" && t.starts_with("📎 holiday-pictures.bin")),
        "{:?}",
        clients[0].received()
    );
    assert!(!saw_a_file(&clients[1]) && !saw_a_file(&clients[2]));
    let end = Instant::now() + DEADLINE;
    while sender_file(&c).await.map(|f| f.state) != Some(FileState::Sent) {
        assert!(Instant::now() < end, "the sender never saw its file sent");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, listing, _) = run(&c, 1, &["files"]).await;
    assert!(
        ok && listing.contains("holiday-pictures.bin (1.0 MiB"),
        "{listing}"
    );
    let _ = d1.kill().await;

    // Nobody else holds a byte of it: not the other clients' data folders, not a
    // server's log, data files, metrics or status; and no server holds its name.
    let mut servers = c.logs().into_bytes();
    for n in &c.nodes {
        for f in walk(&n.data_dir) {
            servers.extend(std::fs::read(f).unwrap_or_default());
        }
        for p in ["/metrics", "/status"] {
            servers.extend(n.get(p).await.unwrap().1.into_bytes());
        }
    }
    let mut others = Vec::new();
    for j in [3, 4] {
        for f in walk(&c.dir.path().join(format!("data/client-{j}"))) {
            others.extend(std::fs::read(f).unwrap_or_default());
        }
    }
    let samples: Vec<&[u8]> = [0, SIZE / 3, SIZE / 2, SIZE - 64]
        .iter()
        .map(|&at| &data[at..at + 48])
        .collect();
    for hay in [&servers, &others] {
        for s in &samples {
            assert!(
                !hay.windows(s.len()).any(|w| w == *s),
                "a piece of the file leaked"
            );
        }
    }
    assert!(
        !servers.windows(NAME.len()).any(|w| w == NAME.as_bytes()),
        "a server holds the file's name"
    );
}
