//! `EgressClient`: openidconnect's / oauth2's `AsyncHttpClient` over the gateway's
//! SSRF-guarded outbound client (`portcullis_upstream::Egress`), and a small JSON GET helper.
//!
//! Owns the translation between `http::Request`/`Response` and reqwest, and the body limit.
//! Must not follow redirects, bypass the URL policy (every request goes through
//! `Egress::request`, which checks the URL; the resolver checks addresses at connection time),
//! read more than the limit, or log a request (headers carry credentials).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use portcullis_upstream::{Egress, HttpFailure, HttpLimits, UrlPolicy, UrlRejected};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use url::Url;

/// Largest body read from a provider (documents, key sets, token and API responses).
pub(crate) const MAX_BODY_BYTES: usize = 256 * 1024;

/// Limits of the identity provider client.
const LIMITS: HttpLimits = HttpLimits {
    connect_timeout: Duration::from_secs(5),
    request_timeout: Duration::from_secs(15),
};

/// The outbound client for one provider exchange; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct EgressClient {
    egress: Egress,
}

/// A response head and its bounded body.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl EgressClient {
    /// A client bound to `policy`.
    pub(crate) fn new(policy: UrlPolicy) -> Result<Self, HttpFailure> {
        Ok(EgressClient {
            egress: Egress::new(policy, &[], LIMITS)?,
        })
    }

    /// Sends one request and reads the body up to [`MAX_BODY_BYTES`]. Any status is returned:
    /// the caller decides what it means.
    pub(crate) async fn fetch(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Fetched, HttpFailure> {
        let mut request = self.egress.request(method, url)?.headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        let mut response = self.egress.send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.egress.read_body(&mut response, MAX_BODY_BYTES).await?;
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }

    /// GETs `url` with `headers`; a non-200 status is a failure carrying a body excerpt.
    pub(crate) async fn get_ok(
        &self,
        url: &Url,
        headers: HeaderMap,
    ) -> Result<Vec<u8>, HttpFailure> {
        let fetched = self.fetch(Method::GET, url, headers, None).await?;
        if fetched.status != StatusCode::OK {
            return Err(HttpFailure::Status {
                status: fetched.status,
                body_excerpt: crate::error::sanitize_text(
                    &String::from_utf8_lossy(&fetched.body),
                    200,
                ),
            });
        }
        Ok(fetched.body)
    }
}

impl<'c> AsyncHttpClient<'c> for EgressClient {
    type Error = HttpFailure;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = Url::parse(&parts.uri.to_string()).map_err(|error| {
                HttpFailure::Rejected(UrlRejected::Unparsable {
                    reason: error.to_string(),
                })
            })?;
            let body = (!body.is_empty()).then_some(body);
            let fetched = self.fetch(parts.method, &url, parts.headers, body).await?;
            let mut response = HttpResponse::new(fetched.body);
            *response.status_mut() = fetched.status;
            *response.headers_mut() = fetched.headers;
            Ok(response)
        })
    }
}
