//! The library half of the `chaos` binary: what it does to the cluster and what it
//! checks afterwards, both free of processes and clocks so they are unit-tested.
//!
//! ```text
//!   seed ─► schedule::plan ─► [Planned] ─► schedule::Executor ─► chaos binary
//!                                           (when to inject/heal)   (kill, STOP, cut)
//!   client events, /proc, logs ─► invariants::Observations ─► invariants::check ─► Verdict
//! ```

pub mod invariants;
pub mod schedule;
