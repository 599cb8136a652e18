//! Authentication and authorization: OAuth2 grants through a real OAuth2 client library, tokens
//! verified through the published JWKS alone, refresh-token reuse detection, key rotation, roles,
//! the foreign-credential walk over every tenant route, and revocation across two instances.

use crate::helpers::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    ClientId, ClientSecret, RefreshToken, RequestTokenError, ResourceOwnerPassword,
    ResourceOwnerUsername, TokenResponse, TokenUrl,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

/// Creates a user with `roles` (through the tenant's owner key) and returns its id.
async fn create_user(app: &TestApp, slug: &str, email: &str, roles: &[&str]) -> String {
    let res = app
        .post_json(
            &format!("/v1/tenants/{slug}/users"),
            &json!({"email": email, "display_name": email, "password": PASSWORD, "roles": roles}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "creating user {email}");
    let user: Value = res.json().await.unwrap_or_default();
    user["id"].as_str().unwrap_or_default().to_owned()
}

fn token_url(app: &TestApp, slug: &str) -> String {
    app.url(&format!("/v1/tenants/{slug}/oauth/token"))
}

/// An HTTP client for the OAuth2 library (no redirects, as its docs require).
fn oauth_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Verifies a token with nothing but the JWKS document, as a third party would.
async fn verify_with_jwks(app: &TestApp, token: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let jwks: JwkSet = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk)?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&["aries-api"]);
    v.set_issuer(&["aries"]);
    Ok(jsonwebtoken::decode::<Value>(token, &key, &v)?.claims)
}

async fn get_with(app: &TestApp, base: &str, path: &str, bearer: &str) -> reqwest::Response {
    match app
        .client
        .get(format!("{base}{path}"))
        .bearer_auth(bearer)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

#[actix_web::test]
async fn password_and_refresh_grants_with_reuse_detection() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("grants").await;
    let user_id = create_user(&app, "grants", "Nurse@Example.com", &["intake"]).await;
    let http = oauth_http();
    let client = BasicClient::new(ClientId::new("console".into()))
        .set_token_uri(TokenUrl::new(token_url(&app, "grants"))?);

    // Password grant through the oauth2 crate (login names are case-insensitive).
    let token = client
        .exchange_password(
            &ResourceOwnerUsername::new("nurse@example.com".into()),
            &ResourceOwnerPassword::new(PASSWORD.into()),
        )
        .request_async(&http)
        .await?;
    let access = token.access_token().secret().clone();
    let refresh1 = token
        .refresh_token()
        .ok_or("no refresh token")?
        .secret()
        .clone();
    assert!(
        token
            .expires_in()
            .is_some_and(|d| d > Duration::from_secs(60))
    );

    // Verified with the JWKS alone; claims as API.md lists them.
    let claims = verify_with_jwks(&app, &access).await?;
    assert_eq!(claims["sub"], user_id);
    assert_eq!(claims["tenant"], "grants");
    assert_eq!(claims["tid"], tenant["id"]);
    assert_eq!(claims["roles"], json!(["intake"]));
    for c in ["iss", "aud", "exp", "iat", "jti", "scope"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }
    // The token works on the API, within the role's permissions.
    assert_eq!(
        get_with(&app, &app.base, "/v1/tenants/grants/locations", &access)
            .await
            .status(),
        200
    );
    assert_problem(
        get_with(&app, &app.base, "/v1/tenants/grants/api-keys", &access).await,
        403,
        "forbidden",
    )
    .await;

    // Wrong password and unknown user look the same.
    for (u, p) in [
        ("nurse@example.com", "wrong password!!"),
        ("nobody@example.com", PASSWORD),
    ] {
        let err = client
            .exchange_password(
                &ResourceOwnerUsername::new(u.into()),
                &ResourceOwnerPassword::new(p.into()),
            )
            .request_async(&http)
            .await;
        assert!(
            matches!(err, Err(RequestTokenError::ServerResponse(ref r)) if *r.error() == BasicErrorResponseType::InvalidGrant),
            "{err:?}"
        );
    }

    // Refresh rotates the token.
    let rotated = client
        .exchange_refresh_token(&RefreshToken::new(refresh1.clone()))
        .request_async(&http)
        .await?;
    let refresh2 = rotated
        .refresh_token()
        .ok_or("no rotated refresh token")?
        .secret()
        .clone();
    assert_ne!(refresh1, refresh2);
    verify_with_jwks(&app, rotated.access_token().secret()).await?;
    // Presenting the rotated-out token again is theft: refused, and the whole family dies.
    let reuse = client
        .exchange_refresh_token(&RefreshToken::new(refresh1))
        .request_async(&http)
        .await;
    assert!(
        matches!(reuse, Err(RequestTokenError::ServerResponse(ref r)) if *r.error() == BasicErrorResponseType::InvalidGrant)
    );
    let after = client
        .exchange_refresh_token(&RefreshToken::new(refresh2))
        .request_async(&http)
        .await;
    assert!(
        after.is_err(),
        "the family's newest token must be revoked too"
    );

    // Errors are RFC 6749 §5.2 JSON.
    let res = app
        .client
        .post(token_url(&app, "grants"))
        .form(&[("grant_type", "magic")])
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await?["error"],
        "unsupported_grant_type"
    );
    let res = app
        .client
        .post(token_url(&app, "grants"))
        .json(&json!({"grant_type": "password"}))
        .send()
        .await?;
    assert_eq!(res.json::<Value>().await?["error"], "invalid_request");
    Ok(())
}

