//! The SSRF guard: which URLs and addresses the gateway may connect to on behalf of a user or
//! an upstream (imported server URLs, OAuth metadata and endpoints learned from upstreams).
//!
//! Rules, checked in this order by [`UrlPolicy::validate`]:
//! 1. at most [`MAX_URL_LEN`] bytes, an absolute URL, scheme `http` or `https`;
//! 2. no user name or password (`https://user:pass@host/` is refused, not stripped);
//! 3. a host is present;
//! 4. `https` is required in production; plain `http` is accepted only when
//!    `allow_private` is set (development, where upstreams run on loopback without TLS);
//! 5. the host is resolved (an IP literal in any form the URL standard accepts, e.g. decimal
//!    `http://2130706433/` or hex `http://0x7f.1/`, is parsed by `url` into the address it
//!    means) and **every** address must be allowed: one forbidden address refuses the URL.
//!
//! Addresses: public unicast is always allowed. Loopback, RFC 1918 private, link-local,
//! unique-local, CGNAT shared space, documentation and benchmarking ranges are allowed only
//! with `allow_private`. Cloud metadata endpoints, unspecified (`0.0.0.0`, `::`), multicast,
//! broadcast and reserved ranges are never allowed. IPv4 embedded in IPv6 (mapped, NAT64,
//! 6to4, IPv4-compatible) is judged by the embedded address.
//!
//! Rebinding: the address check runs again at connection time. Every outbound client built
//! by this crate resolves names through [`GuardedResolver`], which applies the same rules to
//! the very addresses the connector then uses, and the URL that was validated is pinned to
//! the addresses `validate` found (`reqwest::ClientBuilder::resolve_to_addrs`). So a DNS
//! answer that changes between the check and the connection is either the pinned one or is
//! checked again; it is never trusted unchecked. Redirects are never followed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// How long one DNS lookup may take before the URL is refused as unresolvable.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Which destinations the gateway may reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UrlPolicy {
    /// Development only: also reach loopback, private, link-local, unique-local and CGNAT
    /// addresses, and accept plain `http` anywhere. Production leaves this `false`.
    pub allow_private: bool,
}

/// Why a URL was refused. The admin API returns these as 400 naming the field `url`; the
/// messages say what was wrong without echoing credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRejected {
    /// Longer than [`MAX_URL_LEN`].
    #[error("url is {length} bytes long; at most {max} are accepted")]
    TooLong {
        /// Its length in bytes.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// Not an absolute URL.
    #[error("url is not a valid absolute URL: {reason}")]
    Unparsable {
        /// What the parser said.
        reason: String,
    },
    /// A scheme other than http or https.
    #[error("url scheme \"{scheme}\" is not allowed; use https")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// Plain http outside development mode.
    #[error("url must use https; plain http is accepted only in development mode")]
    HttpsRequired,
    /// `user:password@` in the URL.
    #[error("url must not contain a user name or password; configure credentials separately")]
    Credentials,
    /// No host.
    #[error("url has no host")]
    MissingHost,
    /// The host is, or resolves to, an address the gateway does not connect to.
    #[error(
        "url host {host} {} {address}, a {class} address, which the gateway does not connect to{}",
        if host_is_address(host) { "is" } else { "resolves to" },
        if class.allowed_in_development() { " outside development mode" } else { "" }
    )]
    ForbiddenAddress {
        /// The host as written in the URL.
        host: String,
        /// The offending address.
        address: IpAddr,
        /// What kind of address it is.
        class: AddressClass,
    },
    /// DNS failed.
    #[error("url host {host} does not resolve: {detail}")]
    Unresolvable {
        /// The host.
        host: String,
        /// What the resolver said.
        detail: String,
    },
}

fn host_is_address(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// The kinds of non-public address the guard knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16, fe80::/10 (except metadata addresses).
    LinkLocal,
    /// fc00::/7, fec0::/10 (deprecated site-local).
    UniqueLocal,
    /// 100.64/10, carrier-grade NAT.
    SharedAddressSpace,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32.
    Documentation,
    /// 198.18/15.
    Benchmarking,
    /// 169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254: cloud instance metadata.
    CloudMetadata,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// Everything else special-purpose (240/4, 192.0.0/24, 192.88.99/24, 100::/64, Teredo, …).
    Reserved,
}

