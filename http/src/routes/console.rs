//! The web console's assets (`/console/…`), built into the binary from `http/console/` so the pages
//! work offline and nothing is fetched from another host. Every asset carries its content type, a
//! strong `ETag` (SHA-256 of its bytes; `If-None-Match` answers 304) with `Cache-Control: no-cache`
//! (always revalidated, so a new binary's pages are used at once), and the HTML a strict
//! Content-Security-Policy: same-origin scripts, styles and connections only, no inline script.

use crate::error::{ApiError, ErrorCode};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::OnceLock;

/// The policy of every console response: nothing but this origin, no inline script or style
/// element, no framing, no plugins, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// The name under `/console/`.
    name: &'static str,
    /// `Content-Type` it is served with.
    content_type: &'static str,
    /// The file's bytes, compiled in.
    body: &'static [u8],
}

/// Every file of `http/console/`; a name not listed here is 404.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/api.js"),
    },
    Asset {
        name: "ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/ui.js"),
    },
    Asset {
        name: "operator.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/operator.js"),
    },
    Asset {
        name: "tenant.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/tenant.js"),
    },
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/dashboard.js"),
    },
    Asset {
        name: "moves.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/moves.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../console/favicon.svg"),
    },
];

/// The ETag of each asset, in `ASSETS` order, computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let sum = <sha2::Sha256 as sha2::Digest>::digest(a.body);
                format!("\"{}\"", hex::encode(&sum[..16]))
            })
            .collect()
    })
}

/// `GET /console` → `/console/`.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

/// `GET /console/` and `GET /console/{file}`.
pub async fn asset(
    req: HttpRequest,
    path: Option<web::Path<String>>,
) -> Result<HttpResponse, ApiError> {
    let name = path.map(|p| p.into_inner()).unwrap_or_default();
    let name = if name.is_empty() {
        "index.html"
    } else {
        name.as_str()
    };
    let Some((i, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.name == name) else {
        return Err(ApiError::new(ErrorCode::NotFound, "no such console file"));
    };
    let etag = etags().get(i).cloned().unwrap_or_default();
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY));
    if fresh {
        return Ok(res.finish());
    }
    Ok(res
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .body(asset.body))
}
