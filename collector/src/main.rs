//! `ray-history-collector`: parses the command line and runs the chosen command.
use std::process::ExitCode;

use clap::Parser;
use ray_history_collector::config::{Cli, Command};
use ray_history_collector::{engine, shutdown, sync};

#[tokio::main]
async fn main() -> ExitCode {
    // Test builds only: `FAILPOINTS` names the steps at which to abort (tests/faults.rs).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    ray_history_cli::telemetry::init_tracing();
    ray_history_cli::telemetry::exit_code(run_command().await)
}

async fn run_command() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(check)) => Ok(check.execute().await),
        Some(Command::Sync(args)) => {
            let summary = sync::run(*args).await?;
            tracing::info!(
                files = summary.files,
                bytes = summary.bytes,
                "session uploaded"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Run(args)) => run(*args).await,
        None => run(cli.run).await,
    }
}

async fn run(args: ray_history_collector::config::RunArgs) -> anyhow::Result<ExitCode> {
    let stop = shutdown::on_signal()?;
    engine::run(args, stop).await?;
    Ok(ExitCode::SUCCESS)
}
