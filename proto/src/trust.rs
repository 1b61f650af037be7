//! The domain trust level: ordered `low < medium < high`, and its conversions from the wire
//! (protobuf enum numbers, API strings). The protobuf `TRUST_LEVEL_UNSPECIFIED` has no domain
//! value: converting it is an error, so "unset" can never be mistaken for a level.

use std::fmt;
use std::str::FromStr;

use crate::events::v1 as pb;

/// How much an agent is trusted; a tool needs at most the caller's level.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Read-only tools.
    Low,
    /// Tools that create or change things.
    Medium,
    /// Destructive tools.
    High,
}

impl TrustLevel {
    /// Every level, lowest first.
    pub const ALL: [TrustLevel; 3] = [TrustLevel::Low, TrustLevel::Medium, TrustLevel::High];

    /// The lower-case name used in APIs and read models.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Low => "low",
            TrustLevel::Medium => "medium",
            TrustLevel::High => "high",
        }
    }

    /// The protobuf enum value.
    pub fn to_proto(self) -> pb::TrustLevel {
        match self {
            TrustLevel::Low => pb::TrustLevel::Low,
            TrustLevel::Medium => pb::TrustLevel::Medium,
            TrustLevel::High => pb::TrustLevel::High,
        }
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protobuf trust level number that is unspecified or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trust level {value} is not low (1), medium (2) or high (3)")]
pub struct InvalidTrustLevel {
    /// The number received.
    pub value: i32,
}

impl TryFrom<i32> for TrustLevel {
    type Error = InvalidTrustLevel;

    fn try_from(value: i32) -> Result<Self, Self::Error> {
        match pb::TrustLevel::try_from(value) {
            Ok(level) => TrustLevel::try_from(level),
            Err(_) => Err(InvalidTrustLevel { value }),
        }
    }
}

impl TryFrom<pb::TrustLevel> for TrustLevel {
    type Error = InvalidTrustLevel;

    fn try_from(value: pb::TrustLevel) -> Result<Self, Self::Error> {
        match value {
            pb::TrustLevel::Low => Ok(TrustLevel::Low),
            pb::TrustLevel::Medium => Ok(TrustLevel::Medium),
            pb::TrustLevel::High => Ok(TrustLevel::High),
            pb::TrustLevel::Unspecified => Err(InvalidTrustLevel {
                value: value as i32,
            }),
        }
    }
}

impl From<TrustLevel> for pb::TrustLevel {
    fn from(level: TrustLevel) -> Self {
        level.to_proto()
    }
}

impl From<TrustLevel> for i32 {
    fn from(level: TrustLevel) -> Self {
        level.to_proto() as i32
    }
}

/// A string that is not `low`, `medium` or `high`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown trust level {input:?}: expected low, medium or high")]
pub struct ParseTrustLevelError {
    /// The rejected input, truncated to 32 characters.
    pub input: String,
}

impl FromStr for TrustLevel {
    type Err = ParseTrustLevelError;

    /// Parses exactly `low`, `medium` or `high` (lower case, as the API and read models
    /// write them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(TrustLevel::Low),
            "medium" => Ok(TrustLevel::Medium),
            "high" => Ok(TrustLevel::High),
            _ => Err(ParseTrustLevelError {
                input: s.chars().take(32).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
