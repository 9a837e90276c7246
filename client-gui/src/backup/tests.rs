//! The backup module's pure helpers: passphrase and form checks, status words.

use super::*;

const STRONG: &str = "tangerine oscillate quarry mumble lantern";

#[test]
fn every_step_has_its_own_words() {
    let steps = [
        Step::Asking,
        Step::Sending,
        Step::Checking,
        Step::Unlocking,
        Step::Opening,
    ];
    let words: std::collections::BTreeSet<&str> = steps.iter().map(step_words).collect();
    assert_eq!(words.len(), steps.len(), "no two steps read the same");
    assert!(words.iter().all(|w| !w.is_empty()));
}

#[test]
fn status_words_say_what_is_happening() {
    assert_eq!(Status::Idle.words(), None);
    assert_eq!(
        Status::Working(None).words().as_deref(),
        Some("connecting to the servers…")
    );
    assert_eq!(
        Status::Working(Some(Step::Opening)).words().as_deref(),
        Some("decrypting the backup…")
    );
    assert_eq!(Status::Failed("no".into()).words().as_deref(), Some("no"));
    assert!(Status::Working(None).working());
    assert!(!Status::Done("ok".into()).working());
}

#[test]
fn reports_move_the_status_and_an_early_end_is_a_failure() {
    let mut s = Status::Working(None);
    assert_eq!(
        s.take(Report::<u8>::Step(Step::Asking), "Not backed up"),
        None
    );
    assert_eq!(s, Status::Working(Some(Step::Asking)));
    assert_eq!(s.take(Report::Done(Ok(7u8)), "Not backed up"), Some(7));

    let mut s = Status::Working(Some(Step::Sending));
    let _ = s.take(
        Report::<u8>::Done(Err("server 1 did not answer".into())),
        "Not backed up",
    );
    assert_eq!(
        s,
        Status::Failed("Not backed up: server 1 did not answer".into())
    );
    // The end of the reports after their result changes nothing.
    let _ = s.take(Report::<u8>::Ended, "Not backed up");
    assert_eq!(
        s,
        Status::Failed("Not backed up: server 1 did not answer".into())
    );

    let mut s = Status::Working(Some(Step::Checking));
    let _ = s.take(Report::<u8>::Ended, "Not restored");
    assert_eq!(
        s.words().as_deref(),
        Some("Not restored: it stopped before it finished; try again")
    );
}

#[test]
fn a_new_passphrase_must_be_typed_twice_the_same_and_be_strong() {
    let e = check_new(&Secret::default(), &Secret::default(), "alice").expect_err("empty");
    assert!(e.contains("type a passphrase"), "{e}");
    let e = check_new(&STRONG.into(), &"tangerine".into(), "alice").expect_err("differ");
    assert!(e.contains("the two passphrases differ"), "{e}");
    let e = check_new(&"short".into(), &"short".into(), "alice").expect_err("short");
    assert!(e.contains("too short"), "{e}");
    let e = check_new(&"password1234".into(), &"password1234".into(), "alice").expect_err("common");
    assert!(e.contains("too easy to guess"), "{e}");
    check_new(&STRONG.into(), &STRONG.into(), "alice").expect("strong and the same");
}

#[test]
fn the_restore_form_says_what_is_missing() {
    let pass = Secret::from(STRONG);
    let e = restore_plan("  ", "alice", &pass).expect_err("no cluster");
    assert!(e.contains("cluster file"), "{e}");
    let e = restore_plan("c/cluster.toml", " ", &pass).expect_err("no name");
    assert_eq!(e, "name: enter the name the backup was made under");
    let e = restore_plan("c/cluster.toml", "bad name!", &pass).expect_err("bad name");
    assert!(e.starts_with("name \"bad name!\""), "{e}");
    let e = restore_plan("c/cluster.toml", "alice", &Secret::default()).expect_err("no pass");
    assert!(e.contains("passphrase"), "{e}");
}

#[test]
fn a_restore_goes_beside_the_cluster_file_and_never_over_an_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = dir.path().join("cluster.toml");
    let typed = format!(" {} ", cluster.display());
    let plan = restore_plan(&typed, " alice ", &STRONG.into()).expect("fine");
    assert_eq!(
        plan,
        RestorePlan {
            name: "alice".into(),
            cluster: cluster.clone(),
            folder: dir.path().to_path_buf(),
        }
    );
    std::fs::write(dir.path().join("alice.key"), b"x").expect("write");
    let e = restore_plan(&typed, "alice", &STRONG.into()).expect_err("exists");
    assert!(e.contains("alice.key already exists"), "{e}");
    // A bare file name is in the current folder, as first-run has it.
    let plan = restore_plan("cluster.toml", "zed", &STRONG.into()).expect("fine");
    assert_eq!(plan.folder, PathBuf::from(""));
}

#[test]
fn results_read_as_sentences() {
    let made = made_words(&Made {
        name: "alice".into(),
        version: 3,
        bytes: 1234,
    });
    assert!(
        made.starts_with("Backed up (1234 bytes encrypted)"),
        "{made}"
    );
    assert!(made.contains("under the name alice"), "{made}");
    let restored = restored_words(&RestoredTo {
        name: "alice".into(),
        config: PathBuf::from("/x/alice.toml"),
        version: 2,
        contacts: false,
    });
    assert!(
        restored.contains("the backup held no contacts"),
        "{restored}"
    );
    assert!(restored.contains("/x/alice.toml"), "{restored}");
}

#[test]
fn a_passphrase_is_never_printed() {
    let s = Secret::from("hunter2 hunter2 hunter2");
    let shown = format!("{s:?} {:?}", BackupMsg::Pass(s.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(s.expose(), "hunter2 hunter2 hunter2");
}
