//! Validated names: every subject, filter, bucket, key and command id is checked once, here.
//!
//! The character sets are the intersection of what NATS subjects, JetStream KV keys and our
//! SQLite schema accept, so one name means the same thing on both backends.

use std::fmt;

/// A name that failed validation; says which kind of name and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct InvalidName {
    /// What was being built: "subject", "bucket", "key", …
    pub kind: &'static str,
    /// The rejected input, truncated to 80 characters so a hostile input cannot flood logs.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl InvalidName {
    fn new(kind: &'static str, value: &str, reason: &'static str) -> Self {
        let value = value.chars().take(80).collect();
        Self {
            kind,
            value,
            reason,
        }
    }
}

/// Longest token of a subject (host, aggregate type or aggregate id).
const MAX_TOKEN_LEN: usize = 64;

fn check_token(kind: &'static str, whole: &str, token: &str) -> Result<(), InvalidName> {
    if token.is_empty() {
        return Err(InvalidName::new(kind, whole, "empty token"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(InvalidName::new(kind, whole, "token longer than 64 bytes"));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(InvalidName::new(
            kind,
            whole,
            "tokens may only contain ASCII letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// The subject of one aggregate instance: `evt.<host>.<aggregate_type>.<aggregate_id>`.
///
/// `host` is the tenant token; aggregates that belong to no host (organizations, admin
/// tokens) use the reserved token `_`. Each token is 1–64 of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

impl Subject {
    /// The first token of every event subject.
    pub const PREFIX: &'static str = "evt";

    /// Builds the subject of one aggregate instance from its three tokens.
    pub fn new(host: &str, aggregate_type: &str, aggregate_id: &str) -> Result<Self, InvalidName> {
        let whole = format!("{}.{host}.{aggregate_type}.{aggregate_id}", Self::PREFIX);
        check_token("subject", &whole, host)?;
        check_token("subject", &whole, aggregate_type)?;
        check_token("subject", &whole, aggregate_id)?;
        Ok(Self(whole))
    }

    /// Parses a full subject as read back from a store.
    pub fn parse(subject: &str) -> Result<Self, InvalidName> {
        let mut tokens = subject.split('.');
        match (
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
        ) {
            (Some(Self::PREFIX), Some(host), Some(kind), Some(id), None) => {
                Self::new(host, kind, id)
            }
            _ => Err(InvalidName::new(
                "subject",
                subject,
                "expected evt.<host>.<aggregate_type>.<aggregate_id>",
            )),
        }
    }

    /// The whole subject, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn token(&self, index: usize) -> &str {
        // Invariant: built only by `new`, so it always has exactly four tokens.
        self.0.split('.').nth(index).unwrap_or_default()
    }

    /// The tenant token.
    pub fn host(&self) -> &str {
        self.token(1)
    }

    /// The aggregate type token (`server`, `grant`, …).
    pub fn aggregate_type(&self) -> &str {
        self.token(2)
    }

    /// The aggregate id token.
    pub fn aggregate_id(&self) -> &str {
        self.token(3)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({})", self.0)
    }
}

/// A NATS-style filter over event subjects: `*` matches one token, a final `>` matches one or
/// more tokens. Always starts with `evt`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubjectFilter(String);

impl SubjectFilter {
    /// Every event in the log.
    pub fn all() -> Self {
        Self(format!("{}.>", Subject::PREFIX))
    }

    /// Every event of one host.
    pub fn host(host: &str) -> Result<Self, InvalidName> {
        Self::parse(&format!("{}.{host}.>", Subject::PREFIX))
    }

    /// Parses and validates a filter such as `evt.*.grant.*` or `evt.acme-1.>`.
    pub fn parse(filter: &str) -> Result<Self, InvalidName> {
        let tokens: Vec<&str> = filter.split('.').collect();
        if tokens.first() != Some(&Subject::PREFIX) {
            return Err(InvalidName::new(
                "subject filter",
                filter,
                "must start with 'evt.'",
            ));
        }
        if tokens.len() < 2 || tokens.len() > 4 {
            return Err(InvalidName::new(
                "subject filter",
                filter,
                "expected 2 to 4 tokens",
            ));
        }
        for (i, token) in tokens.iter().enumerate().skip(1) {
            match *token {
                "*" => {}
                ">" if i == tokens.len() - 1 => {}
                ">" => {
                    return Err(InvalidName::new(
                        "subject filter",
                        filter,
                        "'>' may only be the last token",
                    ));
                }
                other => check_token("subject filter", filter, other)?,
            }
        }
        if tokens.len() < 4 && tokens.last() != Some(&">") {
            return Err(InvalidName::new(
                "subject filter",
                filter,
                "a filter shorter than a subject must end in '>'",
            ));
        }
        Ok(Self(filter.to_owned()))
    }

    /// The filter text, in NATS syntax.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `subject` falls under this filter.
    pub fn matches(&self, subject: &Subject) -> bool {
        let mut wanted = self.0.split('.');
        let mut have = subject.as_str().split('.');
        loop {
            match (wanted.next(), have.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(w), Some(h)) if w == h => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl fmt::Display for SubjectFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SubjectFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectFilter({})", self.0)
    }
}

/// The id of one command, used as the idempotency key of the append it causes
/// (`Nats-Msg-Id` on JetStream). 1–64 of `[A-Za-z0-9_-:]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(String);

impl CommandId {
    /// Validates a caller-supplied command id (for example an `Idempotency-Key` header).
    pub fn parse(id: &str) -> Result<Self, InvalidName> {
        if id.is_empty() || id.len() > 64 {
            return Err(InvalidName::new(
                "command id",
                id,
                "must be 1 to 64 bytes long",
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
        {
            return Err(InvalidName::new(
                "command id",
                id,
                "may only contain ASCII letters, digits, '-', '_' and ':'",
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandId({})", self.0)
    }
}

/// A read-model bucket: 1–64 of `[A-Za-z0-9_-]` (a JetStream KV bucket name, a SQLite table key).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(String);

impl Bucket {
    /// Validates a bucket name.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        check_token("bucket", name, name)?;
        Ok(Self(name.to_owned()))
    }

    /// The bucket name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bucket({})", self.0)
    }
}

/// A read-model key: dot-separated tokens of `[A-Za-z0-9_-=]`, 1–255 bytes; no empty token,
/// no wildcard. Dots make prefixes (`grant.<host>.<human>.`) that `keys` can list.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Validates a key.
    pub fn new(key: &str) -> Result<Self, InvalidName> {
        Self::validate(key)?;
        Ok(Self(key.to_owned()))
    }

    /// Checks `key` against the rules above.
    fn validate(key: &str) -> Result<(), InvalidName> {
        if key.is_empty() || key.len() > 255 {
            return Err(InvalidName::new("key", key, "must be 1 to 255 bytes long"));
        }
        for token in key.split('.') {
            if token.is_empty() {
                return Err(InvalidName::new("key", key, "empty token"));
            }
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
            {
                return Err(InvalidName::new(
                    "key",
                    key,
                    "tokens may only contain ASCII letters, digits, '-', '_' and '='",
                ));
            }
        }
        Ok(())
    }

    /// Builds a key from tokens joined by dots; each token is validated.
    pub fn join<I, S>(tokens: I) -> Result<Self, InvalidName>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // One allocation: the data plane builds several keys for every request.
        let mut joined = String::with_capacity(64);
        for (index, token) in tokens.into_iter().enumerate() {
            if index > 0 {
                joined.push('.');
            }
            joined.push_str(token.as_ref());
        }
        Self::validate(&joined)?;
        Ok(Self(joined))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's text, owned.
    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this key lies under `prefix` on a token boundary (`a.b` is under `a`, not `a.b`
    /// itself, and `ab` is not under `a`).
    pub fn is_under(&self, prefix: &Key) -> bool {
        self.0.len() > prefix.0.len()
            && self.0.starts_with(&prefix.0)
            && self.0.as_bytes()[prefix.0.len()] == b'.'
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.0)
    }
}

#[cfg(test)]
mod tests;
