//! Rooms on real node processes: three users in a room, a fourth asks a member, is
//! approved and reads what was said before it came; a removed member reads nothing
//! sent after; a member whose daemon is down through two membership changes catches up.

use std::time::{Duration, Instant};

use client::core::RoomRequest;
use client::engine::Event;
use serde_json::Value;
use tests::cluster::{Cluster, ClusterOpts};

use crate::util::{cluster, daemon, register_cli, run, until, walk, Client, DEADLINE};

/// The room's name: distinctive, so that finding it in a server's bytes means something.
const ROOM: &str = "book-club-7f3a";

fn notes(cl: &Client) -> Vec<String> {
    cl.seen
        .iter()
        .filter_map(|e| match e {
            Event::RoomNotice { notice, .. } => Some(notice.clone()),
            Event::RoomMessage { from, text, .. } => Some(format!("{from}: {text}")),
            _ => None,
        })
        .collect()
}

/// Where `cl` saved the file `name` it received, if it did.
fn saved_file(cl: &Client, name: &str) -> Option<String> {
    cl.seen.iter().find_map(|e| match e {
        Event::File { file } if file.entry.name == name => match &file.entry.state {
            client::store::FileState::Received { path } => Some(path.clone()),
            _ => None,
        },
        _ => None,
    })
}

fn heard(cl: &Client, needle: &str) -> bool {
    notes(cl).iter().any(|n| n.contains(needle))
}

async fn room(cl: &Client, req: RoomRequest) -> Value {
    cl.engine.room(req).await.expect("room request")
}

fn join(via: &str) -> RoomRequest {
    RoomRequest::Join {
        name: ROOM.into(),
        via: via.into(),
    }
}

fn approve(user: &str) -> RoomRequest {
    RoomRequest::Approve {
        name: ROOM.into(),
        user: user.into(),
    }
}

fn say(text: &str) -> RoomRequest {
    RoomRequest::Send {
        name: ROOM.into(),
        text: text.into(),
    }
}

