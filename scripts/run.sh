#!/usr/bin/env bash
# `make run`: local services, a release build, migrations, two shards, the demo tenant, then the
# server in the foreground (Ctrl-C stops it). Safe to run again: every step is idempotent.
#
# The operator token is generated once into .aries/operator-token (git-ignored, mode 600) unless
# ARIES__AUTH__OPERATOR_TOKEN is already set. ARIES__HTTP__BIND (default 127.0.0.1:8080) is honoured.
# Database credentials come from the application's defaults (roles aries_owner / aries_app).
# For trying the script itself: ARIES_NO_BUILD=1 skips the build, ARIES_BIN picks another binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARIES_ROOT"

bash "$ARIES_ROOT/scripts/services.sh"

ARIES_BIN=${ARIES_BIN:-target/release/aries}
if [[ ${ARIES_NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release -p aries-http"
    cargo build --release -p aries-http
fi
[[ -x $ARIES_BIN ]] || die "$ARIES_BIN was not built"

# --- where the server will listen ----------------------------------------------------------------
BIND=${ARIES__HTTP__BIND:-127.0.0.1:8080}
port=${BIND##*:}
host=${BIND%:*}
case $host in
'' | 0.0.0.0) host=127.0.0.1 ;; # listening everywhere: show the loopback URL
'[::]' | '::') host='[::1]' ;;
esac
probe_host=${host#[}
probe_host=${probe_host%]}
if tcp_open "$probe_host" "$port"; then
    die "$host:$port is already in use (another 'make run'?). Stop it, or set ARIES__HTTP__BIND=127.0.0.1:<port>"
fi
BASE="http://$host:$port"

# --- operator token ------------------------------------------------------------------------------
if [[ -n ${ARIES__AUTH__OPERATOR_TOKEN:-} ]]; then
    log "using ARIES__AUTH__OPERATOR_TOKEN from the environment"
    token_src="from ARIES__AUTH__OPERATOR_TOKEN"
else
    mkdir -p .aries
    chmod 700 .aries
    if [[ ! -s .aries/operator-token ]]; then
        (
            umask 077
            random_hex >.aries/operator-token
        )
        log "generated a new operator token in .aries/operator-token"
    fi
    chmod 600 .aries/operator-token
    ARIES__AUTH__OPERATOR_TOKEN=$(<.aries/operator-token)
    export ARIES__AUTH__OPERATOR_TOKEN
    token_src="kept in .aries/operator-token"
fi
TOKEN=$ARIES__AUTH__OPERATOR_TOKEN

# --- schema, shards, demo tenant -----------------------------------------------------------------
aries() {
    log "aries $*"
    "$ARIES_BIN" "$@" || die "'aries $*' failed"
}
aries migrate
aries shards add shard-0 postgres://127.0.0.1:5432/aries_shard_0 --if-not-exists
aries shards add shard-1 postgres://127.0.0.1:5432/aries_shard_1 --if-not-exists
aries migrate # migrates the shards just added
aries tenants create --slug demo --name "Demo Medical Supply" --plan standard --if-not-exists
# The demo tenant's owner API key, made once and kept like the operator token.
if [[ ! -s .aries/demo-api-key ]]; then
    (
        umask 077
        "$ARIES_BIN" tenants api-key demo --name "make run demo" --roles owner >.aries/demo-api-key
    ) || die "could not create the demo tenant's API key"
    log "created the demo tenant's owner API key in .aries/demo-api-key"
fi
chmod 600 .aries/demo-api-key
DEMO_KEY=$(<.aries/demo-api-key)
# The first operator account (console login: password, then TOTP enrolment on first login).
if [[ ! -s .aries/operator-password ]]; then
    (
        umask 077
        "$ARIES_BIN" operators create --email admin@aries.local --name "Platform admin" --role platform_admin \
            --if-not-exists >.aries/operator-password
    ) || die "could not create the first operator account"
    [[ -s .aries/operator-password ]] && log "created operator admin@aries.local; password in .aries/operator-password"
fi
OPERATOR_PASSWORD=$(<.aries/operator-password)

# --- the server, and the demo tenant's console user (made through the API, so after start-up) ------
# curl talks to the API below; a minimal Debian has none.
command -v curl >/dev/null 2>&1 || apt_install curl
"$ARIES_BIN" serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server"' INT TERM
if [[ ! -s .aries/demo-user-password ]]; then
    for _ in $(seq 1 240); do
        curl -fsS -o /dev/null "$BASE/health/live" 2>/dev/null && break
        sleep 0.25
    done
    demo_pw=$(random_hex | cut -c1-24)
    if curl -fsS -o /dev/null -H "Authorization: Bearer $DEMO_KEY" -H 'Content-Type: application/json' \
        -d "{\"email\":\"admin@demo.local\",\"display_name\":\"Demo admin\",\"password\":\"$demo_pw\",\"roles\":[\"owner\"]}" \
        "$BASE/v1/tenants/demo/users"; then
        (
            umask 077
            echo "$demo_pw" >.aries/demo-user-password
        )
        log "created the demo tenant's console user admin@demo.local; password in .aries/demo-user-password"
    else
        log "could not create the demo tenant's console user (it may exist already)"
    fi
fi
DEMO_USER_PASSWORD=$(cat .aries/demo-user-password 2>/dev/null || echo "(see .aries/demo-user-password)")

# --- banner --------------------------------------------------------------------------------------
cat >&2 <<EOF

[aries] AriesOne is starting on $BASE
[aries]   API base        $BASE
[aries]   API docs        $BASE/docs/
[aries]   OpenAPI         $BASE/openapi.json
[aries]   metrics         $BASE/metrics
[aries]   readiness       $BASE/health/ready
[aries]   demo tenant     $BASE/v1/tenants/demo/locations
[aries]   console         $BASE/console/   (operator: tenants, shards, dead letters, audit)
[aries]   demo console    $BASE/console/#/t/demo/dashboard   (admin@demo.local / $DEMO_USER_PASSWORD; enrol TOTP on first login)
[aries]   operator token  $TOKEN   ($token_src)
[aries]   demo API key    $DEMO_KEY   (owner of tenant demo; kept in .aries/demo-api-key)
[aries]   operator login  admin@aries.local / $OPERATOR_PASSWORD   ($BASE/console/ or POST $BASE/v1/platform/sessions; enrol TOTP on first login)
[aries] try:
[aries]   curl -sS -H "Authorization: Bearer $TOKEN" $BASE/v1/platform/tenants
[aries]   curl -sS -H "Authorization: Bearer $DEMO_KEY" $BASE/v1/tenants/demo/locations
[aries] Ctrl-C stops the server; 'make run' again keeps the data.

EOF
wait "$server"
