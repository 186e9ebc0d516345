//! Process-wide logging set up the same way by every Ray History program.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: the filter comes from `RUST_LOG` (default `info`),
/// lines go to stderr (stdout stays free for command output) and are JSON when `LOG_FORMAT=json`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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

/// Turns a program's result into its exit code. An error is printed as one line on stderr,
/// causes joined by `: ` (`{:#}`), never as a backtrace, so a bad setting reads as one sentence.
pub fn exit_code<E: std::fmt::Display>(
    result: Result<std::process::ExitCode, E>,
) -> std::process::ExitCode {
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_a_failure_code() {
        let failed: Result<std::process::ExitCode, String> = Err("STORAGE: not set".into());
        assert_eq!(exit_code(failed), std::process::ExitCode::FAILURE);
        let ok: Result<_, String> = Ok(std::process::ExitCode::SUCCESS);
        assert_eq!(exit_code(ok), std::process::ExitCode::SUCCESS);
    }
}
