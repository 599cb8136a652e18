//! Tenant actors: single-flight activation, passivation and re-activation, supervision.

use crate::helpers::*;
use aries_actors::TenantError;
use aries_actors::ops::faults::{Fault, InjectFault};
use aries_actors::tenant::{GetStatus, PanicInHandler};
use aries_tenants::TenantSlug;
use std::time::Duration;

#[actix_web::test]
async fn concurrent_first_requests_make_one_actor() -> TestResult {
    let app = TestApp::spawn().await;
    // Created without the harness's key, so nothing has woken its actor yet.
    for slug in ["single", "single-two"] {
        let body = serde_json::json!({"slug": slug, "name": "Single", "plan": "standard"});
        assert_eq!(
            app.post_json("/v1/platform/tenants", &body).await.status(),
            201
        );
    }
    let slug = TenantSlug::parse("single")?;
    let dir = &app.app_state.directory;
    assert!(!dir.is_active(&slug));
    let gets = (0..32).map(|_| dir.get(&slug));
    let addrs = futures::future::join_all(gets).await;
    let first = addrs[0].as_ref().map_err(|e| e.to_string())?.clone();
    for a in &addrs {
        assert!(
            a.as_ref().is_ok_and(|a| *a == first),
            "every caller got the same actor"
        );
    }
    assert_eq!(dir.active_count(), 1);
    // And over HTTP: concurrent first requests (the token endpoint, which wakes the actor to check
    // the client) on the other tenant.
    let reqs = (0..16).map(|_| {
        app.client
            .post(app.url("/v1/tenants/single-two/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "cl_nobody"),
                ("client_secret", "nope"),
            ])
            .send()
    });
    for res in futures::future::join_all(reqs).await {
        assert_eq!(res?.status(), 401);
    }
    assert_eq!(dir.active_count(), 2);
    Ok(())
}

#[actix_web::test]
async fn unknown_tenants_leave_nothing_behind() -> TestResult {
    let app = TestApp::spawn().await;
    for i in 0..20 {
        let slug = TenantSlug::parse(&format!("ghost-{i}"))?;
        let got = app.app_state.directory.get(&slug).await;
        assert!(matches!(got, Err(TenantError::TenantNotFound)), "{got:?}");
    }
    assert_eq!(app.app_state.directory.active_count(), 0);
    Ok(())
}

