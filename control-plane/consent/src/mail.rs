//! Outgoing mail: SMTP through lettre when configured, else `.eml` files in an outbox
//! directory (`dev` uses `<data-dir>/outbox/`), else none (the pages then say that sign-up
//! needs mail). Messages are sent after the page answered, so how long mail takes never
//! tells whether an account exists; a failure is logged.

use std::path::PathBuf;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why mail could not be set up or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP URL is invalid.
    #[error("invalid SMTP URL (expected smtp://[user:password@]host[:port] or smtps://…): {0}")]
    SmtpUrl(String),
    /// The sender address is invalid.
    #[error("invalid sender address {0:?}: expected `Name <address>` or `address`")]
    From(String),
    /// The outbox directory cannot be created.
    #[error("cannot create the mail outbox {path}: {source}")]
    Outbox {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A message could not be built (an invalid recipient).
    #[error("cannot build the message: {0}")]
    Build(String),
    /// Delivery failed.
    #[error("cannot deliver the message: {0}")]
    Send(String),
}

#[derive(Clone, Debug)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(AsyncFileTransport<Tokio1Executor>),
    None,
}

/// Where mail goes.
#[derive(Clone, Debug)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

/// How mail is configured.
#[derive(Clone, Debug, Default)]
pub struct MailSettings {
    /// `smtp://[user:password@]host[:port]` (STARTTLS required), `smtps://…` (TLS), or
    /// `smtp://…?tls=none` for a local relay without TLS.
    pub smtp_url: Option<String>,
    /// The outbox directory, used when there is no SMTP URL.
    pub outbox: Option<PathBuf>,
    /// The sender, `Name <address>`.
    pub from: Option<String>,
}

/// The default sender.
pub const DEFAULT_FROM: &str = "Portcullis <no-reply@portcullis.localhost>";

impl Mailer {
    /// A mailer as configured.
    pub fn new(settings: &MailSettings) -> Result<Self, MailError> {
        let from_text = settings.from.as_deref().unwrap_or(DEFAULT_FROM);
        let from: Mailbox = from_text
            .parse()
            .map_err(|_| MailError::From(from_text.to_owned()))?;
        let transport = if let Some(url) = &settings.smtp_url {
            let url = lettre_url(url)?;
            Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .map_err(|e| MailError::SmtpUrl(e.to_string()))?
                    .build(),
            )
        } else if let Some(dir) = &settings.outbox {
            std::fs::create_dir_all(dir).map_err(|source| MailError::Outbox {
                path: dir.clone(),
                source,
            })?;
            Transport::Outbox(AsyncFileTransport::new(dir))
        } else {
            Transport::None
        };
        Ok(Self { transport, from })
    }

    /// Whether mail can be sent at all.
    pub fn is_configured(&self) -> bool {
        !matches!(self.transport, Transport::None)
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::Build(to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::Outbox(files) => files
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Transport::None => Err(MailError::Send(
                "no mail transport is configured".to_owned(),
            )),
        }
    }

    /// Sends in the background; a failure is logged (never the message body, which may hold
    /// a code).
    pub fn send_later(&self, to: String, subject: &'static str, body: String) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(error) = mailer.send(&to, subject, body).await {
                tracing::warn!(%error, %subject, "Mail was not sent.");
            }
        });
    }
}

/// Our SMTP URL as lettre reads it. lettre takes a bare `smtp://` as *plain text* and
/// `?tls=required` as STARTTLS; ours means STARTTLS unless `?tls=none` says otherwise, so a
/// URL without the parameter can never send codes in the clear by accident. Opportunistic
/// TLS (downgradable by anyone on the path) is refused.
fn lettre_url(url: &str) -> Result<String, MailError> {
    let invalid = |why: &str| MailError::SmtpUrl(why.to_owned());
    let mut parsed = url::Url::parse(url.trim()).map_err(|e| invalid(&e.to_string()))?;
    let tls: Vec<String> = parsed
        .query_pairs()
        .filter(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned())
        .collect();
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(key, _)| key != "tls")
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    if !others.is_empty() {
        return Err(invalid("the only query parameter is tls=none"));
    }
    let tls = match tls.as_slice() {
        [] => None,
        [one] => Some(one.as_str()),
        _ => return Err(invalid("tls is given twice")),
    };
    match (parsed.scheme(), tls) {
        ("smtp", None | Some("required")) => {
            parsed.set_query(Some("tls=required"));
        }
        ("smtp", Some("none")) => parsed.set_query(None),
        ("smtps", None) => {}
        ("smtp", Some(_)) | ("smtps", Some(_)) => {
            return Err(invalid(
                "tls may only be `none` (smtp:// to a local relay); smtp:// alone requires STARTTLS and smtps:// is TLS",
            ));
        }
        (other, _) => return Err(invalid(&format!("unknown scheme {other}"))),
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn smtp_urls_never_fall_back_to_plain_text_unless_told() {
        assert_eq!(
            lettre_url("smtp://mail.example.com:587").expect("starttls"),
            "smtp://mail.example.com:587?tls=required"
        );
        assert_eq!(
            lettre_url("smtp://u:p@mail.example.com?tls=required").expect("starttls"),
            "smtp://u:p@mail.example.com?tls=required"
        );
        assert_eq!(
            lettre_url("smtp://127.0.0.1:2525?tls=none").expect("plain"),
            "smtp://127.0.0.1:2525"
        );
        assert_eq!(
            lettre_url("smtps://mail.example.com").expect("tls"),
            "smtps://mail.example.com"
        );
        for bad in [
            "smtp://mail.example.com?tls=opportunistic",
            "smtps://mail.example.com?tls=none",
            "smtp://mail.example.com?tls=none&tls=required",
            "smtp://mail.example.com?x=1",
            "ftp://mail.example.com",
            "not a url",
        ] {
            assert!(
                matches!(lettre_url(bad), Err(MailError::SmtpUrl(_))),
                "{bad}"
            );
        }
        for good in [
            "smtp://mail.example.com",
            "smtp://127.0.0.1:2525?tls=none",
            "smtps://mail.example.com:465",
        ] {
            assert!(
                Mailer::new(&MailSettings {
                    smtp_url: Some(good.to_owned()),
                    ..MailSettings::default()
                })
                .is_ok(),
                "{good}"
            );
        }
    }

    #[tokio::test]
    async fn the_outbox_gets_one_eml_file_per_message() {
        let dir = tempfile::tempdir().expect("dir");
        let mailer = Mailer::new(&MailSettings {
            outbox: Some(dir.path().join("outbox")),
            ..MailSettings::default()
        })
        .expect("mailer");
        assert!(mailer.is_configured());
        mailer
            .send(
                "ada@example.com",
                "Your code",
                "Your code is 123456".to_owned(),
            )
            .await
            .expect("send");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .expect("outbox")
            .filter_map(Result::ok)
            .collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).expect("read");
        assert!(text.contains("To: ada@example.com"), "{text}");
        assert!(text.contains("123456"), "{text}");
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let bad_url = Mailer::new(&MailSettings {
            smtp_url: Some("ftp://x".to_owned()),
            ..MailSettings::default()
        });
        assert!(matches!(bad_url, Err(MailError::SmtpUrl(_))));
        let bad_from = Mailer::new(&MailSettings {
            from: Some("not an address".to_owned()),
            ..MailSettings::default()
        });
        assert!(matches!(bad_from, Err(MailError::From(_))));
        let none = Mailer::new(&MailSettings::default()).expect("mailer");
        assert!(!none.is_configured());
    }
}
