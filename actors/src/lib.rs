//! The Chorus server's actors: peer-connection (libp2p swarm), consensus (openraft with a
//! durable redb log), share-keeper and broadcaster, the tasks between them, and the
//! metrics registry.
//!
//! Only this crate knows openraft and actix; libp2p it shares with `client` through the
//! `p2p` crate.
//!
//! Modules, leaves first (each imports only from those above it):
//! - [`types`], [`metrics`]: openraft type config and wire types between servers; the
//!   prometheus registry and counters.
//! - [`store`]: openraft log and state machine on redb; [`backup_store`]: the
//!   backup-keeper's private store (epoch secrets and shares, sealed at rest).
//! - [`net`], [`raft_net`]: the swarm's event loop (which forwards only servers'
//!   gossip, judged by `p2p::gossip`); openraft's network over it.
//! - [`write`]: the commit path (forward to the leader, bounded retries, typed error);
//!   [`held`]: clients' opened shares held between their upload and the round's
//!   decision (they never enter the log).
//! - [`messages`]: messages more than one actor handles; [`quota`]: per-peer quotas on
//!   client calls.
//! - [`peer_connection`], [`client_api`], [`gateway`], [`round_clock`], [`consensus`],
//!   [`share_keeper`], [`broadcaster`], [`backup_keeper`]: the actors and their logic.
//! - [`dispatch`]: the tasks that route network events and applied entries to actors.
//! - [`status`], [`server`]: `/status`, and the wiring that starts everything.

pub mod archive;
pub mod backup_keeper;
pub mod backup_store;
pub mod broadcaster;
pub mod client_api;
pub mod consensus;
pub mod dispatch;
pub mod gateway;
pub mod held;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod open_pool;
pub mod peer_connection;
pub mod quota;
pub mod raft_net;
pub mod round_clock;
pub mod server;
pub mod share_keeper;
pub mod status;
pub mod store;
pub mod types;
pub mod write;

/// Every actor's mailbox holds this many messages; senders wait beyond it (dispatchers
/// use `send().await`, never `do_send`).
pub const MAILBOX_CAPACITY: usize = 256;
