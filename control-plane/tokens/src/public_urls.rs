//! Where a host answers, as clients must be told: `https://<host_id>.<base domain>/mcp` in a
//! deployment with wildcard DNS, the listen address itself for `dev`'s default host (so
//! `http://127.0.0.1:8080/mcp` works without DNS), and `http://<host_id>.localhost:<port>`
//! for `dev`'s other hosts (`*.localhost` resolves to loopback).
//!
//! Also the ready-to-copy client configurations: `mcp.json` for Cursor and VS Code and
//! `claude_desktop_config.json` for Claude Desktop (all through `npx -y mcp-remote <url>`),
//! and the `claude mcp add` command for Claude Code.

use serde_json::{Value, json};

/// How public URLs are formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrls {
    /// `http` or `https`.
    pub scheme: String,
    /// Wildcard base domain: host `h` is at `<h>.<base_domain>`. `None` in `dev`.
    pub base_domain: Option<String>,
    /// Port clients connect to, when not the scheme's default.
    pub port: Option<u16>,
    /// The base URL of the default host (no trailing slash), e.g. `http://127.0.0.1:8080`.
    pub default_host_base: Option<String>,
}

impl PublicUrls {
    /// The settings of `portcullis dev` listening on `listen`.
    pub fn dev(listen: std::net::SocketAddr) -> Self {
        Self {
            scheme: "http".to_owned(),
            base_domain: None,
            port: Some(listen.port()),
            default_host_base: Some(format!("http://{listen}")),
        }
    }

    /// The base URL of the control plane itself (admin API, OAuth callbacks): `dev`'s listen
    /// address, else the deployment's base domain; `None` when neither is configured.
    pub fn control_base(&self) -> Option<String> {
        if let Some(base) = &self.default_host_base {
            return Some(base.clone());
        }
        let domain = self.base_domain.as_deref()?;
        Some(match self.port {
            Some(port) if !self.is_default_port(port) => {
                format!("{}://{domain}:{port}", self.scheme)
            }
            _ => format!("{}://{domain}", self.scheme),
        })
    }

    /// The base URL of a host (no trailing slash).
    pub fn host_base(&self, host_id: &str, is_default: bool) -> String {
        if is_default && let Some(base) = &self.default_host_base {
            return base.clone();
        }
        let domain = self.base_domain.as_deref().unwrap_or("localhost");
        match self.port {
            Some(port) if !self.is_default_port(port) => {
                format!("{}://{host_id}.{domain}:{port}", self.scheme)
            }
            _ => format!("{}://{host_id}.{domain}", self.scheme),
        }
    }

    fn is_default_port(&self, port: u16) -> bool {
        (self.scheme == "http" && port == 80) || (self.scheme == "https" && port == 443)
    }

    /// The MCP URL of a host: the server its agent consented to.
    pub fn mcp_url(&self, host_id: &str, is_default: bool) -> String {
        format!("{}/mcp", self.host_base(host_id, is_default))
    }

    /// The MCP URL of one server of a host.
    pub fn server_mcp_url(&self, host_id: &str, is_default: bool, server_key: &str) -> String {
        format!("{}/mcp/{server_key}", self.host_base(host_id, is_default))
    }

    /// The MCP URL that pre-selects an upstream by its URL in the consent flow.
    pub fn upstream_mcp_url(&self, host_id: &str, is_default: bool, upstream_url: &str) -> String {
        format!(
            "{}?upstream_mcp={}",
            self.mcp_url(host_id, is_default),
            percent_encode(upstream_url)
        )
    }
}

/// Which host a request's `Host` header names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostRef {
    /// The organization's default host (the deployment's own name, or loopback in `dev`).
    Default,
    /// A host by id (`<host_id>.<base domain>`).
    Named(String),
}

impl PublicUrls {
    /// The host a `Host` header (`name[:port]`) names, or `None` for a name this deployment
    /// does not answer to (so DNS-rebinding requests never reach a host). The port is not
    /// compared: load balancers and port forwards change it.
    pub fn resolve_host(&self, authority: &str) -> Option<HostRef> {
        let name = strip_port(authority)?.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        let default_name = self
            .default_host_base
            .as_deref()
            .and_then(|base| base.split_once("://"))
            .and_then(|(_, rest)| strip_port(rest.split('/').next().unwrap_or(rest)))
            .map(str::to_ascii_lowercase);
        let base = self
            .base_domain
            .as_deref()
            .unwrap_or("localhost")
            .to_ascii_lowercase();
        let is_loopback = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
        if default_name.as_deref() == Some(name)
            || (self.base_domain.is_none() && is_loopback)
            || (self.base_domain.is_some() && name == base)
        {
            return Some(HostRef::Default);
        }
        let label = name.strip_suffix(&base)?.strip_suffix('.')?;
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        valid.then(|| HostRef::Named(label.to_owned()))
    }
}

/// `name` of `name[:port]` (IPv6 literals keep their brackets); `None` if malformed.
fn strip_port(authority: &str) -> Option<&str> {
    if authority.is_empty() {
        return None;
    }
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (name, rest) = authority.split_at(end + 1);
        return (rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)).then_some(name);
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if is_port(port) && !name.contains(':') => Some(name),
        Some(_) => None,
        None => Some(authority),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Client configuration snippets for one MCP URL, by client.
pub fn client_snippets(name: &str, mcp_url: &str) -> Value {
    let remote = json!({ "command": "npx", "args": ["-y", "mcp-remote", mcp_url] });
    json!({
        "cursor": { "file": "~/.cursor/mcp.json", "config": { "mcpServers": { name: remote } } },
        "vscode": { "file": ".vscode/mcp.json", "config": { "servers": { name: remote } } },
        "claude_desktop": {
            "file": "claude_desktop_config.json",
            "config": { "mcpServers": { name: remote } }
        },
        "claude_code": { "command": format!("claude mcp add {} --transport http {mcp_url}", shell_word(name)) },
    })
}

/// Percent-encodes everything outside RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A name safe to paste into a shell: letters, digits, `-` and `_` only.
fn shell_word(name: &str) -> String {
    let word: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if word.is_empty() {
        "portcullis".to_owned()
    } else {
        word
    }
}

#[cfg(test)]
mod tests;
