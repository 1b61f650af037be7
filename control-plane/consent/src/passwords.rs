//! Password hashing: argon2id (the `argon2` crate's defaults, m = 19 MiB, t = 2, p = 1, the
//! OWASP minimum), run on blocking threads with a bound on how many run at once, so a
//! sign-in flood costs queueing rather than memory. Unknown accounts are verified against a
//! dummy hash, so the time taken does not tell whether an email has an account.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Shortest password accepted, in characters (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (bounds hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The hasher failed or its task died.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// The hasher, shared by every request.
#[derive(Clone, Debug)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
}

impl Passwords {
    /// A hasher running at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let dummy = Argon2::default()
            .hash_password(b"portcullis-dummy-password")
            .map_err(|e| PasswordError::Hashing(e.to_string()))?
            .to_string();
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| PasswordError::Hashing(e.to_string()))
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string()))?
    }

    /// Whether `password` matches `phc`; with `None`, checks against the dummy hash and
    /// answers `false` (same work either way).
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        phc: Option<Zeroizing<String>>,
    ) -> Result<bool, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        let dummy = self.dummy.clone();
        tokio::task::spawn_blocking(move || {
            let known = phc.is_some();
            let text: &str = phc.as_deref().map_or(dummy.as_str(), String::as_str);
            let Ok(parsed) = PasswordHash::new(text) else {
                return false;
            };
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            known && matches
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string()))
    }
}

/// Why a chosen password is refused (shown on the page).
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "Choose a password of at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "Choose a password of at most {MAX_PASSWORD_BYTES} bytes."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let passwords = Passwords::new(2).expect("hasher");
        let hash = passwords
            .hash(Zeroizing::new("correct horse".to_owned()))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        let check = |pw: &str, phc: Option<&str>| {
            passwords.verify(
                Zeroizing::new(pw.to_owned()),
                phc.map(|p| Zeroizing::new(p.to_owned())),
            )
        };
        assert!(check("correct horse", Some(&hash)).await.expect("verify"));
        assert!(!check("wrong horse", Some(&hash)).await.expect("verify"));
        assert!(
            !check("portcullis-dummy-password", None)
                .await
                .expect("verify")
        );
        assert!(!check("x", Some("not a phc string")).await.expect("verify"));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
