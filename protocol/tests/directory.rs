//! The directory as servers serve it: every registration once, in commit order, in
//! pages from any position.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

use keys::Identity;
use protocol::wire::Register;
use protocol::{Admission, Command, Effect, Params, RoundMachine};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn registrations_are_served_in_commit_order_once_each_from_any_position() {
    let mut rng = StdRng::seed_from_u64(3);
    let params = Params::new(3, 1, 4, 256, 1, 100, Admission::Open).unwrap();
    let mut m = RoundMachine::new(params);
    let people: Vec<Identity> = (0..10).map(|_| Identity::generate(&mut rng)).collect();
    let regs: Vec<Register> = people
        .iter()
        .enumerate()
        .map(|(i, p)| Register::new(&format!("user-{i}"), p).unwrap())
        .collect();
    for reg in &regs {
        assert!(matches!(
            m.apply(&Command::Register(reg.clone())),
            Effect::Registered { .. }
        ));
    }
    // A repeat and a refused claim add nothing.
    m.apply(&Command::Register(regs[3].clone()));
    m.apply(&Command::Register(
        Register::new("user-4", &Identity::generate(&mut rng)).unwrap(),
    ));
    let (all, total) = m.directory_page(0, 100);
    assert_eq!(total, 10);
    assert_eq!(all, regs.as_slice());
    let (page, _) = m.directory_page(4, 3);
    assert_eq!(page, &regs[4..7]);
    let (past, total) = m.directory_page(50, 3);
    assert!(past.is_empty());
    assert_eq!(total, 10);
    assert!(m.directory_page(u64::MAX, usize::MAX).0.is_empty());
}
