//! Attachments in the app: progress on a file's bubble, Save as, thumbnails, Attach.

use super::*;

/// The engine's report on a transfer of cat.png (2 KiB in two chunks).
fn cat(id: &str, outgoing: bool, done: &str, state: FileState, eta: Option<u64>) -> Message {
    let entry = FileEntry {
        id: id.into(),
        outgoing,
        peer: "bob".into(),
        name: "cat.png".into(),
        mime: "image/png".into(),
        size: 2048,
        sha256: "00".repeat(32),
        chunk_bytes: 1024,
        chunks: 2,
        done: done.into(),
        state,
        outbox_id: outgoing.then_some(7),
        key: None,
    };
    Message::Engine(Event::File {
        file: FileProgress {
            done_bytes: entry.done_bytes(),
            entry,
            eta_rounds: eta,
        },
    })
}

/// The window as drawn, saved to (or compared with) `path`.
fn drawn_as(app: &App, path: &std::path::Path) -> bool {
    let mut ui = simulator(app.view());
    ui.snapshot(&iced::Theme::Light)
        .expect("drawn")
        .matches_image(path)
        .expect("compared")
}

#[test]
fn a_received_file_shows_progress_then_save_as_and_a_thumbnail() {
    let mut app = with_bob();
    let dir = tempfile::tempdir().expect("tempdir");
    // The offer comes first, then the message announcing it, then the chunks.
    let _ = app.update(cat("f1", false, "", FileState::Receiving, None));
    let _ = app.update(Message::Engine(Event::Message {
        from: "bob".into(),
        text: "📎 cat.png (2.0 KiB)".into(),
        round: 40,
        timestamp_ms: 1_000,
        latency_ms: 5,
        anonymous: false,
        reply_to: "key:07".into(),
    }));
    assert!(shows(&app, "📎 cat.png (2.0 KiB)"));
    assert!(shows(&app, "0 B of 2.0 KiB"));
    let _ = app.update(cat("f1", false, "01", FileState::Receiving, Some(3)));
    assert!(shows(&app, "1.0 KiB of 2.0 KiB, about 3 rounds left"));
    assert!(!shows(&app, "0 B of 2.0 KiB"));
    assert!(!shows(&app, "Save as"), "nothing to save yet");

    let saved = dir.path().join("received-cat.png");
    std::fs::write(&saved, RED_PIXEL_PNG).expect("write");
    let path = saved.display().to_string();
    let _ = app.update(cat(
        "f1",
        false,
        "03",
        FileState::Received { path: path.clone() },
        None,
    ));
    assert!(!shows(&app, "rounds left"));
    assert!(shows(&app, "saved"));
    assert!(shows(&app, &path), "where the engine saved it");
    assert!(shows(&app, "Save as"));

    // The thumbnail: the window differs from the same window when the file is no picture.
    let look = dir.path().join("look.png");
    assert!(drawn_as(&app, &look), "first drawing kept");
    assert!(drawn_as(&app, &look), "drawn the same way twice");
    std::fs::write(&saved, b"not a picture").expect("write");
    assert!(!drawn_as(&app, &look), "the picture was drawn");
    std::fs::write(&saved, RED_PIXEL_PNG).expect("write");

    // Save as: typed path, button; the copy is made and said.
    let copy = dir.path().join("copy.png");
    interact_running(&mut app, |ui| {
        ui.click(selector::id("save-as-f1".to_string()))
            .expect("save-as field");
        ui.typewrite(&copy.display().to_string());
        ui.click("Save as").expect("save button");
    });
    assert!(shows(&app, &format!("saved a copy to {}", copy.display())));
    assert_eq!(std::fs::read(&copy).expect("copied"), RED_PIXEL_PNG);
    // Again: nothing is overwritten, and the user is told why.
    interact_running(&mut app, |ui| {
        ui.click("Save as").expect("save button");
    });
    assert!(shows(&app, "already exists; choose another name"));
}

