//! The admin service layer: one async method per admin operation, called by the REST and
//! gRPC APIs (which own authentication headers, routing and wire formats).
//!
//! Owns: `Control` and its operations (split by resource into submodules), `Principal` (the
//! authenticated admin), `ControlError` (the one error at this boundary), the views that
//! operations return, admin token secrets and their hashing (`tokens`), idempotent command
//! ids (`idempotency`), and read-your-writes (`consistency`).
//!
//! Must not: know HTTP or gRPC, or decide a command itself (aggregates decide; this layer
//! validates input, checks tenancy, sequences multi-aggregate workflows and reads views).
//!
//! Invariants:
//! - Tenant isolation: every operation on a host first reads the host and checks that it
//!   belongs to one of the principal's organizations, else `NotFound` (never "forbidden");
//!   every read of a host's data lists or gets keys under that host's own key prefix.
//! - Every id from a caller is checked to be one key token before it is used in a key or a
//!   subject, so no id can reach into another prefix.
//! - Reads come only from read models; a tombstone is `NotFound`.
//! - A write returns only once the projector's checkpoint has passed what it appended
//!   (bounded by `ControlOptions::consistency_timeout`), so a read right after it sees it.

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::{Aggregate, EventBody};
use portcullis_projector::models::Versioned;
use portcullis_projector::{Buckets, ModelKind, model_key};
use portcullis_proto::decode_event;
use portcullis_store::{CommandId, EventLog, InvalidName, Key, ReadModelStore, Subject};
use serde::de::DeserializeOwned;

use crate::{Context, ExecuteError, Executed, execute};

mod accounts;
mod agents;
mod consent;
mod consistency;
mod error;
mod hosts;
mod humans;
mod idempotency;
mod identities;
mod oauth;
mod organizations;
mod secrets;
mod servers;
mod signing_keys;
#[cfg(any(test, feature = "test-support"))]
mod test_support;
mod tokens;
mod upstream_credentials;
mod views;

pub use accounts::AccountView;
pub use consent::{AcceptConsent, ConsentHost, ConsentServer, level_name};
pub use consistency::wait_for_projection;
pub use error::ControlError;
pub use hosts::{CreateHost, HostSettingsPatch};
pub use humans::email_sha256_hex;
pub use idempotency::IdempotencyKey;
pub use identities::{SealedProviderSecret, VerifiedIdentity, sign_in_provider_secret_aad};
pub use oauth::{NewOAuthClient, OAuthClientView, OAuthHostView, RefreshOutcome, TokenSession};
pub use secrets::{NoSecretSealer, SealError, SealedSecret, SecretSealer, oauth_client_secret_aad};
pub use servers::{
    DiscoveredServer, ImportServer, NewTool, ServerDetailsPatch, UpstreamOAuthInput,
};
pub use signing_keys::SigningKeyView;
pub use tokens::{ADMIN_TOKEN_PREFIX, admin_token_id, generate_admin_token};
pub use upstream_credentials::HeldCredential;
pub use views::{
    AgentServerView, AgentView, GrantView, HostView, HumanDetail, HumanView, OrganizationView,
    RefreshReport, ServerView,
};

use idempotency::Writes;

/// The authenticated admin: the token used and the organizations it acts for, as of the
/// request. Built only by `Control::authenticate` (and test builders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    token_id: String,
    org_ids: Vec<String>,
}

impl Principal {
    /// The admin token's id (never the secret); goes into event metadata as the actor.
    pub fn token_id(&self) -> &str {
        &self.token_id
    }

    /// The organizations the admin acts for.
    pub fn org_ids(&self) -> &[String] {
        &self.org_ids
    }

    fn acts_for(&self, org_id: &str) -> bool {
        self.org_ids.iter().any(|o| o == org_id)
    }
}

impl Context {
    /// The context of an admin request: now, the admin token as the actor, the request id.
    pub fn admin(principal: &Principal, correlation_id: &str) -> Self {
        Context {
            actor: portcullis_proto::events::v1::actor::Kind::AdminTokenId(
                principal.token_id.clone(),
            ),
            ..Context::system("control-plane", correlation_id)
        }
    }
}

/// How a `Control` is set up.
#[derive(Clone, Debug)]
pub struct ControlOptions {
    /// The bucket suffix of the read models to read (as the projector was given). Default:
    /// none.
    pub bucket_suffix: Option<String>,
    /// The projector whose checkpoint writes wait for. Default: `read_models`.
    pub projector_name: String,
    /// How long a write waits for the projector before `Unavailable`. Default: 5 s.
    pub consistency_timeout: Duration,
}

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            bucket_suffix: None,
            projector_name: "read_models".to_owned(),
            consistency_timeout: Duration::from_secs(5),
        }
    }
}

