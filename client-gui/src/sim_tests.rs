//! iced_test simulator tests of the window: user actions go through the real widgets
//! (clicks, typing, Enter), and the engine's answers and events are fed to `update` the
//! way the event stream delivers them.

use client::engine::{Delivery, Event, FailReason, RetryReason};
use client::event::FileProgress;
use client::store::{FileEntry, FileState};
use iced::futures::StreamExt;
use iced::keyboard::key::Named;
use iced::Task;
use iced_test::selector::{self, Candidate};
use iced_test::{simulator, Simulator};

use crate::app::{App, Message, COMPOSER};
use crate::link::Me;

fn me() -> Me {
    let id = keys::Identity::generate(&mut rand_core::OsRng);
    Me {
        name: "alice".into(),
        public: id.public(),
        servers: 3,
        f: 1,
        slot_bytes: 256,
        data_dir: std::env::temp_dir(),
    }
}

/// Any text widget whose content contains `needle`.
fn containing(needle: &str) -> impl FnMut(Candidate<'_>) -> Option<String> + Send + '_ {
    move |c| match c {
        Candidate::Text { content, .. } if content.contains(needle) => Some(content.to_string()),
        _ => None,
    }
}

fn shows(app: &App, needle: &str) -> bool {
    let mut ui = simulator(app.view());
    ui.find(containing(needle)).is_ok()
}

/// Run `act` against the current view, then apply the messages it produced.
fn interact(app: &mut App, act: impl FnOnce(&mut Simulator<'_, Message>)) {
    let messages: Vec<Message> = {
        let mut ui = simulator(app.view());
        act(&mut ui);
        ui.into_messages().collect()
    };
    for m in messages {
        let _ = app.update(m);
    }
}

/// Apply what `task` outputs, running its futures (file reads and copies) to the end,
/// and what those messages start in turn.
fn settle(app: &mut App, task: Task<Message>) {
    let Some(stream) = iced_test::runtime::task::into_stream(task) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let actions: Vec<_> = runtime.block_on(stream.collect());
    for action in actions {
        if let iced_test::runtime::Action::Output(m) = action {
            let next = app.update(m);
            settle(app, next);
        }
    }
}

/// Like `interact`, and the tasks the messages start run too.
fn interact_running(app: &mut App, act: impl FnOnce(&mut Simulator<'_, Message>)) {
    let messages: Vec<Message> = {
        let mut ui = simulator(app.view());
        act(&mut ui);
        ui.into_messages().collect()
    };
    for m in messages {
        let task = app.update(m);
        settle(app, task);
    }
}

fn type_into(app: &mut App, id: &'static str, text: &str) {
    interact(app, |ui| {
        ui.click(selector::id(id)).expect("input on screen");
        ui.typewrite(text);
        ui.tap_key(Named::Enter);
    });
}

fn with_bob() -> App {
    let mut app = App::offline(me());
    let _ = app.update(Message::Found {
        query: "bob".into(),
        result: Ok(Some(("bob".into(), [7; 32], [9; 32]))),
    });
    app
}

#[test]
fn add_a_contact_by_name_and_verify_it() {
    let mut app = App::offline(me());
    type_into(&mut app, "add-contact", "bob");
    assert_eq!(app.add_input, "bob", "typing reached the add-contact field");
    // The lookup goes to the engine; its answer comes back as Found.
    let _ = app.update(Message::Found {
        query: "bob".into(),
        result: Ok(Some(("bob".into(), [7; 32], [9; 32]))),
    });
    assert!(app.add_input.is_empty(), "field cleared once added");
    assert_eq!(app.book.contacts.len(), 2, "the board and bob");
    let bob = app.book.find("bob").expect("bob added");
    assert!(shows(&app, "bob"));

    interact(&mut app, |ui| {
        ui.click("Verify").expect("verify button");
    });
    let theirs = app.book.contacts[bob]
        .fingerprint()
        .expect("keys known")
        .safety_number();
    let mine = app.me.as_ref().expect("me").fingerprint().safety_number();
    assert!(shows(&app, &theirs), "contact's safety number shown");
    assert!(shows(&app, &mine), "our own safety number shown beside it");
    interact(&mut app, |ui| {
        ui.click("They match: mark verified").expect("verify");
    });
    assert!(app.book.contacts[bob].verified);
    assert!(shows(&app, "Mark as not verified"));
}

#[test]
fn an_unknown_name_is_reported_in_words() {
    let mut app = App::offline(me());
    type_into(&mut app, "add-contact", "nobody");
    let _ = app.update(Message::Found {
        query: "nobody".into(),
        result: Ok(None),
    });
    assert_eq!(app.book.contacts.len(), 1, "only the board");
    assert!(shows(&app, "no user named \"nobody\" is registered"));
    let _ = app.update(Message::Found {
        query: "x".into(),
        result: Err("no server reachable".into()),
    });
    assert!(shows(&app, "no server reachable"));
}

#[test]
fn enter_sends_and_the_engine_moves_it_from_queued_to_sent() {
    let mut app = with_bob();
    type_into(&mut app, COMPOSER, "hello bob");
    assert!(
        app.composer.is_empty(),
        "Enter sent and cleared the composer"
    );
    assert!(shows(&app, "hello bob"));
    assert!(shows(&app, "sending…"));

    let _ = app.update(Message::Queued {
        local: 1,
        result: Ok(42),
    });
    assert!(shows(&app, "queued"));
    let _ = app.update(Message::Engine(Event::State {
        id: 42,
        to: "bob".into(),
        delivery: Delivery::InRound(7),
        fragments: 1,
    }));
    assert!(shows(&app, "in round 7"));
    let _ = app.update(Message::Engine(Event::State {
        id: 42,
        to: "bob".into(),
        delivery: Delivery::Sent(7),
        fragments: 1,
    }));
    assert!(shows(&app, "sent · round 7"));
    assert!(!shows(&app, "queued"));
}

#[test]
fn a_state_that_beats_the_outbox_id_is_not_lost() {
    let mut app = with_bob();
    type_into(&mut app, COMPOSER, "fast one");
    let _ = app.update(Message::Engine(Event::State {
        id: 5,
        to: "bob".into(),
        delivery: Delivery::InRound(3),
        fragments: 1,
    }));
    let _ = app.update(Message::Queued {
        local: 1,
        result: Ok(5),
    });
    assert!(shows(&app, "in round 3"));
}

#[test]
fn a_failed_message_shows_its_reason() {
    let mut app = with_bob();
    type_into(&mut app, COMPOSER, "will not make it");
    let _ = app.update(Message::Queued {
        local: 1,
        result: Ok(3),
    });
    let _ = app.update(Message::Engine(Event::State {
        id: 3,
        to: "bob".into(),
        delivery: Delivery::Retrying {
            round: 10,
            reason: RetryReason::Collision,
        },
        fragments: 1,
    }));
    assert!(shows(
        &app,
        "retrying: collision: another sender used the same slot"
    ));
    let _ = app.update(Message::Engine(Event::State {
        id: 3,
        to: "bob".into(),
        delivery: Delivery::Failed {
            round: 18,
            reason: FailReason::GaveUp {
                attempts: 8,
                last: RetryReason::Void,
            },
        },
        fragments: 1,
    }));
    assert!(shows(
        &app,
        "failed: gave up after 8 tries; last: round was void (too few participants)"
    ));
    // A refusal by the engine itself (before any round) is a failure too.
    type_into(&mut app, COMPOSER, "second");
    let _ = app.update(Message::Queued {
        local: 2,
        result: Err("no user named \"bob\" is registered".into()),
    });
    assert!(shows(&app, "failed: no user named \"bob\" is registered"));
}

#[test]
fn long_messages_show_their_fragments() {
    let mut app = with_bob();
    let long = "x".repeat(600);
    interact(&mut app, |ui| {
        ui.click(selector::id(COMPOSER)).expect("composer");
        ui.typewrite(&long);
    });
    let n = app.fragments_for(&long).expect("fits");
    assert!(n > 1);
    assert!(shows(&app, &format!("takes {n} slots")));
}

#[test]
fn incoming_messages_count_as_unread_until_opened() {
    let mut app = with_bob();
    let _ = app.update(Message::Engine(Event::Message {
        from: "carol".into(),
        text: "psst".into(),
        round: 11,
        timestamp_ms: 1_000,
        latency_ms: 5,
        anonymous: false,
        reply_to: "key:00".into(),
    }));
    let carol = app.book.find("carol").expect("carol added");
    assert_eq!(app.book.contacts[carol].unread, 1);
    interact(&mut app, |ui| {
        ui.click("1").expect("unread badge shown");
    });
    interact(&mut app, |ui| {
        ui.click("carol").expect("carol listed");
    });
    assert_eq!(app.book.contacts[carol].unread, 0);
    assert!(shows(&app, "psst"));
}

#[test]
fn the_board_has_its_own_view_posts_name_nobody_and_new_ones_count_as_unread() {
    let mut app = with_bob();
    assert!(shows(&app, "Public board"), "pinned in the list");
    let _ = app.update(Message::Engine(Event::Board {
        text: "lunch at noon?".into(),
        round: 21,
        timestamp_ms: 1_000,
    }));
    let board = app.book.find(client::core::BOARD_ADDRESS).expect("board");
    assert_eq!(app.book.contacts[board].unread, 1);
    interact(&mut app, |ui| {
        ui.click("Public board").expect("board listed");
    });
    assert_eq!(app.book.contacts[board].unread, 0);
    assert!(shows(&app, "lunch at noon?"));
    assert!(shows(&app, "they name nobody"));
    assert!(!shows(&app, "Verify"), "nobody to verify on the board");
    type_into(&mut app, COMPOSER, "yes, at the fountain");
    assert!(shows(&app, "yes, at the fountain"));
    assert!(shows(&app, "sending…"));
    let _ = app.update(Message::Queued {
        local: 1,
        result: Ok(8),
    });
    let _ = app.update(Message::Engine(Event::State {
        id: 8,
        to: client::core::BOARD_ADDRESS.into(),
        delivery: Delivery::Sent(23),
        fragments: 1,
    }));
    assert!(shows(&app, "sent · round 23"));
}

#[test]
fn status_bar_shows_servers_round_and_when_outputs_cannot_be_confirmed() {
    let mut app = App::offline(me());
    assert!(shows(&app, "cannot confirm outputs"));
    let _ = app.update(Message::Engine(Event::ServerUp { server: 0 }));
    assert!(shows(&app, "only 1 of 3 servers reachable"));
    let _ = app.update(Message::Engine(Event::ServerUp { server: 2 }));
    assert!(!shows(&app, "cannot confirm outputs"));
    assert!(shows(&app, "2 up"));
    assert!(shows(&app, "1 down"));
    let _ = app.update(Message::Engine(Event::Round {
        round: 12,
        participants: 4,
        leader: Some(1),
        hash: String::new(),
    }));
    assert!(shows(&app, "round 12 · 4 participants · leader 1"));
    let _ = app.update(Message::Engine(Event::ServerDown { server: 0 }));
    assert!(shows(&app, "cannot confirm outputs"));
}

#[test]
fn first_run_errors_are_shown_in_words() {
    let mut app = App::empty(None);
    type_into(&mut app, "setup-path", "/nonexistent/client.toml");
    assert!(app.me.is_none());
    assert!(
        shows(&app, "/nonexistent/client.toml"),
        "the error names the file"
    );
    let mut app = App::empty(None);
    interact(&mut app, |ui| {
        ui.click(selector::id("setup-cluster"))
            .expect("cluster field");
        ui.typewrite("/nonexistent/cluster.toml");
        ui.click(selector::id("setup-name")).expect("name field");
        ui.typewrite("dora");
        ui.tap_key(Named::Enter);
    });
    assert!(shows(&app, "cluster file"), "names the bad cluster file");
}

#[test]
fn registration_is_offered_until_our_fingerprint_has_a_name() {
    use crate::app::Registration;
    let mut app = App::offline(me());
    app.registration = Registration::Pending;
    let _ = app.update(Message::OwnEntry(Ok(None)));
    assert!(shows(&app, "not registered:"));
    interact(&mut app, |ui| {
        ui.click("Register").expect("register button");
    });
    let _ = app.update(Message::Registered(Err(
        "the name \"alice\" is taken".into()
    )));
    assert!(shows(
        &app,
        "registration failed: the name \"alice\" is taken"
    ));
    assert!(shows(&app, "not registered:"));
    let _ = app.update(Message::Registered(Ok("alice2".into())));
    assert!(shows(&app, "registered as alice2"));
    assert!(shows(&app, "Chorus — alice2"));
    assert!(!shows(&app, "not registered:"));
}

fn room_list(requests: &[&str]) -> serde_json::Value {
    let bob = keys::Fingerprint::of(&keys::PublicIdentity {
        sign: [7; 32],
        dh: [9; 32],
    })
    .to_hex();
    serde_json::json!({
        "rooms": [{
            "name": "club",
            "approval": "any_member",
            "members": [
                {"name": "alice", "admin": true, "fingerprint": "00"},
                {"name": "bob", "admin": false, "fingerprint": bob},
            ],
            "requests": requests,
        }],
        "waiting": [{"room": "ops", "via": "dave", "state": "waiting for approval"}],
    })
}

/// The messages clicking `label` produces (not applied).
fn clicking(app: &App, label: &str) -> Vec<Message> {
    let mut ui = simulator(app.view());
    ui.click(label).expect("on screen");
    ui.into_messages().collect()
}

#[test]
fn a_room_shows_its_requests_with_approve_and_decline_and_members_with_verified_marks() {
    let mut app = with_bob();
    let bob = app.book.find("bob").expect("bob");
    app.book.contacts[bob].verified = true;
    let _ = app.update(Message::RoomsListed(Ok(room_list(&["carol"]))));
    assert!(shows(&app, "# club"), "the room is pinned in the list");
    assert!(shows(&app, "ops: waiting for approval (asked dave)"));
    interact(&mut app, |ui| {
        ui.click("# club").expect("room listed");
    });
    assert!(shows(&app, "carol asks to join"));
    let approve = clicking(&app, "Approve");
    assert!(
        matches!(approve.as_slice(), [Message::Approve(r, u)] if r == "club" && u == "carol"),
        "{approve:?}"
    );
    let decline = clicking(&app, "Decline");
    assert!(matches!(decline.as_slice(), [Message::Decline(r, u)] if r == "club" && u == "carol"));
    interact(&mut app, |ui| {
        ui.click("Members").expect("members button");
    });
    assert!(shows(&app, "alice · admin"));
    assert!(
        shows(&app, "bob · verified"),
        "bob's fingerprint matches a verified contact"
    );
    // Once carol is in, the banner is gone.
    let _ = app.update(Message::RoomsListed(Ok(room_list(&[]))));
    assert!(!shows(&app, "carol asks to join"));
}

#[test]
fn room_messages_and_notices_land_in_the_room_and_count_as_unread() {
    let mut app = with_bob();
    let _ = app.update(Message::Engine(Event::RoomMessage {
        room: "club".into(),
        from: "bob".into(),
        text: "hi all".into(),
        round: 30,
        timestamp_ms: 1_000,
    }));
    let _ = app.update(Message::Engine(Event::RoomNotice {
        room: "club".into(),
        notice: "carol joined, approved by bob".into(),
        round: 31,
    }));
    let club = app.book.find("#room/club").expect("room entry");
    assert_eq!(app.book.contacts[club].unread, 2);
    interact(&mut app, |ui| {
        ui.click("# club").expect("room listed");
    });
    assert!(shows(&app, "bob: hi all"));
    assert!(shows(&app, "carol joined, approved by bob"));
    assert_eq!(app.book.contacts[club].unread, 0);
}

#[test]
fn creating_or_joining_a_room_says_what_is_missing() {
    let mut app = with_bob();
    interact(&mut app, |ui| {
        ui.click("Create").expect("create button");
    });
    assert!(shows(&app, "type the new room's name first"));
    type_into(&mut app, "room-name", "club");
    interact(&mut app, |ui| {
        ui.click("Ask to join").expect("join button");
    });
    assert!(shows(&app, "type the room's name and a member you know"));
    assert_eq!(app.rooms.name_input, "club", "kept for the next try");
}

/// A 1×1 red PNG.
const RED_PIXEL_PNG: [u8; 69] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

mod backup;
mod files;
