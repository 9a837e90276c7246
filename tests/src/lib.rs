//! Multi-process integration, fault and benchmark harnesses for Chorus.
//!
//! [`cluster::Cluster`] generates keys and configs on free 127.0.0.1 ports, starts real
//! `node` processes, and offers waits on conditions (never bare sleeps) and faults
//! (kill -9, restart). Suites live in `tests/<suite>/main.rs`.

pub mod cluster;
pub mod hostile;
pub mod http;
pub mod netns;
