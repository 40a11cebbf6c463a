//! The official core builds listed in `vendor/cores.tsv` and fetched into `vendor/lib/`.
//!
//! This is the one place that reads the manifest: the build script only says where `vendor/` is,
//! `vendor/fetch-cores` reads the same file for downloading, and everything written in Rust (the
//! loader, the tests, the harness) goes through [`VendoredCore`].
//!
//! The manifest is compiled into the crate, and the library files are looked up under the
//! `vendor/` directory of the source tree this crate was built from (its absolute path is baked
//! in). That is a convenience for working in this repository, not a deployment mechanism: a
//! deployed program names its library with `POWERSYNC_LIB` / `POWERSYNC_LIB_DIR` or
//! [`crate::CoreLibrary::load_from`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Attempt, LibrarySource};
use crate::{CoreLibrary, Error, LIBRARY_FILE_NAME, Result};

/// The manifest of distinct builds, compiled in. `POWERSYNC_VENDOR_DIR` is set by the build
/// script.
const MANIFEST: &str = include_str!(concat!(env!("POWERSYNC_VENDOR_DIR"), "/cores.tsv"));

/// Every published `@powersync/node` version and the x86_64 Linux build inside it.
const NPM_BUILDS: &str = include_str!(concat!(env!("POWERSYNC_VENDOR_DIR"), "/npm-builds.tsv"));

/// One published `@powersync/node` version and the x86_64 Linux core build it ships
/// (`vendor/npm-builds.tsv`). Many versions ship the same build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpmBuild {
    /// The package version, e.g. `0.18.4`.
    pub npm_version: String,
    /// The library's path inside the package.
    pub file_in_package: String,
    /// The library's sha256, hex.
    pub sha256: String,
    /// The core version the library reports (`powersync_rs_version()`, semver part).
    pub core: String,
}

/// One row of the vendor manifest: an official build of the core and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendoredCore {
    /// Core version as `powersync_rs_version()` reports it, without the build hash: `0.5.3`.
    pub version: String,
    /// The `@powersync/node` npm version `vendor/fetch-cores` takes the build from (any of
    /// [`VendoredCore::npm_builds`] would give the same file).
    pub npm_version: String,
    /// The library's path inside the npm package.
    pub file_in_package: String,
    /// The library's sha256, hex.
    pub sha256: String,
    /// True for the manifest's default core.
    pub is_default: bool,
    /// True for the cores `make test` fetches and tests against (a subset, for CI time).
    pub in_test_set: bool,
}

impl VendoredCore {
    /// Every core the manifest lists, ordered by release (core version, oldest first).
    pub fn all() -> &'static [VendoredCore] {
        &manifest().cores
    }

    /// The cores of the test set (`vendor/fetch-cores --test-set`), oldest first.
    pub fn test_set() -> impl Iterator<Item = &'static VendoredCore> {
        Self::all().iter().filter(|c| c.in_test_set)
    }

    /// The core with version `version` (`0.4.11`), or [`Error::UnknownVendoredCore`] listing the
    /// known ones.
    pub fn find(version: &str) -> Result<&'static VendoredCore> {
        Self::all()
            .iter()
            .find(|c| c.version == version)
            .ok_or_else(|| Error::UnknownVendoredCore {
                requested: version.to_string(),
                known: Self::all().iter().map(|c| c.version.clone()).collect(),
            })
    }

    /// The manifest's default core (the one [`CoreLibrary::load`] falls back to).
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> &'static VendoredCore {
        &Self::all()[manifest().default]
    }

    /// Every published `@powersync/node` version that ships this exact build (same sha256),
    /// in the order of `vendor/npm-builds.tsv` (oldest first).
    pub fn npm_builds(&self) -> impl Iterator<Item = &'static NpmBuild> + '_ {
        manifest().npm.iter().filter(|b| b.sha256 == self.sha256)
    }

    /// Every published `@powersync/node` version with its build, oldest first.
    pub fn all_npm_builds() -> &'static [NpmBuild] {
        &manifest().npm
    }

    /// Where `vendor/fetch-cores` installs this core: `vendor/lib/<version>/libpowersync.so`.
    pub fn path(&self) -> PathBuf {
        vendor_dir()
            .join("lib")
            .join(&self.version)
            .join(LIBRARY_FILE_NAME)
    }

    /// True when the library file has been fetched.
    pub fn is_fetched(&self) -> bool {
        self.path().is_file()
    }

    /// The library's path if it has been fetched, or [`Error::NotFound`] naming the path and the
    /// command that fetches it.
    pub fn fetched_path(&self) -> Result<PathBuf> {
        let path = self.path();
        if path.is_file() {
            return Ok(path);
        }
        Err(Error::NotFound {
            tried: vec![Attempt {
                source: LibrarySource::Vendored,
                reason: format!(
                    "core {} is not fetched: run `vendor/fetch-cores {}`",
                    self.version, self.version
                ),
                path,
            }],
        })
    }

    /// Loads this core ([`CoreLibrary::vendored`]).
    pub fn load(&self) -> Result<&'static CoreLibrary> {
        CoreLibrary::vendored(&self.version)
    }
}

