//! Headless Chorus client engine, shared by `chat-cli` and the desktop app. The wire
//! framing, protocol names and redial backoff it shares with the servers live in `p2p`.
//!
//! - [`conn`]: a connection to every server of a cluster, with per-server requests and
//!   the gossiped round outputs.
//! - [`config`]: client config files → settings.
//! - [`store`]: the local history, outbox and delivery record (redb).
//! - [`engine`]: rounds, outbox, inbox and events.

pub mod config;
pub mod conn;
pub mod engine;
pub mod store;