/// Poll `chat-cli room ARGS` for client `j` until its output holds every needle.
async fn cli_until(c: &Cluster, j: u32, args: &[&str], needles: &[&str]) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let (ok, out, err) = run(c, j, args).await;
        if ok && needles.iter().all(|n| out.contains(n)) {
            return out;
        }
        assert!(
            Instant::now() < end,
            "`chat-cli {}` never showed {needles:?}: {out}\n{err}\n{}",
            args.join(" "),
            c.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_approve_newcomers_who_read_the_history_and_removed_members_read_nothing_after() {
    let c = cluster(ClusterOpts {
        clients: 4,
        round_ms: 400,
        min_anonymity_set: 3,
        ..ClusterOpts::default()
    })
    .await;
    let mut m = vec![
        Client::start(&c, 1).await,
        Client::start(&c, 2).await,
        Client::start(&c, 3).await,
    ];
    // client-4 is a chat-cli user with a daemon.
    register_cli(&c, 4).await;
    let mut d4 = daemon(&c, 4).await;

    // Three members: client-1 creates, client-2 asks client-1, client-3 asks client-2.
    let create = RoomRequest::Create {
        name: ROOM.into(),
        admins_only: false,
        history: true,
    };
    room(&m[0], create).await;
    room(&m[1], join("client-1")).await;
    until(&c, &mut m, "client-1 sees the request", |m| {
        heard(&m[0], "client-2 asks to join")
    })
    .await;
    room(&m[0], approve("client-2")).await;
    until(&c, &mut m, "client-2 is in", |m| {
        heard(&m[1], "you joined, approved by client-1")
    })
    .await;
    room(&m[2], join("client-2")).await;
    until(&c, &mut m, "every member sees client-3 ask", |m| {
        heard(&m[0], "client-3 asks to join") && heard(&m[1], "client-3 asks to join")
    })
    .await;
    room(&m[1], approve("client-3")).await;
    until(&c, &mut m, "client-3 is in and everyone knows", |m| {
        heard(&m[2], "you joined, approved by client-2")
            && heard(&m[0], "client-3 joined, approved by client-2")
    })
    .await;
    room(&m[0], say("first words")).await;
    room(&m[1], say("second words")).await;
    until(&c, &mut m, "client-3 hears both", |m| {
        heard(&m[2], "client-1: first words") && heard(&m[2], "client-2: second words")
    })
    .await;

    // The fourth asks client-3 from the command line, is approved, and reads the history.
    let (ok, out, err) = run(&c, 4, &["room", "join", ROOM, "--via", "client-3"]).await;
    assert!(ok && out.contains("waiting for approval"), "{out}\n{err}");
    cli_until(
        &c,
        4,
        &["room", "requests"],
        &["waiting for approval to join book-club-7f3a"],
    )
    .await;
    until(&c, &mut m, "client-3 sees client-4 ask", |m| {
        heard(&m[2], "client-4 asks to join")
    })
    .await;
    room(&m[2], approve("client-4")).await;
    cli_until(
        &c,
        4,
        &["room", "history", ROOM],
        &["client-1: first words", "client-2: second words"],
    )
    .await;
    let members = cli_until(&c, 4, &["room", "members", ROOM], &["client-4"]).await;
    for j in 1..=3 {
        assert!(members.contains(&format!("client-{j}")), "{members}");
    }

    // client-4 sends a file to the room from the command line: every member saves it.
    let plan: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let plan_path = c.dir.path().join("plan.pdf");
    std::fs::write(&plan_path, &plan).unwrap();
    let path_arg = plan_path.display().to_string();
    let (ok, out, err) = run(&c, 4, &["room", "send-file", ROOM, &path_arg]).await;
    assert!(ok && out.contains("plan.pdf sent"), "{out}\n{err}");
    until(&c, &mut m, "every member saves the room's file", |m| {
        m.iter().all(|cl| saved_file(cl, "plan.pdf").is_some())
    })
    .await;
    for cl in &m {
        let path = saved_file(cl, "plan.pdf").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), plan, "{}: intact", cl.name);
    }

    // client-1 removes client-3: what is said after never reaches it.
    let remove = RoomRequest::Remove {
        name: ROOM.into(),
        user: "client-3".into(),
    };
    room(&m[0], remove).await;
    until(&c, &mut m, "client-3 is out", |m| {
        heard(&m[2], "you were removed by client-1") && heard(&m[1], "client-3 was removed")
    })
    .await;
    room(&m[0], say("after the removal")).await;
    until(&c, &mut m, "client-2 hears it", |m| {
        heard(&m[1], "client-1: after the removal")
    })
    .await;
    cli_until(&c, 4, &["room", "history", ROOM], &["after the removal"]).await;
    assert!(!heard(&m[2], "after the removal"), "{:?}", notes(&m[2]));

    // client-4's daemon is down through two membership changes, then catches up.
    let _ = d4.kill().await;
    let _ = d4.wait().await;
    let remove = RoomRequest::Remove {
        name: ROOM.into(),
        user: "client-2".into(),
    };
    room(&m[0], remove).await;
    until(&c, &mut m, "client-2 is out", |m| {
        heard(&m[1], "you were removed by client-1")
    })
    .await;
    room(&m[2], join("client-1")).await;
    until(&c, &mut m, "client-3 asks again", |m| {
        notes(&m[0])
            .iter()
            .filter(|n| n.contains("client-3 asks to join"))
            .count()
            == 2
    })
    .await;
    room(&m[0], approve("client-3")).await;
    until(&c, &mut m, "client-3 is back", |m| {
        notes(&m[2])
            .iter()
            .filter(|n| n.contains("you joined"))
            .count()
            == 2
    })
    .await;
    let mut d4 = daemon(&c, 4).await;
    room(&m[0], say("welcome back")).await;
    cli_until(
        &c,
        4,
        &["room", "history", ROOM],
        &["client-1: welcome back"],
    )
    .await;
    let members = cli_until(&c, 4, &["room", "members", ROOM], &["client-3"]).await;
    assert!(!members.contains("client-2"), "{members}");
    let _ = d4.kill().await;
    let _ = d4.wait().await;

    // The servers saw none of it: no log, data file, metric or status holds the room's
    // name, its id (as bytes or hex) or a word said in it.
    let store = client::store::Store::open(&c.dir.path().join("data/client-4")).unwrap();
    let (book, _) = store.rooms().unwrap();
    let book: client::rooms::book::Book = serde_json::from_slice(&book.unwrap()).unwrap();
    let id = book.rooms[0].id;
    let mut haystack = c.logs().into_bytes();
    for n in &c.nodes {
        for f in walk(&n.data_dir) {
            haystack.extend(std::fs::read(f).unwrap_or_default());
        }
        for path in ["/metrics", "/status"] {
            let (_, body) = n.get(path).await.unwrap();
            haystack.extend(body.into_bytes());
        }
    }
    let hex_id = hex::encode(id);
    let needles: [&[u8]; 7] = [
        ROOM.as_bytes(),
        &id,
        hex_id.as_bytes(),
        b"first words",
        b"second words",
        b"after the removal",
        b"welcome back",
    ];
    for needle in needles {
        assert!(
            !haystack.windows(needle.len()).any(|w| w == needle),
            "{:?} found on a server",
            String::from_utf8_lossy(needle)
        );
    }
}
