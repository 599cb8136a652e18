#!/usr/bin/env bash
# `make fuzz`: OpenAPI-driven fuzzing of `aries serve` with schemathesis (docs/FUZZING.md).
#
#   services → schemathesis (pinned, in a venv under target/fuzz-venv) → debug build → fresh
#   databases aries_fuzz_catalog + aries_fuzz_shard_0/1 → `aries serve` on a free loopback port with
#   a random operator token → tenant "fuzz" with an owner API key and seed rows (location,
#   prescriber, payer, price list, warehouse, item, serial, patient, policy, order) → one
#   schemathesis run over /openapi.json: tenant routes with the tenant's API key, /v1/platform
#   routes with the operator token (per-operation headers in target/fuzz/schemathesis.toml), the
#   `{tenant}` path parameter pinned to "fuzz" and each resource's `{id}` pinned to its seeded row.
#
# Checks: not_a_server_error, status_code_conformance, content_type_conformance,
# response_headers_conformance, response_schema_conformance. Exits non-zero on any finding.
# Reports (JUnit, NDJSON, the log, the server's log) go to target/fuzz/. Everything started here
# is stopped, and the fuzz databases dropped, on exit. The server has Redis keys and RabbitMQ
# exchanges/queues of its own (a random namespace; the queues expire 10 minutes after the run).
# The operator routes get a tenant ("fuzz-ops") and a shard ("shard-2") of their own.
#
# Knobs: ARIES_FUZZ_EXAMPLES (test cases per operation and phase, default 25),
#        ARIES_FUZZ_SEED (hypothesis seed, default 20261202: the same run every time),
#        ARIES_FUZZ_WORKERS (schemathesis workers, default 2),
#        ARIES_NO_BUILD=1 (use the binary already built), ARIES_BIN (default target/debug/aries),
#        ARIES_FUZZ_KEEP=1 (keep the server and databases up after the run, until Ctrl-C).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARIES_ROOT"

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${ARIES_FUZZ_EXAMPLES:-25}
SEED=${ARIES_FUZZ_SEED:-20261202}
WORKERS=${ARIES_FUZZ_WORKERS:-2}
[[ $EXAMPLES =~ ^[1-9][0-9]*$ ]] || die "ARIES_FUZZ_EXAMPLES must be a positive whole number"
[[ $SEED =~ ^[0-9]+$ ]] || die "ARIES_FUZZ_SEED must be a whole number"
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "ARIES_FUZZ_WORKERS must be a positive whole number"
SLUG=fuzz
PLATFORM_SLUG=fuzz-ops
PG_OWNER=$(sql_ident "${ARIES_PG_OWNER:-aries_owner}")
FUZZ_DBS=(aries_fuzz_catalog aries_fuzz_shard_0 aries_fuzz_shard_1 aries_fuzz_shard_2)
ARIES_BIN=${ARIES_BIN:-target/debug/aries}
VENV=target/fuzz-venv
OUT=target/fuzz

# --- tools and services --------------------------------------------------------------------------

