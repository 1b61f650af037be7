//! The admin plane of a process: the control service over the stores, the master keys that
//! seal secrets, the bootstrap admin token, and the REST + gRPC router.
//!
//! `dev` keeps what it generates under `--data-dir`: `master-key` and `admin-token`, each
//! created once with mode 0600 (never overwritten, never logged; the token is printed to
//! stdout once, when it is created).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use portcullis_api::{ApiState, PublicUrls, UpstreamOAuthConfig};
use portcullis_commands::Context;
use portcullis_commands::bootstrap::{DEFAULT_ORG_ID, ensure_default_organization};
use portcullis_commands::control::{
    Control, ControlOptions, NoSecretSealer, SealError, SealedSecret, SecretSealer,
};
use portcullis_secrets::KeyRing;
use portcullis_upstream::DiscoverOptions;
use portcullis_upstream::url_guard::UrlPolicy;
use zeroize::Zeroizing;

use crate::config::AdminSettings;
use crate::stores::Stores;

/// Seals with the deployment's key ring.
struct KeyRingSealer(KeyRing);

impl SecretSealer for KeyRingSealer {
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        let sealed = self
            .0
            .seal(plaintext, associated_data)
            .map_err(|e| SealError::Failed(Box::new(e)))?;
        Ok(SealedSecret {
            key_id: sealed.key_id,
            sealed: sealed.bytes,
        })
    }
}

/// Reads `path`, or creates it (mode 0600, never overwriting) with `make()`'s content.
/// Returns the content and whether it was created.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Zeroizing<String>,
) -> anyhow::Result<(Zeroizing<String>, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok((Zeroizing::new(text.trim().to_owned()), false)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot read {}", path.display()));
        }
        Err(_) => {}
    }
    let content = make();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((content, true))
}

/// The key ring: as configured, else (for `dev`) `<data-dir>/master-key`, created once.
pub fn key_ring(
    settings: &AdminSettings,
    data_dir: Option<&Path>,
) -> anyhow::Result<Option<KeyRing>> {
    if let Some(ring) = &settings.key_ring {
        return Ok(Some(ring.clone()));
    }
    let Some(dir) = data_dir else {
        return Ok(None);
    };
    let path = dir.join("master-key");
    let (text, created) = read_or_create(&path, portcullis_secrets::generate_key_text)?;
    if created {
        tracing::info!(path = %path.display(), "Generated a master key for secrets at rest.");
    }
    let ring = KeyRing::parse(&text)
        .with_context(|| format!("invalid master key in {}", path.display()))?;
    Ok(Some(ring))
}

/// Builds the control service.
pub fn control(stores: &Stores, key_ring: Option<KeyRing>) -> anyhow::Result<Arc<Control>> {
    let sealer: Arc<dyn SecretSealer> = match key_ring {
        Some(ring) => Arc::new(KeyRingSealer(ring)),
        None => {
            tracing::warn!(
                "No master key configured (--master-key or --master-key-file): imports of OAuth-protected upstreams are refused."
            );
            Arc::new(NoSecretSealer)
        }
    };
    let control = Control::new(
        stores.log.clone(),
        stores.kv.clone(),
        sealer,
        ControlOptions::default(),
    )?;
    Ok(Arc::new(control))
}

/// Makes sure the default organization and the bootstrap admin token exist: the configured
/// one, else (for `dev`) `<data-dir>/admin-token`, created once and printed once. Needs the
/// projector running (writes wait for it).
pub async fn bootstrap_admin(
    control: &Control,
    stores: &Stores,
    settings: &AdminSettings,
    data_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let (token, created) = match (&settings.admin_token, data_dir) {
        (Some(token), _) => (token.clone(), false),
        (None, Some(dir)) => read_or_create(&dir.join("admin-token"), || {
            Zeroizing::new(portcullis_commands::control::generate_admin_token())
        })?,
        (None, None) => {
            tracing::info!(
                "No bootstrap admin token configured (--admin-token); existing tokens keep working."
            );
            return Ok(());
        }
    };
    let context = Context::system("bootstrap", &ulid::Ulid::new().to_string());
    ensure_default_organization(stores.log.as_ref(), &context).await?;
    let token_id = control
        .ensure_admin_token(&context, &token, &[DEFAULT_ORG_ID.to_owned()], "bootstrap")
        .await
        .context("cannot register the bootstrap admin token")?;
    if created {
        let path = data_dir
            .map(|d| d.join("admin-token").display().to_string())
            .unwrap_or_default();
        // Printed once, on purpose, to stdout: the admin needs it, and it is also in the file.
        println!("Admin token (saved to {path}): {}", token.as_str());
    }
    tracing::info!(token_id = %token_id, "Bootstrap admin token ready.");
    Ok(())
}

