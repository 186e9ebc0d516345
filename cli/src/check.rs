//! The `check` subcommand every program embeds: runs the storage crate's probe of the
//! configured storage and prints one line per step.

use std::process::ExitCode;
use std::time::Duration;

use ray_history_storage::check;

use crate::StorageArgs;

/// The `check` subcommand the programs embed: exit 0 when the storage works, otherwise print
/// the reason and exit 1.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckCommand {
    /// Storage settings.
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl CheckCommand {
    /// Runs the check, printing one line per step, and returns the exit code.
    pub async fn execute(&self) -> ExitCode {
        let config = match self.storage.resolve() {
            Ok(config) => config,
            Err(e) => {
                eprintln!("storage check failed: bad configuration: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("checking {}", config.describe());
        let result = check::run_with(&config, |step| {
            println!(
                "ok {:<6} {} ({})",
                step.name,
                step.detail,
                humantime::format_duration(Duration::from_millis(step.elapsed.as_millis() as u64))
            );
        })
        .await;
        match result {
            Ok(_) => {
                println!("storage check passed");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "storage check failed: {}",
                    ray_history_storage::redact::scrub(&e.to_string())
                );
                ExitCode::FAILURE
            }
        }
    }
}
