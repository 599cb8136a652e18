//! Rate limits: per credential and per tenant plan, `RateLimit-*` headers, 429 with Retry-After,
//! and the configured policy when Redis is down.

use crate::helpers::*;
use aries_http::settings::{RateLimitSettings, RedisDownPolicy};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

fn limits(per_credential: u32, per_plan: u32, when_down: RedisDownPolicy) -> RateLimitSettings {
    RateLimitSettings {
        enabled: true,
        per_credential_per_second: per_credential,
        starter_per_second: per_plan,
        standard_per_second: per_plan,
        enterprise_per_second: per_plan,
        burst_seconds: 1,
        when_redis_down: when_down,
        login_per_minute: 1000,
        lease_max: 100,
        lease_ms: 200,
    }
}

/// The statuses of `n` GETs of `path`, `at_once` in flight at a time.
async fn statuses(app: &TestApp, path: &str, n: usize, at_once: usize) -> Vec<u16> {
    futures::stream::iter(0..n)
        .map(|_| async { app.get(path).await.status().as_u16() })
        .buffer_unordered(at_once)
        .collect()
        .await
}

#[actix_web::test]
async fn credentials_are_limited_with_headers_and_429s() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        rate_limit: Some(limits(2, 1000, RedisDownPolicy::Allow)),
        ..Default::default()
    })
    .await;
    app.create_tenant("limited").await;
    app.create_tenant("neighbour").await;
    let first = app.get("/v1/tenants/limited/locations").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-limit"], "2");
    assert!(
        first.headers().contains_key("ratelimit-remaining")
            && first.headers().contains_key("ratelimit-reset")
    );
    // Thirty requests at once from one credential allowed two a second: most are refused.
    let mut refused = None;
    for _ in 0..30 {
        let res = app.get("/v1/tenants/limited/locations").await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(res);
            break;
        }
    }
    let refused = refused.ok_or("never limited")?;
    let retry: u64 = refused.headers()["retry-after"].to_str()?.parse()?;
    assert!(retry >= 1);
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_problem(refused, 429, "rate_limited").await;
    // Another tenant's credential is not affected.
    assert_eq!(
        app.get("/v1/tenants/neighbour/locations").await.status(),
        200
    );
    Ok(())
}

#[actix_web::test]
async fn a_tenants_plan_caps_all_its_credentials_together() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        rate_limit: Some(limits(1000, 2, RedisDownPolicy::Allow)),
        ..Default::default()
    })
    .await;
    app.create_tenant("planned").await;
    let second: Value = app
        .post_json(
            "/v1/tenants/planned/api-keys",
            &json!({"name": "2nd", "roles": ["viewer"]}),
        )
        .await
        .json()
        .await?;
    let second = second["secret"].as_str().unwrap_or_default().to_owned();
    let mut statuses = Vec::new();
    for i in 0..30 {
        let res = if i % 2 == 0 {
            app.get("/v1/tenants/planned/locations").await
        } else {
            app.client
                .get(app.url("/v1/tenants/planned/locations"))
                .bearer_auth(&second)
                .send()
                .await?
        };
        statuses.push(res.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    Ok(())
}

#[actix_web::test]
async fn with_redis_down_the_policy_decides_and_readiness_says_so() -> TestResult {
    for (policy, expected, name) in [
        (RedisDownPolicy::Allow, 200, "allow"),
        (RedisDownPolicy::Deny, 503, "deny"),
    ] {
        let mut redis = RedisServer::start()?;
        let app = TestApp::spawn_with(AppOptions {
            rate_limit: Some(limits(1000, 1000, policy)),
            redis_url: Some(redis.url()),
            ..Default::default()
        })
        .await;
        // The first call may race the connection's set-up; wait until Redis answers.
        let ready = eventually(Duration::from_secs(10), || async {
            app.get("/health/ready")
                .await
                .json::<Value>()
                .await
                .is_ok_and(|b| b["redis"]["status"] == "up")
        })
        .await;
        assert!(ready);
        app.create_tenant("redisless").await;
        assert_eq!(
            app.get("/v1/tenants/redisless/locations").await.status(),
            200
        );
        redis.kill();
        // Cells this instance already leased are still served (for at most `lease_ms`), then the
        // policy decides.
        let decided = eventually(Duration::from_secs(3), || async {
            app.get("/v1/tenants/redisless/locations")
                .await
                .status()
                .as_u16()
                == expected
        })
        .await;
        assert!(decided, "policy {name}");
        let body: Value = app.get("/health/ready").await.json().await?;
        assert_eq!(body["redis"]["status"], "down");
        assert_eq!(body["rate_limiter"]["status"], "degraded");
        assert_eq!(body["rate_limiter"]["policy"], name);
        assert_eq!(body["status"], "degraded");
    }
    Ok(())
}

#[actix_web::test]
async fn password_guessing_is_slowed_per_address() -> TestResult {
    let mut settings = limits(1000, 1000, RedisDownPolicy::Allow);
    settings.login_per_minute = 3;
    let app = TestApp::spawn_with(AppOptions {
        rate_limit: Some(settings),
        ..Default::default()
    })
    .await;
    app.create_tenant("guarded").await;
    let url = app.url("/v1/tenants/guarded/oauth/token");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let res = app
            .client
            .post(&url)
            .form(&[
                ("grant_type", "password"),
                ("username", "x@y.co"),
                ("password", &format!("guess number {i}")),
            ])
            .send()
            .await?;
        statuses.push(res.status().as_u16());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            assert_eq!(res.json::<Value>().await?["error"], "rate_limited");
        }
    }
    assert_eq!(
        &statuses[..3],
        &[400, 400, 400],
        "the first attempts are judged: {statuses:?}"
    );
    assert!(
        statuses[3..].iter().all(|s| *s == 429),
        "then refused: {statuses:?}"
    );
    // The operator console login is guarded the same way.
    let mut last = 0;
    for i in 0..5 {
        let res = app
            .client
            .post(app.url("/v1/platform/sessions"))
            .json(&json!({"email": "no@one.co", "password": format!("guess number {i}")}))
            .send()
            .await?;
        last = res.status().as_u16();
    }
    assert_eq!(last, 429);
    Ok(())
}