/// The `vendor/` directory this crate was built against.
pub fn vendor_dir() -> &'static Path {
    Path::new(env!("POWERSYNC_VENDOR_DIR"))
}

/// Every core the manifest lists, ordered by release. Same as [`VendoredCore::all`].
pub fn vendored_cores() -> Vec<VendoredCore> {
    VendoredCore::all().to_vec()
}

/// The manifest's default core version.
pub(crate) fn default_core() -> &'static str {
    &VendoredCore::default().version
}

struct Manifest {
    cores: Vec<VendoredCore>,
    default: usize,
    npm: Vec<NpmBuild>,
}

fn manifest() -> &'static Manifest {
    static PARSED: OnceLock<Manifest> = OnceLock::new();
    // The manifest is compiled in and checked by this module's tests, so a malformed one is a
    // build defect of this crate, not an input error.
    PARSED.get_or_init(|| {
        parse_manifest(MANIFEST, NPM_BUILDS).unwrap_or_else(|e| panic!("vendor manifest: {e}"))
    })
}

/// Splits a tab-separated table with a header line into rows of named columns.
fn table<'a>(
    text: &'a str,
    columns: &[&str],
) -> std::result::Result<Vec<(String, Vec<&'a str>)>, String> {
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty table")?
        .split('\t')
        .map(str::trim)
        .collect();
    let index: Vec<usize> = columns
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("no `{name}` column in the header {header:?}"))
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(lines
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            let picked = index
                .iter()
                .map(|&i| cols.get(i).copied().unwrap_or(""))
                .collect();
            (line.to_string(), picked)
        })
        .collect())
}

