//! Files among simulated clients sharing every round: delivery to the recipient alone,
//! resumption after the sender restarts, messages first, and the limits.

use super::rooms::{admit_bob, create, notes, said, twin, World};
use super::*;
use crate::store::{FileEntry, FileState};

const ALL: [usize; 3] = [0, 1, 2];

fn world() -> World {
    World::new_with(&["alice", "bob", "carol"], |p| {
        p.with_file_slots(1, 1200).expect("file slots")
    })
}

fn content(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn send_file(
    w: &mut World,
    who: usize,
    to: &str,
    name: &str,
    data: Vec<u8>,
) -> Result<u64, String> {
    let s = &mut w.sims[who];
    let t = s.user(UserRequest::SendFile {
        to: to.into(),
        name: name.into(),
        data,
    });
    match s.answers.iter().find(|(tok, _)| *tok == t) {
        Some((_, Answer::Send(r))) => r.clone(),
        other => panic!("no answer: {other:?}"),
    }
}

fn send_text(w: &mut World, who: usize, to: &str, text: &str) {
    let s = &mut w.sims[who];
    s.user(UserRequest::Send {
        to: to.into(),
        text: text.into(),
        anonymous: false,
    });
}

fn entries(w: &World, who: usize) -> Vec<FileEntry> {
    w.sims[who]
        .core
        .store()
        .files
        .entries
        .values()
        .cloned()
        .collect()
}

fn got(w: &World, who: usize, text: &str) -> bool {
    w.sims[who].messages().iter().any(|(_, t)| t == text)
}

#[test]
fn a_file_arrives_intact_at_its_recipient_alone_and_resumes_after_a_restart() {
    let mut w = world();
    let data = content(40_000);
    send_file(&mut w, 0, "bob", "../notes.txt", data.clone()).expect("queued");
    let chunks = entries(&w, 0)[0].chunks as usize;
    assert!(chunks > 30, "{chunks} chunks");
    // Carol chats with bob all along, and alice writes to him mid-file: her message goes
    // before her file's next chunks.
    w.until(&ALL, "a third of the chunks are out", |w| {
        entries(w, 0)[0].done_chunks() >= chunks / 3
    });
    send_text(&mut w, 2, "bob", "carol, during the file");
    send_text(&mut w, 0, "bob", "alice, during the file");
    let halfway = entries(&w, 0)[0].done_chunks();
    w.until(&ALL, "alice's message arrives", |w| {
        got(w, 1, "alice, during the file")
    });
    assert!(
        entries(&w, 0)[0].done_chunks() < chunks,
        "the message did not wait for the file"
    );
    // alice restarts halfway: the chunks already out are not sent again.
    let done_before = entries(&w, 0)[0].done_chunks();
    assert!(done_before >= halfway);
    let store = w.sims[0].core.store().clone();
    let id = twin(&w.ids[0]);
    w.sims[0] = w.c.sim(id, store, 77);
    w.until(&ALL, "bob saves the file", |w| {
        entries(w, 1)
            .iter()
            .any(|e| matches!(e.state, FileState::Received { .. }))
    });
    let bob = &entries(&w, 1)[0];
    assert_eq!(bob.name, "notes.txt");
    assert_eq!(bob.size, 40_000);
    assert_eq!(bob.peer, "alice");
    let saved = &w.sims[1].core.store().files.saved;
    assert_eq!(saved.values().next(), Some(&data), "intact");
    assert!(
        w.sims[1].core.store().files.chunks.is_empty(),
        "chunks dropped"
    );
    assert!(got(&w, 1, "carol, during the file"));
    assert!(w.sims[1]
        .messages()
        .iter()
        .any(|(from, t)| from == "alice" && t.starts_with("📎 notes.txt")));
    // Only the chunks not out before the restart went out after it.
    let sent_after = w.sims[0]
        .events
        .iter()
        .filter(|e| matches!(e, Event::File { file } if file.entry.outgoing))
        .count();
    assert!(
        sent_after <= chunks - done_before + 2,
        "{sent_after} progress events after the restart, {} chunks were left",
        chunks - done_before
    );
    w.until(&ALL, "alice's file is sent", |w| {
        entries(w, 0)[0].state == FileState::Sent
    });
    assert!(
        w.sims[0].core.store().files.data.is_empty(),
        "content dropped once sent"
    );
    assert!(entries(&w, 2).is_empty(), "carol saw nothing of it");
    assert!(w.sims[2].core.store().files.saved.is_empty());
}

#[test]
fn files_over_the_limit_are_refused_before_sending_and_by_the_recipient() {
    let mut w = world();
    w.sims[0].core.set_max_file_bytes(10_000);
    let err = send_file(&mut w, 0, "bob", "big.bin", content(10_001)).expect_err("refused");
    assert!(err.contains("largest file is 9.8 KiB"), "{err}");
    assert!(w.sims[0].core.store().outbox.is_empty(), "nothing queued");
    assert!(send_file(&mut w, 0, "bob", "empty", Vec::new()).is_err());
    // bob accepts at most 5,000 bytes: alice's 8,000 are refused when the offer comes.
    w.sims[1].core.set_max_file_bytes(5_000);
    send_file(&mut w, 0, "bob", "photo.png", content(8_000)).expect("queued");
    w.until(&ALL, "bob refuses it", |w| {
        entries(w, 1)
            .iter()
            .any(|e| matches!(&e.state, FileState::Refused { reason } if reason.contains("over your limit")))
    });
    w.until(&ALL, "alice's chunks are all out", |w| {
        entries(w, 0)[0].state == FileState::Sent
    });
    assert!(
        w.sims[1].core.store().files.chunks.is_empty(),
        "no chunk kept"
    );
    assert!(w.sims[1].core.store().files.saved.is_empty());
    assert_eq!(entries(&w, 1)[0].mime, "image/png");
}

#[test]
fn a_file_sent_to_a_room_reaches_its_members_and_nobody_else() {
    let mut w = World::new_with(&["alice", "bob", "carol", "dave"], |p| {
        p.with_file_slots(1, 1200).expect("file slots")
    });
    let everyone = [0, 1, 2, 3];
    create(&mut w, 0, "club", true);
    admit_bob(&mut w, "club");
    let data = content(6_000);
    send_file(&mut w, 0, "#room/club", "plan.pdf", data.clone()).expect("queued");
    w.until(&everyone, "bob saves the room's file", |w| {
        entries(w, 1)
            .iter()
            .any(|e| matches!(e.state, FileState::Received { .. }))
    });
    let bob = &entries(&w, 1)[0];
    assert_eq!(bob.peer, "alice in #room/club");
    assert_eq!(bob.mime, "application/pdf");
    assert_eq!(
        w.sims[1].core.store().files.saved.values().next(),
        Some(&data)
    );
    assert!(said(&w, 1, "alice: 📎 plan.pdf"), "{:?}", notes(&w.sims[1]));
    w.until(&everyone, "alice's file is out", |w| {
        entries(w, 0)[0].state == FileState::Sent
    });
    assert_eq!(
        entries(&w, 0).len(),
        1,
        "alice does not receive her own file"
    );
    assert!(
        entries(&w, 2).is_empty() && entries(&w, 3).is_empty(),
        "not members"
    );
    // Without file slots a room's slots are too small for the offer: said in words.
    let mut small = World::new(&["ann", "ben"]);
    create(&mut small, 0, "den", true);
    let err = send_file(&mut small, 0, "#room/den", "a.txt", content(10)).expect_err("refused");
    assert!(err.contains("too small to carry a file's offer"), "{err}");
    let err = send_file(&mut small, 0, "#room/nowhere", "a.txt", content(10)).expect_err("no room");
    assert!(err.contains("nowhere"), "{err}");
}
