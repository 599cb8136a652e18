//! `aries`: see `aries --help`. Everything lives in the library; this only parses and runs.

use clap::Parser as _;

#[actix_web::main]
async fn main() {
    let code = match aries_http::cli::run(aries_http::cli::Cli::parse()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aries: {e:#}");
            1
        }
    };
    // Exit here rather than by dropping the runtime: background tasks (shard probes, broker links)
    // hold pooled connections whose destructors need the runtime that is being torn down.
    std::process::exit(code)
}
