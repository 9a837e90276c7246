//! Multi-process integration, fault and benchmark harnesses for Chorus.
//!
//! [`cluster::Cluster`] generates keys and configs on free 127.0.0.1 ports, starts real
//! `node` processes, and offers waits on conditions (never bare sleeps) and faults
//! (kill -9, restart); [`cluster::ClusterOpts`] is the one description of a cluster the
//! suites and the `chaos` and `abuse` binaries start, and [`cluster::attach`] connects
//! `loadgen` and `bench_consensus` to one a script started. [`chaos`] holds the chaos
//! run's seeded fault schedule and its invariant checker, [`metrics`] the one
//! Prometheus scraper and [`stats`] the one `percentile`. Suites live in
//! `tests/<suite>/main.rs`; binaries in `src/bin` stay thin.

pub mod chaos;
pub mod cluster;
pub mod hostile;
pub mod http;
pub mod jam;
pub mod metrics;
pub mod netns;
pub mod stats;
