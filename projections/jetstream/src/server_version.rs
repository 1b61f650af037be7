//! The NATS server version a store connected to, and the oldest one it accepts.
//!
//! Owns: parsing the `version` of the server's INFO and the minimum-version rule.
//!
//! Must not: talk to NATS; `JetStreamStore::connect` reads the INFO and calls this.

use std::fmt;
use std::str::FromStr;

/// The oldest server the store runs against. Older servers silently ignore stream settings
/// and optimistic-concurrency headers this store relies on (2.9 even accepts a stale append
/// when OCC uses a subject wildcard, and drops unknown stream fields without an error).
pub const MINIMUM_SERVER_VERSION: ServerVersion = ServerVersion {
    major: 2,
    minor: 12,
    patch: 0,
    pre_release: None,
};

/// A NATS server version such as `2.15.1` or `2.12.0-RC.3` (a leading `v` and `+build` are
/// accepted and dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerVersion {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// The pre-release tag after `-`, if any; a pre-release comes before its release.
    pub pre_release: Option<String>,
}

impl ServerVersion {
    /// Whether this server is at least `MINIMUM_SERVER_VERSION`.
    pub fn is_supported(&self) -> bool {
        self.at_least(&MINIMUM_SERVER_VERSION)
    }

    /// Semver precedence, good enough for a minimum check: a pre-release of `x.y.z` is older
    /// than `x.y.z`; two pre-releases of the same version count as equal.
    fn at_least(&self, minimum: &ServerVersion) -> bool {
        let core = (self.major, self.minor, self.patch);
        let minimum_core = (minimum.major, minimum.minor, minimum.patch);
        if core != minimum_core {
            return core > minimum_core;
        }
        self.pre_release.is_none() || minimum.pre_release.is_some()
    }
}

impl FromStr for ServerVersion {
    type Err = VersionParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = text
            .split_once('+')
            .map_or(text, |(version, _build)| version);
        let (core, pre_release) = match text.split_once('-') {
            Some((core, "")) => {
                return Err(VersionParseError::new(
                    core,
                    "empty pre-release tag after '-'",
                ));
            }
            Some((core, pre)) => (core, Some(pre.to_owned())),
            None => (text, None),
        };
        let mut numbers = core.split('.').map(|part| parse_number(core, part));
        match (
            numbers.next(),
            numbers.next(),
            numbers.next(),
            numbers.next(),
        ) {
            (Some(major), Some(minor), Some(patch), None) => Ok(Self {
                major: major?,
                minor: minor?,
                patch: patch?,
                pre_release,
            }),
            _ => Err(VersionParseError::new(
                text,
                "expected MAJOR.MINOR.PATCH, e.g. 2.15.1",
            )),
        }
    }
}

fn parse_number(core: &str, part: &str) -> Result<u64, VersionParseError> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionParseError::new(
            core,
            "version parts must be decimal numbers",
        ));
    }
    part.parse()
        .map_err(|_| VersionParseError::new(core, "version part is too large"))
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre_release {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// A version string that is not `MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unparsable version {text:?}: {reason}")]
pub struct VersionParseError {
    /// The rejected text, truncated to 40 characters.
    pub text: String,
    /// Why.
    pub reason: &'static str,
}

impl VersionParseError {
    fn new(text: &str, reason: &'static str) -> Self {
        Self {
            text: text.chars().take(40).collect(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
