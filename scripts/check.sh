#!/usr/bin/env bash
# `make check`: formatting and lints, as CI runs them (warnings are errors).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARIES_ROOT"

log "cargo fmt --all --check"
cargo fmt --all --check || die "formatting differs: run 'make fmt'"
log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems"
log "check passed"
