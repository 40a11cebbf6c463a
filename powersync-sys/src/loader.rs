//! Finding and opening the library. This crate `dlopen`s each canonical path once and keeps the
//! handle for the life of the process; SQLite's `sqlite3_load_extension` (used by
//! [`CoreLibrary::load_into`]) calls `dlopen` on the same path again for every connection, which
//! the dynamic loader answers with the already mapped copy (reference counted, never unmapped
//! because our handle is never closed).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::bindings::sqlite3_powersync_init_fn;
use crate::error::{Attempt, Error, LibrarySource};
use crate::version::{CoreVersion, SUPPORTED_VERSIONS};
use crate::{ENTRY_POINT, ENV_LIB, ENV_LIB_DIR, LIBRARY_FILE_NAME, Result, probe, vendored};

/// The raw entry point, non-null.
pub(crate) type EntryPoint = unsafe extern "C" fn(
    *mut libsqlite3_sys::sqlite3,
    *mut *mut std::ffi::c_char,
    *const libsqlite3_sys::sqlite3_api_routines,
) -> std::ffi::c_int;

/// A loaded PowerSync core: the open library, its entry point and its version.
///
/// Obtained as `&'static CoreLibrary`: a loaded core is never unloaded, because SQLite may call
/// its entry point (auto-extension) or code inside it (functions, virtual tables) for as long as
/// any connection lives.
pub struct CoreLibrary {
    path: PathBuf,
    source: LibrarySource,
    entry: EntryPoint,
    version: CoreVersion,
    _library: Library,
}

/// Every library loaded so far, by canonical path. Held while loading, so two threads asking for
/// the same path get the same handle.
static LOADED: Mutex<Vec<&'static CoreLibrary>> = Mutex::new(Vec::new());

impl CoreLibrary {
    /// Finds and loads the core in the documented order: `POWERSYNC_LIB`, `POWERSYNC_LIB_DIR`,
    /// the vendored default, the system loader. See the crate documentation.
    pub fn load() -> Result<&'static Self> {
        if let Some(file) = env_path(ENV_LIB) {
            return Self::open_candidate(file, LibrarySource::EnvLib);
        }
        if let Some(dir) = env_path(ENV_LIB_DIR) {
            return Self::open_candidate(dir.join(LIBRARY_FILE_NAME), LibrarySource::EnvLibDir);
        }
        let mut tried = Vec::new();
        match Self::vendored(vendored::default_core()) {
            Err(Error::NotFound { tried: mut t }) => tried.append(&mut t),
            other => return other,
        }
        match Self::open_system() {
            Err(Error::NotFound { tried: mut t }) => tried.append(&mut t),
            other => return other,
        }
        Err(Error::NotFound { tried })
    }

    /// Loads the core from `path`. An unloadable path is an error; nothing else is tried.
    pub fn load_from(path: impl AsRef<Path>) -> Result<&'static Self> {
        Self::open_candidate(path.as_ref().to_path_buf(), LibrarySource::Explicit)
    }

    /// Loads the vendored core `version` (e.g. `"0.4.11"`) from `vendor/lib/<version>/`.
    pub fn vendored(version: &str) -> Result<&'static Self> {
        let core = vendored::VendoredCore::find(version)?;
        Self::open_candidate(core.path(), LibrarySource::Vendored)
    }

    /// The path the library was loaded from (canonical), or the bare name for the system loader.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the path came from.
    pub fn source(&self) -> LibrarySource {
        self.source
    }

    /// The version the core reported through `powersync_rs_version()` when it was loaded.
    pub fn version(&self) -> &CoreVersion {
        &self.version
    }

    /// The entry point, typed as SQLite's auto-extension callback.
    pub fn entry_point(&self) -> sqlite3_powersync_init_fn {
        Some(self.entry)
    }

    fn open_candidate(path: PathBuf, source: LibrarySource) -> Result<&'static Self> {
        let canonical = match path.canonicalize() {
            Ok(canonical) if canonical.is_file() => canonical,
            Ok(_) => return Err(not_found(path, source, "not a file".into())),
            Err(e) => {
                let reason = match source {
                    LibrarySource::Vendored => {
                        format!("{e} (not fetched: run `vendor/fetch-cores`)")
                    }
                    _ => e.to_string(),
                };
                return Err(not_found(path, source, reason));
            }
        };
        Self::open(canonical, source)
    }

    fn open_system() -> Result<&'static Self> {
        Self::open(PathBuf::from(LIBRARY_FILE_NAME), LibrarySource::System)
    }

    fn open(path: PathBuf, source: LibrarySource) -> Result<&'static Self> {
        let mut loaded = LOADED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(core) = loaded.iter().find(|c| c.path == path) {
            return Ok(core);
        }
        // SAFETY: dlopen runs the library's initialisers, i.e. arbitrary code from the file. The
        // official core builds have no initialisers with preconditions (their state is created
        // per connection by the entry point). Which file is trusted is the caller's choice: the
        // path comes from the caller, the environment or the vendored manifest, and loading a
        // native library is only as safe as that file (see the crate documentation, "Trust").
        let library = match unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_LOCAL) } {
            Ok(library) => library,
            Err(error) if source == LibrarySource::System => {
                return Err(not_found(path, source, error.to_string()));
            }
            Err(error) => {
                return Err(Error::LoadFailed {
                    path,
                    source,
                    error,
                });
            }
        };
        // SAFETY: the symbol is declared in vendor/powersync.h with exactly this signature; the
        // pointer is copied out and stays valid because the library is never unloaded (the
        // `CoreLibrary` holding it is leaked below, or dropped before anything could call it).
        let entry: EntryPoint = match unsafe { library.get::<EntryPoint>(ENTRY_POINT) } {
            Ok(symbol) => *symbol,
            Err(error) => {
                return Err(Error::MissingSymbol {
                    path,
                    symbol: ENTRY_POINT,
                    error,
                });
            }
        };
        let raw = probe::read_version(&path)?;
        let version = CoreVersion::parse(&raw).ok_or_else(|| Error::InvalidVersion {
            path: path.clone(),
            raw,
        })?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Error::UnsupportedVersion {
                path,
                found: Box::new(version),
                supported: &SUPPORTED_VERSIONS,
            });
        }
        let core: &'static Self = Box::leak(Box::new(Self {
            path,
            source,
            entry,
            version,
            _library: library,
        }));
        loaded.push(core);
        Ok(core)
    }
}

impl fmt::Debug for CoreLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreLibrary")
            .field("path", &self.path)
            .field("source", &self.source)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn not_found(path: PathBuf, source: LibrarySource, reason: String) -> Error {
    Error::NotFound {
        tried: vec![Attempt {
            source,
            path,
            reason,
        }],
    }
}
