//! The controller's gRPC errors, and the one place that says which status code each gets.
//!
//! Handlers and the registry return [`ApiError`]; `?` turns it into a `tonic::Status`. A new
//! way to fail is a new variant, and the compiler asks for its code below.

use std::time::Duration;

use tonic::{Code, Status};

use crate::certs::Role;
use crate::identity::PeerIdentity;
use crate::store::StoreError;

/// Why a call (or an agent's stream) was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller presented no client certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The client certificate does not say who the caller is.
    #[error("{0}")]
    BadCertificate(String),
    /// The certificate is for another role than the call needs.
    #[error(
        "certificate for {name} is {article} {role} certificate; this call needs {needed}",
        name = .peer.name,
        article = article(.peer.role),
        role = .peer.role
    )]
    WrongRole {
        /// Who called.
        peer: PeerIdentity,
        /// The role the call needs.
        needed: Role,
    },
    /// An agent claimed another agent's name.
    #[error("this certificate belongs to agent {cert:?}, which cannot register as {claimed:?}")]
    WrongAgentName {
        /// The name in the certificate.
        cert: String,
        /// The name the agent registered under.
        claimed: String,
    },
    /// The agent's stream did not start with its registration.
    #[error("no Register message within {}s", .0.as_secs())]
    NoRegistration(Duration),
    /// The agent's first message was something else.
    #[error("the first message must be Register")]
    NotRegister,
    /// Another live agent already holds this certificate's name.
    #[error("{0}")]
    Duplicate(String),
    /// The agent's stream ended while it registered.
    #[error("stream closed during registration")]
    ClosedDuringRegistration,
    /// The controller is stopping: no new runs.
    #[error("the controller is shutting down and starts no new runs")]
    ShuttingDown,
    /// The controller is stopping: agents' streams close, their leases take over.
    #[error("the controller is shutting down; the agent's lease takes over")]
    ShuttingDownForAgents,
    /// A newer stream of the same agent replaced this one.
    #[error("replaced by a newer connection of the same agent")]
    Replaced,
    /// The agent went silent for longer than the heartbeat timeout.
    #[error("no heartbeat within the timeout")]
    Silent,
    /// The request itself is wrong: the message says how.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// This controller keeps no run history.
    #[error("this controller keeps no run history")]
    NoHistory,
    /// This controller runs no scheduler.
    #[error("this controller runs no scheduler")]
    NoScheduler,
    /// The run history failed.
    #[error("run history query failed: {0}")]
    History(#[from] StoreError),
    /// Something inside the controller failed; the message says what.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The gRPC code this error is answered with.
    pub fn code(&self) -> Code {
        match self {
            ApiError::NoCertificate | ApiError::BadCertificate(_) => Code::Unauthenticated,
            ApiError::WrongRole { .. } | ApiError::WrongAgentName { .. } => Code::PermissionDenied,
            ApiError::NoRegistration(_) | ApiError::Silent => Code::DeadlineExceeded,
            ApiError::NotRegister | ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::Duplicate(_) => Code::AlreadyExists,
            ApiError::ShuttingDown | ApiError::ShuttingDownForAgents => Code::Unavailable,
            ApiError::Replaced => Code::Aborted,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::NoHistory | ApiError::NoScheduler => Code::FailedPrecondition,
            ApiError::ClosedDuringRegistration | ApiError::History(_) | ApiError::Internal(_) => {
                Code::Internal
            }
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Agent | Role::Operator => "an",
        Role::Controller => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_keeps_its_code_and_message() {
        let peer = PeerIdentity {
            name: "web-1".into(),
            role: Role::Agent,
        };
        let cases = [
            (
                ApiError::WrongRole {
                    peer,
                    needed: Role::Operator,
                },
                Code::PermissionDenied,
                "certificate for web-1 is an agent certificate; this call needs operator",
            ),
            (
                ApiError::NoRegistration(Duration::from_secs(10)),
                Code::DeadlineExceeded,
                "no Register message within 10s",
            ),
            (
                ApiError::ShuttingDown,
                Code::Unavailable,
                "the controller is shutting down and starts no new runs",
            ),
            (
                ApiError::Replaced,
                Code::Aborted,
                "replaced by a newer connection of the same agent",
            ),
            (
                ApiError::NoHistory,
                Code::FailedPrecondition,
                "this controller keeps no run history",
            ),
        ];
        for (e, code, message) in cases {
            let status = Status::from(e);
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }
}
