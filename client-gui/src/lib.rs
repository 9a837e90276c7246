//! Chorus desktop chat (iced 0.14, software renderer).
//!
//! ```text
//!  main thread: iced (winit event loop, tiny-skia)      engine thread(s): tokio
//!  App::update ──EngineHandle (send/register/lookup)──► client::engine
//!  App::update ◄──────────── Event stream ───────────── (rounds, retries, decryption)
//! ```
//! The app holds no protocol logic: the engine decides delivery states; the app shows
//! them. Contacts (with verified marks and unread counts) live in `contacts.json` in
//! the client's data folder; history comes from the engine's store.

pub mod app;
pub mod backup;
pub mod files;
pub mod link;
pub mod model;
pub mod rooms;

#[cfg(test)]
mod sim_tests;
