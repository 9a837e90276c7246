//! Key backup on real nodes: client-1 backs up its identity and contacts with
//! `chat-cli backup create`; the servers refresh the shares for three epochs, one server
//! killed in the middle and started again (it catches up by replaying the deals); a
//! share from before a refresh does not combine with later ones; no share, refresh sum,
//! key or identity secret is in any server's data folder or log; one server's whole
//! data (store, log, key file) neither yields the key nor tells a right passphrase from a
//! wrong one; `chat-cli backup restore` on a fresh folder gives back the same
//! fingerprint and contacts, also with one server down; and ten wrong passphrases later
//! the backup is gone from every server.

use std::path::Path;

use client::conn::ClusterConn;
use protocol::backup::make::open_blob;
use protocol::backup::oprf::{blind, Unlock};
use protocol::backup::{reply_aad, sealbox, vss, BackupName};
use protocol::bounded::{Bytes, Fixed, Key32};
use protocol::wire::{ClientRequest, ClientResponse};
use tests::cluster::{binary, Cluster, ClusterOpts};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::util::{cluster, register_cli, run, walk, DEADLINE};

const PASS: &str = "violet river anchors seventeen lamps";
const NAME: &str = "client-1";
const CONTACTS: &str =
    r#"{"contacts":[{"name":"client-2","verified":true,"note":"compared aloud on 2026-12-03"}]}"#;

/// Every node's backup epoch from `/status` (None for a node that does not answer).
async fn epochs(c: &Cluster) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for i in 0..c.nodes.len() {
        out.push(
            c.status(i)
                .await
                .and_then(|s| s["backup"]["epoch"].as_u64()),
        );
    }
    out
}

async fn wait_epoch(c: &Cluster, nodes: &[usize], at_least: u64) {
    let what = format!("nodes {nodes:?} at backup epoch {at_least}");
    c.wait_for(&what, DEADLINE, || async {
        let e = epochs(c).await;
        nodes
            .iter()
            .all(|&i| e[i].is_some_and(|x| x >= at_least))
            .then_some(())
    })
    .await
    .unwrap();
}

/// Each server's current share of K as a restoring client gets it (the right
/// passphrase, then the unlock), with the commitments it lies on; None if any server
/// could not answer this time (a leader change, a refresh half applied).
async fn shares_now(conn: &ClusterConn, n: u16) -> Option<Vec<(u16, [u8; 32], Vec<Key32>)>> {
    let name: BackupName = Bytes::new(NAME.as_bytes().to_vec()).unwrap();
    let info = conn
        .request(
            0,
            ClientRequest::BackupInfo {
                name: Some(name.clone()),
            },
        )
        .await
        .ok()?;
    let ClientResponse::Backup(view) = info else {
        return None;
    };
    let version = view.record?.version;
    let bl = blind(NAME.as_bytes(), PASS.as_bytes(), &mut rand::rngs::OsRng);
    let mut evals = Vec::new();
    for i in 0..n {
        let r = conn
            .request(
                i,
                ClientRequest::BackupEval {
                    name: name.clone(),
                    version,
                    blinded: bl.blinded,
                },
            )
            .await
            .ok()?;
        let ClientResponse::BackupEvaluated {
            eval,
            oprf_commitments,
            ..
        } = r
        else {
            return None;
        };
        evals.push((i, eval, oprf_commitments.as_slice().to_vec()));
    }
    let (group, bad) = client::backup::plan::usable_evaluations(&bl.blinded, &evals, 1);
    assert!(bad.is_empty(), "servers {bad:?} evaluated wrongly");
    let unlock = Unlock::combine(NAME.as_bytes(), PASS.as_bytes(), &bl, &group?).unwrap();
    let reply = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let mut out = Vec::new();
    for i in 0..n {
        let req = ClientRequest::BackupUnlock {
            name: name.clone(),
            version,
            tag: unlock.tag(i),
            reply_to: Fixed(PublicKey::from(&reply).to_bytes()),
        };
        let r = conn.request(i, req).await.ok()?;
        let ClientResponse::BackupShare {
            sealed,
            key_commitments,
        } = r
        else {
            return None;
        };
        let plain = sealbox::open(&reply, &reply_aad(NAME.as_bytes(), version, i), &sealed.0)
            .expect("a share sealed to us opens");
        out.push((
            i,
            <[u8; 32]>::try_from(plain.as_slice()).unwrap(),
            key_commitments.as_slice().to_vec(),
        ));
    }
    Some(out)
}

/// Shares from every server, retried until all lie on the same commitments (a refresh
/// may be half applied when asked).
async fn consistent_shares(c: &Cluster, conn: &ClusterConn) -> Vec<(u16, [u8; 32], Vec<Key32>)> {
    c.wait_for(
        "every server's share on one set of commitments",
        DEADLINE,
        || async {
            let s = shares_now(conn, c.nodes.len() as u16).await?;
            let same = s
                .iter()
                .all(|(i, sh, cm)| *cm == s[0].2 && vss::verify(sh, cm, *i).is_ok());
            same.then_some(s)
        },
    )
    .await
    .unwrap()
}

