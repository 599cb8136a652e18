//! Operator console sessions: password, then TOTP enrolment through an otpauth URI and a code
//! generated here, recovery codes, cookies, roles, listing and revoking sessions on every instance.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};
use totp_rs::Totp;

const PASSWORD: &str = "operator passphrase 2026";

fn cookie_of(res: &reqwest::Response) -> Option<String> {
    let set = res.headers().get("set-cookie")?.to_str().ok()?;
    let pair = set.split(';').next()?;
    pair.strip_prefix("aries_session=").map(str::to_owned)
}

async fn with_cookie(
    app: &TestApp,
    base: &str,
    method: Method,
    path: &str,
    cookie: &str,
) -> reqwest::Response {
    match app
        .client
        .request(method, format!("{base}{path}"))
        .header("cookie", format!("aries_session={cookie}"))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("{path}: {e}"),
    }
}

async fn login(app: &TestApp, email: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    match app
        .client
        .post(app.url("/v1/platform/sessions"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("login: {e}"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[actix_web::test]
async fn operator_login_with_totp_enrolment_recovery_and_revocation() -> TestResult {
    let app = TestApp::spawn().await;
    let (peer, _peer_handle) = app.spawn_peer().await;
    let res = app
        .post_json("/v1/platform/operators", &json!({"email": "ops@aries.test", "display_name": "Ops", "password": PASSWORD, "role": "platform_operator"}))
        .await;
    assert_eq!(res.status(), 201);

    // Password alone opens a session that can only enrol the second factor.
    let res = login(&app, "ops@aries.test", json!({})).await;
    assert_eq!(res.status(), 201);
    let set_cookie = res.headers()["set-cookie"].to_str()?.to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let first = cookie_of(&res).ok_or("no cookie")?;
    assert_eq!(res.json::<Value>().await?["mfa"], false);
    assert_problem(
        with_cookie(&app, &app.base, Method::GET, "/v1/platform/tenants", &first).await,
        403,
        "mfa_required",
    )
    .await;

    // Enrol: the otpauth URI is all an authenticator app needs.
    let enrol: Value = with_cookie(
        &app,
        &app.base,
        Method::POST,
        "/v1/platform/mfa/totp",
        &first,
    )
    .await
    .json()
    .await?;
    let uri = enrol["otpauth_uri"].as_str().ok_or("no otpauth uri")?;
    assert!(
        uri.starts_with("otpauth://totp/AriesOne:ops%40aries.test?"),
        "{uri}"
    );
    let totp = Totp::from_url(uri)?;
    let code = totp.generate(now()).to_string();
    let res = app
        .client
        .post(app.url("/v1/platform/mfa/totp/confirm"))
        .header("cookie", format!("aries_session={first}"))
        .json(&json!({"code": code}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let recovery: Vec<String> = res.json::<Value>().await?["recovery_codes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(recovery.len(), 10);
    // This session passed the second factor now.
    assert_eq!(
        with_cookie(&app, &app.base, Method::GET, "/v1/platform/tenants", &first)
            .await
            .status(),
        200
    );

    // From now on the password is not enough, and a used code is not accepted again.
    assert_problem(
        login(&app, "ops@aries.test", json!({})).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        login(&app, "ops@aries.test", json!({"totp_code": code})).await,
        401,
        "unauthenticated",
    )
    .await;
    let next = totp.generate(now() + 30).to_string();
    let res = login(&app, "ops@aries.test", json!({"totp_code": next})).await;
    assert_eq!(res.status(), 201);
    let second = cookie_of(&res).ok_or("no cookie")?;
    // A recovery code works once.
    let res = login(
        &app,
        "ops@aries.test",
        json!({"recovery_code": recovery[0]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let third = cookie_of(&res).ok_or("no cookie")?;
    let third_id = res.json::<Value>().await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_problem(
        login(
            &app,
            "ops@aries.test",
            json!({"recovery_code": recovery[0]}),
        )
        .await,
        401,
        "unauthenticated",
    )
    .await;

    // The role bounds what the session may do.
    let res = app
        .client
        .post(app.url("/v1/platform/tenants"))
        .header("cookie", format!("aries_session={second}"))
        .json(&json!({"slug": "by-console", "name": "C", "plan": "starter"}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    assert_problem(
        with_cookie(
            &app,
            &app.base,
            Method::POST,
            "/v1/platform/signing-keys/rotate",
            &second,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/platform/operators",
            &second,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let audit: Value = app
        .get("/v1/platform/audit?action=tenant.created")
        .await
        .json()
        .await?;
    assert!(
        audit["data"][0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("operator:")),
        "{audit}"
    );

    // Sessions: listed, and revoking one ends it on every instance at once.
    let list: Value = with_cookie(
        &app,
        &app.base,
        Method::GET,
        "/v1/platform/sessions",
        &second,
    )
    .await
    .json()
    .await?;
    let sessions = list["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(
        with_cookie(&app, &peer, Method::GET, "/v1/platform/tenants", &third)
            .await
            .status(),
        200
    );
    let res = with_cookie(
        &app,
        &app.base,
        Method::DELETE,
        &format!("/v1/platform/sessions/{third_id}"),
        &second,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(
        with_cookie(&app, &peer, Method::GET, "/v1/platform/tenants", &third).await,
        401,
        "unauthenticated",
    )
    .await;

    // Logout clears the cookie and ends the session.
    let res = with_cookie(
        &app,
        &app.base,
        Method::POST,
        "/v1/platform/sessions/logout",
        &first,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers()["set-cookie"].to_str()?.contains("Max-Age=0"));
    assert_problem(
        with_cookie(&app, &app.base, Method::GET, "/v1/platform/tenants", &first).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/platform/tenants",
            &second
        )
        .await
        .status(),
        200
    );
    Ok(())
}

#[actix_web::test]
async fn viewers_read_and_nothing_more() -> TestResult {
    let app = TestApp::spawn().await;
    let out = app.cli(&[
        "operators",
        "create",
        "--email",
        "view@aries.test",
        "--role",
        "platform_viewer",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        password.len() >= 20,
        "the CLI prints the generated password"
    );
    let res = app
        .client
        .post(app.url("/v1/platform/sessions"))
        .json(&json!({"email": "view@aries.test", "password": password}))
        .send()
        .await?;
    let cookie = cookie_of(&res).ok_or("no cookie")?;
    let enrol: Value = with_cookie(
        &app,
        &app.base,
        Method::POST,
        "/v1/platform/mfa/totp",
        &cookie,
    )
    .await
    .json()
    .await?;
    let totp = Totp::from_url(enrol["otpauth_uri"].as_str().unwrap_or_default())?;
    let code = totp.generate(now()).to_string();
    let res = app
        .client
        .post(app.url("/v1/platform/mfa/totp/confirm"))
        .header("cookie", format!("aries_session={cookie}"))
        .json(&json!({"code": code}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(
        with_cookie(&app, &app.base, Method::GET, "/v1/platform/shards", &cookie)
            .await
            .status(),
        200
    );
    let res = app
        .client
        .post(app.url("/v1/platform/tenants"))
        .header("cookie", format!("aries_session={cookie}"))
        .json(&json!({"slug": "nope", "name": "N", "plan": "starter"}))
        .send()
        .await?;
    assert_problem(res, 403, "forbidden").await;
    // A code already used is refused (RFC 6238 §5.2: each code once).
    let res = app
        .client
        .post(app.url("/v1/platform/mfa/totp/confirm"))
        .header("cookie", format!("aries_session={cookie}"))
        .json(&json!({"code": code}))
        .send()
        .await?;
    assert_problem(res, 422, "validation_failed").await;
    Ok(())
}

#[actix_web::test]
async fn tenant_users_get_console_sessions_with_totp() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("clinic").await;
    app.create_tenant("other-co").await;
    let res = app
        .post_json("/v1/tenants/clinic/users", &json!({"email": "admin@clinic.test", "display_name": "A", "password": PASSWORD, "roles": ["admin"]}))
        .await;
    assert_eq!(res.status(), 201);
    let login_at = |extra: Value| {
        let mut body = json!({"email": "admin@clinic.test", "password": PASSWORD});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        app.client
            .post(app.url("/v1/tenants/clinic/sessions"))
            .json(&body)
            .send()
    };
    let res = login_at(json!({})).await?;
    assert_eq!(res.status(), 201);
    let cookie = cookie_of(&res).ok_or("no cookie")?;
    // Before the second factor the session may only enrol it.
    assert_problem(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/tenants/clinic/locations",
            &cookie,
        )
        .await,
        403,
        "mfa_required",
    )
    .await;
    let enrol: Value = with_cookie(
        &app,
        &app.base,
        Method::POST,
        "/v1/tenants/clinic/mfa/totp",
        &cookie,
    )
    .await
    .json()
    .await?;
    let totp = Totp::from_url(enrol["otpauth_uri"].as_str().unwrap_or_default())?;
    let res = app
        .client
        .post(app.url("/v1/tenants/clinic/mfa/totp/confirm"))
        .header("cookie", format!("aries_session={cookie}"))
        .json(&json!({"code": totp.generate(now()).to_string()}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let recovery = res.json::<Value>().await?["recovery_codes"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The session acts with the user's roles, on this tenant only.
    assert_eq!(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/tenants/clinic/locations",
            &cookie
        )
        .await
        .status(),
        200
    );
    assert_problem(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/tenants/other-co/locations",
            &cookie,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/tenants/clinic/roles",
            &cookie
        )
        .await
        .status(),
        200
    );
    let res = app
        .client
        .post(app.url("/v1/tenants/clinic/roles"))
        .header("cookie", format!("aries_session={cookie}"))
        .json(&json!({"name": "x", "permissions": ["locations:view"]}))
        .send()
        .await?;
    assert_problem(res, 403, "forbidden").await;
    // TOTP is now required to log in; a recovery code works once.
    assert_problem(login_at(json!({})).await?, 401, "unauthenticated").await;
    let res = login_at(json!({"totp_code": totp.generate(now() + 30).to_string()})).await?;
    assert_eq!(res.status(), 201);
    assert_eq!(
        login_at(json!({"recovery_code": recovery})).await?.status(),
        201
    );
    assert_problem(
        login_at(json!({"recovery_code": recovery})).await?,
        401,
        "unauthenticated",
    )
    .await;
    let list: Value = with_cookie(
        &app,
        &app.base,
        Method::GET,
        "/v1/tenants/clinic/sessions",
        &cookie,
    )
    .await
    .json()
    .await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(3));
    // Revoking another of the user's sessions ends it.
    let other = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].clone())
        .unwrap_or_default();
    let url = format!(
        "/v1/tenants/clinic/sessions/{}",
        other.as_str().unwrap_or("")
    );
    assert_eq!(
        with_cookie(&app, &app.base, Method::DELETE, &url, &cookie)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        with_cookie(&app, &app.base, Method::DELETE, &url, &cookie).await,
        404,
        "not_found",
    )
    .await;
    let list: Value = with_cookie(
        &app,
        &app.base,
        Method::GET,
        "/v1/tenants/clinic/sessions",
        &cookie,
    )
    .await
    .json()
    .await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    // Disabling the user ends what the session can do (within the credential cache's delay).
    let user: Value = app.get("/v1/tenants/clinic/users").await.json().await?;
    let id = user["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        app.req(
            Method::POST,
            &format!("/v1/tenants/clinic/users/{id}/disable")
        )
        .send()
        .await?
        .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_problem(
        with_cookie(
            &app,
            &app.base,
            Method::GET,
            "/v1/tenants/clinic/locations",
            &cookie,
        )
        .await,
        401,
        "unauthenticated",
    )
    .await;
    let res = with_cookie(
        &app,
        &app.base,
        Method::POST,
        "/v1/tenants/clinic/sessions/logout",
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    Ok(())
}
