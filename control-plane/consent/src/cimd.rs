//! Client ID Metadata Documents: an MCP client whose `client_id` is an HTTPS URL (Claude
//! Code's, for example) is described by the JSON document at that URL. Fetched with the
//! strictest SSRF guard (`portcullis_upstream::client_metadata`: public HTTPS only, 5 s,
//! 64 KiB), validated (its `client_id` is its URL; every redirect URI passes the same rules
//! as dynamic registration), recorded once as an agent of the host, and cached for five
//! minutes per host and URL (at most `MAX_CACHED` entries).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use portcullis_commands::control::{Control, NewOAuthClient};
use portcullis_oauth::authorize::{ClientInfo, PageError};
use portcullis_oauth::service::ClientMetadataFetcher;
use serde_json::Value;

/// How long a fetched document is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// Most documents cached.
pub const MAX_CACHED: usize = 1000;

/// The fetcher the authorization server uses.
#[derive(Debug)]
pub struct MetadataDocuments {
    control: Arc<Control>,
    cache: Mutex<HashMap<(String, String), (Instant, ClientInfo)>>,
}

impl MetadataDocuments {
    /// A fetcher recording clients through `control`.
    pub fn new(control: Arc<Control>) -> Self {
        Self {
            control,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// The client a document describes, validated against its URL.
pub fn parse_document(client_id: &str, document: &Value) -> Result<NewOAuthClient, String> {
    if document.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("its client_id is not the URL it was fetched from".to_owned());
    }
    let uris = document
        .get("redirect_uris")
        .and_then(Value::as_array)
        .filter(|uris| !uris.is_empty() && uris.len() <= 10)
        .ok_or("it needs 1 to 10 redirect_uris")?;
    let mut redirect_uris = Vec::with_capacity(uris.len());
    for uri in uris {
        let uri = uri.as_str().ok_or("a redirect URI is not a string")?;
        portcullis_oauth::redirect::validate(uri)
            .map_err(|e| format!("redirect URI {uri:?}: {e}"))?;
        redirect_uris.push(uri.to_owned());
    }
    if let Some(method) = document
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        && method != "none"
    {
        return Err(format!(
            "token_endpoint_auth_method {method:?} is not supported; public clients use none"
        ));
    }
    let text = |key: &str, max: usize| {
        document
            .get(key)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(max).collect::<String>())
    };
    Ok(NewOAuthClient {
        name: text("client_name", 200).unwrap_or_else(|| client_id.to_owned()),
        uri: text("client_uri", 2000).unwrap_or_default(),
        agent_type: "metadata-document".to_owned(),
        redirect_uris,
    })
}

#[async_trait]
impl ClientMetadataFetcher for MetadataDocuments {
    async fn fetch(&self, host_id: &str, client_id: &str) -> Result<ClientInfo, PageError> {
        let key = (host_id.to_owned(), client_id.to_owned());
        if let Ok(cache) = self.cache.lock()
            && let Some((at, info)) = cache.get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(info.clone());
        }
        let document = portcullis_upstream::client_metadata::fetch_client_metadata(client_id)
            .await
            .map_err(|e| PageError::ClientMetadata(e.to_string()))?;
        let client = parse_document(client_id, &document).map_err(PageError::ClientMetadata)?;
        let context = crate::context("oauth.client_metadata");
        let recorded = self
            .control
            .ensure_metadata_client(&context, host_id, client_id, client.clone())
            .await
            .map_err(|error| {
                tracing::warn!(%error, "Client metadata document not recorded.");
                PageError::Unavailable
            })?;
        let info = ClientInfo {
            agent_id: recorded.agent_id,
            client_id: client_id.to_owned(),
            name: client.name,
            redirect_uris: client.redirect_uris,
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), info.clone()));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const URL: &str = "https://claude.ai/oauth/claude-code-client-metadata";

    #[test]
    fn a_document_must_name_its_own_url_and_safe_redirect_uris() {
        let good = json!({
            "client_id": URL,
            "client_name": "Claude Code",
            "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
        });
        let client = parse_document(URL, &good).expect("valid");
        assert_eq!(client.name, "Claude Code");
        assert_eq!(client.redirect_uris.len(), 2);
        for (document, why) in [
            (
                json!({ "client_id": "https://evil.example/x", "redirect_uris": ["http://localhost/cb"] }),
                "client_id",
            ),
            (
                json!({ "client_id": URL, "redirect_uris": [] }),
                "redirect_uris",
            ),
            (
                json!({ "client_id": URL, "redirect_uris": ["javascript:alert(1)"] }),
                "redirect URI",
            ),
            (
                json!({ "client_id": URL, "redirect_uris": ["http://evil.example/cb"] }),
                "redirect URI",
            ),
            (
                json!({ "client_id": URL, "redirect_uris": ["http://localhost/cb"], "token_endpoint_auth_method": "client_secret_basic" }),
                "token_endpoint_auth_method",
            ),
        ] {
            let error = parse_document(URL, &document).expect_err(why);
            assert!(error.contains(why), "{why}: {error}");
        }
    }
}
