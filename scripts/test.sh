#!/usr/bin/env bash
# `make test`: the local services, a clean slate, then every test of the workspace.
#
# Tests create their own databases (aries_t_*) and may start throwaway Postgres clusters
# (/tmp/aries-pg-*); a run that was killed leaves them behind, so we clean them up first.
# Note: this also removes those of a test run going on *at the same time* — run one `make test` at once.
#
# Extra arguments are passed to the test runner, e.g. `scripts/test.sh -p aries-tenants`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARIES_ROOT"

bash "$ARIES_ROOT/scripts/services.sh"

# --- stale per-test databases --------------------------------------------------------------------
stale=$(
    psql_su postgres <<'SQL'
\pset tuples_only on
\pset format unaligned
SELECT datname FROM pg_database WHERE datname LIKE 'aries\_t\_%' ORDER BY 1;
SQL
)
if [[ -n $stale ]]; then
    log "dropping $(wc -l <<<"$stale") stale test database(s): $(paste -sd" " <<<"$stale")"
    # A template database cannot be dropped until it is no longer marked as one; a database whose
    # drop was interrupted (a killed run) is "invalid" and refuses ALTER, but DROP still works
    # (\gexec skips the NULL).
    psql_su postgres <<'SQL'
SELECT CASE WHEN datistemplate THEN format('ALTER DATABASE %I IS_TEMPLATE false', datname) END,
       format('DROP DATABASE %I WITH (FORCE)', datname)
  FROM pg_database WHERE datname LIKE 'aries\_t\_%' \gexec
SQL
fi

# --- stray throwaway clusters --------------------------------------------------------------------
for dir in /tmp/aries-pg-*; do
    [[ -e $dir ]] || continue # the glob matched nothing
    if [[ -d $dir && -f $dir/postmaster.pid ]]; then
        log "stopping stray test cluster $dir"
        # Use the pg_ctl of the cluster's own major version when it is installed.
        bindir=/usr/lib/postgresql/$(cat "$dir/PG_VERSION" 2>/dev/null || true)/bin
        [[ -x $bindir/pg_ctl ]] || bindir=$(pg_bindir)
        as_postgres "timeout 30 $bindir/pg_ctl -D '$dir' stop -m immediate" >/dev/null 2>&1 || true
    fi
    log "removing $dir"
    rm -rf -- "$dir"
done

# --- stray throwaway RabbitMQ nodes (tests that restart the broker run their own) -----------------
for dir in /tmp/aries-rmq-*; do
    [[ -e $dir ]] || continue
    log "stopping stray test broker $dir"
    pkill -f -- "$dir/" >/dev/null 2>&1 || true
    rm -rf -- "$dir"
done

# --- a real browser for the web-page tests (Debian's Chromium; nothing downloads a browser) -------
if [[ ! -x /usr/bin/chromium ]]; then
    log "installing chromium for the browser tests"
    apt_install chromium fonts-dejavu-core
fi

# --- the console's browser tests: playwright-core (npm registry only; it drives the Chromium above) --
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing node and npm for the console's browser tests"
    apt_install nodejs npm
fi
log "npm ci (e2e/)"
(cd "$ARIES_ROOT/e2e" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in e2e/ failed"

# --- tests ---------------------------------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    status=0
    # nextest does not run doctests; cargo test does. Only for a full run (arguments are nextest's).
    # They go first so that nextest's summary is the run's closing line.
    if (($# == 0)); then
        log "cargo test --workspace --doc"
        cargo test --workspace --doc || status=$?
    fi
    log "cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
    ((status == 0)) || die "tests failed"
else
    log "cargo test --workspace --no-fail-fast $* (install cargo-nextest for a faster, clearer run)"
    cargo test --workspace --no-fail-fast "$@" || die "tests failed"
fi
log "all tests passed"