/// The admin service: writes through the event log, reads from the read models.
pub struct Control {
    log: Arc<dyn EventLog>,
    kv: Arc<dyn ReadModelStore>,
    /// Seals upstream OAuth client secrets before they are recorded.
    sealer: Arc<dyn SecretSealer>,
    buckets: Buckets,
    /// `checkpoint.<projector_name>` in the projector bucket.
    checkpoint_key: Key,
    consistency_timeout: Duration,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("buckets", &self.buckets)
            .field("checkpoint_key", &self.checkpoint_key)
            .field("consistency_timeout", &self.consistency_timeout)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// A service over `log` and `kv`; `sealer` seals upstream OAuth client secrets
    /// (`NoSecretSealer` refuses OAuth imports).
    pub fn new(
        log: Arc<dyn EventLog>,
        kv: Arc<dyn ReadModelStore>,
        sealer: Arc<dyn SecretSealer>,
        options: ControlOptions,
    ) -> Result<Self, InvalidName> {
        Ok(Self {
            log,
            kv,
            sealer,
            buckets: Buckets::new(options.bucket_suffix.as_deref())?,
            checkpoint_key: Key::join(["checkpoint", options.projector_name.as_str()])?,
            consistency_timeout: options.consistency_timeout,
        })
    }

    // ---------------------------------------------------------------------------------
    // Reads
    // ---------------------------------------------------------------------------------

    /// The stored value of one model key, tombstones included.
    async fn read<M: DeserializeOwned>(
        &self,
        kind: ModelKind,
        key: &Key,
    ) -> Result<Option<Versioned<M>>, ControlError> {
        let bucket = self.buckets.for_kind(kind);
        let Some(entry) = self
            .kv
            .get(bucket, key)
            .await
            .map_err(ControlError::unavailable)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(ControlError::unavailable)
    }

    /// The live model at `<kind>.<tokens…>`; `None` when absent or a tombstone. Every token
    /// must be one key token (callers check ids with `check_id` first).
    async fn live<M: DeserializeOwned>(
        &self,
        kind: ModelKind,
        tokens: &[&str],
    ) -> Result<Option<M>, ControlError> {
        let key = model_key(kind, tokens).map_err(ControlError::unavailable)?;
        Ok(self
            .read::<M>(kind, &key)
            .await?
            .and_then(|value| match value.state {
                portcullis_projector::models::State::Live(model) => Some(model),
                portcullis_projector::models::State::Deleted => None,
            }))
    }

    /// Every live model under `<kind>.<prefix…>`, with its key's last token (the id).
    async fn list<M: DeserializeOwned>(
        &self,
        kind: ModelKind,
        prefix: &[&str],
    ) -> Result<Vec<(Vec<String>, M)>, ControlError> {
        let bucket = self.buckets.for_kind(kind);
        let prefix_key = model_key(kind, prefix).map_err(ControlError::unavailable)?;
        let keys = self
            .kv
            .keys(bucket, Some(&prefix_key))
            .await
            .map_err(ControlError::unavailable)?;
        let mut models = Vec::with_capacity(keys.len());
        for key in keys {
            // Defense in depth: the store promises keys under the prefix; check anyway.
            if !key.is_under(&prefix_key) {
                continue;
            }
            if let Some(value) = self.read::<M>(kind, &key).await?
                && let portcullis_projector::models::State::Live(model) = value.state
            {
                let rest = key.as_str()[prefix_key.as_str().len() + 1..]
                    .split('.')
                    .map(str::to_owned)
                    .collect();
                models.push((rest, model));
            }
        }
        Ok(models)
    }

    /// The host, if it exists and belongs to one of the principal's organizations; else
    /// `NotFound` (whether it exists elsewhere or not at all is not told).
    async fn host_for(
        &self,
        principal: &Principal,
        host_id: &str,
    ) -> Result<portcullis_projector::models::Host, ControlError> {
        check_id("host", host_id)?;
        match self
            .live::<portcullis_projector::models::Host>(ModelKind::Host, &[host_id])
            .await?
        {
            Some(host) if principal.acts_for(&host.org_id) => Ok(host),
            _ => Err(ControlError::not_found("host", host_id)),
        }
    }

    // ---------------------------------------------------------------------------------
    // Writes
    // ---------------------------------------------------------------------------------

