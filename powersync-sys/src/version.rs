//! Core versions as reported by `powersync_rs_version()`, and the range this crate supports.

use std::cmp::Ordering;
use std::fmt;

/// A core version such as `0.5.3/2ba6b280` (semver triple plus the build's git hash, or
/// `cratesio` for builds from crates.io).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoreVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
    /// The part after `/`: an 8-character git hash, or empty when absent.
    pub build: String,
}

impl CoreVersion {
    /// A version without build information, for comparisons and ranges.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            build: String::new(),
        }
    }

    /// Parses `x.y.z` or `x.y.z/build`. Returns `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        let (semver, build) = match raw.split_once('/') {
            Some((semver, build)) => (semver, build),
            None => (raw, ""),
        };
        let mut parts = semver.split('.').map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        });
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() || build.contains(char::is_whitespace) {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            build: build.to_string(),
        })
    }

    /// The semver triple, without the build part: `0.5.3`.
    pub fn semver(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }

    /// True when this version is at least `major.minor.patch`.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    fn triple(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }
}

impl PartialOrd for CoreVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders by the semver triple, then by the build string (so that `Ord` agrees with `Eq`).
impl Ord for CoreVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple()
            .cmp(&other.triple())
            .then_with(|| self.build.cmp(&other.build))
    }
}

impl fmt::Display for CoreVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.build.is_empty() {
            write!(f, "/{}", self.build)?;
        }
        Ok(())
    }
}

/// A half-open range of core versions, `[minimum, maximum_exclusive)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedVersions {
    /// The oldest supported version.
    pub minimum: CoreVersion,
    /// The first unsupported newer version.
    pub maximum_exclusive: CoreVersion,
}

impl SupportedVersions {
    /// True when `version` (ignoring its build part) lies in the range.
    pub fn contains(&self, version: &CoreVersion) -> bool {
        version.triple() >= self.minimum.triple()
            && version.triple() < self.maximum_exclusive.triple()
    }
}

impl fmt::Display for SupportedVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ">={}, <{}", self.minimum, self.maximum_exclusive)
    }
}

/// The cores this crate loads: 0.3.0 (the `ps_crud` transaction ids, `ps_kv` and the schema
/// layout the wrapper relies on) up to, not including, 0.6.0. Every vendored core lies inside.
pub static SUPPORTED_VERSIONS: SupportedVersions = SupportedVersions {
    minimum: CoreVersion::new(0, 3, 0),
    maximum_exclusive: CoreVersion::new(0, 6, 0),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_and_crates_io_versions() {
        let v = CoreVersion::parse("0.5.3/2ba6b280").unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.build.as_str()),
            (0, 5, 3, "2ba6b280")
        );
        assert_eq!(v.to_string(), "0.5.3/2ba6b280");
        assert_eq!(v.semver(), "0.5.3");
        assert_eq!(
            CoreVersion::parse("0.4.14/cratesio").unwrap().build,
            "cratesio"
        );
        assert_eq!(CoreVersion::parse("1.2.3").unwrap().to_string(), "1.2.3");
    }

    #[test]
    fn rejects_malformed_versions() {
        for raw in [
            "",
            "0.5",
            "0.5.3.1",
            "a.b.c",
            "0.5.x/abc",
            "0..3",
            "-1.0.0",
            "0.5.3/a b",
            "not a version",
        ] {
            assert_eq!(CoreVersion::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn orders_by_semver_and_checks_the_range() {
        let v = |s| CoreVersion::parse(s).unwrap();
        assert!(v("0.4.11/x") < v("0.5.2/a"));
        assert!(v("0.3.14/x") > v("0.3.11/x"));
        assert!(v("0.5.3/x").at_least(0, 5, 0));
        assert!(!v("0.4.11/x").at_least(0, 5, 0));
        assert!(SUPPORTED_VERSIONS.contains(&v("0.3.11/5cbd17e1")));
        assert!(SUPPORTED_VERSIONS.contains(&v("0.5.3/2ba6b280")));
        assert!(!SUPPORTED_VERSIONS.contains(&v("0.2.1/x")));
        assert!(!SUPPORTED_VERSIONS.contains(&v("0.6.0/x")));
        assert_eq!(SUPPORTED_VERSIONS.to_string(), ">=0.3.0, <0.6.0");
    }
}
