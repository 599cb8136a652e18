//! Live counters: the counters consumer called directly with events, read back through
//! `GET /v1/tenants/{tenant}/counters`; deduplication by event id, tenants apart, Redis down.

use crate::helpers::*;
use aries_actors::events::counters::LiveCounters;
use aries_actors::events::{Delivery, Envelope, EventHandler, HandleError};
use aries_actors::links::RedisLink;
use serde_json::{Value, json};
use std::time::Duration;

fn delivery(tenant: &Value, event_type: &str, data: Value) -> Delivery {
    let envelope = Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        tenant: tenant["slug"].as_str().unwrap_or_default().to_owned(),
        tenant_id: TestApp::tenant_id(tenant),
        occurred_at: chrono::Utc::now(),
        version: 1,
        sequence: 1,
        data,
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    Delivery {
        envelope,
        body,
        attempt: 1,
        final_attempt: false,
    }
}

async fn counters_of(app: &TestApp, slug: &str, query: &str) -> Value {
    let res = app
        .get(&format!("/v1/tenants/{slug}/counters{query}"))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap_or_default()
}

#[actix_web::test]
async fn each_event_counts_once_per_tenant_and_day() -> TestResult {
    clear_of_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    let a = app.create_tenant("count-a").await;
    let b = app.create_tenant("count-b").await;
    let counters = app.app_state.counters.clone();
    assert_eq!(counters.name(), "counters");
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.app_state.redis.check().await.is_ok()
        })
        .await
    );

    let delivered = delivery(&a, "order.delivered", json!({"order_number": "O1"}));
    assert_eq!(counters.handle(&delivered).await, Ok(()));
    // Delivered twice (the broker's at-least-once): counted once.
    assert_eq!(counters.handle(&delivered).await, Ok(()));
    let batch = json!([{"transaction": {"kind": "payment"}}, {"transaction": {"kind": "payment"}},
        {"transaction": {"kind": "denial"}}]);
    assert_eq!(
        counters
            .handle(&delivery(&a, "ar_batch.posted", batch))
            .await,
        Ok(())
    );
    assert_eq!(
        counters
            .handle(&delivery(&b, "order.created", json!({})))
            .await,
        Ok(())
    );

    let today = chrono::Utc::now().date_naive().to_string();
    let got = counters_of(&app, "count-a", "").await;
    assert_eq!(got["date"], today);
    assert_eq!(
        got["counters"],
        json!({"events": 2, "order.delivered": 1, "orders_delivered": 1,
               "ar_batch.posted": 1, "payments_posted": 2})
    );
    let got = counters_of(&app, "count-b", &format!("?date={today}")).await;
    assert_eq!(
        got["counters"],
        json!({"events": 1, "order.created": 1, "orders_created": 1})
    );
    let got = counters_of(&app, "count-a", "?date=2020-01-01").await;
    assert_eq!(got, json!({"date": "2020-01-01", "counters": {}}));
    let res = app.get("/v1/tenants/count-a/counters?date=yesterday").await;
    assert_problem(res, 422, "invalid_query").await;
    // Another tenant's credential gets nothing.
    let res = app
        .client
        .get(app.url("/v1/tenants/count-a/counters"))
        .bearer_auth(app.tenant_key("count-b").unwrap_or_default())
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;
    Ok(())
}

#[actix_web::test]
async fn redis_down_means_retry_and_503() -> TestResult {
    let mut redis = RedisServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    let tenant = app.create_tenant("count-down").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.app_state.redis.check().await.is_ok()
        })
        .await,
        "the private redis answers"
    );
    let counters = app.app_state.counters.clone();
    let first = delivery(&tenant, "patient.created", json!({}));
    assert_eq!(counters.handle(&first).await, Ok(()));
    assert_eq!(
        counters_of(&app, "count-down", "").await["counters"]["patients_created"],
        1
    );

    redis.kill();
    let second = delivery(&tenant, "patient.created", json!({}));
    assert!(matches!(
        counters.handle(&second).await,
        Err(HandleError::Retry(_))
    ));
    let res = app.get("/v1/tenants/count-down/counters").await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "service_unavailable").await;

    // A link that never connected is down too.
    let never = LiveCounters::new(RedisLink::start("redis://127.0.0.1:1".into()), "x");
    assert!(matches!(
        never.handle(&second).await,
        Err(HandleError::Retry(_))
    ));
    Ok(())
}
