use clap::Parser;

/// Operator: CRDs, reconcilers and the collector-injecting webhook
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
