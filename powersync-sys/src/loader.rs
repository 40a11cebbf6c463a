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

/// The file names an installed core goes by: this crate's, the Dart SDK bundle's
/// (`bundle/lib/libpowersync_core.so`) and the npm package's.
pub const INSTALLED_FILE_NAMES: [&str; 3] = [
    LIBRARY_FILE_NAME,
    "libpowersync_core.so",
    "libpowersync_x64.linux.so",
];

/// The file `POWERSYNC_LIB` and `POWERSYNC_LIB_DIR` are also read from, in the working directory.
const DOTENV_FILE: &str = ".env";

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
    /// Finds and loads the core in the documented order: `POWERSYNC_LIB`, `POWERSYNC_LIB_DIR`
    /// (each from `./.env` or the environment, `.env` first), beside the executable and in
    /// `../lib/` of it under every [`INSTALLED_FILE_NAMES`] name, the vendored default when that
    /// path exists on this machine, the system loader. See the crate documentation.
    pub fn load() -> Result<&'static Self> {
        Self::load_with(&Lookup::from_process())
    }

    fn load_with(lookup: &Lookup) -> Result<&'static Self> {
        if let Some(file) = &lookup.lib {
            return Self::open_candidate(file.clone(), LibrarySource::EnvLib);
        }
        if let Some(dir) = &lookup.lib_dir {
            return Self::open_candidate(dir.join(LIBRARY_FILE_NAME), LibrarySource::EnvLibDir);
        }
        let mut tried = Vec::new();
        for candidate in lookup.installed_candidates() {
            if candidate.is_file() {
                return Self::open_candidate(candidate, LibrarySource::Installed);
            }
            tried.push(Attempt {
                source: LibrarySource::Installed,
                path: candidate,
                reason: "no such file".into(),
            });
        }
        if lookup.vendored {
            // Only when the baked path exists on this machine (a missing file is `NotFound`).
            match Self::vendored(vendored::default_core()) {
                Err(Error::NotFound { tried: mut t }) => tried.append(&mut t),
                other => return other,
            }
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
        // Which file is trusted is the caller's choice: the path comes from the caller, the
        // environment or the vendored manifest (see the crate documentation, "Trust").
        // SAFETY: dlopen runs the library's initialisers; the official core builds have none with
        // preconditions (their state is created per connection by the entry point).
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

/// Where [`CoreLibrary::load`] looks, gathered once from the process.
#[derive(Debug, Default)]
struct Lookup {
    lib: Option<PathBuf>,
    lib_dir: Option<PathBuf>,
    exe_dir: Option<PathBuf>,
    /// Whether to try the vendored default (always, outside this module's tests).
    vendored: bool,
}

impl Lookup {
    fn from_process() -> Self {
        let dotenv = std::fs::read_to_string(DOTENV_FILE).unwrap_or_default();
        let setting = |name: &str| dotenv_value(&dotenv, name).or_else(|| env_path(name));
        Self {
            lib: setting(ENV_LIB),
            lib_dir: setting(ENV_LIB_DIR),
            exe_dir: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
            vendored: true,
        }
    }

    /// Beside the executable, then in `../lib/` of it, each under every installed name.
    fn installed_candidates(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.exe_dir else {
            return Vec::new();
        };
        [dir.clone(), dir.join("..").join("lib")]
            .iter()
            .flat_map(|d| INSTALLED_FILE_NAMES.iter().map(move |name| d.join(name)))
            .collect()
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The value of `name` in a `.env` text: the last `NAME=value` line (an optional `export `
/// prefix, surrounding quotes and a trailing ` # comment` of an unquoted value removed); empty
/// values count as unset.
fn dotenv_value(text: &str, name: &str) -> Option<PathBuf> {
    text.lines()
        .rev()
        .find_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            let value = line
                .strip_prefix(name)?
                .trim_start()
                .strip_prefix('=')?
                .trim();
            let value = match value.chars().next() {
                Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or_default(),
                _ => value.split(" #").next().unwrap_or_default().trim(),
            };
            Some(value.to_owned())
        })
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

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn dotenv_values_are_read_like_the_endpoints_dotenv() {
        let text = "# comment\nPOWERSYNC_LIB_DIR=/a\nexport POWERSYNC_LIB = \"/b c/lib.so\"\n\
                    POWERSYNC_LIBX=/no\nPOWERSYNC_LIB_DIR=/d # later wins\nOTHER=1\n";
        assert_eq!(
            dotenv_value(text, ENV_LIB),
            Some(PathBuf::from("/b c/lib.so"))
        );
        assert_eq!(dotenv_value(text, ENV_LIB_DIR), Some(PathBuf::from("/d")));
        assert_eq!(dotenv_value("POWERSYNC_LIB=\n", ENV_LIB), None);
        assert_eq!(dotenv_value("", ENV_LIB), None);
    }

    #[test]
    fn installed_candidates_are_beside_the_executable_then_in_lib() {
        let lookup = Lookup {
            exe_dir: Some(PathBuf::from("/x/bin")),
            ..Lookup::default()
        };
        let got: Vec<String> = lookup
            .installed_candidates()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "/x/bin/libpowersync.so",
                "/x/bin/libpowersync_core.so",
                "/x/bin/libpowersync_x64.linux.so",
                "/x/bin/../lib/libpowersync.so",
                "/x/bin/../lib/libpowersync_core.so",
                "/x/bin/../lib/libpowersync_x64.linux.so",
            ]
        );
    }

    #[test]
    fn not_found_lists_every_path_tried() {
        let dir = tempfile::tempdir().unwrap();
        let lookup = Lookup {
            exe_dir: Some(dir.path().join("bin")),
            ..Lookup::default()
        };
        let Err(Error::NotFound { tried }) = CoreLibrary::load_with(&lookup) else {
            panic!("nothing to load here (and no libpowersync.so on the system loader's path)");
        };
        let sources: Vec<LibrarySource> = tried.iter().map(|a| a.source).collect();
        assert_eq!(
            sources,
            [
                [LibrarySource::Installed; 6].as_slice(),
                &[LibrarySource::System]
            ]
            .concat()
        );
        let message = Error::NotFound { tried }.to_string();
        for path in lookup.installed_candidates() {
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        assert!(message.contains("(system loader)"), "{message}");
    }
}
