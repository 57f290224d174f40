//! Invitation mail over SMTP with lettre: the `MailSender` the core's outbox delivers
//! through. Plain SMTP (with optional AUTH from the URL); TLS relays are not supported yet.

use async_trait::async_trait;
use lettre::message::{Mailbox, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use roster_core::{MailError, MailSender};

/// Sends through one SMTP relay.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    /// Builds a sender for `smtp://[user:pass@]host[:port]`.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| {
            anyhow::anyhow!("invalid smtp_url {}: {why}", crate::config::redact_url(url))
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "smtp" {
            return Err(bad("only smtp:// is supported (TLS relays are not yet)"));
        }
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
        // One delivery attempt must end well within the outbox claim's lease (60 s), or
        // another node could claim the message and send it again.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(parsed.port().unwrap_or(25))
            .timeout(Some(std::time::Duration::from_secs(30)));
        if !parsed.username().is_empty() {
            // Plain SMTP sends AUTH in clear text: acceptable to a relay on this machine,
            // not across a network. Until TLS relays are supported, refuse rather than leak.
            let local = match parsed.host() {
                // `smtp:` is not a scheme the URL standard knows, so an IPv4 host comes
                // back as a name.
                Some(url::Host::Domain(d)) => {
                    d.eq_ignore_ascii_case("localhost")
                        || d.parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !local {
                return Err(bad(
                    "credentials go in clear text over plain SMTP, so they are accepted for a \
                     relay on this machine (localhost, 127.0.0.1, ::1) only; TLS relays are \
                     not supported yet",
                ));
            }
            let user = percent_decode(parsed.username());
            let pass = percent_decode(parsed.password().unwrap_or_default());
            builder = builder.credentials(
                lettre::transport::smtp::authentication::Credentials::new(user, pass),
            );
        }
        let transport = builder.build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid mail_from {from:?}: {e}"))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl MailSender for SmtpSender {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        // An address the directory took but SMTP cannot carry (`a..b@example.com`) will
        // never become sendable: that is final, not a reason to retry for ever.
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::permanent(format!("invalid recipient {to:?}: {e}")))?;
        // A single text/plain part declares MIME-Version and charset=utf-8 (without them a
        // reader takes the body for US-ASCII and garbles a Chinese name); the Message-ID
        // lets receivers tell one invitation from another.
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(None)
            .singlepart(SinglePart::plain(body.to_owned()))
            .map_err(|e| MailError::permanent(format!("failed to build the message: {e}")))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            let message = format!("SMTP delivery failed: {e}");
            if e.is_permanent() {
                MailError::permanent(message)
            } else {
                MailError::transient(message)
            }
        })
    }
}

fn percent_decode(s: &str) -> String {
    // form_urlencoded reads '+' as a space; in a URL's user info it is a plus.
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::SmtpSender;

    #[test]
    fn credentials_are_refused_for_a_relay_across_the_network() {
        let err = SmtpSender::new("smtp://u:secret@mail.example.com:587", "roster@example.com")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("clear text"), "{err}");
        assert!(
            !err.contains("secret"),
            "the password is not repeated: {err}"
        );
        for url in [
            "smtp://u:p@127.0.0.1:2525",
            "smtp://u:p@localhost:2525",
            "smtp://u:p@[::1]:2525",
            "smtp://mail.example.com:25",
        ] {
            let made = SmtpSender::new(url, "roster@example.com");
            assert!(made.is_ok(), "{url} is accepted: {:?}", made.err());
        }
    }
}
