//! `client-gui`: the Chorus desktop chat.

use std::path::PathBuf;

use clap::Parser;
use client_gui::app::App;

/// Chorus desktop chat. Connects to every server of the cluster in the config, so no
/// single server can silence or deafen you.
///
/// Without --config it opens a first-run form: open a client config or key file, or
/// create a new identity and register a name.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Client config written by `keygen cluster` (e.g. .chorus/client-1.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Window size as WIDTHxHEIGHT.
    #[arg(long, default_value = "1100x720", value_parser = parse_size)]
    size: (f32, f32),
}

fn parse_size(s: &str) -> Result<(f32, f32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 1100x720"))?;
    let w: f32 = w.parse().map_err(|_| format!("{s:?}: bad width"))?;
    let h: f32 = h.parse().map_err(|_| format!("{s:?}: bad height"))?;
    if !(200.0..=10_000.0).contains(&w) || !(200.0..=10_000.0).contains(&h) {
        return Err(format!("{s:?}: width and height must be 200..=10000"));
    }
    Ok((w, h))
}

fn main() -> iced::Result {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = args.config;
    iced::application(move || App::boot(config.clone()), App::update, App::view)
        .title("Chorus")
        .theme(iced::Theme::Light)
        .window_size(iced::Size::new(args.size.0, args.size.1))
        .run()
}