#[actix_web::test]
async fn client_credentials_grant_and_client_revocation() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("integr").await;
    let res = app
        .post_json(
            "/v1/tenants/integr/oauth-clients",
            &json!({"name": "shipping", "roles": ["warehouse"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await?;
    let (id, secret) = (
        created["client_id"].as_str().unwrap_or(""),
        created["client_secret"].as_str().unwrap_or(""),
    );
    let listed: Value = app
        .get("/v1/tenants/integr/oauth-clients")
        .await
        .json()
        .await?;
    assert!(
        listed["data"][0].get("client_secret").is_none(),
        "secrets are shown once"
    );

    let http = oauth_http();
    let client = BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_token_uri(TokenUrl::new(token_url(&app, "integr"))?);
    let token = client
        .exchange_client_credentials()
        .request_async(&http)
        .await?;
    assert!(token.refresh_token().is_none());
    let claims = verify_with_jwks(&app, token.access_token().secret()).await?;
    assert_eq!(
        (claims["sub"].as_str(), claims["sub_type"].as_str()),
        (Some(id), Some("client"))
    );
    let access = token.access_token().secret().clone();
    assert_eq!(
        get_with(&app, &app.base, "/v1/tenants/integr/locations", &access)
            .await
            .status(),
        200
    );

    let wrong = BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new("cs_wrong".into()))
        .set_token_uri(TokenUrl::new(token_url(&app, "integr"))?);
    let err = wrong
        .exchange_client_credentials()
        .request_async(&http)
        .await;
    assert!(
        matches!(err, Err(RequestTokenError::ServerResponse(ref r)) if *r.error() == BasicErrorResponseType::InvalidClient)
    );

    // Revoking the client kills its live tokens too (after the credential cache's delay).
    assert_eq!(
        app.req(
            Method::DELETE,
            &format!("/v1/tenants/integr/oauth-clients/{id}")
        )
        .send()
        .await?
        .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_problem(
        get_with(&app, &app.base, "/v1/tenants/integr/locations", &access).await,
        401,
        "unauthenticated",
    )
    .await;
    assert!(
        client
            .exchange_client_credentials()
            .request_async(&http)
            .await
            .is_err()
    );
    Ok(())
}

#[actix_web::test]
async fn key_rotation_keeps_live_tokens_valid() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("rotor").await;
    create_user(&app, "rotor", "ops@example.com", &["viewer"]).await;
    let login = || async {
        let res = app
            .client
            .post(token_url(&app, "rotor"))
            .form(&[
                ("grant_type", "password"),
                ("username", "ops@example.com"),
                ("password", PASSWORD),
            ])
            .send()
            .await?;
        let body: Value = res.json().await?;
        Ok::<String, Box<dyn std::error::Error>>(
            body["access_token"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let before = login().await?;
    let old_kid = jsonwebtoken::decode_header(&before)?.kid;
    let res = app
        .req(Method::POST, "/v1/platform/signing-keys/rotate")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let new_kid: Value = res.json().await?;
    let after = login().await?;
    assert_eq!(
        jsonwebtoken::decode_header(&after)?.kid.as_deref(),
        new_kid["kid"].as_str()
    );
    assert_ne!(old_kid.as_deref(), new_kid["kid"].as_str());
    // Both keys are published; both tokens verify and work.
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    for t in [&before, &after] {
        verify_with_jwks(&app, t).await?;
        assert_eq!(
            get_with(&app, &app.base, "/v1/tenants/rotor/locations", t)
                .await
                .status(),
            200
        );
    }
    // A token signed by a key we never published is refused.
    let forged = {
        let seed: [u8; 32] = rand::random();
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)?;
        let claims = verify_with_jwks(&app, &after).await?;
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = new_kid["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
        )?
    };
    assert_problem(
        get_with(&app, &app.base, "/v1/tenants/rotor/locations", &forged).await,
        401,
        "unauthenticated",
    )
    .await;
    Ok(())
}

#[actix_web::test]
async fn each_role_gets_what_it_should_and_nothing_more() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("rbac").await;
    let loc = app.create_location("rbac", "MAIN").await;
    let loc_path = format!(
        "/v1/tenants/rbac/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );
    // (role, may view locations, may create locations, may delete a location, may list API keys,
    //  may create users, may create roles)
    let table = [
        ("owner", true, true, true, true, true, true),
        ("admin", true, true, true, true, true, false),
        ("billing", true, false, false, false, false, false),
        ("intake", true, false, false, false, false, false),
        ("warehouse", true, false, false, false, false, false),
        ("viewer", true, false, false, false, false, false),
    ];
    let mut failures = Vec::new();
    for (i, (role, view, create, delete, keys, users, roles)) in table.into_iter().enumerate() {
        let res = app
            .post_json(
                "/v1/tenants/rbac/api-keys",
                &json!({"name": role, "roles": [role]}),
            )
            .await;
        assert_eq!(res.status(), 201, "key for {role}");
        let key = res.json::<Value>().await?["secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let call = |method: Method, path: String, body: Option<Value>| {
            let mut req = app.client.request(method, app.url(&path)).bearer_auth(&key);
            if let Some(b) = body {
                req = req.json(&b);
            }
            req.send()
        };
        let checks = [
            ("view locations", view, call(Method::GET, "/v1/tenants/rbac/locations".into(), None).await?.status()),
            ("create location", create, call(Method::POST, "/v1/tenants/rbac/locations".into(), Some(location_body(&format!("R{i}")))).await?.status()),
            ("list api keys", keys, call(Method::GET, "/v1/tenants/rbac/api-keys".into(), None).await?.status()),
            ("create user", users, call(Method::POST, "/v1/tenants/rbac/users".into(), Some(json!({"email": format!("u{i}@x.co"), "display_name": "U", "roles": ["viewer"]}))).await?.status()),
            ("create role", roles, call(Method::POST, "/v1/tenants/rbac/roles".into(), Some(json!({"name": format!("custom-{i}"), "permissions": ["locations:view"]}))).await?.status()),
        ];
        for (what, allowed, status) in checks {
            let ok = if allowed {
                status.is_success()
            } else {
                status == StatusCode::FORBIDDEN
            };
            if !ok {
                failures.push(format!("{role} / {what}: {status}"));
            }
        }
        // Deleting the shared location is tried only by roles that must be refused (an allowed
        // delete would remove it for the next rows); the owner deletes it at the end.
        if !delete {
            let status = call(Method::DELETE, loc_path.clone(), None).await?.status();
            if status != StatusCode::FORBIDDEN {
                failures.push(format!("{role} / delete location: {status}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        app.req(Method::DELETE, &loc_path).send().await?.status(),
        StatusCode::NO_CONTENT
    );
    // Nobody may hand out more than they hold: an admin cannot mint an owner key.
    let admin_key = app
        .post_json(
            "/v1/tenants/rbac/api-keys",
            &json!({"name": "a", "roles": ["admin"]}),
        )
        .await
        .json::<Value>()
        .await?;
    let res = app
        .client
        .post(app.url("/v1/tenants/rbac/api-keys"))
        .bearer_auth(admin_key["secret"].as_str().unwrap_or_default())
        .json(&json!({"name": "escalate", "roles": ["owner"]}))
        .send()
        .await?;
    assert_problem(res, 403, "forbidden").await;
    // Custom roles grant exactly their permissions.
    let res = app
        .post_json(
            "/v1/tenants/rbac/roles",
            &json!({"name": "driver", "permissions": ["locations:view", "deliveries:process"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let driver = app
        .post_json(
            "/v1/tenants/rbac/api-keys",
            &json!({"name": "d", "roles": ["driver"]}),
        )
        .await
        .json::<Value>()
        .await?;
    let driver_key = driver["secret"].as_str().unwrap_or_default();
    assert_eq!(
        get_with(&app, &app.base, "/v1/tenants/rbac/locations", driver_key)
            .await
            .status(),
        200
    );
    assert_problem(
        get_with(&app, &app.base, "/v1/tenants/rbac/users", driver_key).await,
        403,
        "forbidden",
    )
    .await;
    let res = app
        .post_json(
            "/v1/tenants/rbac/api-keys",
            &json!({"name": "x", "roles": ["no-such-role"]}),
        )
        .await;
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "roles[0]");
    Ok(())
}

#[actix_web::test]
async fn users_limited_to_locations_see_only_those() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("scoped").await;
    let north = app.create_location("scoped", "NORTH").await;
    let south = app.create_location("scoped", "SOUTH").await;
    let res = app
        .post_json(
            "/v1/tenants/scoped/users",
            &json!({"email": "n@x.co", "display_name": "N", "password": PASSWORD, "roles": ["admin"], "location_ids": [north["id"]]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .post(token_url(&app, "scoped"))
        .form(&[
            ("grant_type", "password"),
            ("username", "n@x.co"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let token = res.json::<Value>().await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let list: Value = get_with(&app, &app.base, "/v1/tenants/scoped/locations", &token)
        .await
        .json()
        .await?;
    let codes: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["code"].as_str())
        .collect();
    assert_eq!(codes, ["NORTH"]);
    let south_path = format!(
        "/v1/tenants/scoped/locations/{}",
        south["id"].as_str().unwrap_or("")
    );
    assert_problem(
        get_with(&app, &app.base, &south_path, &token).await,
        404,
        "not_found",
    )
    .await;
    let north_path = format!(
        "/v1/tenants/scoped/locations/{}",
        north["id"].as_str().unwrap_or("")
    );
    assert_eq!(
        get_with(&app, &app.base, &north_path, &token)
            .await
            .status(),
        200
    );
    Ok(())
}

#[actix_web::test]
async fn api_keys_are_shown_once_listed_by_prefix_and_revocable() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("keys").await;
    let res = app
        .post_json(
            "/v1/tenants/keys/api-keys",
            &json!({"name": "export", "roles": ["viewer"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await?;
    let secret = created["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("ak_keys."));
    assert!(secret.starts_with(created["prefix"].as_str().unwrap_or("?")));
    assert_eq!(
        get_with(&app, &app.base, "/v1/tenants/keys/locations", &secret)
            .await
            .status(),
        200
    );
    let list: Value = app.get("/v1/tenants/keys/api-keys").await.json().await?;
    let listed = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["id"] == created["id"])
        .cloned()
        .unwrap_or_default();
    assert!(
        listed.get("secret").is_none() && listed["last_used_at"].is_string(),
        "{listed}"
    );
    let res = app
        .req(
            Method::DELETE,
            &format!(
                "/v1/tenants/keys/api-keys/{}",
                created["id"].as_str().unwrap_or("")
            ),
        )
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    // Revocation through this instance's actor takes effect at once here.
    assert_problem(
        get_with(&app, &app.base, "/v1/tenants/keys/locations", &secret).await,
        401,
        "unauthenticated",
    )
    .await;
    // A key-shaped string that is not a key, and garbage, are 401.
    for bad in [
        "ak_keys.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not-a-token",
        "a.b.c",
    ] {
        assert_problem(
            get_with(&app, &app.base, "/v1/tenants/keys/locations", bad).await,
            401,
            "unauthenticated",
        )
        .await;
    }
    Ok(())
}

/// Fills an OpenAPI path template with real ids of tenant `slug`.
fn fill(template: &str, slug: &str, ids: &std::collections::HashMap<&str, String>) -> String {
    let mut path = template.replace("{tenant}", slug);
    for (name, value) in ids {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    path
}

#[actix_web::test]
async fn a_foreign_credential_gets_404_on_every_tenant_route() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("tenant-a").await;
    let b_tenant = app.create_tenant("tenant-b").await;
    // B has one of everything, so the walk uses ids that exist.
    let loc = app.create_location("tenant-b", "MAIN").await;
    let user = create_user(&app, "tenant-b", "b@x.co", &["viewer"]).await;
    let key: Value = app
        .post_json(
            "/v1/tenants/tenant-b/api-keys",
            &json!({"name": "b", "roles": ["viewer"]}),
        )
        .await
        .json()
        .await?;
    let client: Value = app
        .post_json(
            "/v1/tenants/tenant-b/oauth-clients",
            &json!({"name": "b", "roles": ["viewer"]}),
        )
        .await
        .json()
        .await?;
    app.post_json(
        "/v1/tenants/tenant-b/roles",
        &json!({"name": "b-role", "permissions": ["locations:view"]}),
    )
    .await;
    let b_payer: Value = app
        .post_json(
            "/v1/tenants/tenant-b/payers",
            &json!({"name": "B Payer", "payer_type": "commercial"}),
        )
        .await
        .json()
        .await?;
    let b_patient: Value = app
        .post_json(
            "/v1/tenants/tenant-b/patients",
            &json!({"first_name": "B", "last_name": "B", "date_of_birth": "1970-01-01",
                    "policies": [{"payer_id": b_payer["id"], "policy_number": "1"}]}),
        )
        .await
        .json()
        .await?;
    // One of each inventory and order resource, so every `{..._id}` of the walk names a real row.
    let b = "/v1/tenants/tenant-b";
    let b_warehouse: Value = app
        .post_json(
            &format!("{b}/warehouses"),
            &json!({"code": "w", "name": "W"}),
        )
        .await
        .json()
        .await?;
    let b_item: Value = app
        .post_json(
            &format!("{b}/items"),
            &json!({"code": "i", "name": "I", "serialized": true}),
        )
        .await
        .json()
        .await?;
    let b_serial: Value = app
        .post_json(
            &format!("{b}/serials"),
            &json!({"item_id": b_item["id"], "serial_number": "S1", "warehouse_id": b_warehouse["id"]}),
        )
        .await
        .json()
        .await?;
    let b_prescriber: Value = app
        .post_json(
            &format!("{b}/prescribers"),
            &json!({"first_name": "P", "last_name": "Q", "npi": "1234567893"}),
        )
        .await
        .json()
        .await?;
    let b_list: Value = app
        .post_json(&format!("{b}/price-lists"), &json!({"name": "B list"}))
        .await
        .json()
        .await?;
    let b_rule: Value = app
        .post_json(
            &format!("{b}/notifications/rules"),
            &json!({"name": "B rule", "event_types": ["*"], "recipients": ["b@x.co"]}),
        )
        .await
        .json()
        .await?;
    app.req(
        Method::PUT,
        &format!(
            "{b}/price-lists/{}/items/{}",
            b_list["id"].as_str().unwrap_or_default(),
            b_item["id"].as_str().unwrap_or_default()
        ),
    )
    .json(&json!({"hcpcs": "E0601", "rent_allowable": "1.00"}))
    .send()
    .await?;
    let b_order: Value = app
        .post_json(
            &format!("{b}/orders"),
            &json!({"patient_id": b_patient["id"], "lines": [{"item_id": b_item["id"], "price_list_id": b_list["id"]}]}),
        )
        .await
        .json()
        .await?;
    let id_of = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    // A billing run (nothing due), and an invoice with one line written as a run would.
    let b_run: Value = app
        .post_json(
            &format!("{b}/billing/runs"),
            &json!({"as_of": "2026-01-01"}),
        )
        .await
        .json()
        .await?;
    let (b_invoice, b_invoice_line) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    {
        let pool = app.shard_pool(TestApp::shard_index(&b_tenant));
        let mut conn = pool.acquire().await?;
        sqlx::query("select set_config('aries.tenant_id', $1, false)")
            .bind(id_of(&b_tenant))
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "insert into invoice (tenant_id, invoice_id, invoice_number, order_id, patient_id, billing_month, flags, \
             invoice_date, place_of_service, accept_assignment, billing_run_id) \
             values ($1::uuid, $2, 'I000001', $3::uuid, $4::uuid, 1, 0, '2026-01-01', '12', true, $5::uuid)",
        )
        .bind(id_of(&b_tenant))
        .bind(b_invoice)
        .bind(id_of(&b_order))
        .bind(id_of(&b_patient))
        .bind(id_of(&b_run))
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "insert into invoice_line (tenant_id, invoice_line_id, invoice_id, order_line_id, billing_month, dos_from, \
             dos_to, hcpcs, quantity, billable, allowable, rule_version) \
             values ($1::uuid, $2, $3, $4::uuid, 1, '2026-01-01', '2026-01-31', 'E0601', 1, 1, 1, 'dmepos-2006')",
        )
        .bind(id_of(&b_tenant))
        .bind(b_invoice_line)
        .bind(b_invoice)
        .bind(id_of(&b_order["lines"][0]))
        .execute(&mut *conn)
        .await?;
        sqlx::query("select set_config('aries.tenant_id', '', false)")
            .execute(&mut *conn)
            .await?;
    }
    // B's webhook endpoint and one delivery in its log.
    let b_webhook = post_created(
        &app,
        "/v1/tenants/tenant-b/webhooks",
        &json!({"url": "https://hooks.example.com/b", "event_types": ["*"]}),
    )
    .await;
    let b_event = uuid::Uuid::now_v7();
    {
        let pool = app.shard_pool(TestApp::shard_index(&b_tenant));
        let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&b_tenant)).await?;
        aries_tenants::webhooks::claim_deliveries(
            &mut tx,
            TestApp::tenant_id(&b_tenant),
            b_event,
            "order.approved",
            1,
        )
        .await?;
        tx.commit().await?;
    }
    let ids: std::collections::HashMap<&str, String> = [
        (
            "location_id",
            loc["id"].as_str().unwrap_or_default().to_owned(),
        ),
        ("user_id", user),
        (
            "api_key_id",
            key["id"].as_str().unwrap_or_default().to_owned(),
        ),
        (
            "client_id",
            client["client_id"].as_str().unwrap_or_default().to_owned(),
        ),
        ("role", "b-role".to_owned()),
        (
            "patient_id",
            b_patient["id"].as_str().unwrap_or_default().to_owned(),
        ),
        (
            "policy_id",
            b_patient["policies"][0]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        ("code", "E0601".to_owned()),
        ("payer_id", id_of(&b_payer)),
        ("prescriber_id", id_of(&b_prescriber)),
        ("warehouse_id", id_of(&b_warehouse)),
        ("item_id", id_of(&b_item)),
        ("serial_id", id_of(&b_serial)),
        ("report", "serial-locations".to_owned()),
        ("price_list_id", id_of(&b_list)),
        ("order_id", id_of(&b_order)),
        ("line_id", id_of(&b_order["lines"][0])),
        ("run_id", id_of(&b_run)),
        ("invoice_id", b_invoice.to_string()),
        ("invoice_line_id", b_invoice_line.to_string()),
        ("endpoint_id", id_of(&b_webhook)),
        ("event_id", b_event.to_string()),
        ("rule_id", id_of(&b_rule)),
    ]
    .into_iter()
    .collect();
    // A's credentials: its owner API key and an owner user's access token.
    create_user(&app, "tenant-a", "a@x.co", &["owner"]).await;
    let res = app
        .client
        .post(token_url(&app, "tenant-a"))
        .form(&[
            ("grant_type", "password"),
            ("username", "a@x.co"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let a_token = res.json::<Value>().await?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let a_key = app.tenant_key("tenant-a").unwrap_or_default();

    let doc: Value = app.get("/openapi.json").await.json().await?;
    let mut walked = 0;
    let mut failures = Vec::new();
    for (template, ops) in doc["paths"].as_object().into_iter().flatten() {
        // Tenant routes authenticated by bearer credentials (the token endpoint takes client credentials).
        // Session and MFA routes authenticate by cookie (tested in `console`).
        if !template.starts_with("/v1/tenants/{tenant}/")
            || template.contains("/oauth/")
            || template.contains("/sessions")
            || template.contains("/mfa/")
        {
            continue;
        }
        for method in ops
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let m = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let path = fill(template, "tenant-b", &ids);
            assert!(
                !path.contains('{') && !path.contains("//"),
                "{template}: give the walk a real id of tenant B for each parameter ({path})"
            );
            for (label, credential) in [("A's API key", &a_key), ("A's access token", &a_token)] {
                let res = app
                    .client
                    .request(m.clone(), app.url(&path))
                    .bearer_auth(credential)
                    .json(&json!({}))
                    .send()
                    .await?;
                let status = res.status();
                let body: Value = res.json().await.unwrap_or_default();
                if status != StatusCode::NOT_FOUND || body["code"] != "not_found" {
                    failures.push(format!("{method} {path} with {label}: {status} {body}"));
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= 30, "only {walked} calls: the walk missed routes");
    assert!(failures.is_empty(), "{failures:#?}");
    // B's data is untouched.
    let list: Value = app
        .get("/v1/tenants/tenant-b/locations")
        .await
        .json()
        .await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[actix_web::test]
async fn revocation_reaches_another_instance_within_a_second() -> TestResult {
    let app = TestApp::spawn().await;
    let (peer, _peer_handle) = app.spawn_peer().await;
    app.create_tenant("revoke").await;
    let user = create_user(&app, "revoke", "r@x.co", &["viewer"]).await;
    let res = app
        .client
        .post(token_url(&app, "revoke"))
        .form(&[
            ("grant_type", "password"),
            ("username", "r@x.co"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let body: Value = res.json().await?;
    let access = body["access_token"].as_str().unwrap_or_default().to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key: Value = app
        .post_json(
            "/v1/tenants/revoke/api-keys",
            &json!({"name": "k", "roles": ["viewer"]}),
        )
        .await
        .json()
        .await?;
    let key_secret = key["secret"].as_str().unwrap_or_default().to_owned();
    // Both credentials work on the peer.
    assert_eq!(
        get_with(&app, &peer, "/v1/tenants/revoke/locations", &access)
            .await
            .status(),
        200
    );
    assert_eq!(
        get_with(&app, &peer, "/v1/tenants/revoke/locations", &key_secret)
            .await
            .status(),
        200
    );

    // Disable the user and revoke the key through the first instance...
    assert_eq!(
        app.req(
            Method::POST,
            &format!("/v1/tenants/revoke/users/{user}/disable")
        )
        .send()
        .await?
        .status(),
        200
    );
    let key_path = format!(
        "/v1/tenants/revoke/api-keys/{}",
        key["id"].as_str().unwrap_or("")
    );
    assert_eq!(
        app.req(Method::DELETE, &key_path).send().await?.status(),
        200
    );
    // ...and one second later the peer refuses both, and the refresh token is dead everywhere.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_problem(
        get_with(&app, &peer, "/v1/tenants/revoke/locations", &access).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        get_with(&app, &peer, "/v1/tenants/revoke/locations", &key_secret).await,
        401,
        "unauthenticated",
    )
    .await;
    let res = app
        .client
        .post(format!("{peer}/v1/tenants/revoke/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(res.json::<Value>().await?["error"], "invalid_grant");
    // Logging out (revoking a refresh family) through the peer is immediate on the first instance.
    assert_eq!(
        app.req(
            Method::POST,
            &format!("/v1/tenants/revoke/users/{user}/enable")
        )
        .send()
        .await?
        .status(),
        200
    );
    let res = app
        .client
        .post(token_url(&app, "revoke"))
        .form(&[
            ("grant_type", "password"),
            ("username", "r@x.co"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let refresh = res.json::<Value>().await?["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let res = app
        .client
        .post(format!("{peer}/v1/tenants/revoke/oauth/revoke"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(token_url(&app, "revoke"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(res.json::<Value>().await?["error"], "invalid_grant");
    Ok(())
}

#[actix_web::test]
async fn user_management() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("staff").await;
    let id = create_user(&app, "staff", "ann@x.co", &["billing"]).await;
    let dup = app
        .post_json(
            "/v1/tenants/staff/users",
            &json!({"email": "ANN@x.co", "display_name": "A", "roles": ["viewer"]}),
        )
        .await;
    assert_problem(dup, 409, "user_email_taken").await;
    let weak = app.post_json("/v1/tenants/staff/users", &json!({"email": "b@x.co", "display_name": "B", "password": "short", "roles": ["viewer"]})).await;
    let body = assert_problem(weak, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password");
    let user: Value = app
        .get(&format!("/v1/tenants/staff/users/{id}"))
        .await
        .json()
        .await?;
    assert_eq!(
        (user["email"].as_str(), user["has_password"].as_bool()),
        (Some("ann@x.co"), Some(true))
    );
    assert!(user.get("password_hash").is_none());
    // Reset: the old password stops working, the new one works.
    let res = app
        .post_json(
            &format!("/v1/tenants/staff/users/{id}/password"),
            &json!({"password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let login = |pw: &'static str| {
        app.client
            .post(token_url(&app, "staff"))
            .form(&[
                ("grant_type", "password"),
                ("username", "ann@x.co"),
                ("password", pw),
            ])
            .send()
    };
    assert_eq!(login(PASSWORD).await?.status(), 400);
    assert_eq!(login("a brand new passphrase").await?.status(), 200);
    let list: Value = app.get("/v1/tenants/staff/users").await.json().await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[actix_web::test]
async fn signing_keys_rotate_on_schedule_once_across_instances() -> TestResult {
    let app = TestApp::spawn().await;
    let keys = app.app_state.keys.clone();
    let day = Duration::from_secs(24 * 3600);
    // A fresh key is not rotated.
    assert!(!keys.rotate_if_older(day).await?);
    // Age the signing key by two days: two instances checking at once rotate it once.
    sqlx::query(
        "update signing_key set created_at = now() - interval '2 days' where superseded_at is null",
    )
    .execute(app.app_state.directory.catalog().pool())
    .await?;
    let (a, b) = tokio::join!(keys.rotate_if_older(day), keys.rotate_if_older(day));
    assert_eq!([a?, b?].iter().filter(|r| **r).count(), 1);
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        jwks["keys"].as_array().map(Vec::len),
        Some(2),
        "the old key stays published"
    );
    Ok(())
}
