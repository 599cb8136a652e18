//! The docs page in a real browser (Debian's headless Chromium): Swagger UI must render every
//! operation with every host but loopback unresolvable, proving nothing comes from a CDN.

use crate::helpers::*;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The page's DOM after its scripts ran, as Chromium sees it.
fn rendered_dom(url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let profile = std::env::temp_dir().join(format!(
        "aries-chromium-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            // Any host other than loopback fails to resolve: a CDN reference would break the page.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()?;
    let _ = std::fs::remove_dir_all(&profile);
    if !out.status.success() {
        return Err(format!("chromium failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[actix_web::test]
async fn swagger_ui_renders_offline_in_chromium() -> TestResult {
    let app = TestApp::spawn().await;
    let url = app.url("/docs/");
    let dom = tokio::task::spawn_blocking(move || rendered_dom(&url).map_err(|e| e.to_string()))
        .await??;
    assert!(
        dom.contains("AriesOne API"),
        "the title did not render:\n{dom}"
    );
    for path in [
        "/v1/platform/tenants",
        "/v1/platform/tenants/{tenant}/suspend",
        "/v1/platform/shards",
        "/v1/tenants/{tenant}/locations",
        "/v1/tenants/{tenant}/locations/{location_id}",
        "/health/ready",
    ] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "operation {path} did not render"
        );
    }
    Ok(())
}
