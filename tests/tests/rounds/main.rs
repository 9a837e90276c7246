//! Anonymous rounds end to end, on real node processes with in-process client engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a test failure

mod absence;
mod abuse;
mod backup;
mod board;
mod daemon;
mod delivery;
mod files;
mod privacy;
mod robust;
mod rooms;
mod util;
