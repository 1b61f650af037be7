//! Fetching an OAuth Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-
//! document): a client whose `client_id` is an HTTPS URL publishes its metadata there, and
//! the gateway's authorization server fetches it. The URL comes from an anonymous client, so
//! the fetch is the strictest the guard offers whatever the deployment allows for upstreams:
//! public HTTPS only (no private, loopback, link-local or metadata addresses, re-checked at
//! connect time), no redirects, a few seconds, a small body.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::ACCEPT;
use serde_json::Value;

use crate::http::{Egress, HttpFailure, HttpLimits};
use crate::url_guard::UrlPolicy;

/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// The whole fetch's time limit.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum ClientMetadataError {
    /// The client id is not an HTTPS URL with a path, or the guard refused it.
    #[error("the client_id URL is not allowed: {0}")]
    Refused(String),
    /// The fetch failed (unreachable, timeout, status, too large).
    #[error("the client metadata document could not be fetched: {0}")]
    Fetch(String),
    /// The body is not a JSON object.
    #[error("the client metadata document is not a JSON object")]
    NotJson,
}

/// Fetches the document at `client_id` (which must be an HTTPS URL with a path and no
/// fragment, per the draft) with the production guard.
pub async fn fetch_client_metadata(client_id: &str) -> Result<Value, ClientMetadataError> {
    let policy = UrlPolicy::PRODUCTION;
    let url = policy
        .check_syntax(client_id)
        .map_err(|e| ClientMetadataError::Refused(e.to_string()))?;
    if url.scheme() != "https"
        || url.fragment().is_some()
        || url.path() == "/"
        || !url.username().is_empty()
    {
        return Err(ClientMetadataError::Refused(
            "it must be an https URL with a path, no fragment and no credentials".to_owned(),
        ));
    }
    let egress = Egress::new(
        policy,
        &[],
        HttpLimits {
            connect_timeout: FETCH_TIMEOUT,
            request_timeout: FETCH_TIMEOUT,
        },
    )
    .map_err(|e| ClientMetadataError::Fetch(e.to_string()))?;
    let failure = |e: HttpFailure| match e {
        HttpFailure::Rejected(rejected) => ClientMetadataError::Refused(rejected.to_string()),
        other => ClientMetadataError::Fetch(other.to_string()),
    };
    let request = egress
        .request(Method::GET, &url)
        .map_err(failure)?
        .header(ACCEPT, "application/json");
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, async {
        let mut response = egress.send(request).await?;
        if !response.status().is_success() {
            return Err(egress.status_failure(response).await);
        }
        egress.read_body(&mut response, MAX_DOCUMENT_BYTES).await
    })
    .await
    .map_err(|_| ClientMetadataError::Fetch(format!("no answer within {FETCH_TIMEOUT:?}")))?
    .map_err(failure)?;
    match serde_json::from_slice::<Value>(&fetched) {
        Ok(document @ Value::Object(_)) => Ok(document),
        _ => Err(ClientMetadataError::NotJson),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_plain_and_pathless_client_ids_are_refused_before_any_fetch() {
        for client_id in [
            "https://127.0.0.1/client.json",
            "https://localhost/client.json",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/client.json",
            "https://10.1.2.3/client.json",
            "http://client.example/client.json",
            "https://client.example/",
            "https://client.example/c.json#frag",
            "https://user:pw@client.example/c.json",
            "javascript:alert(1)",
        ] {
            match fetch_client_metadata(client_id).await {
                Err(ClientMetadataError::Refused(_)) => {}
                other => panic!("{client_id}: {other:?}"),
            }
        }
    }
}