/// The API router over `control`, reading audit records from `audit`; `key_ring` seals the
/// upstream OAuth flow's state (without it, OAuth-protected upstreams cannot be connected).
pub fn router(
    control: Arc<Control>,
    audit: Arc<dyn portcullis_store::AuditLog>,
    key_ring: Option<KeyRing>,
    public_urls: PublicUrls,
    allow_private: bool,
) -> axum::Router {
    // The browser comes back to the control plane: `dev` serves it at its listen address, a
    // deployment at its --public-url; without either the flow says it cannot start.
    let upstream_oauth = UpstreamOAuthConfig {
        key_ring: key_ring.map(Arc::new),
        callback_base: public_urls.control_base(),
        ..UpstreamOAuthConfig::default()
    };
    portcullis_api::router(ApiState {
        control,
        audit: Some(audit),
        url_policy: if allow_private {
            UrlPolicy::DEVELOPMENT
        } else {
            UrlPolicy::PRODUCTION
        },
        discover: DiscoverOptions::default(),
        public_urls,
        upstream_oauth,
    })
}

/// Public URLs from the settings, else `dev`'s defaults for `listen`.
pub fn public_urls(
    settings: &AdminSettings,
    listen: std::net::SocketAddr,
    dev: bool,
) -> PublicUrls {
    match &settings.public_url {
        Some((scheme, domain, port)) => PublicUrls {
            scheme: scheme.clone(),
            base_domain: Some(domain.clone()),
            port: *port,
            default_host_base: None,
        },
        None if dev => PublicUrls::dev(listen),
        None => PublicUrls {
            scheme: "http".to_owned(),
            base_domain: None,
            port: Some(listen.port()),
            default_host_base: None,
        },
    }
}

/// The OAuth authorization server and consent pages of every host, over `control`: codes
/// are redeemed through the `oauth` bucket, mail goes as `mail` says (with `default_outbox`
/// when neither SMTP nor an outbox is configured). `None` without a master key (nothing
/// could be sealed), which is logged.
#[allow(clippy::too_many_arguments)] // the settings of one router, each from a different flag
pub async fn consent_router(
    control: Arc<Control>,
    stores: &Stores,
    key_ring: Option<KeyRing>,
    public_urls: PublicUrls,
    mail: &portcullis_consent::MailSettings,
    default_outbox: Option<&Path>,
    allow_private: bool,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<axum::Router>> {
    let Some(key_ring) = key_ring else {
        tracing::warn!(
            "No master key configured (--master-key or --master-key-file): the OAuth authorization server and consent pages are off, so MCP clients cannot connect."
        );
        return Ok(None);
    };
    let mut mail = mail.clone();
    if mail.smtp_url.is_none() && mail.outbox.is_none() {
        mail.outbox = default_outbox.map(Path::to_path_buf);
    }
    let mailer = portcullis_consent::Mailer::new(&mail).context("cannot set up mail")?;
    if !mailer.is_configured() {
        tracing::warn!(
            "No mail configured (--smtp-url or --mail-outbox): new accounts cannot verify their email, so only existing accounts can sign in."
        );
    }
    let bucket = portcullis_store::Bucket::new(portcullis_oauth::code::OAUTH_BUCKET)
        .context("invalid oauth bucket name")?;
    // A cluster that is still electing its leaders times out for a few seconds: keep trying
    // (the process is not ready meanwhile) rather than exit on a transient error.
    let mut backoff = std::time::Duration::from_millis(500);
    let codes = loop {
        match portcullis_oauth::code::KvCodeLedger::new(stores.kv.clone(), bucket.clone()).await {
            Ok(codes) => break codes,
            Err(error) => {
                tracing::warn!(%error, "Cannot open the oauth bucket yet; retrying.");
                tokio::select! {
                    () = shutdown.cancelled() => {
                        return Err(anyhow::anyhow!(error).context("cannot open the oauth bucket"));
                    }
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
        }
    };
    let url_policy = if allow_private {
        UrlPolicy::DEVELOPMENT
    } else {
        UrlPolicy::PRODUCTION
    };
    // Humans' upstream credentials are refreshed before they expire by whichever replica
    // claims each one first.
    portcullis_consent::refresh::spawn_refresher(
        control.clone(),
        key_ring.clone(),
        portcullis_consent::refresh::RefreshSettings::new(
            url_policy,
            format!("control-plane-{}-{}", std::process::id(), ulid::Ulid::new()),
        ),
        shutdown.clone(),
    );
    let consent = portcullis_consent::Consent::new(
        control,
        Arc::new(codes),
        portcullis_consent::ConsentConfig {
            public_urls,
            default_org_id: DEFAULT_ORG_ID.to_owned(),
            key_ring,
            mailer,
            limits: portcullis_consent::LimitSettings::default(),
            hash_concurrency: 2,
            url_policy,
            discover: DiscoverOptions {
                total_timeout: std::time::Duration::from_secs(15),
                ..DiscoverOptions::default()
            },
        },
    )?;
    Ok(Some(consent.router()))
}
