use clap::Parser;

/// History server: serves stored Ray sessions, logs and the Ray dashboard API
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
