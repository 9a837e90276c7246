//! Real `node` processes on 127.0.0.1: consensus, faults, compaction and hostile peers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod config;
mod consensus;
mod hostile;
mod partition;
mod util;
