//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

use crate::version::{CoreVersion, SupportedVersions};

/// Where a candidate library path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LibrarySource {
    /// A path the caller passed to [`crate::CoreLibrary::load_from`].
    Explicit,
    /// The `POWERSYNC_LIB` environment variable.
    EnvLib,
    /// The `POWERSYNC_LIB_DIR` environment variable.
    EnvLibDir,
    /// Beside the running executable or in `../lib/` of it (an installed bundle).
    Installed,
    /// The vendored default core baked in at build time.
    Vendored,
    /// The system dynamic loader's search path.
    System,
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Explicit => "explicit path",
            Self::EnvLib => "POWERSYNC_LIB",
            Self::EnvLibDir => "POWERSYNC_LIB_DIR",
            Self::Installed => "beside the executable",
            Self::Vendored => "vendored default",
            Self::System => "system loader",
        })
    }
}

/// One place the loader looked, and why it did not use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Where the path came from.
    pub source: LibrarySource,
    /// The path (or bare library name, for the system loader).
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.path.display(),
            self.source,
            self.reason
        )
    }
}

fn list(attempts: &[Attempt]) -> String {
    attempts.iter().map(|a| format!("\n  - {a}")).collect()
}

/// Everything that can go wrong when finding, loading, checking or registering the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No candidate path held a loadable library.
    #[error(
        "could not find the PowerSync core library (libpowersync.so); tried:{}\n\
         Fix: run `vendor/fetch-cores` to fetch the vendored builds, or set POWERSYNC_LIB to the \
         library file (or POWERSYNC_LIB_DIR to its directory).",
        list(.tried)
    )]
    NotFound {
        /// Every place looked at, in order.
        tried: Vec<Attempt>,
    },

    /// The file exists but the dynamic loader refused it (wrong architecture, corrupt file,
    /// missing dependency).
    #[error("could not load {path} ({source}): {error}")]
    LoadFailed {
        /// The library path.
        path: PathBuf,
        /// Where the path came from.
        source: LibrarySource,
        /// The loader's message.
        #[source]
        error: libloading::Error,
    },

    /// The library loaded but does not export the entry point: it is not a PowerSync core.
    #[error("{path} has no symbol `{symbol}`: it is not a PowerSync core extension ({error})")]
    MissingSymbol {
        /// The library path.
        path: PathBuf,
        /// The missing symbol.
        symbol: &'static str,
        /// The loader's message.
        #[source]
        error: libloading::Error,
    },

    /// The entry point (or SQLite around it) reported an error; `message` is SQLite's text, such
    /// as the core's "requires SQLite version number 3044000 or later".
    #[error("initialising the PowerSync core {path} failed (SQLite code {code}): {message}")]
    InitFailed {
        /// The library path.
        path: PathBuf,
        /// SQLite's result code.
        code: i32,
        /// SQLite's or the core's message.
        message: String,
    },

    /// `powersync_rs_version()` returned something that is not `<major>.<minor>.<patch>/<hash>`.
    #[error("{path} reports an unparseable version {raw:?} (expected `x.y.z/hash`)")]
    InvalidVersion {
        /// The library path.
        path: PathBuf,
        /// What the core returned.
        raw: String,
    },

    /// The core's version is outside the range this crate supports.
    #[error(
        "{path} is PowerSync core {found}, but this crate supports {supported}; \
         use a vendored core (`vendor/fetch-cores`) or point POWERSYNC_LIB at a supported build"
    )]
    UnsupportedVersion {
        /// The library path.
        path: PathBuf,
        /// The version the core reports.
        found: Box<CoreVersion>,
        /// The supported range.
        supported: &'static SupportedVersions,
    },

    /// A different core is already registered as SQLite auto-extension in this process.
    #[error(
        "cannot register {requested} as SQLite auto-extension: {registered} is already \
         registered (call unregister_auto_extension first)"
    )]
    AlreadyRegistered {
        /// The core already registered.
        registered: PathBuf,
        /// The core that was asked to register.
        requested: PathBuf,
    },

    /// `sqlite3_auto_extension` itself failed.
    #[error("sqlite3_auto_extension failed with SQLite code {code}")]
    RegistrationFailed {
        /// SQLite's result code.
        code: i32,
    },

    /// [`crate::CoreLibrary::vendored`] was asked for a version the manifest does not list.
    #[error("core {requested} is not in vendor/cores.tsv (vendored: {})", .known.join(", "))]
    UnknownVendoredCore {
        /// The version asked for.
        requested: String,
        /// The versions the manifest lists.
        known: Vec<String>,
    },

    /// A capability probe ([`crate::CoreLibrary::capabilities`]) met behaviour it cannot
    /// classify.
    #[error("probing the core at {path}: {what}: {message}")]
    Probe {
        /// The core's path.
        path: PathBuf,
        /// What was being probed.
        what: String,
        /// What happened.
        message: String,
    },
}
