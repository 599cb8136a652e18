//! No secret or token in any log line: the real `aries serve` binary, with debug logging, is put
//! through every flow that handles a secret, and its whole log is searched for each of them.

use crate::helpers::*;
use serde_json::{Value, json};
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

#[actix_web::test]
async fn no_secret_or_token_reaches_the_logs() -> TestResult {
    // The in-process app made the databases; a second instance, the real binary, logs to a pipe.
    let app = TestApp::spawn().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aries"))
        .arg("serve")
        .envs(
            app.settings_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .env("ARIES__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("ARIES__LOG__LEVEL", "debug")
        .env("ARIES__RATE_LIMIT__ENABLED", "false")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let c = &app.client;
    let up = eventually(Duration::from_secs(30), || async {
        c.get(format!("{base}/health/live")).send().await.is_ok()
    })
    .await;
    assert!(up, "aries serve did not start");
    let op = app.token.clone();
    let mut secrets = vec![op.clone()];
    let post = |path: String, bearer: String, body: Value| {
        c.post(format!("{base}{path}"))
            .bearer_auth(bearer)
            .json(&body)
            .send()
    };

    post(
        "/v1/platform/tenants".into(),
        op.clone(),
        json!({"slug": "quiet", "name": "Q", "plan": "standard"}),
    )
    .await?;
    let key: Value = post(
        "/v1/platform/tenants/quiet/api-keys".into(),
        op.clone(),
        json!({"name": "k", "roles": ["owner"]}),
    )
    .await?
    .json()
    .await?;
    let key = key["secret"].as_str().unwrap_or_default().to_owned();
    secrets.push(key.clone());
    let password = "a very secret passphrase 42";
    let wrong = "a wrong passphrase guess 17";
    secrets.extend([password.to_owned(), wrong.to_owned()]);
    post(
        "/v1/tenants/quiet/users".into(),
        key.clone(),
        json!({"email": "q@x.co", "display_name": "Q", "password": password, "roles": ["owner"]}),
    )
    .await?;
    let token_url = format!("{base}/v1/tenants/quiet/oauth/token");
    let grant: Value = c
        .post(&token_url)
        .form(&[
            ("grant_type", "password"),
            ("username", "q@x.co"),
            ("password", password),
        ])
        .send()
        .await?
        .json()
        .await?;
    let access = grant["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let refresh = grant["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    c.post(&token_url)
        .form(&[
            ("grant_type", "password"),
            ("username", "q@x.co"),
            ("password", wrong),
        ])
        .send()
        .await?;
    let rotated: Value = c
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    // Reuse the old one too (the theft path logs a warning).
    c.post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await?;
    secrets.extend([
        access.clone(),
        refresh,
        rotated["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ]);
    let client: Value = post(
        "/v1/tenants/quiet/oauth-clients".into(),
        key.clone(),
        json!({"name": "c", "roles": ["viewer"]}),
    )
    .await?
    .json()
    .await?;
    let client_secret = client["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    secrets.push(client_secret.clone());
    let cc: Value = c
        .post(&token_url)
        .basic_auth(
            client["client_id"].as_str().unwrap_or_default(),
            Some(&client_secret),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    secrets.push(cc["access_token"].as_str().unwrap_or_default().to_owned());
    for bearer in [&key, &access, &"garbage-token-123456789".to_owned()] {
        c.get(format!("{base}/v1/tenants/quiet/locations"))
            .bearer_auth(bearer)
            .send()
            .await?;
    }
    secrets.push("garbage-token-123456789".into());

    child.kill()?;
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut log)?;
    }
    let _ = child.wait();
    assert!(
        log.lines()
            .filter(|l| l.contains("request finished"))
            .count()
            >= 10,
        "the log is not what we think:\n{log}"
    );
    for secret in &secrets {
        assert!(
            secret.len() >= 12,
            "a secret under test is too short to search for: {secret:?}"
        );
        // Long tokens are also searched by a distinctive slice, in case a line cut them.
        let probe = &secret[secret.len().saturating_sub(24)..];
        assert!(
            !log.contains(probe),
            "a secret reached the log: …{probe}\n{log}"
        );
    }
    Ok(())
}
