//! `application/x-www-form-urlencoded` parameters (query strings and token request bodies),
//! with RFC 6749 §3.1 / §3.2's rule that no parameter appears twice.

use std::collections::BTreeMap;

/// Longest parameter input, bytes.
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// Why parameters could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Longer than `MAX_PARAMS_BYTES`.
    #[error("the request parameters are too long")]
    TooLong,
    /// A parameter appears more than once.
    #[error("parameter {0} appears more than once")]
    Repeated(String),
}

/// Decoded parameters; empty values count as absent (RFC 6749 §3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `input`.
    pub fn parse(input: &[u8]) -> Result<Self, ParamsError> {
        if input.len() > MAX_PARAMS_BYTES {
            return Err(ParamsError::TooLong);
        }
        let mut map = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if map.insert(name.to_string(), value.to_string()).is_some() {
                return Err(ParamsError::Repeated(name.chars().take(64).collect()));
            }
        }
        Ok(Self(map))
    }

    /// A parameter's value, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    //! Parameters: decoding, empties, repeats.

    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

    use super::*;

    #[test]
    fn parameters_decode_and_empty_ones_count_as_absent() {
        let params =
            Params::parse(b"a=1&b=&c=x%20y+z&redirect_uri=http%3A%2F%2Flocalhost%2Fcb").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y z"));
        assert_eq!(params.get("redirect_uri"), Some("http://localhost/cb"));
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        assert_eq!(
            Params::parse(b"code=1&code=2"),
            Err(ParamsError::Repeated("code".into()))
        );
        assert_eq!(
            Params::parse(&vec![b'a'; MAX_PARAMS_BYTES + 1]),
            Err(ParamsError::TooLong)
        );
    }
}
