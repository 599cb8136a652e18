//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds the files at compile
//! time, and cargo does not watch the folders a macro reads (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
