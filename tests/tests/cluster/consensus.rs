//! Election, replication, crash recovery and log compaction.

use std::time::Duration;

use tests::cluster::{Cluster, ClusterOpts};

use crate::util::{converged, leader, probes, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_one_leader_and_agree_on_it() {
    let c = Cluster::start(ClusterOpts::default()).unwrap();
    let l = leader(&c).await;
    assert!(l < 3);
    let roles: Vec<String> = futures::future::join_all((0..3).map(|i| c.status(i)))
        .await
        .into_iter()
        .map(|s| s.unwrap()["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| *r == "leader").count(),
        1,
        "roles: {roles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_through_any_node_apply_identically_everywhere() {
    let c = Cluster::start(ClusterOpts::default()).unwrap();
    leader(&c).await;
    probes(&c, 3, 0, 1000, 64, 32).await;
    converged(&c, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_writes_continue() {
    let mut c = Cluster::start(ClusterOpts::default()).unwrap();
    let old = leader(&c).await;
    probes(&c, 3, 0, 50, 64, 8).await;
    c.kill(old as usize);
    let new = c
        .wait_for("a new leader after kill -9", DEADLINE, || async {
            c.agreed_leader().await.filter(|l| *l != old)
        })
        .await
        .unwrap();
    assert_ne!(new, old);
    probes(&c, 3, 50, 50, 64, 8).await;
    converged(&c, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up_to_the_same_state() {
    let mut c = Cluster::start(ClusterOpts::default()).unwrap();
    let l = leader(&c).await;
    let victim = ((l + 1) % 3) as usize;
    probes(&c, 3, 0, 100, 64, 8).await;
    c.kill(victim);
    probes(&c, 3, 100, 200, 64, 8).await;
    c.restart(victim).unwrap();
    converged(&c, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_node_keeps_every_committed_entry() {
    let mut c = Cluster::start(ClusterOpts::default()).unwrap();
    leader(&c).await;
    probes(&c, 3, 0, 200, 64, 16).await;
    let before = converged(&c, 200).await;
    for i in 0..3 {
        assert!(
            c.terminate(i),
            "node {i} did not exit cleanly on SIGTERM\n{}",
            c.log_tails()
        );
    }
    for i in 0..3 {
        c.restart(i).unwrap();
    }
    leader(&c).await;
    let after = converged(&c, 200).await;
    assert_eq!(before, after, "state after a full restart differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_log_and_the_redb_file_bounded() {
    let opts = ClusterOpts {
        snapshot_logs: 200,
        keep_logs: 50,
        ..ClusterOpts::default()
    };
    let c = Cluster::start(opts).unwrap();
    leader(&c).await;
    // 3000 entries of 8 KiB: ~24 MiB of log if nothing were purged.
    probes(&c, 3, 0, 3000, 8 * 1024, 32).await;
    converged(&c, 3000).await;
    c.wait_for(
        "log purged behind a snapshot on every node",
        DEADLINE,
        || async {
            for i in 0..3 {
                let s = c.status(i).await?;
                let last = s["last_log_index"].as_u64()?;
                let purged = s["purged_index"].as_u64()?;
                // snapshot every 200 + keep 50 + one batch in flight
                if last - purged > 200 + 50 + 64 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
    for n in &c.nodes {
        let bytes = std::fs::metadata(n.data_dir.join("raft.redb"))
            .unwrap()
            .len();
        assert!(
            bytes < 12 * 1024 * 1024,
            "{} is {bytes} bytes: log not compacted",
            n.data_dir.display()
        );
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_parameters_differ_from_the_committed_ones_refuses_to_run() {
    let mut c = Cluster::start(ClusterOpts::default()).unwrap();
    leader(&c).await;
    c.wait_for(
        "the cluster parameters committed everywhere",
        DEADLINE,
        || async {
            for i in 0..3 {
                if !c.status(i).await?["outputs"]["parameters_committed"].as_bool()? {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
    assert!(c.terminate(2), "node 2 did not stop cleanly");
    // The operator edits one node's file: 16 slots become 8.
    let path = c.nodes[2].config.clone();
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace("slots = 16", "slots = 8");
    assert_ne!(text, edited, "the config names its slots");
    std::fs::write(&path, edited).unwrap();
    c.restart(2).unwrap();
    let log = c.nodes[2].log.clone();
    c.wait_for("node 2 to exit naming the field", DEADLINE, || async {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("round.slots is 8 here but 16").then_some(())
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    while !c.exited(2) {
        assert!(std::time::Instant::now() < deadline, "node 2 kept running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.kill(2); // reap it
               // The other two keep serving.
    leader(&c).await;
}
