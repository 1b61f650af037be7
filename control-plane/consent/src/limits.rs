//! Rate limits on the unauthenticated endpoints: sign-in, sign-up, code verification, mail
//! and client registration, keyed by client address and (where there is one) by email. GCRA
//! limiters from `governor`, in memory per process: behind a load balancer each replica
//! limits on its own, so the effective limit is per replica (documented in the README).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// One limit: `burst` at once, refilling one every `period / burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed at once.
    pub burst: u32,
    /// The time in which `burst` requests refill.
    pub period: Duration,
}

impl Rate {
    const fn per_minute(burst: u32) -> Self {
        Self {
            burst,
            period: Duration::from_secs(60),
        }
    }

    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let each = self.period / burst.get();
        Quota::with_period(each.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst)
    }
}

/// Every limit; `Default` gives the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// Sign-in attempts per client address.
    pub sign_in_per_address: Rate,
    /// Sign-in attempts per email.
    pub sign_in_per_email: Rate,
    /// Account creations per client address.
    pub sign_up_per_address: Rate,
    /// Code entries per client address.
    pub verify_per_address: Rate,
    /// Mails per recipient.
    pub mail_per_email: Rate,
    /// Client registrations per client address.
    pub register_per_address: Rate,
    /// Servers a signed-in human adds by URL (each one a guarded fetch), per human.
    pub add_server_per_human: Rate,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            sign_in_per_address: Rate::per_minute(30),
            sign_in_per_email: Rate::per_minute(10),
            sign_up_per_address: Rate::per_minute(10),
            verify_per_address: Rate::per_minute(20),
            mail_per_email: Rate {
                burst: 5,
                period: Duration::from_secs(600),
            },
            register_per_address: Rate::per_minute(30),
            add_server_per_human: Rate::per_minute(10),
        }
    }
}

/// What is being limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A sign-in.
    SignIn,
    /// An account creation.
    SignUp,
    /// A code entry.
    Verify,
    /// A client registration.
    Register,
}

/// The limiters of one process.
#[derive(Debug)]
pub struct Limits {
    sign_in_address: DefaultKeyedRateLimiter<String>,
    sign_in_email: DefaultKeyedRateLimiter<String>,
    sign_up_address: DefaultKeyedRateLimiter<String>,
    verify_address: DefaultKeyedRateLimiter<String>,
    mail_email: DefaultKeyedRateLimiter<String>,
    register_address: DefaultKeyedRateLimiter<String>,
    add_server_human: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

/// How often (in checks) old keys are dropped, so the maps stay bounded.
const RETAIN_EVERY: u64 = 1024;

impl Limits {
    /// Limiters with `settings`.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            sign_in_address: RateLimiter::keyed(settings.sign_in_per_address.quota()),
            sign_in_email: RateLimiter::keyed(settings.sign_in_per_email.quota()),
            sign_up_address: RateLimiter::keyed(settings.sign_up_per_address.quota()),
            verify_address: RateLimiter::keyed(settings.verify_per_address.quota()),
            mail_email: RateLimiter::keyed(settings.mail_per_email.quota()),
            register_address: RateLimiter::keyed(settings.register_per_address.quota()),
            add_server_human: RateLimiter::keyed(settings.add_server_per_human.quota()),
            checks: AtomicU64::new(0),
        }
    }

    /// Whether `action` from `address` in `host_id` may proceed now.
    pub fn allow(&self, action: Action, host_id: &str, address: Option<IpAddr>) -> bool {
        self.tidy();
        let key = format!(
            "{host_id}|{}",
            address.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
        );
        let limiter = match action {
            Action::SignIn => &self.sign_in_address,
            Action::SignUp => &self.sign_up_address,
            Action::Verify => &self.verify_address,
            Action::Register => &self.register_address,
        };
        limiter.check_key(&key).is_ok()
    }

    /// Whether a sign-in for `email` in `host_id` may proceed now.
    pub fn allow_sign_in_email(&self, host_id: &str, email: &str) -> bool {
        self.sign_in_email
            .check_key(&format!("{host_id}|{}", email.to_lowercase()))
            .is_ok()
    }

    /// Whether `human_id` of `host_id` may add another server by URL now.
    pub fn allow_add_server(&self, host_id: &str, human_id: &str) -> bool {
        self.add_server_human
            .check_key(&format!("{host_id}|{human_id}"))
            .is_ok()
    }

    /// Whether another mail to `email` in `host_id` may go out now.
    pub fn allow_mail(&self, host_id: &str, email: &str) -> bool {
        self.mail_email
            .check_key(&format!("{host_id}|{}", email.to_lowercase()))
            .is_ok()
    }

    fn tidy(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            for limiter in [
                &self.sign_in_address,
                &self.sign_in_email,
                &self.sign_up_address,
                &self.verify_address,
                &self.mail_email,
                &self.register_address,
                &self.add_server_human,
            ] {
                limiter.retain_recent();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_key() {
        let limits = Limits::new(LimitSettings {
            sign_in_per_address: Rate {
                burst: 3,
                period: Duration::from_secs(3600),
            },
            ..LimitSettings::default()
        });
        let a = Some("10.0.0.1".parse().expect("ip"));
        let b = Some("10.0.0.2".parse().expect("ip"));
        for _ in 0..3 {
            assert!(limits.allow(Action::SignIn, "h1", a));
        }
        assert!(!limits.allow(Action::SignIn, "h1", a));
        assert!(limits.allow(Action::SignIn, "h1", b), "another address");
        assert!(limits.allow(Action::SignIn, "h2", a), "another host");
        assert!(limits.allow(Action::SignUp, "h1", a), "another action");
    }
}
