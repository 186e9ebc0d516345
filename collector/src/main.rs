//! `ray-history-collector`: parses the command line and runs the chosen command.
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ray_history_collector::config::{Cli, Command};
use ray_history_collector::{engine, shutdown, sync};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(check)) => Ok(check.execute().await),
        Some(Command::Sync(args)) => {
            let summary = sync::run(args).await?;
            tracing::info!(
                files = summary.files,
                bytes = summary.bytes,
                "session uploaded"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Run(args)) => run(args).await,
        None => run(cli.run).await,
    }
}

async fn run(args: ray_history_collector::config::RunArgs) -> anyhow::Result<ExitCode> {
    let stop = shutdown::on_signal()?;
    engine::run(args, stop).await?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
