//! Host ids: the subdomain a host answers on, `<prefix>-<adjective>-<noun>-<NNNN>`
//! (`acme-pink-panda-6942`). The prefix is the admin's; the rest is drawn at random so that
//! ids are unguessable enough not to be enumerated and short enough to read aloud.

use rand::Rng;

/// Longest prefix: with the longest words and four digits the id stays a valid DNS label
/// (at most 63 bytes) and a valid subject token (at most 64).
pub const MAX_PREFIX_LEN: usize = 32;

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "bright", "calm", "clever", "cosmic", "crisp", "dapper", "eager", "fancy",
    "gentle", "golden", "happy", "humble", "jolly", "keen", "lively", "lucky", "mellow", "misty",
    "nimble", "noble", "olive", "pink", "plucky", "polite", "proud", "quick", "quiet", "rapid",
    "rosy", "royal", "rustic", "shiny", "silver", "smart", "snowy", "solar", "spry", "steady",
    "sunny", "swift", "tidy", "urban", "vivid", "warm", "witty", "zesty",
];

const NOUNS: &[&str] = &[
    "badger", "beacon", "bison", "canyon", "cedar", "comet", "coral", "crane", "delta", "falcon",
    "fern", "finch", "fjord", "gecko", "glacier", "harbor", "heron", "island", "jaguar", "kestrel",
    "koala", "lagoon", "lemur", "lynx", "maple", "meadow", "meteor", "orca", "otter", "panda",
    "pebble", "pine", "puffin", "quartz", "raven", "reef", "river", "robin", "sparrow", "summit",
    "tiger", "tundra", "valley", "walrus", "willow", "wombat", "yak", "zebra",
];

/// Why a prefix cannot start a host id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPrefix {
    /// Empty or too long.
    #[error("prefix must be 1 to {MAX_PREFIX_LEN} characters")]
    Length,
    /// Not a DNS-label-friendly string.
    #[error(
        "prefix may only contain lower-case letters, digits and single hyphens, and must start \
         with a letter and not end with a hyphen"
    )]
    Characters,
}

/// Checks an admin-chosen prefix.
pub fn validate_prefix(prefix: &str) -> Result<(), InvalidPrefix> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(InvalidPrefix::Length);
    }
    let bytes = prefix.as_bytes();
    let allowed = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let starts_with_letter = bytes[0].is_ascii_lowercase();
    if !allowed || !starts_with_letter || prefix.ends_with('-') || prefix.contains("--") {
        return Err(InvalidPrefix::Characters);
    }
    Ok(())
}

/// Draws a new host id for `prefix` (validated first).
pub fn generate(prefix: &str, rng: &mut impl Rng) -> Result<String, InvalidPrefix> {
    validate_prefix(prefix)?;
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    let number: u16 = rng.random_range(1000..10000);
    Ok(format!("{prefix}-{adjective}-{noun}-{number}"))
}

#[cfg(test)]
mod tests;
