//! Headless Chorus client engine, shared by `chat-cli` and the desktop app.
//!
//! Filled in by the "Anonymous rounds end to end" issue.
