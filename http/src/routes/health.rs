//! Liveness and readiness.
//!
//! `/health/ready` checks the catalog, every shard, Redis and RabbitMQ and names each one that is
//! down. It answers 503 only when the catalog is down (nothing can be served); a failed shard,
//! Redis or RabbitMQ makes it 200 with `"status": "degraded"`, because the instance still serves
//! every other shard's tenants and taking it out of a load balancer would only make things worse.

use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use std::time::Duration;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `up` or `down`.
    pub status: &'static str,
    /// Why the dependency is down; absent when it is up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Check {
                status: "up",
                error: None,
            },
            Err(e) => Check {
                status: "down",
                error: Some(e),
            },
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ShardCheck {
    /// The shard's name, as in `/v1/platform/shards`.
    pub name: String,
    /// `up` when the breaker is closed and the last probe succeeded, otherwise `down`.
    pub status: &'static str,
    /// `closed`, `half_open` or `open`.
    pub breaker: &'static str,
    /// The last probe's error; absent when the last probe succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (something other than the catalog is down) or `unavailable`.
    pub status: &'static str,
    /// The catalog database; while it is down the status is `unavailable` and the answer a 503.
    pub catalog: Check,
    /// Every shard this instance knows; one that is down makes the status `degraded`.
    pub shards: Vec<ShardCheck>,
    /// Redis; when down, the status is `degraded`.
    pub redis: Check,
    /// RabbitMQ; when down, the status is `degraded`.
    pub rabbitmq: Check,
    /// The rate limiter: `up`, or `degraded` when Redis is unreachable (then `policy` says what it does).
    pub rate_limiter: LimiterCheck,
    /// The response cache: `up`, `bypassing` (Redis failed a moment ago: reads go to the
    /// database) or `disabled`.
    pub cache: &'static str,
}

/// The rate limiter's state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LimiterCheck {
    /// `up`, `degraded` or `disabled`.
    pub status: &'static str,
    /// What it does while Redis is down: `allow` (serve unlimited) or `deny` (refuse with 503).
    pub policy: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "live"}))
}

/// Whether this instance can serve, dependency by dependency.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "Ready or degraded", body = Readiness),
    (status = 503, description = "The catalog is down", body = Readiness)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let catalog = async {
        match tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query("select 1").execute(state.directory.catalog().pool()),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 1s".to_owned()),
        }
    };
    let (catalog, redis, rabbit) = tokio::join!(catalog, state.redis.check(), state.rabbit.check());
    let shards: Vec<ShardCheck> = state
        .directory
        .shards()
        .handles()
        .iter()
        .map(|h| {
            let health = h.health();
            ShardCheck {
                name: h.name.clone(),
                status: if health.is_up() { "up" } else { "down" },
                breaker: health.breaker.as_str(),
                error: health.last_error,
            }
        })
        .collect();
    let catalog_up = catalog.is_ok();
    let redis_up = redis.is_ok();
    let all_up =
        catalog_up && redis.is_ok() && rabbit.is_ok() && shards.iter().all(|s| s.status == "up");
    let body = Readiness {
        status: if !catalog_up {
            "unavailable"
        } else if all_up {
            "ready"
        } else {
            "degraded"
        },
        catalog: Check::from(catalog),
        shards,
        rate_limiter: {
            let (ok, policy) = state.limiter.health();
            let status = if !state.limiter.enabled() {
                "disabled"
            } else if ok && redis_up {
                "up"
            } else {
                "degraded"
            };
            LimiterCheck { status, policy }
        },
        redis: Check::from(redis),
        rabbitmq: Check::from(rabbit),
        cache: state.cache.health(),
    };
    if catalog_up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
