//! The public board from the command line: a post through the daemon reaches every
//! online client, names nobody, and `board read` shows what the board said.

use std::time::{Duration, Instant};

use client::core::BOARD_ADDRESS;
use client::engine::Event;
use tests::cluster::ClusterOpts;

use crate::util::{cluster, daemon, run, until, Client, DEADLINE};

fn posts(cl: &Client) -> Vec<String> {
    cl.seen
        .iter()
        .filter_map(|e| match e {
            Event::Board { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_through_the_daemon_reaches_every_reader_and_names_nobody() {
    let c = cluster(ClusterOpts {
        clients: 3,
        round_ms: 400,
        min_anonymity_set: 3,
        ..ClusterOpts::default()
    })
    .await;
    let mut readers = vec![Client::start(&c, 2).await, Client::start(&c, 3).await];
    // Client 1 posts through its daemon; it need not even be registered.
    let mut daemon = daemon(&c, 1).await;

    let (ok, out, err) = run(&c, 1, &["board", "post", "the fountain at noon"]).await;
    assert!(ok, "board post failed: {out}\n{err}");
    assert!(out.contains(": sent round"), "{out}");
    until(&c, &mut readers, "both readers see the post", |cl| {
        cl.iter()
            .all(|r| posts(r) == vec!["the fountain at noon".to_string()])
    })
    .await;
    for r in &readers {
        assert!(
            r.received().is_empty(),
            "{}: a post is no private message: {:?}",
            r.name,
            r.received()
        );
    }

    // A post from an in-process client comes back to the daemon's board as someone's,
    // and the poster's own as "(you)", in the order they happened.
    readers[0]
        .engine
        .send(BOARD_ADDRESS, "see you there", false)
        .await
        .unwrap();
    until(&c, &mut readers, "the second post", |cl| {
        posts(&cl[1]).len() == 2
    })
    .await;
    let end = Instant::now() + DEADLINE;
    loop {
        let (ok, out, err) = run(&c, 1, &["board", "read"]).await;
        assert!(ok, "board read: {err}");
        let lines: Vec<&str> = out.lines().collect();
        if lines.len() == 2 {
            assert!(lines[0].contains("(you): the fountain at noon"), "{out}");
            assert!(lines[1].ends_with(": see you there"), "{out}");
            assert!(!lines[1].contains("(you)"), "{out}");
            assert!(!out.contains("client-"), "a post names nobody: {out}");
            break;
        }
        assert!(
            Instant::now() < end,
            "board read never showed both posts: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, out, _) = run(&c, 1, &["board", "read", "--last", "1"]).await;
    assert!(
        ok && out.lines().count() == 1 && out.contains("see you there"),
        "{out}"
    );
    let _ = daemon.kill().await;
}