#[actix_web::test]
async fn idle_actors_passivate_and_come_back() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    app.create_tenant("sleepy").await;
    let loc = app.create_location("sleepy", "MAIN").await;
    let slug = TenantSlug::parse("sleepy")?;
    let dir = app.app_state.directory.clone();
    assert!(dir.is_active(&slug));
    let gone = eventually(Duration::from_secs(10), || {
        let dir = dir.clone();
        let slug = slug.clone();
        async move { !dir.is_active(&slug) }
    })
    .await;
    assert!(gone, "the idle actor never passivated");
    assert_eq!(dir.active_count(), 0);
    // The next request re-activates it, with its data where it was.
    let res = app
        .get(&format!(
            "/v1/tenants/sleepy/locations/{}",
            loc["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert!(dir.is_active(&slug));
    Ok(())
}

#[actix_web::test]
async fn a_panicking_operation_fails_its_caller_and_restarts_the_actor() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("fragile").await;
    app.create_tenant("bystander").await;
    let loc = app.create_location("fragile", "MAIN").await;
    app.create_location("bystander", "MAIN").await;
    let dir = app.app_state.directory.clone();
    let fragile = TenantSlug::parse("fragile")?;
    let addr = dir.get(&fragile).await.map_err(|e| e.to_string())?;
    let before = addr.send(GetStatus).await?;
    assert_eq!(before.restarts, 0);

    // The panic and a bystander's traffic at the same time.
    let panic = dir.exec(&fragile, InjectFault(Fault::Panic));
    let bystander = async {
        let mut statuses = Vec::new();
        for _ in 0..10 {
            statuses.push(
                app.get("/v1/tenants/bystander/locations")
                    .await
                    .status()
                    .as_u16(),
            );
        }
        statuses
    };
    let (panicked, statuses) = tokio::join!(panic, bystander);
    assert!(
        matches!(panicked, Err(TenantError::Crashed)),
        "{panicked:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "the other tenant noticed: {statuses:?}"
    );

    // Same actor (address), restarted with its state reloaded; it serves again.
    let restarted = eventually(Duration::from_secs(5), || {
        let addr = addr.clone();
        async move {
            addr.send(GetStatus)
                .await
                .is_ok_and(|s| s.restarts == 1 && s.loaded)
        }
    })
    .await;
    assert!(restarted, "the actor did not restart with its state");
    let res = app
        .get(&format!(
            "/v1/tenants/fragile/locations/{}",
            loc["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(res.status(), 200);
    assert!(dir.get(&fragile).await.is_ok_and(|a| a == addr));
    Ok(())
}

#[actix_web::test]
async fn a_failing_operation_fails_its_caller_and_restarts_the_actor() -> TestResult {
    let app = TestApp::spawn().await;
    let t = app.create_tenant("faulty").await;
    let dir = app.app_state.directory.clone();
    let slug = TenantSlug::parse("faulty")?;
    let addr = dir.get(&slug).await.map_err(|e| e.to_string())?;
    let failed = dir.exec(&slug, InjectFault(Fault::SqlError)).await;
    assert!(matches!(failed, Err(TenantError::Domain(_))), "{failed:?}");
    let restarted = eventually(Duration::from_secs(5), || {
        let addr = addr.clone();
        async move {
            addr.send(GetStatus)
                .await
                .is_ok_and(|s| s.restarts == 1 && s.loaded)
        }
    })
    .await;
    assert!(restarted);
    // A query error is not an outage: the shard's breaker stays closed.
    let shard = app
        .registry()
        .handles()
        .into_iter()
        .find(|h| Some(h.name.as_str()) == t["shard"].as_str());
    assert!(
        shard.is_some_and(|h| h.breaker.state() == aries_actors::breaker::BreakerState::Closed)
    );
    assert_eq!(app.get("/v1/tenants/faulty/locations").await.status(), 200);
    Ok(())
}

#[actix_web::test]
async fn a_panic_in_a_handler_kills_the_actor_and_the_next_request_gets_a_new_one() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("killed").await;
    app.create_location("killed", "MAIN").await;
    let dir = app.app_state.directory.clone();
    let slug = TenantSlug::parse("killed")?;
    let addr = dir.get(&slug).await.map_err(|e| e.to_string())?;
    // The caller gets an error, not a hang.
    assert!(addr.send(PanicInHandler).await.is_err());
    let dead = eventually(Duration::from_secs(5), || {
        let addr = addr.clone();
        async move { !addr.connected() }
    })
    .await;
    assert!(dead);
    let res = app.get("/v1/tenants/killed/locations").await;
    assert_eq!(res.status(), 200);
    let fresh = dir.get(&slug).await.map_err(|e| e.to_string())?;
    assert!(fresh != addr && fresh.connected());
    Ok(())
}

#[actix_web::test]
async fn tenant_actors_spread_over_the_arbiters() -> TestResult {
    // The test app runs two tenant arbiters.
    let app = TestApp::spawn().await;
    let dir = app.app_state.directory.clone();
    let mut threads = std::collections::HashSet::new();
    for i in 0..6 {
        let slug = format!("spread-{i}");
        app.create_tenant(&slug).await;
        let addr = dir
            .get(&TenantSlug::parse(&slug)?)
            .await
            .map_err(|e| e.to_string())?;
        threads.insert(addr.send(GetStatus).await?.thread);
    }
    assert_eq!(threads.len(), 2, "six tenants over two arbiters");
    assert!(
        !threads.contains(&std::thread::current().id()),
        "no tenant actor on the caller's thread"
    );
    Ok(())
}

#[actix_web::test]
async fn the_operator_fault_route_panics_a_tenant_actor_and_the_tenant_keeps_serving() -> TestResult
{
    let app = TestApp::spawn().await;
    app.create_tenant("chaotic").await;
    let loc = app.create_location("chaotic", "MAIN").await;
    let dir = app.app_state.directory.clone();
    let slug = TenantSlug::parse("chaotic")?;
    let addr = dir.get(&slug).await.map_err(|e| e.to_string())?;
    let path = "/v1/platform/faults/tenants/chaotic/panic";

    // Not for tenants: a tenant's own key is refused, and the actor lives on.
    let key = app.tenant_key("chaotic").unwrap_or_default();
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(&key)
        .send()
        .await?;
    assert_eq!(res.status(), 401);
    assert!(addr.connected());
    // An unknown tenant is a 404 problem; only POST is served.
    assert_problem(
        app.post_json(
            "/v1/platform/faults/tenants/nobody/panic",
            &serde_json::json!({}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(app.get(path).await, 405, "method_not_allowed").await;

    let res = app.post_json(path, &serde_json::json!({})).await;
    assert_eq!(res.status(), 202);
    let body: serde_json::Value = res.json().await?;
    assert_eq!(body["fault"], "panic_in_handler");
    assert_eq!(body["actor_stopped"], true, "{body}");
    assert!(!addr.connected(), "the actor survived the panic");
    // The next request gets a new actor, with the data where it was.
    let res = app
        .get(&format!(
            "/v1/tenants/chaotic/locations/{}",
            loc["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(res.status(), 200);
    let fresh = dir.get(&slug).await.map_err(|e| e.to_string())?;
    assert!(fresh != addr && fresh.connected());
    // A test-only route: never in the API document.
    let doc = app.get("/openapi.json").await.text().await?;
    assert!(doc.contains("/v1/platform/tenants") && !doc.contains("/faults/"));
    Ok(())
}