fn valid_sha(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses `cores.tsv` (one row per distinct build) and `npm-builds.tsv` (one row per published
/// package version) and checks that they agree.
///
/// `cores.tsv` columns (tab-separated, found by name): `core`, `npm_version`, `file_in_package`,
/// `sha256`, `default` (`default` on exactly one row), `test_set` (`test` or empty).
/// `npm-builds.tsv` columns: `npm_version`, `file_in_package`, `sha256`, `core`.
fn parse_manifest(cores_tsv: &str, npm_tsv: &str) -> std::result::Result<Manifest, String> {
    let columns = [
        "core",
        "npm_version",
        "file_in_package",
        "sha256",
        "default",
        "test_set",
    ];
    let mut cores = Vec::new();
    for (line, c) in table(cores_tsv, &columns).map_err(|e| format!("cores.tsv: {e}"))? {
        let row = VendoredCore {
            version: c[0].to_string(),
            npm_version: c[1].to_string(),
            file_in_package: c[2].to_string(),
            sha256: c[3].to_string(),
            is_default: c[4] == "default",
            in_test_set: c[5] == "test",
        };
        if crate::CoreVersion::parse(&row.version).is_none()
            || !valid_sha(&row.sha256)
            || row.npm_version.is_empty()
            || row.file_in_package.is_empty()
        {
            return Err(format!("cores.tsv: malformed row {line:?}"));
        }
        cores.push(row);
    }
    cores.sort_by_key(|c| crate::CoreVersion::parse(&c.version));
    if let Some(pair) = cores.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(format!(
            "cores.tsv: core {} is listed twice",
            pair[0].version
        ));
    }
    if let Some(pair) = cores.iter().enumerate().find_map(|(i, a)| {
        cores[i + 1..]
            .iter()
            .find(|b| b.sha256 == a.sha256)
            .map(|b| (a, b))
    }) {
        return Err(format!(
            "cores.tsv: cores {} and {} are the same build (sha256 {})",
            pair.0.version, pair.1.version, pair.0.sha256
        ));
    }
    let defaults: Vec<usize> = (0..cores.len()).filter(|&i| cores[i].is_default).collect();
    let [default] = defaults[..] else {
        return Err(format!(
            "cores.tsv: exactly one row must be marked `default`, found {}",
            defaults.len()
        ));
    };

    let mut npm = Vec::new();
    let columns = ["npm_version", "file_in_package", "sha256", "core"];
    for (line, c) in table(npm_tsv, &columns).map_err(|e| format!("npm-builds.tsv: {e}"))? {
        let build = NpmBuild {
            npm_version: c[0].to_string(),
            file_in_package: c[1].to_string(),
            sha256: c[2].to_string(),
            core: c[3].to_string(),
        };
        if build.npm_version.is_empty()
            || build.file_in_package.is_empty()
            || !valid_sha(&build.sha256)
        {
            return Err(format!("npm-builds.tsv: malformed row {line:?}"));
        }
        match cores.iter().find(|c| c.sha256 == build.sha256) {
            Some(core) if core.version == build.core => {}
            Some(core) => {
                return Err(format!(
                    "npm-builds.tsv: {} ships the build of core {}, not {}",
                    build.npm_version, core.version, build.core
                ));
            }
            None => {
                return Err(format!(
                    "npm-builds.tsv: the build in {} (sha256 {}) is not in cores.tsv",
                    build.npm_version, build.sha256
                ));
            }
        }
        if npm
            .iter()
            .any(|b: &NpmBuild| b.npm_version == build.npm_version)
        {
            return Err(format!(
                "npm-builds.tsv: {} is listed twice",
                build.npm_version
            ));
        }
        npm.push(build);
    }
    for core in &cores {
        let row = npm
            .iter()
            .find(|b| b.npm_version == core.npm_version && b.sha256 == core.sha256);
        if row.is_none_or(|b| b.file_in_package != core.file_in_package) {
            return Err(format!(
                "cores.tsv: core {} names {} {}, which npm-builds.tsv does not list with that file and sha256",
                core.version, core.npm_version, core.file_in_package
            ));
        }
    }
    Ok(Manifest {
        cores,
        default,
        npm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lists_the_test_set_with_one_default_ordered_by_release() {
        let cores = VendoredCore::all();
        let test_set: Vec<&str> = VendoredCore::test_set()
            .map(|c| c.version.as_str())
            .collect();
        assert_eq!(
            test_set,
            ["0.3.11", "0.3.14", "0.4.6", "0.4.11", "0.5.2", "0.5.3"]
        );
        assert!(VendoredCore::default().is_default);
        assert_eq!(default_core(), VendoredCore::default().version);
        let versions: Vec<_> = cores
            .iter()
            .map(|c| crate::CoreVersion::parse(&c.version).unwrap())
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        for core in cores {
            assert!(
                core.path()
                    .ends_with(format!("lib/{}/libpowersync.so", core.version))
            );
        }
    }

    #[test]
    fn every_build_is_shipped_by_a_listed_npm_version() {
        assert_eq!(
            VendoredCore::all_npm_builds().len(),
            24,
            "@powersync/node 0.1.0 ... 1.1.0"
        );
        for core in VendoredCore::all() {
            let versions: Vec<&str> = core.npm_builds().map(|b| b.npm_version.as_str()).collect();
            assert!(
                versions.contains(&core.npm_version.as_str()),
                "{core:?}: {versions:?}"
            );
        }
        let shared: Vec<&str> = VendoredCore::find("0.4.6")
            .unwrap()
            .npm_builds()
            .map(|b| b.npm_version.as_str())
            .collect();
        assert_eq!(shared, ["0.11.0", "0.13.0", "0.14.1", "0.14.2", "0.14.3"]);
    }

    #[test]
    fn find_names_the_known_versions() {
        assert_eq!(VendoredCore::find("0.4.11").unwrap().version, "0.4.11");
        let err = VendoredCore::find("9.9.9").unwrap_err();
        assert!(matches!(err, Error::UnknownVendoredCore { .. }), "{err:?}");
        assert!(err.to_string().contains("0.5.3"), "{err}");
    }

    const HEADER: &str = "core\tnpm_version\tfile_in_package\tsha256\tdefault\ttest_set\n";
    const NPM_HEADER: &str = "npm_version\tfile_in_package\tsha256\tcore\n";
    const SHA_A: &str = "790316ac81ed028200049d71fd7ef720ba82a5da963c7ca79af503cfad045e52";
    const SHA_B: &str = "4cee8675b78af786f26f1e1666367de3d228f584084cca257e879060302c1371";

    #[test]
    fn parsing_sorts_by_release_and_reads_columns_by_name() {
        let cores = format!(
            "{HEADER}0.10.0\t2.0\tlib/a.so\t{SHA_A}\t\t\n0.9.1\t1.0\tlib/b.so\t{SHA_B}\tdefault\ttest\n"
        );
        let npm = format!(
            "{NPM_HEADER}0.9\tlib/b.so\t{SHA_B}\t0.9.1\n1.0\tlib/b.so\t{SHA_B}\t0.9.1\n2.0\tlib/a.so\t{SHA_A}\t0.10.0\n"
        );
        let m = parse_manifest(&cores, &npm).unwrap();
        assert_eq!(m.cores[0].version, "0.9.1");
        assert!(m.cores[0].in_test_set && !m.cores[1].in_test_set);
        assert_eq!(m.default, 0);
        assert_eq!(m.npm.len(), 3);
    }

    #[test]
    fn malformed_manifests_are_rejected_with_the_reason() {
        let row = |core: &str, sha: &str, default: &str| {
            format!("{core}\t1.0\tlib/a.so\t{sha}\t{default}\t\n")
        };
        let npm = |core: &str, sha: &str| format!("{NPM_HEADER}1.0\tlib/a.so\t{sha}\t{core}\n");
        let ok_npm = npm("0.1.0", SHA_A);
        for (cores, npm, reason) in [
            (
                format!("{HEADER}{}", row("0.1.0", SHA_A, "")),
                ok_npm.clone(),
                "exactly one",
            ),
            (
                format!(
                    "{HEADER}{}{}",
                    row("0.1.0", SHA_A, "default"),
                    row("0.2.0", SHA_B, "default")
                ),
                ok_npm.clone(),
                "exactly one",
            ),
            (
                format!("{HEADER}{}", row("0.1", SHA_A, "default")),
                ok_npm.clone(),
                "malformed",
            ),
            (
                format!("{HEADER}{}", row("0.1.0", "abc", "default")),
                ok_npm.clone(),
                "malformed",
            ),
            (
                format!(
                    "{HEADER}{}{}",
                    row("0.1.0", SHA_A, "default"),
                    row("0.1.0", SHA_B, "")
                ),
                ok_npm.clone(),
                "twice",
            ),
            (
                format!(
                    "{HEADER}{}{}",
                    row("0.1.0", SHA_A, "default"),
                    row("0.2.0", SHA_A, "")
                ),
                ok_npm.clone(),
                "same build",
            ),
            (
                format!("core\tsha256\n{}", row("0.1.0", SHA_A, "")),
                ok_npm.clone(),
                "no `npm_version` column",
            ),
            (
                format!("{HEADER}{}", row("0.1.0", SHA_A, "default")),
                npm("0.2.0", SHA_A),
                "not 0.2.0",
            ),
            (
                format!("{HEADER}{}", row("0.1.0", SHA_A, "default")),
                npm("0.1.0", SHA_B),
                "not in cores.tsv",
            ),
            (
                format!("{HEADER}{}", row("0.1.0", SHA_A, "default")),
                NPM_HEADER.to_string(),
                "does not list",
            ),
        ] {
            let err = parse_manifest(&cores, &npm).err().unwrap_or_default();
            assert!(err.contains(reason), "{cores:?} {npm:?}: {err}");
        }
    }
}
