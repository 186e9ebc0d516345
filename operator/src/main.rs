//! `ray-history-operator`: `run` (default) starts the operator, `crd` prints the CRDs.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ray_history_operator::app::{self, RunArgs};

/// Ray History operator: HistoryStorage and HistoryServer controllers and the collector webhook.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (the default).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

#[tokio::main]
async fn main() -> ExitCode {
    ray_history_cli::telemetry::exit_code(run_command().await)
}

async fn run_command() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Crd) => {
            print!("{}", ray_history_operator::crd::to_yaml()?);
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Run(args)) => *args,
        None => cli.run,
    };
    ray_history_cli::telemetry::init_tracing();
    // object_store and kube both link rustls; pick one process-wide provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    app::run(args).await?;
    Ok(ExitCode::SUCCESS)
}
