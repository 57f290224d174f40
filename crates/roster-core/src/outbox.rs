//! The outbox: messages (invitations) written in the same transaction as the change that
//! causes them, and delivered afterwards with retries, so that a crash never loses one and
//! never sends one for a change that did not happen.

use async_trait::async_trait;

use crate::ids::TenantId;

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// E-mail, delivered through SMTP.
    Email,
    /// SMS: recorded only (Roster has no SMS gateway); never claimed for delivery.
    Sms,
}

impl Channel {
    /// Stable name for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// Inverse of `as_str`.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// An activation token that comes with an invitation: only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// Hex SHA-256 of the token in the link.
    pub token_hash: String,
    /// The user it activates.
    pub user_open_id: String,
    /// Expiry, ms.
    pub expires_at: i64,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Id (assigned by the store; ignored on insert).
    pub id: i64,
    /// Tenant.
    pub tenant: TenantId,
    /// Channel.
    pub channel: Channel,
    /// E-mail address or E.164 number.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The activation the message carries, written with it.
    pub activation: Option<Activation>,
    /// Creation time, ms.
    pub created_at: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before, ms.
    pub next_attempt_at: i64,
    /// When it was delivered, ms.
    pub sent_at: Option<i64>,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// Sends e-mail. The SMTP implementation lives outside the core (in `roster-app`), so that
/// the core knows no mail protocol.
#[async_trait]
pub trait MailSender: Send + Sync {
    /// Delivers one message; an error is retried later.
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}