/// At a high limit an instance leases cells in batches: far fewer Redis calls than requests, and
/// the limit still holds exactly (every cell is counted in Redis before it is served).
#[actix_web::test]
async fn cells_are_leased_in_batches_and_the_limit_still_holds() -> TestResult {
    let redis = RedisServer::start()?;
    // 20 a second with a burst of 10 s: 200 at once are allowed, in leases of 20 (20 × 2 s / 2).
    let mut settings = limits(20, 100_000, RedisDownPolicy::Allow);
    settings.burst_seconds = 10;
    settings.lease_ms = 2000;
    let app = TestApp::spawn_with(AppOptions {
        rate_limit: Some(settings),
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    app.create_tenant("leased").await;
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let script_calls = |info: &str| -> u64 {
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let get_all = |n: usize| statuses(&app, "/v1/tenants/leased/locations", n, 8);
    // Within the burst: every request is served, from a lease taken every 20 requests or so.
    let started = std::time::Instant::now();
    let before: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await?;
    let first = get_all(160).await;
    let after: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await?;
    let calls = script_calls(&after) - script_calls(&before);
    assert!(first.iter().all(|s| *s == 200), "{first:?}");
    assert!(
        calls * 4 <= 160,
        "{calls} Redis calls for 160 requests: leases must batch"
    );
    // Past the burst: refused, and never more allowed than the burst plus what the rate earned
    // meanwhile (plus one lease in flight).
    let second = get_all(300).await;
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 160 + second.iter().filter(|s| **s == 200).count() as u64;
    let refused = second.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(allowed + refused, 460, "only 200s and 429s: {second:?}");
    let ceiling = 200.0 + 20.0 * elapsed + 20.0;
    assert!(
        (allowed as f64) <= ceiling,
        "{allowed} allowed in {elapsed:.2} s, at most {ceiling:.0}"
    );
    assert!(refused > 0, "then it refuses ({elapsed:.2} s)");
    Ok(())
}

/// Many requests of one caller arriving at once while its lease is empty take one lease between
/// them, not one each: a burst inside the limit is served whole however concurrent it is (when
/// each of 32 concurrent requests leased a batch of 20 from a bucket of 100, most were refused).
#[actix_web::test]
async fn a_concurrent_burst_inside_the_limit_is_served_whole() -> TestResult {
    let redis = RedisServer::start()?;
    // 100 a second, a burst of 100, leases of 20 (100 × 0.4 s / 2).
    let mut settings = limits(100, 100_000, RedisDownPolicy::Allow);
    settings.lease_ms = 400;
    let app = TestApp::spawn_with(AppOptions {
        rate_limit: Some(settings),
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    app.create_tenant("bursty").await;
    let get_all =
        |n: usize, at_once: usize| statuses(&app, "/v1/tenants/bursty/locations", n, at_once);
    let started = std::time::Instant::now();
    let burst = get_all(90, 32).await;
    assert!(
        burst.iter().all(|s| *s == 200),
        "90 of a burst of 100, 32 at a time: {burst:?}"
    );
    // The limit still holds: the rest of the bucket and what the rate earned, then refusals.
    let after = get_all(300, 32).await;
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 90 + after.iter().filter(|s| **s == 200).count() as u64;
    let refused = after.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(allowed + refused, 390, "only 200s and 429s: {after:?}");
    let ceiling = 100.0 + 100.0 * elapsed;
    assert!(
        (allowed as f64) <= ceiling,
        "{allowed} allowed in {elapsed:.2} s, at most {ceiling:.0}"
    );
    assert!(refused > 0, "then it refuses ({elapsed:.2} s)");
    Ok(())
}
