//! The official core builds listed in `vendor/cores.tsv` and fetched into `vendor/lib/`.

use std::path::{Path, PathBuf};

use crate::LIBRARY_FILE_NAME;

/// The manifest, baked in at build time.
const MANIFEST: &str = include_str!(concat!(env!("POWERSYNC_VENDOR_DIR"), "/cores.tsv"));

/// One row of the vendor manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendoredCore {
    /// Core version, e.g. `0.5.3`.
    pub version: String,
    /// The `@powersync/node` npm version that ships it.
    pub npm_version: String,
    /// The library's path inside the npm package.
    pub file_in_package: String,
    /// The library's sha256, hex.
    pub sha256: String,
    /// True for the manifest's default core.
    pub is_default: bool,
}

impl VendoredCore {
    /// Where `vendor/fetch-cores` installs this core.
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
}

/// The `vendor/` directory this crate was built against.
pub fn vendor_dir() -> &'static Path {
    Path::new(env!("POWERSYNC_VENDOR_DIR"))
}

/// Every core the manifest lists, oldest first as listed.
pub fn vendored_cores() -> Vec<VendoredCore> {
    parse_manifest(MANIFEST)
}

/// The manifest's default core.
pub(crate) fn default_core() -> &'static str {
    env!("POWERSYNC_DEFAULT_CORE")
}

fn parse_manifest(text: &str) -> Vec<VendoredCore> {
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            Some(VendoredCore {
                version: cols.first()?.to_string(),
                npm_version: cols.get(1)?.to_string(),
                file_in_package: cols.get(2)?.to_string(),
                sha256: cols.get(3)?.to_string(),
                is_default: cols.get(4) == Some(&"default"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lists_the_required_cores_with_one_default() {
        let cores = vendored_cores();
        let versions: Vec<&str> = cores.iter().map(|c| c.version.as_str()).collect();
        for required in ["0.3.11", "0.3.14", "0.4.6", "0.4.11", "0.5.2", "0.5.3"] {
            assert!(
                versions.contains(&required),
                "{required} missing from {versions:?}"
            );
        }
        let defaults: Vec<&str> = cores
            .iter()
            .filter(|c| c.is_default)
            .map(|c| c.version.as_str())
            .collect();
        assert_eq!(defaults, [default_core()]);
        for core in &cores {
            assert_eq!(core.sha256.len(), 64, "{core:?}");
            assert!(
                core.path()
                    .ends_with(format!("lib/{}/libpowersync.so", core.version))
            );
        }
    }
}