impl AddressClass {
    /// Whether development mode (`allow_private`) may reach this kind of address.
    pub fn allowed_in_development(self) -> bool {
        match self {
            AddressClass::Loopback
            | AddressClass::Private
            | AddressClass::LinkLocal
            | AddressClass::UniqueLocal
            | AddressClass::SharedAddressSpace
            | AddressClass::Documentation
            | AddressClass::Benchmarking => true,
            AddressClass::CloudMetadata
            | AddressClass::Unspecified
            | AddressClass::Multicast
            | AddressClass::Broadcast
            | AddressClass::Reserved => false,
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::SharedAddressSpace => "carrier-grade NAT",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::CloudMetadata => "cloud metadata",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// What kind of non-public address `ip` is; `None` for public unicast.
pub fn classify_address(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, d] = ip.octets();
    let class = match (a, b, c, d) {
        (169, 254, 169, 254) | (169, 254, 170, 2) | (100, 100, 100, 200) => {
            AddressClass::CloudMetadata
        }
        (0, ..) => AddressClass::Unspecified,
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (192, 168, ..) => AddressClass::Private,
        (172, b, ..) if (16..32).contains(&b) => AddressClass::Private,
        (169, 254, ..) => AddressClass::LinkLocal,
        (100, b, ..) if (64..128).contains(&b) => AddressClass::SharedAddressSpace,
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => AddressClass::Documentation,
        (198, 18 | 19, ..) => AddressClass::Benchmarking,
        (255, 255, 255, 255) => AddressClass::Broadcast,
        (224..=239, ..) => AddressClass::Multicast,
        (240..=255, ..) | (192, 0, 0, _) | (192, 88, 99, _) => AddressClass::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    let class = match segments {
        // AWS's IPv6 instance metadata endpoint.
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => AddressClass::CloudMetadata,
        // NAT64 (64:ff9b::/96): a public v4 behind it is public, a private one is not.
        [0x0064, 0xff9b, 0, 0, 0, 0, high, low] => return classify_v4(embedded_v4(high, low)),
        // IPv4-compatible (::/96, deprecated): judged by the v4 inside, and reserved otherwise.
        [0, 0, 0, 0, 0, 0, high, low] => {
            return Some(classify_v4(embedded_v4(high, low)).unwrap_or(AddressClass::Reserved));
        }
        // 6to4 (2002::/16): the v4 address is in segments 1 and 2.
        [0x2002, high, low, ..] => return classify_v4(embedded_v4(high, low)),
        // Teredo (2001::/32) tunnels to an obfuscated v4 endpoint: refuse.
        [0x2001, 0, ..] => AddressClass::Reserved,
        [0x2001, 0x0db8, ..] => AddressClass::Documentation,
        [0x0100, 0, 0, 0, ..] => AddressClass::Reserved,
        [first, ..] if first & 0xff00 == 0xff00 => AddressClass::Multicast,
        [first, ..] if first & 0xfe00 == 0xfc00 => AddressClass::UniqueLocal,
        [first, ..] if first & 0xffc0 == 0xfe80 => AddressClass::LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => AddressClass::UniqueLocal,
        _ => return None,
    };
    Some(class)
}

/// A URL that passed the guard, with the addresses it resolved to when it was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardedUrl {
    url: Url,
    addrs: Vec<SocketAddr>,
}

impl GuardedUrl {
    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The addresses the host resolved to (port included); connections go only there.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The URL as a string.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// A guarded URL with made-up addresses, to test pinning.
    #[cfg(test)]
    pub(crate) fn pinned_for_tests(url: Url, addrs: Vec<SocketAddr>) -> Self {
        GuardedUrl { url, addrs }
    }
}

impl UrlPolicy {
    /// Production: public https destinations only.
    pub const PRODUCTION: UrlPolicy = UrlPolicy {
        allow_private: false,
    };
    /// Development: also loopback and private networks, and plain http.
    pub const DEVELOPMENT: UrlPolicy = UrlPolicy {
        allow_private: true,
    };

    /// Checks `url` and resolves its host; every resolved address must be allowed.
    pub async fn validate(&self, url: &str) -> Result<GuardedUrl, UrlRejected> {
        let url = self.check_syntax(url)?;
        self.validate_parsed(url).await
    }

    /// Like [`UrlPolicy::validate`], for a URL already parsed.
    pub async fn validate_parsed(&self, url: Url) -> Result<GuardedUrl, UrlRejected> {
        self.check_parsed(&url)?;
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = match url.host() {
            Some(Host::Ipv4(v4)) => vec![SocketAddr::new(IpAddr::V4(v4), port)],
            Some(Host::Ipv6(v6)) => vec![SocketAddr::new(IpAddr::V6(v6), port)],
            Some(Host::Domain(domain)) => self.resolve(domain, port).await?,
            None => return Err(UrlRejected::MissingHost),
        };
        Ok(GuardedUrl { url, addrs })
    }

    /// The checks that need no DNS: length, scheme, credentials, host, https, and the address
    /// of an IP-literal host.
    pub fn check_syntax(&self, url: &str) -> Result<Url, UrlRejected> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlRejected::TooLong {
                length: url.len(),
                max: MAX_URL_LEN,
            });
        }
        let parsed = Url::parse(url.trim()).map_err(|error| UrlRejected::Unparsable {
            reason: error.to_string(),
        })?;
        self.check_parsed(&parsed)?;
        Ok(parsed)
    }

    /// [`UrlPolicy::check_syntax`] for a parsed URL. Every request this crate sends passes
    /// it first: names are then checked by the resolver, IP literals here (the connector does
    /// not resolve them).
    pub fn check_parsed(&self, url: &Url) -> Result<(), UrlRejected> {
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlRejected::TooLong {
                length: url.as_str().len(),
                max: MAX_URL_LEN,
            });
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            "http" => return Err(UrlRejected::HttpsRequired),
            other => {
                return Err(UrlRejected::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRejected::Credentials);
        }
        let host_text = url.host_str().unwrap_or_default().to_owned();
        let literal = match url.host() {
            None => return Err(UrlRejected::MissingHost),
            Some(Host::Domain("")) => return Err(UrlRejected::MissingHost),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let Some(address) = literal {
            self.check_address(&host_text, address)?;
        }
        Ok(())
    }

    /// [`UrlPolicy::check_parsed`] for an `http::Uri`, which the forwarding client's
    /// connector checks for each new connection: the same scheme, credential, host and
    /// IP-literal rules (names are the resolver's to check).
    pub fn check_uri(&self, uri: &hyper::http::Uri) -> Result<(), UrlRejected> {
        let length = uri.to_string().len();
        if length > MAX_URL_LEN {
            return Err(UrlRejected::TooLong {
                length,
                max: MAX_URL_LEN,
            });
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_private => {}
            Some("http") => return Err(UrlRejected::HttpsRequired),
            other => {
                return Err(UrlRejected::UnsupportedScheme {
                    scheme: other.unwrap_or_default().to_owned(),
                });
            }
        }
        let Some(authority) = uri.authority() else {
            return Err(UrlRejected::MissingHost);
        };
        if authority.as_str().contains('@') {
            return Err(UrlRejected::Credentials);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(UrlRejected::MissingHost);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(address) = bare.parse::<IpAddr>() {
            self.check_address(host, address)?;
        }
        Ok(())
    }

    /// Refuses `address` unless the policy allows its class.
    pub fn check_address(&self, host: &str, address: IpAddr) -> Result<(), UrlRejected> {
        match classify_address(address) {
            None => Ok(()),
            Some(class) if self.allow_private && class.allowed_in_development() => Ok(()),
            Some(class) => Err(UrlRejected::ForbiddenAddress {
                host: host.to_owned(),
                address,
                class,
            }),
        }
    }

    /// Resolves `host` and checks every address; used at validation and at connection time.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, UrlRejected> {
        let unresolvable = |detail: String| UrlRejected::Unresolvable {
            host: host.to_owned(),
            detail,
        };
        let lookup = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| unresolvable(format!("no answer within {DNS_TIMEOUT:?}")))?
            .map_err(|error| unresolvable(error.to_string()))?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in lookup {
            self.check_address(host, addr.ip())?;
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(unresolvable("no addresses".to_owned()));
        }
        Ok(addrs)
    }
}

/// The DNS resolver of every outbound client this crate builds: it resolves, then refuses
/// the name if any answer is forbidden, so the connector only ever sees checked addresses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: UrlPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy.resolve(&host, 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests;
