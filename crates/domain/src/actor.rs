//! Who performed a change; recorded in the audit trail with every write,
//! together with the request it came in (its id and the client's address)
//! when it came over HTTP.

use std::fmt;
use std::net::IpAddr;

use crate::{ApiKeyId, UserId};

/// Who is answerable for a change: the principal four-eyes compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A request authenticated with an API key that no user created.
    ApiKey(ApiKeyId),
    /// A user: by an access token, or by an API key the user created (such a
    /// key acts as its user).
    User(UserId),
    /// An operator at the command line (`rwa org create`, `rwa keys create`).
    Cli,
    /// The service itself (a worker, the scheduler); the name says which part.
    System(&'static str),
}

/// The HTTP request a change came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The request's `x-request-id`.
    pub request_id: String,
    /// The client's address.
    pub ip: Option<IpAddr>,
}

/// The author of a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// Who.
    pub principal: Principal,
    /// The request, when the change came over HTTP.
    pub request: Option<RequestContext>,
}

impl Actor {
    /// An operator at the command line.
    pub const CLI: Actor = Actor {
        principal: Principal::Cli,
        request: None,
    };

    /// A part of the service itself.
    pub const fn system(part: &'static str) -> Self {
        Self {
            principal: Principal::System(part),
            request: None,
        }
    }

    /// An API key outside any request (tests, tools).
    pub const fn api_key(id: ApiKeyId) -> Self {
        Self {
            principal: Principal::ApiKey(id),
            request: None,
        }
    }

    /// A user outside any request.
    pub const fn user(id: UserId) -> Self {
        Self {
            principal: Principal::User(id),
            request: None,
        }
    }

    /// The request's id, if the change came over HTTP.
    pub fn request_id(&self) -> Option<&str> {
        self.request.as_ref().map(|r| r.request_id.as_str())
    }

    /// The client's address, if known.
    pub fn ip(&self) -> Option<IpAddr> {
        self.request.as_ref().and_then(|r| r.ip)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::ApiKey(id) => write!(f, "api_key:{id}"),
            Principal::User(id) => write!(f, "user:{id}"),
            Principal::Cli => f.write_str("cli"),
            Principal::System(part) => write!(f, "system:{part}"),
        }
    }
}

/// The principal: what the audit trail's `actor` column and four-eyes see,
/// so two keys of one user are one person.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.principal.fmt(f)
    }
}
