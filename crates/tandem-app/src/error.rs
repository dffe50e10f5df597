//! What a use case can answer besides success. The server maps each variant to one HTTP
//! status and one stable problem code, in one place.

use tandem_domain::authz::Denied;
use tandem_domain::validate::Invalid;
use tandem_domain::Timestamp;
use tandem_store::StoreError;

/// A use case's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nobody is signed in, or the credentials are wrong, expired or revoked.
    #[error("sign-in required")]
    Unauthenticated,
    /// Signed in with a password, but the second factor is still needed.
    #[error("the second sign-in factor is required")]
    MfaRequired,
    /// The username or password is wrong (deliberately not saying which).
    #[error("the username or password is not right")]
    BadCredentials,
    /// The code from the authenticator app or the recovery code is wrong.
    #[error("that code is not right, or was already used")]
    BadCode,
    /// Too many failed sign-ins; try again later.
    #[error("too many failed attempts; try again after {}", until.to_rfc3339())]
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The person may not do this.
    #[error("not allowed: {0}")]
    Forbidden(Denied),
    /// No such thing, or not one the person may see (the two are not told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is not acceptable; each entry says which field and what to fix.
    #[error("invalid input")]
    Invalid(Vec<Invalid>),
    /// The change clashes with existing data, such as a taken username.
    #[error("{0}")]
    Conflict(String),
    /// A file was not accepted as a ticket attachment (issue #5); says what to fix.
    #[error("{0}")]
    Attachment(tandem_domain::attachments::Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// Something that should not happen happened.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Error::Conflict(m),
            other => Error::Store(other),
        }
    }
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        Error::Invalid(vec![e])
    }
}

/// Short for results of use cases.
pub type Result<T, E = Error> = std::result::Result<T, E>;