bash "$ARIES_ROOT/scripts/services.sh"

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if ((${#need[@]} > 0)); then
    log "installing fuzz tools: ${need[*]}"
    apt_install "${need[@]}"
fi
if [[ $("$VENV/bin/schemathesis" --version 2>/dev/null) != *" $SCHEMATHESIS_VERSION" ]]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf -- "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [[ ${ARIES_NO_BUILD:-0} != 1 ]]; then
    log "cargo build -p aries-http (debug)"
    cargo build -p aries-http
fi
[[ -x $ARIES_BIN ]] || die "$ARIES_BIN not found (build with: cargo build -p aries-http)"

# --- cleanup -------------------------------------------------------------------------------------

rm -rf -- "$OUT"
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/aries-fuzz.XXXXXX)
SERVER_PID=""

drop_fuzz_dbs() {
    local sql="SET client_min_messages TO warning;"$'\n' db
    for db in "${FUZZ_DBS[@]}"; do
        sql+="DROP DATABASE IF EXISTS $db WITH (FORCE);"$'\n'
    done
    psql_su postgres <<<"$sql"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        log "stopping aries serve (pid $SERVER_PID)"
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    drop_fuzz_dbs 2>/dev/null || warn "could not drop the fuzz databases (${FUZZ_DBS[*]})"
    rm -rf -- "$TMP"
    ((rc == 0)) || warn "fuzz failed (exit $rc); reports and logs in $OUT/"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- databases and the server --------------------------------------------------------------------

log "fresh databases: ${FUZZ_DBS[*]}"
drop_fuzz_dbs
for db in "${FUZZ_DBS[@]}"; do
    printf "CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';\n" "$db" "$PG_OWNER"
done | psql_su postgres

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
TOKEN=$(random_hex)
RUN_ID=$(random_hex | cut -c1-12)
SERVER_ENV=(
    ARIES__HTTP__BIND="127.0.0.1:$PORT"
    ARIES__DATABASE__CATALOG_URL=postgres://127.0.0.1:5432/aries_fuzz_catalog
    ARIES__AUTH__OPERATOR_TOKEN="$TOKEN"
    ARIES__LOG__LEVEL=warn
    # Thousands of requests on one credential within minutes: the limiter would answer most of
    # them 429 and the fuzzer would test the limiter instead of the routes (it has its own tests).
    ARIES__RATE_LIMIT__ENABLED=false
    # Redis keys, exchanges and queues of this run's own, as the tests do: with the default "aries"
    # the fuzz server would share sessions, caches and locks with a `make run` on this machine and
    # compete for its queued events (and dead-letter them: their tenants are not in our catalog).
    ARIES__REDIS__KEY_PREFIX="aries-fuzz-$RUN_ID"
    ARIES__RABBITMQ__NAMESPACE="aries-fuzz-$RUN_ID"
    ARIES__RABBITMQ__QUEUE_EXPIRES_MS=600000
)
aries() {
    env "${SERVER_ENV[@]}" "$ARIES_BIN" "$@" >>"$OUT/aries-setup.log" 2>&1 || {
        tail -n 30 "$OUT/aries-setup.log" >&2
        die "'aries $*' failed (full output in $OUT/aries-setup.log)"
    }
}
log "aries migrate; aries shards add ×2; aries migrate"
aries migrate
aries shards add shard-0 postgres://127.0.0.1:5432/aries_fuzz_shard_0
aries shards add shard-1 postgres://127.0.0.1:5432/aries_fuzz_shard_1
aries migrate

log "starting aries serve on $BASE"
env "${SERVER_ENV[@]}" "$ARIES_BIN" serve >"$OUT/aries-serve.log" 2>&1 &
SERVER_PID=$!
deadline=$((SECONDS + 120))
until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/health/live" 2>/dev/null || true) == 200 ]]; do
    kill -0 "$SERVER_PID" 2>/dev/null || {
        tail -n 30 "$OUT/aries-serve.log" >&2
        die "aries serve exited before answering"
    }
    ((SECONDS < deadline)) || die "aries serve did not answer /health/live within 120 s"
    sleep 0.2
done

# --- the tenant and its seed rows ----------------------------------------------------------------

# http METHOD PATH [JSON]: body to $TMP/resp, prints the status code. Tenant paths take the
# tenant's API key once there is one, everything else the operator token.
http() {
    local bearer=$TOKEN
    [[ $2 == /v1/tenants/* && -n ${TENANT_KEY:-} ]] && bearer=$TENANT_KEY
    local args=(-sS -o "$TMP/resp" -w '%{http_code}' --max-time 30 -X "$1" -H "Authorization: Bearer $bearer")
    (($# >= 3)) && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    : >"$TMP/resp"
    curl "${args[@]}" "$BASE$2" 2>/dev/null || true
}

# json_field FIELD: the top-level FIELD of the JSON object in $TMP/resp ("" when absent).
json_field() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' \
        "$TMP/resp" "$1" 2>/dev/null || true
}

# create PATH JSON: POST, expect 201, print the new row's id.
create() {
    local status id
    status=$(http POST "$1" "$2")
    [[ $status == 201 ]] || die "POST $1: expected 201, got $status: $(head -c 2000 "$TMP/resp")"
    id=$(json_field id)
    [[ -n $id ]] || die "POST $1 answered no id: $(head -c 2000 "$TMP/resp")"
    printf '%s' "$id"
}

log "seeding tenants $SLUG and $PLATFORM_SLUG"
create /v1/platform/tenants "{\"slug\":\"$SLUG\",\"name\":\"Fuzz DME\",\"plan\":\"standard\"}" >/dev/null
create /v1/platform/tenants "{\"slug\":\"$PLATFORM_SLUG\",\"name\":\"Fuzz operator target\",\"plan\":\"standard\"}" >/dev/null
# The operator's shard (its moves, drains and status changes), added once both tenants are placed.
aries shards add shard-2 postgres://127.0.0.1:5432/aries_fuzz_shard_2
aries migrate
status=$(http POST "/v1/platform/tenants/$SLUG/api-keys" '{"name":"fuzz","roles":["owner"]}')
[[ $status == 201 ]] || die "POST api-keys: expected 201, got $status: $(head -c 2000 "$TMP/resp")"
TENANT_KEY=$(json_field secret)
[[ -n $TENANT_KEY ]] || die "the api-key answer has no secret"
T=/v1/tenants/$SLUG
LOCATION_ID=$(create "$T/locations" '{"code":"MAIN","name":"Main branch","address":{"line1":"1 Main St","city":"Austin","state":"TX","postal_code":"78701"},"phone":"+1-512-555-0100","npi":"1234567893"}')
PRESCRIBER_ID=$(create "$T/prescribers" '{"first_name":"Ann","last_name":"Lee","npi":"1234567893","pecos_enrolled":true}')
PRICE_LIST_ID=$(create "$T/price-lists" '{"name":"Medicare TX"}')
PAYER_ID=$(create "$T/payers" "{\"name\":\"Medicare DME MAC D\",\"payer_type\":\"medicare\",\"default_price_list_id\":\"$PRICE_LIST_ID\"}")
WAREHOUSE_ID=$(create "$T/warehouses" '{"code":"main","name":"Main"}')
ITEM_ID=$(create "$T/items" '{"code":"CPAP-1","name":"CPAP machine","serialized":true}')
status=$(http PUT "$T/price-lists/$PRICE_LIST_ID/items/$ITEM_ID" \
    '{"hcpcs":"E0601","modifiers":["RR"],"rent_billable":"120.00","rent_allowable":"80.10","sale_billable":"1200.00","sale_allowable":"801.00","default_order_type":"rental","rental_type":"capped_rental","billing_frequency":"monthly"}')
[[ $status == 20? ]] || die "PUT price-list row: got $status: $(head -c 2000 "$TMP/resp")"
SERIAL_ID=$(create "$T/serials" "{\"item_id\":\"$ITEM_ID\",\"serial_number\":\"CP-0001\",\"warehouse_id\":\"$WAREHOUSE_ID\"}")
status=$(http POST "$T/stock/movements" "{\"kind\":\"receipt\",\"warehouse_id\":\"$WAREHOUSE_ID\",\"item_id\":\"$ITEM_ID\",\"quantity\":1}")
[[ $status == 201 ]] || die "POST stock movement: got $status: $(head -c 2000 "$TMP/resp")"
PATIENT_ID=$(create "$T/patients" "{\"first_name\":\"Rosa\",\"last_name\":\"Diaz\",\"date_of_birth\":\"1948-05-17\",\"address\":{\"line1\":\"12 Elm St\",\"city\":\"Austin\",\"state\":\"TX\",\"postal_code\":\"78701\"},\"primary_prescriber_id\":\"$PRESCRIBER_ID\",\"diagnosis_codes\":[\"G47.33\"]}")
POLICY_ID=$(create "$T/patients/$PATIENT_ID/policies" "{\"payer_id\":\"$PAYER_ID\",\"policy_number\":\"1EG4TE5MK72\"}")
ORDER_ID=$(create "$T/orders" "{\"patient_id\":\"$PATIENT_ID\",\"order_date\":\"2026-11-20\",\"lines\":[{\"item_id\":\"$ITEM_ID\"}]}")
status=$(http GET "$T/orders/$ORDER_ID")
LINE_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lines"][0]["id"])' "$TMP/resp" 2>/dev/null || true)
[[ -n $LINE_ID ]] || die "the seeded order has no line: $(head -c 2000 "$TMP/resp")"
WEBHOOK_ID=$(create "$T/webhooks" '{"url":"https://hooks.example.com/fuzz","event_types":["location.created"]}')
log "seeded: location $LOCATION_ID, patient $PATIENT_ID, order $ORDER_ID …"
curl -fsS -o "$OUT/openapi.json" "$BASE/openapi.json" || die "could not read $BASE/openapi.json"

# --- schemathesis --------------------------------------------------------------------------------

# The secrets stay in the environment: the config names them as ${VAR}.
export ARIES_FUZZ_TENANT_KEY=$TENANT_KEY ARIES_FUZZ_OPERATOR_TOKEN=$TOKEN
{
    cat <<EOF
# Written by scripts/fuzz.sh for one run; the credentials are read from the environment.
headers = { Authorization = "Bearer \${ARIES_FUZZ_TENANT_KEY}" }

# Tenant routes run as tenant "$SLUG", and each resource's id names its seeded row.
[parameters]
"path.tenant" = "$SLUG"
"path.location_id" = "$LOCATION_ID"
"path.prescriber_id" = "$PRESCRIBER_ID"
"path.payer_id" = "$PAYER_ID"
"path.patient_id" = "$PATIENT_ID"
"path.policy_id" = "$POLICY_ID"
"path.price_list_id" = "$PRICE_LIST_ID"
"path.warehouse_id" = "$WAREHOUSE_ID"
"path.item_id" = "$ITEM_ID"
"path.serial_id" = "$SERIAL_ID"
"path.order_id" = "$ORDER_ID"
"path.line_id" = "$LINE_ID"
"path.endpoint_id" = "$WEBHOOK_ID"

# The operator API, with the operator token, on a tenant and a shard of its own: suspending,
# archiving or moving "$SLUG", or draining a shard it lives on, would close the tenant routes.
[[operations]]
include-path-regex = '^/v1/platform/'
headers = { Authorization = "Bearer \${ARIES_FUZZ_OPERATOR_TOKEN}" }
parameters = { "path.tenant" = "$PLATFORM_SLUG", "path.shard" = "shard-2" }
EOF
} >"$OUT/schemathesis.toml"

# Not fuzzed (docs/FUZZING.md says why): the WebSocket upgrades.
EXCLUDE='/live$'
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
log "schemathesis $SCHEMATHESIS_VERSION: $EXAMPLES examples per operation, seed $SEED, checks $CHECKS"
set +e
# Run from $OUT: schemathesis keeps its caches in ./.schemathesis. No example database: a run
# depends on the seed alone, not on what earlier runs found.
(cd "$OUT" && "$ARIES_ROOT/$VENV/bin/schemathesis" --config-file schemathesis.toml run "$BASE/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --workers "$WORKERS" \
    --exclude-path-regex "$EXCLUDE" \
    --request-timeout 30 \
    --no-color \
    --generation-database none \
    --report junit,ndjson --report-dir . \
    2>&1) | tee "$OUT/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e
if kill -0 "$SERVER_PID" 2>/dev/null; then :; else
    warn "aries serve died during the run"
    rc=1
fi
if grep -qiE 'panicked|thread .* panicked' "$OUT/aries-serve.log"; then
    warn "the server log has a panic: see $OUT/aries-serve.log"
    rc=1
fi
if [[ ${ARIES_FUZZ_KEEP:-0} == 1 ]]; then
    log "server kept on $BASE (operator token $TOKEN, tenant key $TENANT_KEY); Ctrl-C stops it"
    wait "$SERVER_PID" || true
fi
((rc == 0)) || die "schemathesis found problems (exit $rc): see $OUT/schemathesis.log"
log "fuzz clean: $(grep -E '^[= ]*[0-9]+ (passed|failed)|passed|failed' "$OUT/schemathesis.log" | tail -n1)"
