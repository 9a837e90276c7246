//! Headless Chorus client engine, shared by `chat-cli` and the desktop app.
//!
//! - [`frame`]: the libp2p wire framing (also used by the servers, so both ends agree).
//! - [`conn`]: a connection to every server of a cluster, with per-server requests and
//!   the gossiped round outputs.
//! - [`backoff`]: per-peer redial backoff (also used by the servers).
//! - [`config`]: client config files → settings.
//! - [`store`]: the local history, outbox and delivery record (redb).
//! - [`engine`]: rounds, outbox, inbox and events.

pub mod backoff;
pub mod config;
pub mod conn;
pub mod engine;
pub mod frame;
pub mod store;
