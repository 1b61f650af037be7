//! Admin authentication: `Authorization: Bearer <token>` (REST and gRPC metadata alike).
//!
//! The token is passed to `Control::authenticate`, which looks it up by id and compares its
//! hash in constant time. Nothing here logs or keeps the token.

use portcullis_commands::control::{Control, ControlError, Principal};

/// Longest accepted `Authorization` value; anything longer is refused without a lookup.
const MAX_AUTHORIZATION_LEN: usize = 1024;

/// The bearer token in an `Authorization` header value, if it is one.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    if value.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Authenticates the caller from an `Authorization` header value.
pub async fn authenticate(
    control: &Control,
    authorization: Option<&str>,
) -> Result<Principal, ControlError> {
    let token = bearer_token(authorization).ok_or(ControlError::Unauthenticated)?;
    control.authenticate(token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_bearer_headers_yield_a_token() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic abc"),
            Some("Bearer a b"),
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
        let long = format!("Bearer {}", "a".repeat(2000));
        assert_eq!(bearer_token(Some(&long)), None);
    }
}
