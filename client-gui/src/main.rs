//! Chorus desktop chat (iced). Filled in by the "Desktop chat" issue.

fn main() {
    eprintln!("client-gui: not implemented yet");
    std::process::exit(2);
}
