//! The operators' live socket for tenant moves (`GET /v1/platform/live`): a move started through
//! a second instance reaches a socket on the first one (which never runs it, so only its catalog
//! polling can see it) from the snapshot through copying to `done`, each version once and in
//! order; refusals before the upgrade.

use crate::helpers::*;
use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn request(
    base: &str,
    token: Option<&str>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, Box<dyn std::error::Error>>
{
    let url = format!("{}/v1/platform/live", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("aries.v1"),
    );
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    Ok(req)
}

/// The next JSON message that is not a heartbeat (pings are answered while reading).
async fn next_update(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).ok()?;
            if v["type"] != "heartbeat" {
                return Some(v);
            }
        }
    }
}

const ORDER: [&str; 6] = [
    "pending",
    "copying",
    "catching_up",
    "frozen",
    "flipped",
    "done",
];

fn at(m: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    m["updated_at"].as_str().and_then(|s| s.parse().ok())
}

fn rank(state: &str) -> usize {
    ORDER.iter().position(|s| *s == state).unwrap_or(usize::MAX)
}

#[actix_web::test]
async fn a_move_run_by_another_instance_is_followed_live_to_done() -> TestResult {
    let (_server, app) = crate::moves::two_servers().await?;
    // A move finished before the socket opens is in the snapshot.
    let tenant = app.create_tenant("live-move").await;
    let id = TestApp::tenant_id(&tenant);
    let from = TestApp::shard_index(&tenant);
    let to = 1 - from;
    crate::moves::seed_prescribers(&app.shard_pool(from), id, 60_000).await?;
    let (peer, _peer_handle) = app.spawn_peer().await;

    let (mut ws, res) =
        tokio_tungstenite::connect_async(request(&app.base, Some(&app.token))?).await?;
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("aries.v1")
    );
    let snap = next_update(&mut ws, Duration::from_secs(10))
        .await
        .ok_or("no snapshot")?;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["moves"], json!([]), "no move yet: {snap}");

    // The move runs on the peer: A's own broadcast never carries it.
    let res = app
        .client
        .post(format!("{peer}/v1/platform/tenants/live-move/moves"))
        .bearer_auth(&app.token)
        .json(&json!({"to_shard": format!("shard-{to}")}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let started: Value = res.json().await?;
    let move_id = started["id"].as_str().ok_or("no move id")?.to_owned();

    let mut seen: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = next_update(&mut ws, left)
            .await
            .ok_or_else(|| format!("the socket went quiet; saw {seen:?}"))?;
        assert_eq!(m["type"], "move", "{m}");
        let mv = m["move"].clone();
        assert_eq!(mv["id"], move_id.as_str(), "{mv}");
        let done = mv["state"] == "done";
        seen.push(mv);
        if done {
            break;
        }
    }
    let states: Vec<&str> = seen.iter().filter_map(|m| m["state"].as_str()).collect();
    eprintln!("states seen on A: {states:?}");
    // In order, never back; copying seen with its counters; each version once.
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            rank(b["state"].as_str().unwrap_or("")) >= rank(a["state"].as_str().unwrap_or("")),
            "state went back: {a} then {b}"
        );
        assert!(
            at(b) >= at(a),
            "an older version after a newer: {a} then {b}"
        );
        assert_ne!(a, b, "the same version twice");
    }
    assert!(
        states.contains(&"copying"),
        "copying seen live on A: {states:?}"
    );
    assert!(
        states
            .iter()
            .any(|s| ["catching_up", "frozen", "flipped"].contains(s)),
        "an intermediate state seen: {states:?}"
    );
    let last = seen.last().ok_or("nothing seen")?;
    assert_eq!(last["rows_total"], last["rows_copied"], "{last}");
    assert!(last["rows_total"].as_i64() >= Some(60_000), "{last}");
    assert!(last["pause_ms"].is_i64(), "{last}");
    assert_eq!(last["to_shard"], format!("shard-{to}"));
    // Nothing more about it: the poll's overlap re-reads it, and the de-duplication drops it.
    if let Some(extra) = next_update(&mut ws, Duration::from_millis(1_500)).await {
        panic!("a message after done: {extra}");
    }
    drop(ws);

    // A new socket's snapshot has the finished move.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(request(&app.base, Some(&app.token))?).await?;
    let snap = next_update(&mut ws, Duration::from_secs(10))
        .await
        .ok_or("no second snapshot")?;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["moves"][0]["id"], move_id.as_str(), "{snap}");
    assert_eq!(snap["moves"][0]["state"], "done", "{snap}");
    Ok(())
}

#[actix_web::test]
async fn a_local_move_is_sent_at_once_and_a_refused_caller_gets_a_problem() -> TestResult {
    let app = TestApp::spawn().await;
    // Refused before the upgrade: no credential, a wrong token.
    for token in [None, Some("not-the-token")] {
        match tokio_tungstenite::connect_async(request(&app.base, token)?).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status().as_u16(), 401);
                let ct = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert!(ct.starts_with("application/problem+json"), "{ct}");
                let body: Value =
                    serde_json::from_slice(res.body().as_deref().unwrap_or_default())?;
                assert_eq!(body["code"], "unauthenticated", "{body}");
            }
            other => panic!("expected a 401, got {other:?}"),
        }
    }
    // A plain GET (no upgrade) with a good token is a problem too, not a 500.
    let res = app.get("/v1/platform/live").await;
    assert_problem(res, 400, "bad_request").await;

    // A move this instance runs: its changes come from the broadcast, the first one at once.
    let tenant = app.create_tenant("live-local").await;
    let to = 1 - TestApp::shard_index(&tenant);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(request(&app.base, Some(&app.token))?).await?;
    let snap = next_update(&mut ws, Duration::from_secs(10))
        .await
        .ok_or("no snapshot")?;
    assert_eq!(snap["type"], "snapshot");
    let res = app
        .post_json(
            "/v1/platform/tenants/live-local/moves",
            &json!({"to_shard": format!("shard-{to}")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mut states = Vec::new();
    while let Some(m) = next_update(&mut ws, Duration::from_secs(60)).await {
        let s = m["move"]["state"].as_str().unwrap_or("").to_owned();
        states.push(s.clone());
        if s == "done" {
            break;
        }
    }
    assert_eq!(
        states.first().map(String::as_str),
        Some("pending"),
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("done"),
        "{states:?}"
    );
    Ok(())
}
