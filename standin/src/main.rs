//! The `standin` binary: `standin --config <file.yaml>` (see `standin::config::ConfigFile`).

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: standin --config <standin.yaml>");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "--config" || flag == "-c" => PathBuf::from(path),
        _ => return usage(),
    };
    let config = match standin::Config::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let standin = match standin::StandIn::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("standin: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tests read this line to find the port.
    println!("standin listening on {}", standin.url());
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("standin: cannot install SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    standin.shutdown().await;
    ExitCode::SUCCESS
}
