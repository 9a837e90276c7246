//! File slots: longer than message slots, within the vector, named when wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use protocol::params::Admission;
use protocol::Params;

#[test]
fn file_slots_are_longer_than_message_slots_and_fit_the_vector() {
    let p = Params::new(3, 1, 4, 256, 1, 4, Admission::Open).expect("params");
    assert_eq!(p.longest_slot(), 256, "no file slots: the longest is L");
    let f = p.clone().with_file_slots(2, 8192).expect("two file slots");
    assert_eq!(f.longest_slot(), 8192);
    assert_eq!(f.message_bytes(), p.message_bytes() + 2 * 8197);
    let e = p
        .clone()
        .with_file_slots(1, 256)
        .expect_err("not longer than L");
    assert_eq!(e.field, "round.file_slot_bytes");
    let e = p
        .clone()
        .with_file_slots(40, 16_384)
        .expect_err("too big a vector");
    assert_eq!(e.field, "round.file_slots");
    assert_eq!(p.clone().with_file_slots(0, 0).expect("none").file_slots, 0);
    // The default applies only when it fits.
    assert_eq!(p.clone().with_default_file_slots().file_slots, 1);
    let big = Params::new(3, 1, 8, 16_384, 1, 4, Admission::Open).expect("params");
    assert_eq!(
        big.with_default_file_slots().file_slots,
        0,
        "L is already 16 KiB"
    );
    let other = p.clone().with_file_slots(1, 4096).expect("one");
    assert!(f
        .first_difference(&other)
        .is_some_and(|d| d.starts_with("round.file_slots is 2 here but 1")));
}
