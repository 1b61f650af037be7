//! `ControlError`: the one error of the admin service layer, with variants that map one to
//! one onto HTTP statuses (401, 404, 400, 409, 503) and gRPC codes.
//!
//! Display texts are safe to show a client: they name what was wrong (the field, the kind of
//! thing not found) and never a secret or a backend detail; those stay in `source`.

/// Any failure of a control operation.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No admin token, or one that is unknown, revoked or wrong (HTTP 401).
    #[error("missing or invalid admin token")]
    Unauthenticated,
    /// The thing does not exist, or belongs to a tenant the caller cannot see (HTTP 404;
    /// never 403, so other tenants' ids cannot be probed).
    #[error("{what} {id:?} not found")]
    NotFound {
        /// What kind of thing: "host", "server", "tool", "human", "grant", "agent", …
        what: &'static str,
        /// The id asked for (truncated to 80 characters).
        id: String,
    },
    /// The request is malformed; `field` names the offending field as the API spells it,
    /// e.g. `email`, `allowed_origins[2]`, `tools[0].name` (HTTP 400).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request contradicts the current state (a key or email taken, a revoked token), or
    /// other writers kept winning after retries (HTTP 409).
    #[error("{what} {id:?} conflicts: {reason}")]
    Conflict {
        /// What kind of thing.
        what: &'static str,
        /// Which one (truncated to 80 characters).
        id: String,
        /// Why.
        reason: String,
    },
    /// A store failed or the read models did not catch up in time; retrying with the same
    /// idempotency key is safe (HTTP 503).
    #[error("service temporarily unavailable; retry with the same idempotency key")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl ControlError {
    /// `NotFound` for `what` with `id`.
    pub fn not_found(what: &'static str, id: &str) -> Self {
        ControlError::NotFound {
            what,
            id: truncate(id),
        }
    }

    /// `Invalid` for `field`, with the reason's display text.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ControlError::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// `Conflict` on `what` `id`.
    pub fn conflict(what: &'static str, id: &str, reason: impl std::fmt::Display) -> Self {
        ControlError::Conflict {
            what,
            id: truncate(id),
            reason: reason.to_string(),
        }
    }

    /// `Unavailable` with its cause.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ControlError::Unavailable(Box::new(source))
    }
}

/// At most 80 characters of a caller-supplied id, so a hostile input cannot flood a response.
pub(crate) fn truncate(id: &str) -> String {
    id.chars().take(80).collect()
}
