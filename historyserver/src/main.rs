//! `ray-history-server`: serves stored Ray sessions, logs and the Ray dashboard API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ray_history_cli::CheckCommand;
use ray_history_server::config::ServeArgs;

/// History server: serves stored Ray sessions, logs and the Ray dashboard API.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at start-up: the size of the variants costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve(ServeArgs),
    /// Check the storage end to end and exit.
    Check(CheckCommand),
    /// Delete sessions beyond the retention limits (`--dry-run` lists them and why).
    Gc(ray_history_server::retention::GcArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    ray_history_cli::telemetry::init_tracing();
    ray_history_cli::telemetry::exit_code(run_command().await)
}

async fn run_command() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(check)) => Ok(check.execute().await),
        Some(Command::Gc(args)) => {
            ray_history_server::retention::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    ray_history_server::server::run(args).await?;
    Ok(ExitCode::SUCCESS)
}
