//! MLS as rooms use it: joins, commits in log order, removal, restarts.

use super::*;
use proptest::prelude::*;

fn person() -> (keys::Identity, Mls) {
    let id = keys::Identity::generate(&mut rand_core::OsRng);
    let mls = Mls::new(&id);
    (id, mls)
}

fn same_keys(a: &Mls, b: &Mls, room: &RoomId) -> bool {
    let (ea, ka) = a.room_keys(room).expect("keys a");
    let (eb, kb) = b.room_keys(room).expect("keys b");
    ea == eb && *ka.to_bytes() == *kb.to_bytes()
}

/// alice's room with bob in it.
fn alice_and_bob() -> (Mls, Mls, RoomId) {
    let (_, alice) = person();
    let (_, bob) = person();
    let room = [7; 16];
    alice.create(room).expect("create");
    let kp = bob.key_package().expect("key package");
    let (_, welcome) = alice.add(&room, &kp).expect("add");
    alice.merge_own(&room).expect("merge");
    assert_eq!(bob.join(&welcome).expect("join"), room);
    (alice, bob, room)
}

#[test]
fn a_welcomed_member_derives_the_same_room_keys() {
    let (alice, bob, room) = alice_and_bob();
    assert!(same_keys(&alice, &bob, &room));
    let mut members = alice.members(&room).expect("members");
    members.sort();
    let mut expect = vec![alice.me(), bob.me()];
    expect.sort();
    assert_eq!(members, expect);
}

#[test]
fn a_commit_applied_by_every_member_moves_them_all_and_a_removed_member_is_left_behind() {
    let (alice, bob, room) = alice_and_bob();
    let (_, carol) = person();
    let (commit, welcome) = alice
        .add(&room, &carol.key_package().expect("kp"))
        .expect("add");
    let applied = bob.apply(&room, &commit, |_| true).expect("bob applies");
    assert_eq!(applied.added, vec![carol.me()]);
    assert_eq!(applied.committer, Some(alice.me()));
    alice.merge_own(&room).expect("merge");
    carol.join(&welcome).expect("carol joins");
    assert!(same_keys(&alice, &carol, &room) && same_keys(&alice, &bob, &room));

    let (_, before) = bob.room_keys(&room).expect("bob's keys");
    let commit = alice.remove(&room, &bob.me()).expect("remove bob");
    let applied = carol
        .apply(&room, &commit, |_| true)
        .expect("carol applies");
    assert_eq!(applied.removed, vec![bob.me()]);
    let gone = bob.apply(&room, &commit, |_| true).expect("bob learns");
    assert!(gone.we_were_removed);
    alice.merge_own(&room).expect("merge");
    assert!(same_keys(&alice, &carol, &room));
    let (_, after) = alice.room_keys(&room).expect("new keys");
    assert_ne!(
        *before.to_bytes(),
        *after.to_bytes(),
        "bob's last keys are not the room's"
    );
}

#[test]
fn of_two_commits_in_one_epoch_the_first_applied_wins_and_the_other_is_refused() {
    let (alice, bob, room) = alice_and_bob();
    let (_, carol) = person();
    let (_, dave) = person();
    let (first, _) = alice
        .add(&room, &carol.key_package().expect("kp"))
        .expect("alice adds");
    let (second, _) = bob
        .add(&room, &dave.key_package().expect("kp"))
        .expect("bob adds");
    let epoch = Mls::commit_epoch(&first);
    assert_eq!(epoch, Mls::commit_epoch(&second));
    // Output order puts alice's first: bob applies it (his own pending commit is dropped),
    // alice merges hers, and bob's no longer applies anywhere.
    bob.apply(&room, &first, |_| true)
        .expect("bob applies alice's");
    assert!(!bob.has_pending(&room));
    alice.merge_own(&room).expect("alice's won");
    assert!(alice.apply(&room, &second, |_| true).is_err());
    assert!(same_keys(&alice, &bob, &room));
}

#[test]
fn a_commit_the_rules_refuse_changes_nothing() {
    let (alice, bob, room) = alice_and_bob();
    let (_, carol) = person();
    let before = bob.room_keys(&room).expect("keys").0;
    let (commit, _) = alice
        .add(&room, &carol.key_package().expect("kp"))
        .expect("add");
    assert!(bob.apply(&room, &commit, |_| false).is_err());
    assert_eq!(bob.room_keys(&room).expect("keys").0, before);
}

#[test]
fn state_survives_a_restart_including_a_key_package_waiting_for_its_welcome() {
    let (alice_id, alice) = person();
    let (bob_id, bob) = person();
    let room = [9; 16];
    alice.create(room).expect("create");
    let kp = bob.key_package().expect("kp");
    let bob = Mls::restore(&bob_id, &bob.snapshot()).expect("bob restarts");
    let (_, welcome) = alice.add(&room, &kp).expect("add");
    alice.merge_own(&room).expect("merge");
    let alice = Mls::restore(&alice_id, &alice.snapshot()).expect("alice restarts");
    bob.join(&welcome).expect("join after restart");
    assert!(same_keys(&alice, &bob, &room));
}

#[test]
fn a_key_package_naming_someone_else_is_refused() {
    let (_, alice) = person();
    let (bob_id, _) = person();
    let (eve_id, _) = person();
    // Eve signs with her key but claims bob's identity in the credential.
    let mut eve = Mls::new(&eve_id);
    eve.me = MemberKeys::of(&bob_id);
    let kp = eve.key_package().expect("kp");
    let err = alice.check_key_package(&kp).expect_err("refused");
    assert!(err.0.contains("another key"), "{err}");
    assert!(alice.check_key_package(b"not a key package").is_err());
}

proptest! {
    #[test]
    fn a_damaged_snapshot_is_refused_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_snapshot(&bytes);
    }
}
