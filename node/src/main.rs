//! `node`: a Chorus server. Reads a TOML config, validates it, starts the actor system.
//!
//! Filled in by the "Server node" issue.

fn main() {
    eprintln!("node: not implemented yet; see the Server node issue");
    std::process::exit(2);
}