#[test]
fn attaching_a_file_that_is_missing_or_too_big_says_so_in_words() {
    let mut app = with_bob();
    assert!(!shows(&app, "Send file"), "the attach row starts closed");
    interact(&mut app, |ui| {
        ui.click("Attach").expect("attach button by the composer");
    });
    assert!(shows(&app, "Send file"));
    assert!(shows(&app, "up to 8.0 MiB"));
    interact_running(&mut app, |ui| {
        ui.click(selector::id(crate::files::ATTACH_PATH))
            .expect("path field");
        ui.typewrite("/nonexistent/cat.png");
        ui.click("Send file").expect("send file button");
    });
    assert!(shows(
        &app,
        "file not sent: /nonexistent/cat.png: No such file"
    ));
    assert!(!shows(&app, "📎"), "no bubble for a file never read");
    assert_eq!(app.files.path_input, "/nonexistent/cat.png", "kept to fix");

    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(9 * 1024 * 1024))
        .expect("sparse file");
    let _ = app.update(Message::Dismiss);
    let _ = app.update(Message::File(crate::files::FileMsg::Path(
        big.display().to_string(),
    )));
    interact_running(&mut app, |ui| {
        ui.click("Send file").expect("send file button");
    });
    assert!(shows(&app, "is 9.0 MiB; the largest file is 8.0 MiB"));
    assert!(!shows(&app, "📎"));
}

#[test]
fn an_attached_file_becomes_a_bubble_with_its_progress() {
    let mut app = with_bob();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cat.png");
    std::fs::write(&file, RED_PIXEL_PNG).expect("write");
    interact(&mut app, |ui| {
        ui.click("Attach").expect("attach button");
    });
    interact_running(&mut app, |ui| {
        ui.click(selector::id(crate::files::ATTACH_PATH))
            .expect("path field");
        ui.typewrite(&file.display().to_string());
        ui.tap_key(Named::Enter);
    });
    assert!(shows(&app, "📎 cat.png (69 B)"));
    assert!(shows(&app, "sending…"));
    assert!(
        !shows(&app, "Send file"),
        "the row closes once the file is read"
    );
    // The engine's reports (its transfer and state) may beat its answer.
    let _ = app.update(cat("f2", true, "", FileState::Sending, None));
    let _ = app.update(Message::Engine(Event::State {
        id: 7,
        to: "bob".into(),
        delivery: Delivery::InRound(50),
        fragments: 3,
    }));
    let _ = app.update(Message::Queued {
        local: 1,
        result: Ok(7),
    });
    assert!(shows(&app, "in round 50"));
    assert!(shows(&app, "0 B of 2.0 KiB"));
    let _ = app.update(cat("f2", true, "01", FileState::Sending, Some(2)));
    assert!(shows(&app, "1.0 KiB of 2.0 KiB, about 2 rounds left"));
    let _ = app.update(cat("f2", true, "03", FileState::Sent, None));
    assert!(shows(&app, "sent"));
    assert!(!shows(&app, "rounds left"));
    assert!(!shows(&app, "Save as"), "only received files are saved as");
}

#[test]
fn attach_is_offered_to_contacts_and_rooms_and_a_room_file_shows_its_progress() {
    let mut app = with_bob();
    assert!(shows(&app, "Attach"));
    interact(&mut app, |ui| {
        ui.click("Public board").expect("board listed");
    });
    assert!(
        !shows(&app, "Attach"),
        "nobody can be sent a file on the board"
    );
    let _ = app.update(Message::RoomsListed(Ok(room_list(&[]))));
    interact(&mut app, |ui| {
        ui.click("# club").expect("room listed");
    });
    assert!(shows(&app, "Attach"));
    // bob sends cat.png to the room: its line, then its progress under it.
    let _ = app.update(Message::Engine(Event::RoomMessage {
        room: "club".into(),
        from: "bob".into(),
        text: "📎 cat.png (2.0 KiB)".into(),
        round: 30,
        timestamp_ms: 1_000,
    }));
    let mut event = cat("r1", false, "01", FileState::Receiving, Some(2));
    if let Message::Engine(Event::File { file }) = &mut event {
        file.entry.peer = "bob in #room/club".into();
    }
    let _ = app.update(event);
    assert!(shows(&app, "bob: 📎 cat.png (2.0 KiB)"));
    assert!(shows(&app, "1.0 KiB of 2.0 KiB, about 2 rounds left"));
}
