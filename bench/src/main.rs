//! `aries-bench-bare`: the ceiling for `make bench`.
//!
//! A bare actix-web server with one route, `GET /v1/tenants/{tenant}/locations/{id}`, that answers
//! every request with the same JSON body the real stack returned for that location. The body is read
//! once at start; a request does no I/O, no auth, no database — only actix-web's own work (accept,
//! parse, route, extract the path, write the response). Comparing the stack with this shows what
//! our layers cost on top of the framework.
//!
//! Usage: `aries-bench-bare [BIND] [BODY_FILE]`
//! (or `ARIES_BENCH_BIND`, `ARIES_BENCH_BODY`; defaults `127.0.0.1:18081` and `target/bench/location.json`).

use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};

const DEFAULT_BIND: &str = "127.0.0.1:18081";
const DEFAULT_BODY: &str = "target/bench/location.json";

/// The one route. The path is extracted (as the stack's handler does) and then ignored.
async fn location(body: web::Data<Bytes>, _path: web::Path<(String, String)>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        // `Bytes` is reference-counted: this clone copies no data.
        .body(body.get_ref().clone())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args
        .next()
        .or_else(|| std::env::var("ARIES_BENCH_BIND").ok())
        .unwrap_or_else(|| DEFAULT_BIND.to_owned());
    let body_path = args
        .next()
        .or_else(|| std::env::var("ARIES_BENCH_BODY").ok())
        .unwrap_or_else(|| DEFAULT_BODY.to_owned());

    let body = std::fs::read(&body_path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot read body file {body_path}: {e}"))
    })?;
    // Refuse to measure with a body that is not JSON (e.g. an error page saved by mistake).
    serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{body_path} is not JSON: {e}"),
        )
    })?;
    let body = web::Data::new(Bytes::from(body));

    eprintln!(
        "[aries-bench-bare] serving {} bytes from {body_path} on http://{bind}/v1/tenants/{{tenant}}/locations/{{id}}",
        body.len()
    );
    HttpServer::new(move || {
        App::new().app_data(body.clone()).route(
            "/v1/tenants/{tenant}/locations/{id}",
            web::get().to(location),
        )
    })
    .bind(&bind)?
    .run()
    .await
}
