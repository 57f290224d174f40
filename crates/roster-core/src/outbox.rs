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
    /// Delivers one message; a transient error is retried later, a permanent one is not.
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError>;
}

/// `next_attempt_at` of a message that is never to be tried again (refused for good, or
/// its user deleted before it went out).
pub const GIVEN_UP: i64 = i64::MAX;

/// Why a delivery failed, and whether trying again could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError {
    /// What went wrong, for the outbox's `last_error` and the log.
    pub message: String,
    /// The relay refused the message for good (an SMTP 5xx reply) or the recipient cannot
    /// be addressed: the message is not tried again.
    pub permanent: bool,
}

impl MailError {
    /// A failure that a later attempt may not meet (the relay down, a 4xx reply).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure that every later attempt would meet too.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}
