use clap::Parser;

/// Collector sidecar: streams Ray logs and events to object storage
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