    /// Executes one command with the step's command id, noting its version in `writes`.
    /// The outer error is a failure to even build the command id (a bug).
    async fn run<A: Aggregate>(
        &self,
        context: &Context,
        writes: &mut Writes,
        step: &str,
        subject: &Subject,
        command: &A::Command,
    ) -> Result<Result<Executed<A>, ExecuteError<A::Rejection>>, ControlError> {
        let command_id = writes.command_id(step, subject)?;
        let done = execute::<A>(self.log.as_ref(), context, subject, &command_id, command).await;
        if let Ok(done) = &done {
            writes.note(done.version.0);
        }
        Ok(done)
    }

    /// The event body that `command_id` recorded on `subject`, if any (what an earlier
    /// attempt of a retried request decided).
    async fn recorded(
        &self,
        subject: &Subject,
        command_id: &CommandId,
    ) -> Result<Option<EventBody>, ControlError> {
        let loaded = self
            .log
            .load(subject)
            .await
            .map_err(ControlError::unavailable)?;
        for record in &loaded.events {
            if &record.command_id == command_id {
                let event = decode_event(record).map_err(ControlError::unavailable)?;
                return Ok(event.body);
            }
        }
        Ok(None)
    }

    /// The first event body of `subject`'s history that `pick` picks something from.
    async fn find_in_history<T>(
        &self,
        subject: &Subject,
        pick: impl Fn(EventBody) -> Option<T>,
    ) -> Result<Option<T>, ControlError> {
        let loaded = self
            .log
            .load(subject)
            .await
            .map_err(ControlError::unavailable)?;
        for record in &loaded.events {
            let event = decode_event(record).map_err(ControlError::unavailable)?;
            if let Some(found) = event.body.and_then(&pick) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// When the last event of `subject` was decided (milliseconds since the Unix epoch).
    async fn last_event_at_ms(&self, subject: &Subject) -> Result<Option<i64>, ControlError> {
        let loaded = self
            .log
            .load(subject)
            .await
            .map_err(ControlError::unavailable)?;
        let Some(record) = loaded.events.last() else {
            return Ok(None);
        };
        let event = decode_event(record).map_err(ControlError::unavailable)?;
        Ok(event.meta.map(|meta| meta.occurred_at_ms))
    }

    /// Waits until the read models include everything `writes` appended.
    async fn settle(&self, writes: &Writes) -> Result<(), ControlError> {
        wait_for_projection(
            self.kv.as_ref(),
            self.buckets.projector(),
            &self.checkpoint_key,
            writes.through(),
            self.consistency_timeout,
        )
        .await
    }
}

/// An aggregate's state and version; a failure to load it is `Unavailable`.
async fn load_or_unavailable<A: Aggregate>(
    control: &Control,
    subject: &Subject,
) -> Result<(A, portcullis_store::Version), ControlError> {
    crate::load_state::<A>(control.log.as_ref(), subject)
        .await
        .map_err(infra)
}

/// Maps an infrastructure failure of `execute` (not a refusal) to the boundary error.
fn infra<R: std::error::Error + Send + Sync + 'static>(error: ExecuteError<R>) -> ControlError {
    match error {
        ExecuteError::Rejected(rejected) => ControlError::unavailable(rejected),
        ExecuteError::Contended { subject, attempts } => ControlError::Conflict {
            what: "resource",
            id: subject.aggregate_id().to_owned(),
            reason: format!("changed concurrently {attempts} times; retry"),
        },
        ExecuteError::Append {
            source: portcullis_store::AppendError::Rejected { reason, .. },
            ..
        } => ControlError::invalid("request", reason),
        other => ControlError::unavailable(other),
    }
}

/// Maps an `execute` result: refusals through `reject`, everything else through `infra`.
fn on_reject<A: Aggregate>(
    result: Result<Executed<A>, ExecuteError<A::Rejection>>,
    reject: impl FnOnce(A::Rejection) -> ControlError,
) -> Result<Executed<A>, ControlError> {
    match result {
        Ok(done) => Ok(done),
        Err(ExecuteError::Rejected(rejected)) => Err(reject(rejected)),
        Err(other) => Err(infra(other)),
    }
}

/// Checks that a caller-supplied id is one key and subject token (1–64 of
/// `[A-Za-z0-9_-]`); anything else cannot name an existing `what`, so it is `NotFound`.
fn check_id(what: &'static str, id: &str) -> Result<(), ControlError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ControlError::not_found(what, id))
    }
}

/// A subject for ids already checked by `check_id` (or generated); failure is a bug.
fn subject(built: Result<Subject, InvalidName>) -> Result<Subject, ControlError> {
    built.map_err(ControlError::unavailable)
}

/// Milliseconds since the Unix epoch by this process's clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new ULID, as ids of servers, humans, organizations are.
fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

#[cfg(test)]
mod tests;
