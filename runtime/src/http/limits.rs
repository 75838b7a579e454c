//! Rate limits per actor and per tenant, checked once a request is authenticated: over a
//! limit the request is answered `429` with `Retry-After`, and nothing runs.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::Principal;
use super::problem::Problem;

/// How many requests each actor and each tenant may make: a [`Quota`] for each (a rate
/// and a burst, the generic cell rate algorithm of the `governor` crate), counted across
/// every route of the API.
///
/// ```
/// use std::num::NonZeroU32;
/// use factum::http::{Quota, RateLimits};
///
/// let per_second = |n| Quota::per_second(NonZeroU32::new(n).unwrap());
/// let limits = RateLimits::new().per_actor(per_second(20)).per_tenant(per_second(200));
/// # let _ = limits;
/// ```
#[derive(Default)]
pub struct RateLimits {
    per_actor: Option<DefaultKeyedRateLimiter<String>>,
    per_tenant: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_actor", &self.per_actor.is_some())
            .field("per_tenant", &self.per_tenant.is_some())
            .finish()
    }
}

/// How often the limiters forget keys that are back to a full allowance.
const FORGET_EVERY: u64 = 4096;

impl RateLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Each actor (kind and id) may make requests at `quota`.
    pub fn per_actor(mut self, quota: Quota) -> Self {
        self.per_actor = Some(DefaultKeyedRateLimiter::keyed(quota));
        self
    }

    /// Each tenant may make requests at `quota`, all its actors together. A principal
    /// without a tenant is limited per actor only.
    pub fn per_tenant(mut self, quota: Quota) -> Self {
        self.per_tenant = Some(DefaultKeyedRateLimiter::keyed(quota));
        self
    }

    /// Counts a request of `principal`: `429` when it is over a limit.
    pub(super) fn check(&self, principal: &Principal) -> Result<(), Problem> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            for limiter in [&self.per_actor, &self.per_tenant].into_iter().flatten() {
                limiter.retain_recent();
            }
        }
        let actor = format!("{}\u{0}{}", principal.actor.kind, principal.actor.id);
        if let Some(limiter) = &self.per_actor {
            limiter
                .check_key(&actor)
                .map_err(|not_until| too_many("actor", &principal.actor.to_string(), &not_until))?;
        }
        if let (Some(limiter), Some(tenant)) = (&self.per_tenant, &principal.tenant) {
            limiter
                .check_key(tenant)
                .map_err(|not_until| too_many("tenant", &format!("`{tenant}`"), &not_until))?;
        }
        Ok(())
    }
}

fn too_many(
    scope: &'static str,
    who: &str,
    not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>,
) -> Problem {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    // Whole seconds, rounded up: a client that waits that long gets through.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        format!("the {scope} {who} is over its rate limit; retry in {seconds} s; nothing was run"),
    )
    .with("scope", scope)
    .with("retryAfter", seconds)
    .header(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).unwrap_or(HeaderValue::from_static("1")),
    )
}
