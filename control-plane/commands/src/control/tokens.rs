//! Admin tokens: generating secrets, deriving their ids, issuing them, and authenticating a
//! bearer secret.
//!
//! A token's id is the hex of the first 16 bytes of SHA-256(secret), so authentication is one
//! key lookup (`admin_token.<id>`), never a scan; the full SHA-256 is then compared in
//! constant time. Only the hash is ever stored.

use portcullis_domain::admin_token::{AdminToken, AdminTokenCommand, AdminTokenRejected};
use portcullis_projector::ModelKind;
use portcullis_projector::models::AdminToken as AdminTokenModel;
use portcullis_proto::subjects;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::idempotency::Writes;
use super::{Control, ControlError, Principal, infra, subject};
use crate::{Context, ExecuteError};

/// What every generated admin token starts with, so it is recognizable in a leak scan.
pub const ADMIN_TOKEN_PREFIX: &str = "pcat_";

/// Shortest secret accepted for a given (not generated) admin token.
const MIN_SECRET_LEN: usize = 24;
/// Longest secret looked at; anything longer is not a token.
const MAX_SECRET_LEN: usize = 512;

/// A new admin token secret: `pcat_` and 64 hex digits (256 bits from the OS-seeded CSPRNG).
pub fn generate_admin_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{ADMIN_TOKEN_PREFIX}{}", hex(&bytes))
}

/// The id of the token with this secret: hex of the first 16 bytes of its SHA-256.
pub fn admin_token_id(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes())[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Control {
    /// The admin holding `secret`, or `Unauthenticated` (unknown, revoked or wrong secret;
    /// which one is not told).
    #[tracing::instrument(name = "control.authenticate", skip_all)]
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, ControlError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(ControlError::Unauthenticated);
        }
        let digest = Sha256::digest(secret.as_bytes());
        let token_id = hex(&digest[..16]);
        let Some(token) = self
            .live::<AdminTokenModel>(ModelKind::AdminToken, &[&token_id])
            .await?
        else {
            return Err(ControlError::Unauthenticated);
        };
        let expected = hex(&digest);
        let matches: bool = expected
            .as_bytes()
            .ct_eq(token.token_sha256.as_bytes())
            .into();
        if !matches {
            return Err(ControlError::Unauthenticated);
        }
        Ok(Principal {
            token_id,
            org_ids: token.org_ids,
        })
    }

    /// Makes sure an admin token with `secret` exists and acts for (at least) `org_ids`;
    /// returns its id. Idempotent: for the bootstrap token (`PORTCULLIS_ADMIN_TOKEN`, or one
    /// `generate_admin_token` made). A revoked token is a `Conflict`.
    #[tracing::instrument(name = "control.admin_token.ensure", skip_all)]
    pub async fn ensure_admin_token(
        &self,
        context: &Context,
        secret: &str,
        org_ids: &[String],
        label: &str,
    ) -> Result<String, ControlError> {
        if secret.len() < MIN_SECRET_LEN
            || secret.len() > MAX_SECRET_LEN
            || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ControlError::invalid(
                "admin_token",
                format!(
                    "must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} printable ASCII characters \
                     without spaces"
                ),
            ));
        }
        for org_id in org_ids {
            if super::check_id("organization", org_id).is_err() {
                return Err(ControlError::invalid("org_ids", "not an organization id"));
            }
        }
        let token_id = admin_token_id(secret);
        let token_subject = subject(subjects::admin_token(&token_id))?;
        // Deterministic command ids: a restart issues nothing twice.
        let key = super::IdempotencyKey::parse("bootstrap")?;
        let mut writes = Writes::new(&token_id, Some(&key));
        let reject = |rejected: AdminTokenRejected| match rejected {
            AdminTokenRejected::InvalidLabel(e) => ControlError::invalid("label", e),
            other => ControlError::conflict("admin token", &token_id, other),
        };
        let issue = AdminTokenCommand::Issue {
            token_id: token_id.clone(),
            token_sha256: Sha256::digest(secret.as_bytes()).to_vec(),
            org_ids: org_ids.to_vec(),
            label: label.to_owned(),
        };
        let issued = match self
            .run::<AdminToken>(
                context,
                &mut writes,
                "admin_token.issue",
                &token_subject,
                &issue,
            )
            .await?
        {
            Ok(done) => done,
            Err(ExecuteError::Rejected(rejected)) => return Err(reject(rejected)),
            Err(other) => return Err(infra(other)),
        };
        let member_of = match &issued.state {
            AdminToken::Live { org_ids, .. } => org_ids.clone(),
            AdminToken::Absent | AdminToken::Revoked => Vec::new(),
        };
        for org_id in org_ids.iter().filter(|o| !member_of.contains(o)) {
            let join = AdminTokenCommand::AddOrganization {
                org_id: org_id.clone(),
            };
            match self
                .run::<AdminToken>(
                    context,
                    &mut writes,
                    &format!("admin_token.join.{org_id}"),
                    &token_subject,
                    &join,
                )
                .await?
            {
                Ok(_) => {}
                Err(ExecuteError::Rejected(rejected)) => return Err(reject(rejected)),
                Err(other) => return Err(infra(other)),
            }
        }
        self.settle(&writes).await?;
        Ok(token_id)
    }
}