fn chat_cli() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary("client", "chat-cli"));
    cmd.kill_on_drop(true);
    cmd
}

async fn restore(c: &Cluster, out: &Path, pass_file: &Path) -> (bool, String, String) {
    let o = chat_cli()
        .args(["--json", "backup", "restore", "--name", NAME, "--out"])
        .arg(out)
        .arg("--cluster")
        .arg(c.dir.path().join("cluster.toml"))
        .arg("--passphrase-file")
        .arg(pass_file)
        .output()
        .await
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn needles(secret: &[u8; 32]) -> [Vec<u8>; 2] {
    [secret.to_vec(), hex::encode(secret).into_bytes()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_refreshes_through_a_restart_restores_elsewhere_and_is_erased_after_the_guess_limit(
) {
    let mut c = cluster(ClusterOpts {
        clients: 2,
        round_ms: 400,
        backup_refresh_secs: Some(3),
        ..ClusterOpts::default()
    })
    .await;
    register_cli(&c, 1).await;
    let data = c.dir.path().join("data/client-1");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("contacts.json"), CONTACTS).unwrap();
    let pass_file = c.dir.path().join("passphrase");
    std::fs::write(&pass_file, format!("{PASS}\n")).unwrap();

    // A weak passphrase is refused with the reason.
    let weak = c.dir.path().join("weak");
    std::fs::write(&weak, "password1\n").unwrap();
    let (ok, _, err) = run(
        &c,
        1,
        &[
            "backup",
            "create",
            "--passphrase-file",
            weak.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        !ok && err.contains("passphrase"),
        "a weak passphrase was not refused: {err}"
    );

    let (ok, out, err) = run(
        &c,
        1,
        &[
            "backup",
            "create",
            "--passphrase-file",
            pass_file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "backup create failed: {out}{err}\n{}", c.log_tails());
    let e0 = epochs(&c).await.into_iter().flatten().max().unwrap();

    // Epoch e0 + 1 with everyone; e0 + 2 with server 2 down; e0 + 3 with it back.
    let (conn, _events) = c.connect().await.unwrap();
    wait_epoch(&c, &[0, 1, 2], e0 + 1).await;
    let before = consistent_shares(&c, &conn).await;
    c.kill(2);
    wait_epoch(&c, &[0, 1], e0 + 2).await;
    c.restart(2).unwrap();
    wait_epoch(&c, &[0, 1, 2], e0 + 3).await;
    let after = consistent_shares(&c, &conn).await;
    for (i, node) in c.nodes.iter().enumerate() {
        let (_, m) = node.get("/metrics").await.unwrap();
        for bad in [
            "bad_sub_share",
            "deal_does_not_open",
            "no_epoch_secret",
            "share_does_not_verify",
        ] {
            let label = format!("chorus_backup_failures_total{{reason=\"{bad}\"}}");
            assert!(
                !m.lines()
                    .any(|l| l.starts_with(&label) && !l.ends_with(" 0")),
                "node {i}: {bad}"
            );
        }
        let verified = m
            .lines()
            .find_map(|l| l.strip_prefix("chorus_backup_verifications_total "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        assert!(verified.unwrap_or(0) > 0, "node {i} checked no sub-share");
        // Three epochs later, old epoch secrets are gone: the current one, and a next
        // one if a deal of ours is pending.
        let secrets = m
            .lines()
            .find_map(|l| l.strip_prefix("chorus_backup_epoch_secrets_held "))
            .and_then(|v| v.trim().parse::<u64>().ok());
        let shown: Vec<&str> = m.lines().filter(|l| l.contains("backup_epoch")).collect();
        assert!(
            matches!(secrets, Some(1 | 2)),
            "node {i} holds {secrets:?} epoch secrets: {shown:?}"
        );
    }
    let key_commitment = after[0].2[0];
    assert_eq!(before[0].2[0], key_commitment, "K's commitment never moves");

    let k = vss::combine(&[(0, after[0].1), (1, after[1].1)]).unwrap();
    assert_eq!(
        *vss::combine(&[(1, after[1].1), (2, after[2].1)]).unwrap(),
        *k,
        "the restarted server's share fits"
    );
    assert!(vss::commits_to(&k, &key_commitment));
    for (i, old, _) in &before {
        assert!(
            vss::verify(old, &after[0].2, *i).is_err(),
            "server {i}'s share did not change"
        );
        for (j, new, _) in after.iter().filter(|(j, _, _)| j != i) {
            assert_ne!(
                *vss::combine(&[(*i, *old), (*j, *new)]).unwrap(),
                *k,
                "an old share combined with a new one"
            );
        }
    }

    // Nothing secret in the clear on any server: shares of both epochs, what the
    // refreshes added, K, and the identity's secret keys.
    let identity = keys::load_identity(&c.dir.path().join("client-1.key")).unwrap();
    let mut secrets: Vec<[u8; 32]> = vec![
        *k,
        *identity.ed25519_seed(),
        identity.x25519_secret().to_bytes(),
    ];
    for ((_, old, _), (_, new, _)) in before.iter().zip(&after) {
        secrets.push(*old);
        secrets.push(*new);
        let delta =
            vss::add_scalars(new, &(-vss::scalar(&Fixed(*old)).unwrap()).to_bytes()).unwrap();
        secrets.push(*delta);
    }
    for node in &c.nodes {
        let mut files = walk(&node.data_dir);
        files.push(node.log.clone());
        for f in files {
            let bytes = std::fs::read(&f).unwrap_or_default();
            for s in &secrets {
                for needle in needles(s) {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "{} holds a secret in the clear",
                        f.display()
                    );
                }
            }
        }
    }

    // t = 1 server's whole data: its store opened with its own key, its log and its
    // raft file. Its share alone is not K, opens nothing, and the right passphrase
    // looks no different from a wrong one.
    c.kill(0);
    let node0 = keys::load_identity(&c.dir.path().join("node-0.key")).unwrap();
    let store =
        actors::backup_store::BackupStore::open(&c.nodes[0].data_dir.join("backup.redb"), &node0)
            .unwrap();
    let held = store
        .share(NAME.as_bytes())
        .unwrap()
        .expect("server 0 holds a share");
    let (_, blob) = store
        .blob(NAME.as_bytes())
        .unwrap()
        .expect("server 0 keeps the blob");
    drop(store);
    assert_eq!(
        *held.key, after[0].1,
        "that is the share server 0 hands out"
    );
    let opened = open_blob(&k, NAME.as_bytes(), &blob).expect("K opens the blob");
    assert!(String::from_utf8_lossy(&opened).contains("compared aloud"));
    for guess in [*held.key, *held.oprf, *held.tag] {
        assert_ne!(guess, *k);
        assert!(
            open_blob(&guess, NAME.as_bytes(), &blob).is_err(),
            "server 0's data opened the backup"
        );
    }
    let oprf_share = vss::scalar(&Fixed(*held.oprf)).unwrap();
    for pass in [PASS, "a wrong passphrase guess"] {
        let tag = Unlock::from_key(NAME.as_bytes(), pass.as_bytes(), &oprf_share).tag(0);
        assert_ne!(tag.0, *held.tag, "server 0's data alone confirmed {pass:?}");
    }
    c.restart(0).unwrap();

    // Restore on a fresh folder with the CLI.
    let fresh = tempfile::tempdir().unwrap();
    let (ok, out, err) = restore(&c, fresh.path(), &pass_file).await;
    assert!(ok, "restore failed: {out}{err}\n{}", c.log_tails());
    let restored = keys::load_identity(&fresh.path().join("client-1.key")).unwrap();
    assert_eq!(
        restored.public().fingerprint(),
        identity.public().fingerprint()
    );
    assert!(out.contains(&identity.public().fingerprint().to_string()));
    let contacts =
        std::fs::read_to_string(fresh.path().join("data/client-1/contacts.json")).unwrap();
    assert_eq!(contacts, CONTACTS);
    let settings = client::config::Settings::load(&fresh.path().join("client-1.toml")).unwrap();
    assert_eq!(settings.name, NAME);

    // With a server down, the other t + 1 restore it.
    c.kill(1);
    let fresh2 = tempfile::tempdir().unwrap();
    let (ok, out, err) = restore(&c, fresh2.path(), &pass_file).await;
    assert!(
        ok,
        "restore with server 1 down failed: {out}{err}\n{}",
        c.log_tails()
    );
    let again = keys::load_identity(&fresh2.path().join("client-1.key")).unwrap();
    assert_eq!(
        again.public().fingerprint(),
        identity.public().fingerprint()
    );
    c.restart(1).unwrap();

    // Ten wrong passphrases: each refused, then the backup is gone everywhere.
    let wrong_file = c.dir.path().join("wrong");
    std::fs::write(&wrong_file, "tangerine quartz bicycle gallop\n").unwrap();
    for attempt in 1..=10 {
        let elsewhere = tempfile::tempdir().unwrap();
        let (ok, out, err) = restore(&c, elsewhere.path(), &wrong_file).await;
        assert!(
            !ok,
            "attempt {attempt} with a wrong passphrase restored: {out}"
        );
        assert!(
            err.contains("wrong passphrase") || err.contains("erased"),
            "attempt {attempt}: {err}"
        );
    }
    c.wait_for("the backup gone from every server", DEADLINE, || async {
        let (ok, out, _) = run(&c, 1, &["--json", "backup", "status"]).await;
        let gone = ok
            && out
                .lines()
                .filter(|l| l.contains("\"stored\":false"))
                .count()
                == c.nodes.len();
        let mut held = 0;
        for n in &c.nodes {
            let (_, m) = n.get("/metrics").await.unwrap_or_default();
            held += m
                .lines()
                .filter(|l| l.starts_with("chorus_backup_shares_held ") && !l.ends_with(" 0"))
                .count();
        }
        (gone && held == 0).then_some(())
    })
    .await
    .unwrap();
    let (ok, _, err) = restore(&c, tempfile::tempdir().unwrap().path(), &pass_file).await;
    assert!(
        !ok && err.contains("no backup"),
        "restored after erasure: {err}"
    );
}
