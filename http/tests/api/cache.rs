//! The response cache of tenant GETs: hits keep the answer (status, body, ETag), writes are seen
//! at once on the instance that made them and, through the Redis generation, on another instance
//! right after the write's response; a stampede of misses reads the database once; Redis down
//! means bypass, not failure; and authorization comes before any cached answer.

use crate::helpers::{AppOptions, RedisServer, TestApp, TestResult, assert_problem};
use aries_http::settings::CacheSettings;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::time::Duration;

/// The `X-Cache` header of a response.
fn x_cache(res: &Response) -> String {
    res.headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn etag(res: &Response) -> Option<String> {
    res.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The sum of the samples of `name` whose labels include every one of `labels` (`k="v"`).
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A GET on `base` (this app or a peer) with the tenant's owner key.
async fn get_on(app: &TestApp, base: &str, slug: &str, path: &str) -> Response {
    let key = app.tenant_key(slug).unwrap_or_default();
    app.client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Renames a location through `base`; asserts 200.
async fn rename_on(app: &TestApp, base: &str, slug: &str, id: &str, name: &str) {
    let key = app.tenant_key(slug).unwrap_or_default();
    let res = app
        .client
        .request(
            Method::PATCH,
            format!("{base}/v1/tenants/{slug}/locations/{id}"),
        )
        .bearer_auth(key)
        .header("content-type", "application/merge-patch+json")
        .body(json!({ "name": name }).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PATCH: {e}"));
    assert_eq!(res.status(), 200, "renaming to {name}");
}

#[actix_web::test]
async fn a_second_get_is_a_hit_with_the_same_body_and_etag() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("cached").await;
    let loc = app.create_location("cached", "MAIN").await;
    let path = format!(
        "/v1/tenants/cached/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );
    let hits_before = metric(&app, "aries_cache_requests_total", &["outcome=\"hit\""]).await;
    let misses_before = metric(&app, "aries_cache_requests_total", &["outcome=\"miss\""]).await;

    let first = app.get(&path).await;
    assert_eq!(
        (first.status().as_u16(), x_cache(&first).as_str()),
        (200, "miss")
    );
    let (first_etag, first_type) = (etag(&first), first.headers().get("content-type").cloned());
    let first_body = first.bytes().await?;
    let second = app.get(&path).await;
    assert_eq!(
        (second.status().as_u16(), x_cache(&second).as_str()),
        (200, "hit")
    );
    assert_eq!(etag(&second), first_etag);
    assert_eq!(first_etag.as_deref(), Some("\"1\""));
    assert_eq!(second.headers().get("content-type").cloned(), first_type);
    assert_eq!(second.bytes().await?, first_body);

    // A list, with its query in another order, is the same entry.
    let a = app
        .get("/v1/tenants/cached/locations?limit=5&active=true")
        .await;
    assert_eq!(x_cache(&a), "miss");
    let a_body = a.bytes().await?;
    let b = app
        .get("/v1/tenants/cached/locations?active=true&limit=5")
        .await;
    assert_eq!(x_cache(&b), "hit");
    assert_eq!(b.bytes().await?, a_body);
    let listed: Value = serde_json::from_slice(&a_body)?;
    assert_eq!(listed["data"][0]["code"], "MAIN");

    // Security resources, audit and reports are never cached.
    for uncached in [
        "/v1/tenants/cached/users",
        "/v1/tenants/cached/api-keys",
        "/v1/tenants/cached/audit",
        "/v1/tenants/cached/reports",
    ] {
        for _ in 0..2 {
            let res = app.get(uncached).await;
            assert_eq!(res.status(), 200, "{uncached}");
            assert!(
                res.headers().get("x-cache").is_none(),
                "{uncached} is cached"
            );
        }
    }

    let hits = metric(&app, "aries_cache_requests_total", &["outcome=\"hit\""]).await;
    let misses = metric(&app, "aries_cache_requests_total", &["outcome=\"miss\""]).await;
    assert!(hits >= hits_before + 2.0, "hits {hits_before} → {hits}");
    assert!(
        misses >= misses_before + 2.0,
        "misses {misses_before} → {misses}"
    );
    assert!(metric(&app, "aries_cache_fills_total", &["outcome=\"stored\""]).await >= 2.0);
    Ok(())
}

#[actix_web::test]
async fn a_write_then_a_read_on_one_instance_is_always_fresh() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("fresh").await;
    let loc = app.create_location("fresh", "MAIN").await;
    let id = loc["id"].as_str().unwrap_or("").to_owned();
    let path = format!("/v1/tenants/fresh/locations/{id}");
    let mut hits = 0;
    for i in 0..15 {
        // Warm both entries, then write, then read both at once.
        for p in [path.as_str(), "/v1/tenants/fresh/locations"] {
            let warm = app.get(p).await;
            hits += usize::from(x_cache(&warm) == "hit");
        }
        let name = format!("Branch {i}");
        rename_on(&app, &app.base, "fresh", &id, &name).await;
        let one = app.get(&path).await;
        let etag = etag(&one);
        let one: Value = one.json().await?;
        assert_eq!(one["name"], name, "round {i}");
        assert_eq!(etag, Some(format!("\"{}\"", i + 2)), "round {i}");
        let list: Value = app.get("/v1/tenants/fresh/locations").await.json().await?;
        assert_eq!(list["data"][0]["name"], name, "round {i}");
    }
    // The reads between writes did come from the cache.
    assert!(hits >= 15, "only {hits} warm reads were hits");
    Ok(())
}

#[actix_web::test]
async fn a_write_through_one_instance_is_never_stale_through_another() -> TestResult {
    // Without the in-memory tier, only the Redis generation stands between B and a stale answer.
    let app = TestApp::spawn_with(AppOptions {
        cache: Some(CacheSettings {
            local_ttl_ms: 0,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let (peer, _peer_handle) = app.spawn_peer().await;
    app.create_tenant("twins").await;
    let loc = app.create_location("twins", "MAIN").await;
    let id = loc["id"].as_str().unwrap_or("").to_owned();
    let path = format!("/v1/tenants/twins/locations/{id}");
    let mut hits = 0;
    for i in 0..15 {
        // B caches the current answer (and serves it from Redis the second time)...
        get_on(&app, &peer, "twins", &path).await;
        let warm = get_on(&app, &peer, "twins", &path).await;
        hits += usize::from(x_cache(&warm) == "hit");
        // ...A writes; B's very next read must see the write.
        let name = format!("Branch {i}");
        rename_on(&app, &app.base, "twins", &id, &name).await;
        let seen: Value = get_on(&app, &peer, "twins", &path).await.json().await?;
        assert_eq!(seen["name"], name, "round {i}: B served a stale answer");
        // And the other way round.
        let back = format!("Back {i}");
        get_on(&app, &app.base, "twins", &path).await;
        rename_on(&app, &peer, "twins", &id, &back).await;
        let seen: Value = get_on(&app, &app.base, "twins", &path).await.json().await?;
        assert_eq!(seen["name"], back, "round {i}: A served a stale answer");
    }
    assert!(hits >= 15, "only {hits} of B's warm reads were hits");
    Ok(())
}

/// Sixty concurrent misses of one key share one fill. Fills are shared within one L1 epoch only,
/// and this tenant's own events (its creation, its location) move the epoch on whenever they come
/// back through the instance's queue; a herd that one of them crossed proves nothing, so the herd
/// is run again on a fresh key until one ran within a single epoch.
#[actix_web::test]
async fn a_stampede_of_misses_reads_the_database_once() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        // Long enough that the herd's late requests are still inside its fill's life.
        cache: Some(CacheSettings {
            local_ttl_ms: 30_000,
            ..CacheSettings::default()
        }),
        ..Default::default()
    })
    .await;
    app.create_tenant("herd").await;
    app.create_location("herd", "MAIN").await;
    // Resolve the credential first, so the herd is not also a herd of credential lookups.
    app.get("/v1/tenants/herd/payers").await;
    let cache = app.app_state.cache.clone();
    for limit in 7..17 {
        let before = cache.stats();
        let path = format!("/v1/tenants/herd/locations?limit={limit}");
        let requests = (0..60).map(|_| app.get(&path));
        let responses = futures::future::join_all(requests).await;
        let after = cache.stats();
        if after.local_epochs != before.local_epochs {
            continue;
        }
        let mut bodies = std::collections::HashSet::new();
        for res in responses {
            assert_eq!(res.status(), 200);
            bodies.insert(res.bytes().await?);
        }
        assert_eq!(bodies.len(), 1, "every request got the same answer");
        assert_eq!(
            after.fills - before.fills,
            1,
            "the operation ran more than once"
        );
        assert_eq!(
            after.redis_lookups - before.redis_lookups,
            1,
            "concurrent misses on one instance did not share one fill"
        );
        assert_eq!(after.in_flight, 0, "a finished fill stayed in the map");
        return Ok(());
    }
    Err("every herd crossed an invalidation: the tenant's events never stopped".into())
}

#[actix_web::test]
async fn with_redis_down_reads_bypass_the_cache_and_writes_still_succeed() -> TestResult {
    let mut redis = RedisServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    app.create_tenant("outage").await;
    let loc = app.create_location("outage", "MAIN").await;
    let id = loc["id"].as_str().unwrap_or("").to_owned();
    let path = format!("/v1/tenants/outage/locations/{id}");
    let cache_works = || async {
        let a = app.get(&path).await;
        let b = app.get(&path).await;
        a.status() == 200 && b.status() == 200 && x_cache(&b) == "hit"
    };
    assert!(
        crate::helpers::eventually(Duration::from_secs(10), cache_works).await,
        "the cache never served a hit with Redis up"
    );

    redis.kill();
    // Once the in-memory entry has aged out, reads bypass the cache, and still answer.
    let bypassed = crate::helpers::eventually(Duration::from_secs(5), || async {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "a read failed with Redis down");
        x_cache(&res) == "bypass"
    })
    .await;
    assert!(bypassed, "reads never bypassed the cache with Redis down");
    rename_on(&app, &app.base, "outage", &id, "During the outage").await;
    // Within the back-off, requests do not even try Redis (an attempt or two may end a back-off).
    let calls_before = app.app_state.cache.stats().redis_calls;
    for _ in 0..5 {
        let res = app.get(&path).await;
        assert_eq!(
            (res.status().as_u16(), x_cache(&res).as_str()),
            (200, "bypass")
        );
        let body: Value = res.json().await?;
        assert_eq!(body["name"], "During the outage");
    }
    let calls = app.app_state.cache.stats().redis_calls - calls_before;
    assert!(calls <= 2, "{calls} Redis calls during the back-off");
    let ready: Value = app.get("/health/ready").await.json().await?;
    assert_eq!(ready["cache"], "bypassing", "{ready}");

    redis.restart()?;
    assert!(
        crate::helpers::eventually(Duration::from_secs(15), cache_works).await,
        "the cache did not come back with Redis"
    );
    let body: Value = app.get(&path).await.json().await?;
    assert_eq!(body["name"], "During the outage");
    let ready: Value = app.get("/health/ready").await.json().await?;
    assert_eq!(ready["cache"], "up", "{ready}");
    Ok(())
}

#[actix_web::test]
async fn cached_answers_are_only_for_callers_allowed_to_see_them() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("tenant-a").await;
    app.create_tenant("tenant-b").await;
    let loc = app.create_location("tenant-a", "MAIN").await;
    let path = format!(
        "/v1/tenants/tenant-a/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );
    // A credential of A without `locations:view` (made first: any write empties the cache).
    let role = app
        .post_json(
            "/v1/tenants/tenant-a/roles",
            &json!({"name": "payers-only", "permissions": ["payers:view"]}),
        )
        .await;
    assert_eq!(role.status(), 201);
    let key = app
        .post_json(
            "/v1/tenants/tenant-a/api-keys",
            &json!({"name": "narrow", "roles": ["payers-only"]}),
        )
        .await;
    assert_eq!(key.status(), 201);
    let narrow = key.json::<Value>().await?["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    app.get(&path).await;
    let cached = app.get(&path).await;
    assert_eq!(x_cache(&cached), "hit");

    // Tenant B's credential on A's cached URL: 404, never the body.
    let b_key = app.tenant_key("tenant-b").unwrap_or_default();
    let res = app
        .client
        .get(app.url(&path))
        .bearer_auth(&b_key)
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;
    let res = app
        .client
        .get(app.url("/v1/tenants/tenant-a/locations"))
        .bearer_auth(&b_key)
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;

    // The credential without `locations:view` gets 403 although the answer is cached.
    for _ in 0..2 {
        // Twice: the second time the credential's resolution is cached in the actor too.
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&narrow)
            .send()
            .await?;
        assert_problem(res, 403, "forbidden").await;
    }
    // No credential at all: 401.
    let res = app.client.get(app.url(&path)).send().await?;
    assert_problem(res, 401, "unauthenticated").await;
    // The owner still gets the cached answer.
    let again = app.get(&path).await;
    assert_eq!(
        (again.status().as_u16(), x_cache(&again).as_str()),
        (200, "hit")
    );
    Ok(())
}

#[actix_web::test]
async fn a_fill_that_raced_a_write_stores_nothing() -> TestResult {
    use aries_actors::cache::{CacheConfig, Entry, Outcome, ResponseCache};
    let app = TestApp::spawn().await;
    let config = CacheConfig {
        enabled: true,
        ttl: Duration::from_secs(60),
        local_ttl: Duration::from_secs(5),
        local_max_entries: 100,
        prefix: app.settings.redis.key_prefix.clone(),
    };
    // Three instances' caches on one Redis.
    let a = ResponseCache::new(app.app_state.redis.clone(), config.clone());
    let b = ResponseCache::new(app.app_state.redis.clone(), config.clone());
    let c = ResponseCache::new(app.app_state.redis.clone(), config);
    assert!(
        crate::helpers::eventually(Duration::from_secs(5), || async {
            app.app_state.redis.check().await.is_ok()
        })
        .await
    );
    let tenant = aries_tenants::TenantId::new();
    let body = |s: &str| Entry {
        etag: None,
        body: s.as_bytes().to_vec(),
    };
    let load = |s: &'static str| {
        let entry = body(s);
        move || async move { Ok::<_, ()>(entry) }
    };

    // A reads the database ("old"); B's write commits and invalidates before A fills.
    let (got, _) = a
        .get_or_load(tenant, "k", || async {
            b.invalidate(tenant).await;
            Ok::<_, ()>(body("old"))
        })
        .await
        .map_err(|()| "load failed")?;
    assert_eq!(got.body, b"old");
    // Another instance must not get A's old answer from Redis.
    let (got, outcome) = c
        .get_or_load(tenant, "k", load("new"))
        .await
        .map_err(|()| "load failed")?;
    assert_eq!((got.body.as_slice(), outcome), (&b"new"[..], Outcome::Miss));

    // The same on one instance: a fill that raced its own instance's write stores nothing in
    // memory either.
    let (got, _) = a
        .get_or_load(tenant, "k2", || async {
            a.invalidate(tenant).await;
            Ok::<_, ()>(body("old"))
        })
        .await
        .map_err(|()| "load failed")?;
    assert_eq!(got.body, b"old");
    let (got, outcome) = a
        .get_or_load(tenant, "k2", load("new"))
        .await
        .map_err(|()| "load failed")?;
    assert_eq!((got.body.as_slice(), outcome), (&b"new"[..], Outcome::Miss));
    // And the fresh answer is then served from the cache.
    let (got, outcome) = a
        .get_or_load(tenant, "k2", load("never"))
        .await
        .map_err(|()| "load failed")?;
    assert_eq!((got.body.as_slice(), outcome), (&b"new"[..], Outcome::Hit));
    Ok(())
}

#[actix_web::test]
async fn a_caller_limited_to_some_locations_never_gets_an_answer_cached_for_all() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("scoped").await;
    let north = app.create_location("scoped", "NORTH").await;
    let south = app.create_location("scoped", "SOUTH").await;
    let password = "correct horse battery staple";
    let res = app
        .post_json(
            "/v1/tenants/scoped/users",
            &json!({"email": "n@x.co", "display_name": "N", "password": password,
                    "roles": ["admin"], "location_ids": [north["id"]]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // The login is a write too (refresh token, audit): done before the owner fills the cache.
    let res = app
        .client
        .post(app.url("/v1/tenants/scoped/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "n@x.co"),
            ("password", password),
        ])
        .send()
        .await?;
    let token = res.json::<Value>().await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let south_path = format!(
        "/v1/tenants/scoped/locations/{}",
        south["id"].as_str().unwrap_or("")
    );
    for path in ["/v1/tenants/scoped/locations", south_path.as_str()] {
        app.get(path).await;
        assert_eq!(x_cache(&app.get(path).await), "hit", "{path}");
    }
    let as_user = |path: &str| app.client.get(app.url(path)).bearer_auth(&token).send();
    let list: Value = as_user("/v1/tenants/scoped/locations")
        .await?
        .json()
        .await?;
    let codes: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["code"].as_str())
        .collect();
    assert_eq!(codes, ["NORTH"]);
    assert_problem(as_user(&south_path).await?, 404, "not_found").await;
    // The user's own answers are cached under the user's scope.
    let again = as_user("/v1/tenants/scoped/locations").await?;
    assert_eq!(x_cache(&again), "hit");
    Ok(())
}

#[actix_web::test]
async fn another_instances_write_reaches_this_instances_memory_through_its_event_queue()
-> TestResult {
    // An in-memory tier that would keep an entry for a minute: only the event queue can make B
    // drop it early. The documented bound (README, "How fresh is a cached answer") is the
    // invalidation delay of the event path; this test waits at most 10 s for it.
    let app = TestApp::spawn_with(AppOptions {
        cache: Some(CacheSettings {
            local_ttl_ms: 60_000,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let (peer, _peer_handle) = app.spawn_peer().await;
    app.create_tenant("echo").await;
    let loc = app.create_location("echo", "MAIN").await;
    let id = loc["id"].as_str().unwrap_or("").to_owned();
    let path = format!("/v1/tenants/echo/locations/{id}");
    for i in 0..5 {
        // B holds the current answer in memory.
        get_on(&app, &peer, "echo", &path).await;
        let warm = get_on(&app, &peer, "echo", &path).await;
        assert_eq!(x_cache(&warm), "hit");
        let name = format!("Renamed {i}");
        rename_on(&app, &app.base, "echo", &id, &name).await;
        let start = std::time::Instant::now();
        let mut fresh = false;
        while start.elapsed() < Duration::from_secs(10) {
            let seen: Value = get_on(&app, &peer, "echo", &path).await.json().await?;
            if seen["name"] == name.as_str() {
                fresh = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(fresh, "round {i}: B kept serving its stale entry");
        // Once fresh, never stale again.
        for _ in 0..5 {
            let seen: Value = get_on(&app, &peer, "echo", &path).await.json().await?;
            assert_eq!(seen["name"], name);
        }
    }
    Ok(())
}

#[actix_web::test]
async fn a_cached_read_skips_the_actor_only_while_the_tenant_serves() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("fast").await;
    let loc = app.create_location("fast", "MAIN").await;
    let path = format!(
        "/v1/tenants/fast/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );
    let fast = "aries_authorize_fast_total";
    // A cached answer, asked for by a credential resolved a moment ago, is authorized without a
    // message to the tenant's actor (the resolution stands for `credential_cache_ms`, so a slow
    // machine may need a few tries to ask within it).
    let mut skipped = false;
    for _ in 0..20 {
        let before = metric(&app, fast, &[]).await;
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200);
        if x_cache(&res) == "hit" && metric(&app, fast, &[]).await > before {
            skipped = true;
            break;
        }
    }
    assert!(skipped, "no cached read was authorized on the fast path");

    // Suspended: refused at once and every time after, although the answer and the credential
    // are both cached.
    let res = app
        .req(Method::POST, "/v1/platform/tenants/fast/suspend")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    for _ in 0..3 {
        assert_problem(app.get(&path).await, 403, "tenant_suspended").await;
    }
    let res = app
        .req(Method::POST, "/v1/platform/tenants/fast/resume")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let res = app.get(&path).await;
    assert_eq!(res.status(), 200);

    // A revoked key is refused at once on this instance, cached answer or not.
    let key = app
        .post_json(
            "/v1/tenants/fast/api-keys",
            &json!({"name": "short-lived", "roles": ["owner"]}),
        )
        .await;
    assert_eq!(key.status(), 201);
    let key: Value = key.json().await?;
    let secret = key["secret"].as_str().unwrap_or_default().to_owned();
    let with_key = || app.client.get(app.url(&path)).bearer_auth(&secret).send();
    assert_eq!(with_key().await?.status(), 200);
    assert_eq!(with_key().await?.status(), 200);
    let res = app
        .req(
            Method::DELETE,
            &format!(
                "/v1/tenants/fast/api-keys/{}",
                key["id"].as_str().unwrap_or("")
            ),
        )
        .send()
        .await?;
    assert!(res.status().is_success(), "{}", res.status());
    assert_problem(with_key().await?, 401, "unauthenticated").await;
    Ok(())
}
