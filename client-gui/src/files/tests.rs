//! Unit tests of the transfers' rules: words, which bubble shows which file, copies.

use super::*;

fn entry(id: &str, peer: &str, outgoing: bool, state: FileState) -> FileEntry {
    FileEntry {
        id: id.into(),
        outgoing,
        peer: peer.into(),
        name: "cat.png".into(),
        mime: "image/png".into(),
        size: 2048,
        sha256: String::new(),
        chunk_bytes: 1024,
        chunks: 2,
        done: "01".into(),
        state,
        outbox_id: outgoing.then_some(4),
        key: None,
    }
}

fn incoming(text: &str, at: u64) -> Bubble {
    Bubble {
        outgoing: false,
        text: text.into(),
        timestamp_ms: at,
        delivery: Delivery::Received(1),
        fragments: 1,
        outbox_id: None,
        local_id: 0,
    }
}

#[test]
fn status_reads_as_words() {
    let mut t = Transfer {
        entry: entry("a", "bob", false, FileState::Receiving),
        done_bytes: 1024,
        eta_rounds: Some(3),
        seq: 1,
    };
    assert_eq!(t.status(), "1.0 KiB of 2.0 KiB, about 3 rounds left");
    assert!((t.fraction() - 0.5).abs() < 1e-6);
    t.eta_rounds = Some(1);
    assert_eq!(t.status(), "1.0 KiB of 2.0 KiB, about 1 round left");
    t.eta_rounds = None;
    assert_eq!(t.status(), "1.0 KiB of 2.0 KiB");
    t.entry.state = FileState::Refused {
        reason: "too big".into(),
    };
    assert_eq!(t.status(), "refused: too big");
}

#[test]
fn a_second_file_of_the_same_name_takes_the_newer_bubble() {
    let mut book = Book::default();
    book.ensure("bob", "bob");
    book.push("bob", incoming("📎 cat.png (2.0 KiB)", 1));
    book.push("bob", incoming("hello", 2));
    book.push("bob", incoming("📎 cat.png (2.0 KiB)", 3));
    let mut files = Files::default();
    for id in ["old", "new"] {
        files.take(FileProgress {
            entry: entry(id, "bob", false, FileState::Receiving),
            done_bytes: 0,
            eta_rounds: None,
        });
    }
    let shown = files.incoming_on(&book, "bob");
    assert_eq!(shown[&2].entry.id, "new");
    assert_eq!(shown[&0].entry.id, "old");
    assert_eq!(shown.len(), 2);
}

#[test]
fn a_key_the_engine_could_not_name_matches_its_contact() {
    let mut book = Book::default();
    book.ensure("unknown-0a0b0c0d", "key:0a0b0c0d11");
    book.push("key:0a0b0c0d11", incoming("📎 cat.png (2.0 KiB)", 1));
    let mut files = Files::default();
    files.take(FileProgress {
        entry: entry("x", "unknown-0a0b0c0d", false, FileState::Receiving),
        done_bytes: 0,
        eta_rounds: None,
    });
    assert_eq!(files.incoming_on(&book, "key:0a0b0c0d11").len(), 1);
    // Not on another contact's bubble with the same text.
    book.ensure("carol", "carol");
    book.push("carol", incoming("📎 cat.png (2.0 KiB)", 2));
    assert!(files.incoming_on(&book, "carol").is_empty());
}

#[test]
fn save_copy_refuses_to_overwrite_and_copies_into_a_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = dir.path().join("received");
    std::fs::write(&from, b"meow").expect("write");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let into = rt
        .block_on(save_copy(
            from.clone(),
            dir.path().to_path_buf(),
            "cat.png".into(),
        ))
        .expect("copied");
    assert_eq!(into, dir.path().join("cat.png"));
    assert_eq!(std::fs::read(&into).expect("read"), b"meow");
    let again = rt
        .block_on(save_copy(from, into, "cat.png".into()))
        .expect_err("exists");
    assert!(again.contains("already exists"), "{again}");
}
