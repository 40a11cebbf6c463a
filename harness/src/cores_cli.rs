//! The `matrix` and `bisect` subcommands: a workload over vendored core builds.

use std::process::ExitCode;

use clap::Args;
use harness::bisect;
use harness::matrix::{self, CoreSet};

use crate::cli::RunArgs;

/// Options of `harness matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The run's options (as `harness run`).
    #[command(flatten)]
    run: RunArgs,
    /// Which cores: `all` (every distinct build), `test-set`, or comma-separated versions.
    #[arg(long, default_value = "test-set")]
    cores: String,
    /// Runs at a time (each with its own PostgreSQL, stand-in and endpoints); default: one per
    /// two CPUs.
    #[arg(long)]
    jobs: Option<usize>,
}

/// Options of `harness bisect`.
#[derive(Debug, Args)]
pub struct BisectArgs {
    /// The run's options (as `harness run`).
    #[command(flatten)]
    run: RunArgs,
    /// A core that passes.
    #[arg(long)]
    good: String,
    /// A core that fails.
    #[arg(long)]
    bad: String,
    /// Runs per core; a core fails when any of them fails (for flaky faults).
    #[arg(long, default_value_t = 1)]
    repeats: usize,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("harness: cannot start the runtime: {e}");
            ExitCode::from(2)
        })
}

/// `harness matrix`: exit 0 when no applicable core failed, 1 otherwise, 2 on bad options.
pub fn matrix(args: MatrixArgs) -> ExitCode {
    let (opts, cores) = match args
        .run
        .into_opts()
        .and_then(|o| Ok((o, CoreSet::parse(&args.cores)?)))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("harness: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    });
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let rows = rt.block_on(matrix::run(&opts, &cores, jobs));
    print!("{}", matrix::table(&rows));
    match matrix::write_results(&opts.store, &rows) {
        Ok(path) => println!(
            "results in {}; runs stored under {}",
            path.display(),
            opts.store.display()
        ),
        Err(e) => {
            eprintln!("harness: {e}");
            return ExitCode::from(2);
        }
    }
    if matrix::all_valid(&rows) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `harness bisect`: exit 0 when a first failing core was found, 2 when the bisection could not
/// be carried out (e.g. the good core fails).
pub fn bisect(args: BisectArgs) -> ExitCode {
    let opts = match args.run.into_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("harness: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(bisect::run(&opts, &args.good, &args.bad, args.repeats)) {
        Ok(found) => {
            print!("{}", bisect::report(&found));
            let path = opts.store.join("bisect.json");
            let written = serde_json::to_string_pretty(&found)
                .map_err(|e| e.to_string())
                .and_then(|j| std::fs::write(&path, j + "\n").map_err(|e| e.to_string()));
            match written {
                Ok(()) => println!("results in {}", path.display()),
                Err(e) => eprintln!("harness: cannot write {}: {e}", path.display()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::from(2)
        }
    }
}

/// Options of `harness diff-cores`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first core (a vendored version).
    #[arg(long)]
    a: String,
    /// The second core.
    #[arg(long)]
    b: String,
    /// The script (default: the committed `harness/fixtures/core-diff-script.json`).
    #[arg(long)]
    script: Option<std::path::PathBuf>,
    /// Print the differences as JSON.
    #[arg(long)]
    json: bool,
}

/// `harness diff-cores`: exit 0 when the cores behave the same on the script, 1 when they
/// differ, 2 when the script could not be run.
pub fn diff_cores(args: DiffArgs) -> ExitCode {
    use harness::core_diff::{self, Script};
    let result = (|| {
        let script = match &args.script {
            Some(path) => Script::read(path)?,
            None => Script::parse(core_diff::DEFAULT_SCRIPT)?,
        };
        let load = |v: &str| {
            powersync_sys::VendoredCore::find(v)
                .and_then(|c| c.load())
                .map_err(|e| harness::Error::Options(e.to_string()))
        };
        let (a, b) = (load(&args.a)?, load(&args.b)?);
        let diffs = core_diff::compare(&core_diff::run(a, &script)?, &core_diff::run(b, &script)?);
        Ok::<_, harness::Error>((a, b, diffs))
    })();
    match result {
        Ok((a, b, diffs)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&diffs).unwrap_or_default()
                );
            } else {
                print!("{}", core_diff::report(a, b, &diffs));
            }
            if diffs.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::from(2)
        }
    }
}
