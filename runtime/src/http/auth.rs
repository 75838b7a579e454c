//! Who is calling: the application's authentication, turned into the actor (and tenant)
//! of every command a request sends.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

pub use crate::authorization::Principal;

/// Why a request was not authenticated: answered `401` with a `WWW-Authenticate`
/// challenge; the reason is the problem document's detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unauthenticated {
    /// What was wrong with the credentials (never the credentials themselves).
    pub reason: String,
}

impl Unauthenticated {
    /// Not authenticated, for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// The future an [`Authenticate`] returns.
pub type Authenticating<'a> =
    Pin<Box<dyn Future<Output = Result<Principal, Unauthenticated>> + Send + 'a>>;

/// The application's authentication: who sent a request, from its headers. factum brings
/// [`BearerTokens`]; a JWT validator plugs in the same way:
///
/// ```
/// use factum::context::Actor;
/// use factum::http::{Authenticate, Authenticating, Principal, Unauthenticated};
///
/// /// Checks a JWT's signature and claims (with the `jsonwebtoken` crate, say).
/// struct Jwt { /* the decoding key, the expected issuer and audience */ }
///
/// impl Authenticate for Jwt {
///     fn authenticate<'a>(&'a self, headers: &'a axum::http::HeaderMap) -> Authenticating<'a> {
///         Box::pin(async move {
///             let token = factum::http::bearer_token(headers)?;
///             // let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
///             //     .map_err(|error| Unauthenticated::new(error.to_string()))?.claims;
///             let _ = token;
///             let (kind, id) = ("care_coordinator", "dana"); // from the claims
///             Ok(Principal::new(Actor::new(kind, id)))
///         })
///     }
/// }
/// ```
pub trait Authenticate: Send + Sync + 'static {
    /// The principal of the request with `headers`, or why there is none.
    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> Authenticating<'a>;
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Unauthenticated> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| Unauthenticated::new("no Authorization header"))?;
    let value = value
        .to_str()
        .map_err(|_| Unauthenticated::new("the Authorization header is not visible ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Unauthenticated::new(
            "the Authorization header is not `Bearer <token>`",
        )),
    }
}

/// Bearer tokens from a table: each token names its principal. The table keeps SHA-256
/// digests of the tokens, not the tokens, and looks a request's token up by its digest.
#[derive(Clone, Default)]
pub struct BearerTokens {
    principals: HashMap<[u8; 32], Principal>,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokens")
            .field("tokens", &self.principals.len())
            .finish()
    }
}

impl BearerTokens {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `token`, naming `principal`.
    pub fn token(mut self, token: &str, principal: Principal) -> Self {
        self.principals.insert(digest(token), principal);
        self
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Authenticate for BearerTokens {
    fn authenticate<'a>(&'a self, headers: &'a HeaderMap) -> Authenticating<'a> {
        let principal = bearer_token(headers).and_then(|token| {
            self.principals
                .get(&digest(token))
                .cloned()
                .ok_or_else(|| Unauthenticated::new("the bearer token is not known"))
        });
        Box::pin(async move { principal })
    }
}
