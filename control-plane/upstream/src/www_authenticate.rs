//! Parsing `WWW-Authenticate` for the `Bearer` challenge an MCP server sends with 401/403
//! (RFC 6750 section 3, RFC 9728 section 5.1: `resource_metadata`, `scope`, `error`).

/// The parameters of a `Bearer` challenge that matter to the gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BearerChallenge {
    /// RFC 9728: where the protected-resource metadata is.
    pub resource_metadata: Option<String>,
    /// Scopes the server asks for.
    pub scope: Option<String>,
    /// RFC 6750 error code (`invalid_token`, `insufficient_scope`, …).
    pub error: Option<String>,
    /// Human-readable error text from the server.
    pub error_description: Option<String>,
}

/// The first `Bearer` challenge among the given header values, if any.
pub fn parse_bearer_challenge<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
) -> Option<BearerChallenge> {
    header_values
        .into_iter()
        .flat_map(parse_challenges)
        .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, params)| {
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.clone())
            };
            BearerChallenge {
                resource_metadata: get("resource_metadata"),
                scope: get("scope"),
                error: get("error"),
                error_description: get("error_description"),
            }
        })
}

type Challenge = (String, Vec<(String, String)>);

/// Every challenge in one header value: scheme and auth-params (token68 forms are skipped).
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    for item in split_outside_quotes(header) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (first, rest) = take_token(item);
        if first.is_empty() {
            continue;
        }
        if let Some(value) = rest.trim_start().strip_prefix('=') {
            // `key=value` continuing the current challenge.
            if let Some((_, params)) = challenges.last_mut() {
                params.push((first.to_owned(), parse_value(value)));
            }
            continue;
        }
        // A new challenge: `scheme` or `scheme key=value`.
        let mut params = Vec::new();
        let rest = rest.trim();
        let (key, after) = take_token(rest);
        if let Some(value) = after.trim_start().strip_prefix('=')
            && !key.is_empty()
        {
            params.push((key.to_owned(), parse_value(value)));
        }
        challenges.push((first.to_owned(), params));
    }
    challenges
}

/// Splits on commas that are not inside a quoted string.
fn split_outside_quotes(header: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, c) in header.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                parts.push(&header[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&header[start..]);
    parts
}

/// The leading token (RFC 7230 tchar) and the rest.
fn take_token(text: &str) -> (&str, &str) {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c)))
        .map_or(text.len(), |(index, _)| index);
    text.split_at(end)
}

/// A parameter value: a quoted string (unescaped) or a bare token.
fn parse_value(value: &str) -> String {
    let value = value.trim();
    let Some(quoted) = value.strip_prefix('"') else {
        return value.to_owned();
    };
    let mut out = String::new();
    let mut escaped = false;
    for c in quoted.chars() {
        match c {
            _ if escaped => {
                out.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => break,
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
