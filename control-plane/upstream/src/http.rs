//! The one outbound HTTP client builder and the bounded reads every caller uses.
//!
//! Every client: resolves names through the SSRF guard's resolver (and pins the validated
//! URL's host to the addresses found when it was validated), follows no redirects, ignores
//! proxy environment variables (a proxy would connect where the guard never looked), has
//! connect and whole-request timeouts, and speaks TLS through rustls on the `ring` provider
//! with the platform's trust store. Bodies are read chunk by chunk up to a byte limit.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};

use crate::url_guard::{GuardedResolver, GuardedUrl, UrlPolicy, UrlRejected};

/// Why an HTTP exchange failed, before any protocol meaning is given to it.
#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    /// The guard refused the destination (also when found only at connection time).
    #[error(transparent)]
    Rejected(#[from] UrlRejected),
    /// No answer in time.
    #[error("no answer within {after:?}")]
    Timeout {
        /// The limit that was reached.
        after: Duration,
    },
    /// Could not connect or the connection broke.
    #[error("{detail}")]
    Transport {
        /// The innermost cause, readable (e.g. "Connection refused (os error 111)").
        detail: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// An unexpected HTTP status.
    #[error("HTTP status {status}{}", excerpt_suffix(body_excerpt))]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the body, printable characters only.
        body_excerpt: String,
    },
    /// The body exceeded the limit.
    #[error("the response is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The TLS or client set-up failed (no trust store, for example).
    #[error("could not set up the HTTP client: {0}")]
    ClientSetup(#[source] Box<dyn StdError + Send + Sync>),
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

/// Limits of one outbound client.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one whole HTTP exchange.
    pub request_timeout: Duration,
}

/// An outbound client bound to a policy; see the module docs for what it guarantees.
#[derive(Clone, Debug)]
pub struct Egress {
    client: reqwest::Client,
    policy: UrlPolicy,
    limits: HttpLimits,
}

impl Egress {
    /// Builds a client; `pinned` URLs' hosts connect only to the addresses they were
    /// validated with.
    pub fn new(
        policy: UrlPolicy,
        pinned: &[&GuardedUrl],
        limits: HttpLimits,
    ) -> Result<Self, HttpFailure> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(
                tls_config().map_err(|e| HttpFailure::ClientSetup(e.into()))?,
            )
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.request_timeout)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        for url in pinned {
            if let Some(url::Host::Domain(domain)) = url.url().host() {
                builder = builder.resolve_to_addrs(domain, url.addrs());
            }
        }
        let client = builder
            .build()
            .map_err(|e| HttpFailure::ClientSetup(e.into()))?;
        Ok(Egress {
            client,
            policy,
            limits,
        })
    }

    pub(crate) fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// Starts a request after the guard's URL checks (IP literals are refused here; names
    /// are checked by the resolver when the connection is made).
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &url::Url,
    ) -> Result<reqwest::RequestBuilder, HttpFailure> {
        self.policy.check_parsed(url)?;
        Ok(self.client.request(method, url.clone()))
    }

    /// Sends and waits for the response head.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, HttpFailure> {
        request.send().await.map_err(|error| self.failure(error))
    }

    /// Turns a client error into a failure, finding a guard refusal or timeout inside it.
    pub(crate) fn failure(&self, error: reqwest::Error) -> HttpFailure {
        if let Some(rejected) = find_rejection(&error) {
            return HttpFailure::Rejected(rejected);
        }
        if error.is_timeout() {
            return HttpFailure::Timeout {
                after: self.limits.request_timeout,
            };
        }
        if is_connect_timeout(&error) {
            return HttpFailure::Timeout {
                after: self.limits.connect_timeout,
            };
        }
        HttpFailure::Transport {
            detail: innermost_cause(&error),
            source: error,
        }
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn read_body(
        &self,
        response: &mut Response,
        limit: usize,
    ) -> Result<Vec<u8>, HttpFailure> {
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(HttpFailure::TooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failure(e))? {
            if body.len() + chunk.len() > limit {
                return Err(HttpFailure::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A non-success status with the start of its body, for error messages.
    pub(crate) async fn status_failure(&self, mut response: Response) -> HttpFailure {
        let status = response.status();
        let body = self
            .read_body(&mut response, 4096)
            .await
            .unwrap_or_default();
        HttpFailure::Status {
            status,
            body_excerpt: printable_excerpt(&body, 200),
        }
    }
}

/// `url` without its query and fragment, for logs: some servers take API keys in the query.
pub(crate) fn loggable_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// At most `max` printable characters of `body`, for showing an admin what a server said.
pub(crate) fn printable_excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        excerpt.push('…');
    }
    excerpt.trim().to_owned()
}

fn find_rejection(error: &reqwest::Error) -> Option<UrlRejected> {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(rejected) = cause.downcast_ref::<UrlRejected>() {
            return Some(rejected.clone());
        }
        source = cause.source();
    }
    None
}

fn is_connect_timeout(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if cause.to_string().contains("timed out") {
            return true;
        }
        source = cause.source();
    }
    false
}

fn innermost_cause(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}

/// rustls on `ring` with the platform verifier and ALPN for HTTP/2 and HTTP/1.1, built per
/// client: it is cheap next to an import, and keeps the process-wide default provider
/// untouched.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = tls_config_without_alpn()?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// [`tls_config`] before ALPN is set (hyper-rustls sets it from the enabled versions).
pub(crate) fn tls_config_without_alpn() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth())
}

#[cfg(test)]
mod tests;
