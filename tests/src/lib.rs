//! Multi-process integration, fault and benchmark harnesses for Chorus.
//!
//! Integration suites live in `tests/<suite>/main.rs` and start real `node` processes on
//! free 127.0.0.1 ports.
