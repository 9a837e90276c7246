//! Key backup in the app: the Back up panel from the header, and "Restore from backup"
//! on the first-run screen.

use client::backup::Step;

use super::*;
use crate::backup::{BackupMsg, Made, Report, Status, BACKUP_AGAIN, BACKUP_PASS};

/// Open the Back up panel and type `pass` and `again` into its two fields.
fn typed_twice(app: &mut App, pass: &str, again: &str) {
    interact(app, |ui| {
        ui.click("Back up").expect("Back up in the header");
    });
    assert!(app.backup.open);
    assert!(shows(app, "Back up your identity"));
    interact(app, |ui| {
        ui.click(selector::id(BACKUP_PASS))
            .expect("passphrase field");
        ui.typewrite(pass);
        ui.click(selector::id(BACKUP_AGAIN)).expect("again field");
        ui.typewrite(again);
    });
}

/// Click `label` and apply what it does; whether any of it started work (a task).
fn click_starts_work(app: &mut App, label: &str) -> bool {
    let mut started = false;
    for m in clicking(app, label) {
        let task = app.update(m);
        started |= iced_test::runtime::task::into_stream(task).is_some();
    }
    started
}

fn made(report: Report<Made>) -> Message {
    Message::Backup(BackupMsg::Made(report))
}

#[test]
fn a_weak_passphrase_is_refused_in_words_and_nothing_is_sent() {
    let mut app = App::offline(me());
    typed_twice(&mut app, "password1234", "password1234");
    assert_eq!(
        app.backup.pass.expose(),
        "password1234",
        "typing reached the field"
    );
    assert!(
        !shows(&app, "password1234"),
        "a passphrase is never drawn in the clear"
    );
    assert!(!click_starts_work(&mut app, "Back up now"), "nothing sent");
    assert!(shows(&app, "the passphrase is too easy to guess"));
    assert!(!app.backup.status.working());
    // Too short says so, and what would help.
    let _ = app.update(Message::Backup(BackupMsg::Pass("tiny".into())));
    let _ = app.update(Message::Backup(BackupMsg::Again("tiny".into())));
    assert!(!click_starts_work(&mut app, "Back up now"));
    assert!(shows(
        &app,
        "the passphrase is too short: use at least 10 characters"
    ));
}

#[test]
fn passphrases_that_differ_are_refused_in_words() {
    let mut app = App::offline(me());
    typed_twice(
        &mut app,
        "tangerine oscillate quarry mumble lantern",
        "tangerine oscillate quarry mumble lantren",
    );
    // Enter in the second field asks too.
    let messages: Vec<Message> = {
        let mut ui = simulator(app.view());
        ui.click(selector::id(BACKUP_AGAIN)).expect("again field");
        ui.tap_key(Named::Enter);
        ui.into_messages().collect()
    };
    assert!(matches!(
        messages.as_slice(),
        [Message::Backup(BackupMsg::Start)]
    ));
    for m in messages {
        let task = app.update(m);
        assert!(iced_test::runtime::task::into_stream(task).is_none());
    }
    assert!(shows(
        &app,
        "the two passphrases differ: type the same passphrase in both fields"
    ));
    assert_eq!(
        app.backup.pass.expose(),
        "tangerine oscillate quarry mumble lantern",
        "kept to fix"
    );
}

#[test]
fn an_unregistered_name_or_no_engine_is_said_before_anything_is_sent() {
    use crate::app::Registration;
    let strong = "tangerine oscillate quarry mumble lantern";
    let mut app = App::offline(me());
    app.registration = Registration::Needed;
    typed_twice(&mut app, strong, strong);
    assert!(!click_starts_work(&mut app, "Back up now"));
    assert!(shows(&app, "register your name first"));
    app.registration = Registration::Registered("alice".into());
    assert!(!click_starts_work(&mut app, "Back up now"));
    assert!(shows(
        &app,
        "the engine is not running, so nothing can be sent"
    ));
}

#[test]
fn progress_shows_in_words_then_the_result_or_the_error() {
    let mut app = App::offline(me());
    interact(&mut app, |ui| {
        ui.click("Back up").expect("Back up in the header");
    });
    assert!(shows(&app, "under the name alice"), "says which name");
    app.backup.status = Status::Working(None);
    assert!(shows(&app, "connecting to the servers…"));
    assert!(
        clicking(&app, "Back up now").is_empty(),
        "one backup at a time"
    );
    let _ = app.update(made(Report::Step(Step::Asking)));
    assert!(shows(&app, "asking every server how backups stand…"));
    let _ = app.update(made(Report::Step(Step::Sending)));
    assert!(shows(&app, "sealing the shares and sending the backup…"));
    assert!(!shows(&app, "asking every server"));
    let _ = app.update(made(Report::Done(Err(
        "fewer than 2 servers agree on the backup keys (server 1: no answer)".into(),
    ))));
    let _ = app.update(made(Report::Ended));
    assert!(shows(
        &app,
        "Not backed up: fewer than 2 servers agree on the backup keys (server 1: no answer)"
    ));
    assert!(!shows(&app, "sealing the shares"));
    assert!(!clicking(&app, "Back up now").is_empty(), "can try again");

    app.backup.status = Status::Working(Some(Step::Sending));
    let _ = app.update(made(Report::Done(Ok(Made {
        name: "alice".into(),
        version: 4,
        bytes: 1234,
    }))));
    assert!(shows(&app, "Backed up (1234 bytes encrypted)"));
    interact(&mut app, |ui| {
        ui.click("Close").expect("close button");
    });
    assert!(!app.backup.open);
    assert!(!shows(&app, "Back up your identity"));
}

#[test]
fn first_run_offers_restore_and_its_form_says_what_is_missing() {
    let mut app = App::empty(None);
    assert!(shows(&app, "Restore from backup"));
    assert!(!click_starts_work(&mut app, "Restore"));
    assert!(shows(
        &app,
        "name: enter the name the backup was made under"
    ));
    type_into(&mut app, "restore-name", "dora");
    assert_eq!(app.backup.restore_name, "dora");
    assert!(!click_starts_work(&mut app, "Restore"));
    assert!(shows(&app, "type the backup's passphrase"));
    assert!(app.me.is_none());
}

#[test]
fn a_restore_from_a_missing_cluster_file_names_it() {
    let mut app = App::empty(None);
    interact(&mut app, |ui| {
        ui.click(selector::id("setup-cluster"))
            .expect("cluster field");
        ui.typewrite("/nonexistent/cluster.toml");
        ui.click(selector::id("restore-name")).expect("name field");
        ui.typewrite("dora");
    });
    // Enter in the passphrase field restores, off the UI thread; its answer comes back.
    interact_running(&mut app, |ui| {
        ui.click(selector::id("restore-pass"))
            .expect("passphrase field");
        ui.typewrite("tangerine oscillate quarry mumble lantern");
        ui.tap_key(Named::Enter);
    });
    assert!(
        app.backup.restore_pass.is_empty(),
        "each attempt is a guess: typed again for the next"
    );
    assert!(app.me.is_none());
    assert!(
        shows(&app, "Not restored: "),
        "{:?}",
        app.backup.restore_status
    );
    assert!(shows(&app, "/nonexistent/cluster.toml"), "names the file");
}
