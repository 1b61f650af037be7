//! The data plane's pooled client for forwarding MCP traffic to upstream servers.
//!
//! hyper-util's pooled client with hyper-rustls, not reqwest: the forward path runs on every
//! `tools/call`, and reqwest's layers (redirect and cookie services, retries, its own URL type
//! parsed again per request) cost about a tenth of the gateway's CPU at saturation while
//! doing nothing this client may do (it follows no redirects and keeps no cookies). The
//! guarantees are those of every client in this crate (`http`):
//!
//! - names resolve through the SSRF guard's resolver, which refuses a forbidden answer;
//! - the connector checks each new connection's URI first: scheme (`https`, or `http` only
//!   where the policy allows private addresses), no credentials, a host, and an IP literal's
//!   class (the resolver never sees literals). A pooled connection is reused only for the
//!   scheme and authority it was made and checked for, so checking at connection time covers
//!   every request;
//! - no proxy environment variables, no redirects, no cookies;
//! - TLS through rustls on `ring` with the platform's trust store (HTTP/2 by ALPN);
//! - a connect timeout that covers the TCP connect and the TLS handshake.
//!
//! There is no whole-request timeout: SSE streams run as long as the client keeps them open.
//! The caller bounds the wait for the response head and the gaps between body chunks.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::http::{HeaderValue, Request, Response, Uri, header};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower::Service;

use crate::http::tls_config_without_alpn;
use crate::url_guard::{GuardedResolver, UrlPolicy, UrlRejected};

/// What the forwarding client sends: a whole body (JSON-RPC messages are small and were read
/// and checked before forwarding), empty for `GET` and `DELETE`.
pub type ForwardBody = Full<Bytes>;

/// What the forwarding client answers: the head, with the body still to be streamed.
pub type ForwardResponse = Response<Incoming>;

const USER_AGENT: &str = concat!("portcullis/", env!("CARGO_PKG_VERSION"));

/// Why a forwarded request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum ForwardFailure {
    /// The guard refused the destination (its URI, or an address its name resolved to).
    #[error(transparent)]
    Rejected(#[from] UrlRejected),
    /// The TCP connect and TLS handshake took longer than the connect timeout.
    #[error("could not connect within {}", humantime::format_duration(*after))]
    ConnectTimeout {
        /// The limit that was reached.
        after: Duration,
    },
    /// Could not connect, the handshake failed, or the connection broke.
    #[error("{detail}")]
    Transport {
        /// The innermost cause, readable (e.g. "Connection refused (os error 111)").
        detail: String,
        /// The client's error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The TLS set-up failed (no trust store, for example).
    #[error("could not set up the HTTP client: {0}")]
    ClientSetup(#[source] Box<dyn StdError + Send + Sync>),
}

/// The data plane's forwarding client; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct ForwardingClient {
    client: Client<GuardedConnector, ForwardBody>,
}

impl ForwardingClient {
    /// A client that reaches what `policy` allows and gives up connecting (TCP and TLS)
    /// after `connect_timeout`.
    pub fn new(policy: UrlPolicy, connect_timeout: Duration) -> Result<Self, ForwardFailure> {
        let tls = tls_config_without_alpn().map_err(|e| ForwardFailure::ClientSetup(e.into()))?;
        let mut tcp = HttpConnector::new_with_resolver(GuardedResolver { policy });
        // Schemes are the guard's to check (in `GuardedConnector`), not the TCP connector's.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let connector = GuardedConnector {
            inner: tls,
            policy,
            timeout: connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // Shorter than the keep-alive of common upstreams (Node's default is 5 s): reusing
            // a connection the upstream is closing at that moment resets the request (seen
            // with server-everything in the consent e2e test).
            .pool_idle_timeout(Duration::from_secs(4))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self { client })
    }

    /// Sends `request` (its URI absolute) and waits for the response head. Adds the
    /// gateway's `User-Agent` unless the request has one.
    pub async fn send(
        &self,
        mut request: Request<ForwardBody>,
    ) -> Result<ForwardResponse, ForwardFailure> {
        request
            .headers_mut()
            .entry(header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        self.client
            .request(request)
            .await
            .map_err(ForwardFailure::from_client)
    }
}

impl ForwardFailure {
    fn from_client(error: hyper_util::client::legacy::Error) -> Self {
        let mut source: Option<&(dyn StdError + 'static)> = error.source();
        while let Some(cause) = source {
            if let Some(rejected) = cause.downcast_ref::<UrlRejected>() {
                return ForwardFailure::Rejected(rejected.clone());
            }
            if let Some(timeout) = cause.downcast_ref::<ConnectTimedOut>() {
                return ForwardFailure::ConnectTimeout {
                    after: timeout.after,
                };
            }
            source = cause.source();
        }
        let mut detail = error.to_string();
        let mut source: Option<&(dyn StdError + 'static)> = error.source();
        while let Some(cause) = source {
            detail = cause.to_string();
            source = cause.source();
        }
        ForwardFailure::Transport {
            detail,
            source: error,
        }
    }
}

/// The connect timeout, as the connector's error (found again in `from_client`).
#[derive(Debug, thiserror::Error)]
#[error("could not connect within {after:?}")]
struct ConnectTimedOut {
    after: Duration,
}

/// Checks each new connection's URI against the policy, then connects (TCP through the
/// guarded resolver, TLS for `https`) within the timeout.
#[derive(Clone, Debug)]
struct GuardedConnector {
    inner: HttpsConnector<HttpConnector<GuardedResolver>>,
    policy: UrlPolicy,
    timeout: Duration,
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl Service<Uri> for GuardedConnector {
    type Response = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Err(rejected) = self.policy.check_uri(&uri) {
            return Box::pin(std::future::ready(Err(rejected.into())));
        }
        let connecting = self.inner.call(uri);
        let after = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(after, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(ConnectTimedOut { after }.into()),
            }
        })
    }
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = UrlRejected;
    type Future =
        Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, UrlRejected>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), UrlRejected>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy;
        Box::pin(async move {
            // Port 0: the connector sets the URI's port on each address.
            Ok(policy.resolve(name.as_str(), 0).await?.into_iter())
        })
    }
}

#[cfg(test)]
mod tests;
