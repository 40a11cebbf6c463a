//! `powersync_endpoint`: exposes a list-append transaction store over HTTP for the
//! jepsen-powersync harness (a drop-in for the Dart endpoints). Everything lives in the library;
//! this only loads the configuration, starts logging and maps the outcome to an exit status.

use std::process::ExitCode;

use endpoint::{Config, Error, logging, run};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("powersync_endpoint: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_level.0);
    tracing::info!(
        "powersync_endpoint {} starting: {config}",
        env!("CARGO_PKG_VERSION")
    );
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("powersync_endpoint stopped: {e}");
            match e {
                Error::Config { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
