#!/usr/bin/env bash
# `make bench`: one loopback run, side by side:
#   stack  wrk → `aries serve` → GET /v1/tenants/bench/locations/{id} (auth, routing, tenant actor, shard)
#   bare   wrk → aries-bench-bare: the same route and JSON body from a bare actix-web handler (no I/O)
#   pg-*   pgbench → the shard holding the tenant: the raw primary-key SELECT, the same under RLS,
#          and the tenant transaction the app runs (BEGIN; set_config; SELECT; COMMIT)
#   move   a tenant with 100,000 rows moved online to a shard on a second Postgres server (a
#          throwaway cluster started here) while a writer keeps creating locations in it: the move's
#          time, its freeze, the longest any write waited, failed writes (must be 0)
# Results go to the terminal and target/bench/latest.md (raw outputs beside it). docs/BENCHMARKS.md
# explains the method. Everything started here is stopped, and the bench databases dropped, on exit.
#
# Knobs: ARIES_BENCH_DURATION (seconds per measurement, default 10), ARIES_BENCH_WARMUP (default 3),
#        ARIES_NO_BUILD=1 (use the binaries already built),
#        ARIES_BIN (the server binary, default target/release/aries),
#        ARIES_BENCH_KEEP_TMP=1 (keep the temp dir with the pgbench scripts and per-transaction logs).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARIES_ROOT"

DURATION=${ARIES_BENCH_DURATION:-10}
WARMUP=${ARIES_BENCH_WARMUP:-3}
[[ $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] || die "ARIES_BENCH_DURATION/ARIES_BENCH_WARMUP must be whole seconds"
STACK_ADDR=127.0.0.1:18080
BARE_ADDR=127.0.0.1:18081
SLUG=bench
PG_OWNER=$(sql_ident "${ARIES_PG_OWNER:-aries_owner}")
PG_APP=$(sql_ident "${ARIES_PG_APP:-aries_app}")
PG_APP_PASSWORD=${ARIES_PG_APP_PASSWORD:-aries_app}
BENCH_DBS=(aries_bench_catalog aries_bench_shard_0 aries_bench_shard_1)
ARIES_BIN=${ARIES_BIN:-target/release/aries}
BARE_BIN=target/release/aries-bench-bare
OUT=target/bench
WRK_ARGS=(-t2 -c32 "-d${DURATION}s" --latency)
PGBENCH_ARGS=(-n -c 16 -j 2 "-T" "$DURATION")

# --- tools and services --------------------------------------------------------------------------

bash "$ARIES_ROOT/scripts/services.sh"

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || need+=(jq)
if ! pgbench --version >/dev/null 2>&1; then
    # pgbench ships in postgresql-client-<major> on Debian 12.
    need+=("postgresql-client-$(basename "$(dirname "$(pg_bindir)")")")
fi
if ((${#need[@]} > 0)); then
    log "installing bench tools: ${need[*]}"
    apt_install "${need[@]}"
fi

if [[ ${ARIES_NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release -p aries-http -p aries-bench"
    cargo build --release -p aries-http -p aries-bench
fi
[[ -x $ARIES_BIN ]] || die "$ARIES_BIN not found (build with: cargo build --release -p aries-http)"
[[ -x $BARE_BIN ]] || die "$BARE_BIN not found (build with: cargo build --release -p aries-bench)"

for addr in "$STACK_ADDR" "$BARE_ADDR"; do
    ! tcp_open "${addr%:*}" "${addr##*:}" || die "$addr is already in use (a previous bench still running?)"
done

# --- cleanup -------------------------------------------------------------------------------------

mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/aries-bench.XXXXXX)
chmod 755 "$TMP" # pgbench may run as the postgres user and must read the scripts
STACK_PID=""
BARE_PID=""

stop_pid() { # stop_pid PID NAME: TERM, up to 10 s, then KILL
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

drop_bench_dbs() {
    local sql="SET client_min_messages TO warning;"$'\n' db
    for db in "${BENCH_DBS[@]}"; do
        sql+="DROP DATABASE IF EXISTS $db WITH (FORCE);"$'\n'
    done
    psql_su postgres <<<"$sql"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$STACK_PID" "aries serve"
    stop_pid "$BARE_PID" "aries-bench-bare"
    [[ -n ${WRITER_PID:-} ]] && kill "$WRITER_PID" 2>/dev/null
    if [[ -n ${PG2_STARTED:-} ]]; then
        pg_cluster_stop "$PG2_DIR" || true
    fi
    drop_bench_dbs 2>/dev/null || warn "could not drop the bench databases (${BENCH_DBS[*]})"
    if [[ ${ARIES_BENCH_KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf -- "$TMP"; fi
    ((rc == 0)) || warn "bench failed (exit $rc); logs in $OUT/"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -------------------------------------------------------------------------------------

show_server_log() {
    [[ -s $OUT/aries-serve.log ]] || return 0
    log "last lines of $OUT/aries-serve.log:"
    tail -n 30 "$OUT/aries-serve.log" >&2
}

# json_field FILE FIELD: the top-level FIELD of the JSON object in FILE ("" when absent).
json_field() {
    if command -v jq >/dev/null 2>&1; then
        jq -r --arg f "$2" '.[$f] // empty' "$1"
    else
        python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
    fi
}

# http METHOD URL [JSON]: body to $TMP/resp, prints the status code (000 when no answer).
http() {
    # Tenant URLs take the tenant's API key once there is one; everything else the operator token.
    local bearer=$TOKEN
    [[ $2 == */v1/tenants/* && -n ${TENANT_KEY:-} ]] && bearer=$TENANT_KEY
    local args=(-sS -o "$TMP/resp" -w '%{http_code}' --max-time 10 -X "$1" -H "Authorization: Bearer $bearer")
    if (($# >= 3)); then
        args+=(-H 'Content-Type: application/json' --data-binary "$3")
    fi
    : >"$TMP/resp"
    curl "${args[@]}" "$2" 2>/dev/null || true
}

# expect_status WANT GOT WHAT: die with the response body and the server log when they differ.
expect_status() {
    [[ $2 == "$1" ]] && return 0
    log "response body: $(head -c 2000 "$TMP/resp")"
    show_server_log
    die "$3: expected HTTP $1, got $2"
}

wait_http_200() { # wait_http_200 URL SECONDS PID NAME
    local deadline=$((SECONDS + $2))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true) == 200 ]]; do
        kill -0 "$3" 2>/dev/null || {
            show_server_log
            die "$4 exited before answering $1"
        }
        ((SECONDS < deadline)) || {
            show_server_log
            die "$4 did not answer 200 on $1 within $2 s"
        }
        sleep 0.2
    done
}

# wrk_parse FILE → "rps avg_ms p50_ms p99_ms non2xx socket_errors elapsed_ms"
wrk_parse() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/)  return v * 60000
            if (v ~ /s$/)  return v * 1000
            return v + 0
        }
        $1 == "Latency" && $2 != "Distribution" && avg == "" { avg = ms($2) }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
        / requests in / { t = $4; sub(/,$/, "", t); elapsed = ms(t) }
        END { printf "%s %s %s %s %d %d %.0f\n", rps, avg, p50, p99, non2xx, sockerr, elapsed }
    ' "$1"
}

run_wrk() { # run_wrk NAME URL [wrk args...]
    local name=$1 url=$2
    shift 2
    if ((WARMUP > 0)); then
        log "wrk warm-up $name (${WARMUP}s)"
        wrk -t2 -c32 "-d${WARMUP}s" "$@" "$url" >/dev/null
    fi
    log "wrk ${WRK_ARGS[*]} $url  [$name]"
    wrk "${WRK_ARGS[@]}" "$@" "$url" >"$OUT/wrk-$name.txt" || die "wrk $name failed (see $OUT/wrk-$name.txt)"
    local key=${name^^} elapsed
    read -r "${key}_RPS" "${key}_AVG" "${key}_P50" "${key}_P99" "${key}_NON2XX" "${key}_SOCKERR" elapsed \
        < <(wrk_parse "$OUT/wrk-$name.txt")
    local rps="${key}_RPS" p99="${key}_P99"
    [[ -n ${!rps} && -n ${!p99} && -n $elapsed ]] || die "could not parse $OUT/wrk-$name.txt"
    # On Ctrl-C wrk stops early, prints partial figures and exits 0, and bash then drops the
    # interrupt (it assumes the child handled it): a short run means we were interrupted.
    ((elapsed >= DURATION * 900)) || die "wrk $name stopped after $elapsed ms of ${DURATION} s (interrupted?)"
}

# log_stats PREFIX → "avg_ms p50_ms p99_ms count" of per-transaction latencies from pgbench --log files.
# Not the log's 3rd column ("time"): pgbench 15 writes 0 µs there for most transactions as soon as a
# thread serves several clients (79 % zeros at -c16 -j2 here; fine at -c1 -j1). Instead we take each
# client's time between consecutive completions (columns 5-6, epoch s + µs, read fresh per line):
# pgbench starts a client's next transaction as soon as the previous one ends (no --rate), so that is
# the transaction's latency as the client saw it. Its mean matches pgbench's "latency average".
log_stats() {
    cat "$1".* | awk '{ t = $5 * 1000000 + $6; if ($1 in last) print t - last[$1]; last[$1] = t }' |
        sort -n | awk '
        { v[NR] = $1; sum += $1 }
        function rank(p,   i) { i = int(NR * p); if (i < NR * p) i++; if (i < 1) i = 1; return v[i] }
        END {
            if (NR == 0) { print "nan nan nan 0"; exit }
            printf "%.3f %.3f %.3f %d\n", sum / NR / 1000, rank(0.50) / 1000, rank(0.99) / 1000, NR
        }'
}

run_pgbench() { # run_pgbench NAME SCRIPT MODE(tcp-app|tcp-super|socket-super) [PROTOCOL, default prepared]
    local name=$1 script=$2 mode=$3 protocol=${4:-prepared} logdir="$TMP/log-$1"
    mkdir -p "$logdir"
    chmod 777 "$logdir"
    local args=("${PGBENCH_ARGS[@]}" -M "$protocol" -f "$script" -D "tid=$TENANT_ID" -D "lid=$LOCATION_ID")
    # (pgbench's -d is --debug: the database name is the last, positional argument)
    local conn=(-h 127.0.0.1 -p 5432 -U "$PG_APP") env=(PGPASSWORD="$PG_APP_PASSWORD")
    case $mode in
    tcp-app-session) env+=(PGOPTIONS="-c aries.tenant_id=$TENANT_ID") ;;
    tcp-super) conn=(-h 127.0.0.1 -p 5432 -U postgres) env=() ;;
    esac
    run() { # run EXTRA_ARGS...: pgbench as root over TCP, or as postgres over the socket
        if [[ $mode == socket-super ]]; then
            local q="pgbench" a
            for a in "${args[@]}" "$@" "$SHARD_DB"; do q+=" $(printf '%q' "$a")"; done
            as_postgres "$q"
        else
            env "${env[@]}" pgbench "${conn[@]}" "${args[@]}" "$@" "$SHARD_DB"
        fi
    }
    if ((WARMUP > 0)); then
        log "pgbench warm-up $name (${WARMUP}s)"
        run -T "$WARMUP" >/dev/null 2>&1 || true
    fi
    log "pgbench ${PGBENCH_ARGS[*]} -f $(basename "$script") [$name]"
    run --log --log-prefix="$logdir/tx" >"$OUT/pgbench-$name.txt" 2>&1 || {
        cat "$OUT/pgbench-$name.txt" >&2
        die "pgbench $name failed"
    }
    local tps failed avg log_avg
    tps=$(awk '/^tps = / { print $3; exit }' "$OUT/pgbench-$name.txt")
    avg=$(awk '/^latency average = / { print $4; exit }' "$OUT/pgbench-$name.txt")
    [[ -n $tps && -n $avg ]] || die "could not parse $OUT/pgbench-$name.txt"
    failed=$(awk '/^number of failed transactions:/ { print $5; exit }' "$OUT/pgbench-$name.txt")
    [[ ${failed:-0} == 0 ]] || die "pgbench $name: $failed failed transactions (see $OUT/pgbench-$name.txt)"
    local key=${name//-/_}
    key=${key^^}
    printf -v "${key}_RPS" '%s' "$tps"
    printf -v "${key}_AVG" '%s' "$avg"
    read -r log_avg "${key}_P50" "${key}_P99" "${key}_N" < <(log_stats "$logdir/tx")
    # Cross-check the log-derived latencies against pgbench's own average.
    awk -v a="$avg" -v b="$log_avg" 'BEGIN { exit !(b > 0 && (a - b) / a < 0.1 && (b - a) / a < 0.1) }' ||
        warn "pgbench $name: latency average $avg ms, but the log gives $log_avg ms: p50/p99 may be off"
}

# --- the stack -----------------------------------------------------------------------------------

log "fresh databases: ${BENCH_DBS[*]}"
drop_bench_dbs
for db in "${BENCH_DBS[@]}"; do
    printf "CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';\n" "$db" "$PG_OWNER"
done | psql_su postgres

TOKEN=$(random_hex)
STACK_ENV=(
    ARIES__HTTP__BIND="$STACK_ADDR"
    ARIES__DATABASE__CATALOG_URL=postgres://127.0.0.1:5432/aries_bench_catalog
    ARIES__AUTH__OPERATOR_TOKEN="$TOKEN"
    ARIES__LOG__LEVEL=warn
    # One credential at full speed would be throttled by any sensible limit: the bench measures the
    # stack without the limiter (its Redis round trip is measured by redis-benchmark's own figures).
    ARIES__RATE_LIMIT__ENABLED=false
)
aries() {
    env "${STACK_ENV[@]}" "$ARIES_BIN" "$@" >>"$OUT/aries-setup.log" 2>&1 || {
        tail -n 30 "$OUT/aries-setup.log" >&2
        die "'aries $*' failed (full output in $OUT/aries-setup.log)"
    }
}
: >"$OUT/aries-setup.log"
log "aries migrate; aries shards add ×2; aries migrate"
aries migrate
aries shards add shard-0 postgres://127.0.0.1:5432/aries_bench_shard_0
aries shards add shard-1 postgres://127.0.0.1:5432/aries_bench_shard_1
aries migrate

log "starting aries serve on $STACK_ADDR"
env "${STACK_ENV[@]}" "$ARIES_BIN" serve >"$OUT/aries-serve.log" 2>&1 &
STACK_PID=$!
wait_http_200 "http://$STACK_ADDR/health/live" 60 "$STACK_PID" "aries serve"

status=$(http POST "http://$STACK_ADDR/v1/platform/tenants" '{"slug":"bench","name":"Bench DME","plan":"standard"}')
expect_status 201 "$status" "POST /v1/platform/tenants"
TENANT_ID=$(json_field "$TMP/resp" id)
[[ -n $TENANT_ID ]] || die "tenant response has no id: $(cat "$TMP/resp")"

status=$(http POST "http://$STACK_ADDR/v1/platform/tenants/$SLUG/api-keys" '{"name":"bench","roles":["owner"]}')
expect_status 201 "$status" "POST /v1/platform/tenants/$SLUG/api-keys"
TENANT_KEY=$(json_field "$TMP/resp" secret)
[[ -n $TENANT_KEY ]] || die "api key response has no secret: $(cat "$TMP/resp")"

status=$(http POST "http://$STACK_ADDR/v1/tenants/$SLUG/locations" \
    '{"code":"MAIN","name":"Main branch","address":{"line1":"1 Main St","city":"Austin","state":"TX","postal_code":"78701"},"phone":"+1-512-555-0100"}')
expect_status 201 "$status" "POST /v1/tenants/$SLUG/locations"
LOCATION_ID=$(json_field "$TMP/resp" id)
[[ -n $LOCATION_ID ]] || die "location response has no id: $(cat "$TMP/resp")"

STACK_URL="http://$STACK_ADDR/v1/tenants/$SLUG/locations/$LOCATION_ID"
status=$(http GET "$STACK_URL")
expect_status 200 "$status" "GET $STACK_URL"
cp "$TMP/resp" "$OUT/location.json"
[[ $(json_field "$OUT/location.json" id) == "$LOCATION_ID" ]] || die "GET returned another location: $(cat "$OUT/location.json")"
log "tenant $SLUG ($TENANT_ID), location $LOCATION_ID: $(wc -c <"$OUT/location.json") bytes of JSON"

# --- the ceiling ---------------------------------------------------------------------------------

log "starting aries-bench-bare on $BARE_ADDR"
"$BARE_BIN" "$BARE_ADDR" "$OUT/location.json" >"$OUT/bare.log" 2>&1 &
BARE_PID=$!
BARE_URL="http://$BARE_ADDR/v1/tenants/$SLUG/locations/$LOCATION_ID"
wait_http_200 "$BARE_URL" 20 "$BARE_PID" "aries-bench-bare"
curl -s "$BARE_URL" | cmp -s - "$OUT/location.json" || die "the bare handler's body differs from the stack's"

# --- HTTP ----------------------------------------------------------------------------------------

run_wrk stack "$STACK_URL" -H "Authorization: Bearer $TENANT_KEY"
run_wrk bare "$BARE_URL"

# The HTTP figures are in: stop both servers so they do not compete with pgbench for the cores.
stop_pid "$STACK_PID" "aries serve"
stop_pid "$BARE_PID" "aries-bench-bare"
STACK_PID="" BARE_PID=""

# --- Postgres ------------------------------------------------------------------------------------

dsn=$(psql_su aries_bench_catalog <<SQL
\pset tuples_only on
\pset format unaligned
select s.dsn from placement p join shard s using (shard_id) join tenant t using (tenant_id) where t.slug = '$SLUG';
SQL
)
SHARD_DB=${dsn%%\?*}
SHARD_DB=${SHARD_DB##*/}
[[ " ${BENCH_DBS[*]} " == *" $SHARD_DB "* && $SHARD_DB == *shard* ]] ||
    die "tenant $SLUG is placed on '$dsn', which is not a bench shard"
log "tenant $SLUG lives on $SHARD_DB"

tid=$(sql_literal "$TENANT_ID")
lid=$(sql_literal "$LOCATION_ID")
app_psql() { env PGPASSWORD="$PG_APP_PASSWORD" "$@" psql -X -w -q -At -h 127.0.0.1 -p 5432 -U "$PG_APP" -d "$SHARD_DB"; }
# Sanity: each form must find the row (else we would time empty answers), and RLS must bite without the setting.
n_super=$(psql_su "$SHARD_DB" <<<"\\pset tuples_only on
select count(*) from location where tenant_id = $tid and location_id = $lid;" | tr -d ' ')
n_tx=$(app_psql <<<"begin; select set_config('aries.tenant_id', $tid, true) \\g /dev/null
select count(*) from location where tenant_id = $tid and location_id = $lid; commit;")
n_session=$(app_psql PGOPTIONS="-c aries.tenant_id=$TENANT_ID" <<<"select count(*) from location where tenant_id = $tid and location_id = $lid;")
n_plain=$(app_psql <<<"select count(*) from location where tenant_id = $tid and location_id = $lid;" 2>&1 || true)
[[ $n_super == 1 && $n_tx == 1 && $n_session == 1 ]] ||
    die "the location row is not found by every form (superuser=$n_super, tenant tx=$n_tx, session setting=$n_session)"
if [[ $n_plain == 0 || $n_plain == *ERROR* ]]; then
    log "RLS bites: as $PG_APP without aries.tenant_id the row is invisible ($(head -n1 <<<"$n_plain"))"
else
    warn "RLS did NOT hide the row from $PG_APP without aries.tenant_id (got: $n_plain)"
fi

cat >"$TMP/raw.sql" <<'SQL'
select * from location where tenant_id = :tid and location_id = :lid;
SQL
cat >"$TMP/tx.sql" <<'SQL'
begin;
select set_config('aries.tenant_id', :tid, true);
select * from location where tenant_id = :tid and location_id = :lid;
commit;
SQL
# The app's own form: BEGIN and the setting in one message, then the SELECT, then COMMIT (three
# round trips). pgbench allows a compound statement (\;) only in simple mode, so this script runs
# with -M simple and carries its values as literals.
cat >"$TMP/tx3.sql" <<SQL
begin \\; select set_config('aries.tenant_id', '$TENANT_ID', true);
select * from location where tenant_id = '$TENANT_ID' and location_id = '$LOCATION_ID';
commit;
SQL
chmod 644 "$TMP"/*.sql

# The raw ceiling runs as the superuser postgres (RLS does not apply to it): over TCP like the others
# when the server lets postgres in without a password (trust), else over the unix socket (peer auth).
if PGPASSWORD='' PGCONNECT_TIMEOUT=3 psql -X -w -q -h 127.0.0.1 -U postgres -d "$SHARD_DB" -c 'select 1' >/dev/null 2>&1; then
    RAW_MODE=tcp-super RAW_NOTE="TCP"
else
    RAW_MODE=socket-super RAW_NOTE="unix socket"
fi
run_pgbench pg-raw "$TMP/raw.sql" "$RAW_MODE"
run_pgbench pg-rls "$TMP/raw.sql" tcp-app-session
run_pgbench pg-tx "$TMP/tx.sql" tcp-app
run_pgbench pg-tx3 "$TMP/tx3.sql" tcp-app simple

# --- tenant move under load ----------------------------------------------------------------------

MOVE_ROWS=${ARIES_BENCH_MOVE_ROWS:-100000}
PG2_DIR="$TMP/pg2"
log "second Postgres server for the move's target shard"
PG2_PORT=$(free_port 55440 55460)
pg_cluster_init "$PG2_DIR" "$OUT/pg2-initdb.log"
pg_cluster_start "$PG2_DIR" "$PG2_PORT"
PG2_STARTED=1
ARIES_PG_APP_PASSWORD=$PG_APP_PASSWORD pg_cluster_roles "$PG2_PORT" "$PG_OWNER" "$PG_APP"
pg_cluster_psql "$PG2_PORT" <<SQL
create database aries_bench_shard_2 owner $PG_OWNER template template0 encoding 'UTF8' lc_collate 'C.UTF-8' lc_ctype 'C.UTF-8';
SQL

log "starting aries serve again for the move"
env "${STACK_ENV[@]}" "$ARIES_BIN" serve >>"$OUT/aries-serve.log" 2>&1 &
STACK_PID=$!
wait_http_200 "http://$STACK_ADDR/health/live" 60 "$STACK_PID" "aries serve"
status=$(http POST "http://$STACK_ADDR/v1/platform/tenants" '{"slug":"bench-move","name":"Bench Move DME","plan":"standard"}')
expect_status 201 "$status" "POST /v1/platform/tenants (bench-move)"
MOVE_TID=$(json_field "$TMP/resp" id)
MOVE_FROM=$(json_field "$TMP/resp" shard)
status=$(http POST "http://$STACK_ADDR/v1/platform/tenants/bench-move/api-keys" '{"name":"bench","roles":["owner"]}')
expect_status 201 "$status" "POST api-keys (bench-move)"
MOVE_KEY=$(json_field "$TMP/resp" secret)
from_db=aries_bench_shard_${MOVE_FROM##*-}
log "seeding $MOVE_ROWS prescribers for bench-move on $from_db"
psql_su "$from_db" <<SQL
insert into prescriber (tenant_id, prescriber_id, first_name, last_name, npi, credentials, license_expires, pecos_enrolled)
select '$MOVE_TID', gen_random_uuid(), 'First' || i, 'Last ' || md5(i::text), lpad(i::text, 10, '0'),
       case when i % 3 = 0 then 'MD' end, date '2027-01-01' + (i % 400)::int, i % 2 = 0
from generate_series(1, $MOVE_ROWS) i;
SQL
log "aries shards add shard-2 (second server, port $PG2_PORT)"
aries shards add shard-2 "postgres://127.0.0.1:$PG2_PORT/aries_bench_shard_2"

# The writer: 4 keep-alive connections creating locations in a loop until told to stop (after the
# move ended), so every write that waited in the freeze is counted (wrk drops requests still in
# flight when its fixed duration ends).
cat >"$TMP/writer.py" <<'PY'
import http.client, json, os, sys, threading, time
host, port = sys.argv[1].split(":")
key, stop_file, out = sys.argv[2], sys.argv[3], sys.argv[4]
lat, fails, lock = [], [], threading.Lock()
def run(t):
    conn, i = http.client.HTTPConnection(host, int(port), timeout=120), 0
    while not os.path.exists(stop_file):
        i += 1
        body = json.dumps({"code": f"MV{t}X{i}", "name": f"Branch {t}-{i}", "address": {"line1": "1 Main St",
                "city": "Austin", "state": "TX", "postal_code": "78701"}})
        t0 = time.monotonic()
        try:
            conn.request("POST", "/v1/tenants/bench-move/locations", body,
                         {"Content-Type": "application/json", "Authorization": "Bearer " + key})
            r = conn.getresponse(); r.read(); ok = r.status == 201; why = r.status
        except Exception as e:
            ok, why = False, repr(e); conn = http.client.HTTPConnection(host, int(port), timeout=120)
        with lock:
            lat.append((time.monotonic() - t0) * 1000)
            if not ok: fails.append(why)
threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
start = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
took = time.monotonic() - start
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0
json.dump({"requests": len(lat), "failed": len(fails), "failures": fails[:10], "rps": round(len(lat) / took, 1),
           "avg_ms": round(sum(lat) / max(1, len(lat)), 3), "p50_ms": round(pct(0.5), 3),
           "p99_ms": round(pct(0.99), 3), "max_ms": round(lat[-1], 1) if lat else 0}, open(out, "w"))
PY
STOP_FILE="$TMP/writer.stop"
log "writer: 4 connections creating locations of bench-move until the move is done"
python3 "$TMP/writer.py" "$STACK_ADDR" "$MOVE_KEY" "$STOP_FILE" "$OUT/move-writer.json" &
WRITER_PID=$!
sleep 3
status=$(http POST "http://$STACK_ADDR/v1/platform/tenants/bench-move/moves" '{"to_shard":"shard-2"}')
expect_status 202 "$status" "POST /v1/platform/tenants/bench-move/moves"
MOVE_ID=$(json_field "$TMP/resp" id)
deadline=$((SECONDS + 600))
while :; do
    status=$(http GET "http://$STACK_ADDR/v1/platform/moves/$MOVE_ID")
    state=$(json_field "$TMP/resp" state)
    [[ $state == done || $state == rolled_back ]] && break
    ((SECONDS < deadline)) || die "the move did not finish within 600 s (state $state)"
    sleep 0.2
done
cp "$TMP/resp" "$OUT/move.json"
sleep 2
touch "$STOP_FILE"
wait "$WRITER_PID" || die "the writer failed"
WRITER_PID=""
[[ $state == done ]] || die "the move was rolled back: $(json_field "$OUT/move.json" error)"
MOVE_W_RPS=$(json_field "$OUT/move-writer.json" rps)
MOVE_W_AVG=$(json_field "$OUT/move-writer.json" avg_ms)
MOVE_W_P50=$(json_field "$OUT/move-writer.json" p50_ms)
MOVE_W_P99=$(json_field "$OUT/move-writer.json" p99_ms)
MOVE_W_MAX=$(json_field "$OUT/move-writer.json" max_ms)
MOVE_W_FAILED=$(json_field "$OUT/move-writer.json" failed)
MOVE_W_REQUESTS=$(json_field "$OUT/move-writer.json" requests)
MOVE_PAUSE=$(json_field "$OUT/move.json" pause_ms)
MOVE_COPIED=$(json_field "$OUT/move.json" rows_copied)
MOVE_CHANGES=$(json_field "$OUT/move.json" changes_applied)
MOVE_ROUNDS=$(json_field "$OUT/move.json" catch_up_rounds)
MOVE_TOOK=$(python3 -c 'import json,sys,datetime as d
m=json.load(open(sys.argv[1])); p=lambda s: d.datetime.fromisoformat(s.replace("Z","+00:00"))
print(round((p(m["finished_at"])-p(m["created_at"])).total_seconds()*1000))' "$OUT/move.json")
MOVE_FLIP=$(python3 -c 'import json,sys,datetime as d
m=json.load(open(sys.argv[1])); p=lambda s: d.datetime.fromisoformat(s.replace("Z","+00:00"))
print(round((p(m["flipped_at"])-p(m["created_at"])).total_seconds()*1000))' "$OUT/move.json")
log "move: $MOVE_COPIED rows, flipped after $MOVE_FLIP ms, done after $MOVE_TOOK ms, freeze $MOVE_PAUSE ms; writer: $MOVE_W_REQUESTS writes, max latency $MOVE_W_MAX ms, failed $MOVE_W_FAILED"
stop_pid "$STACK_PID" "aries serve"
STACK_PID=""

# --- report --------------------------------------------------------------------------------------

ratio() { # a ÷ b with 2-3 significant digits, e.g. 0.0312×, 0.31×, 3.2×, 31×
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b + 0 == 0) { print "n/a"; exit }
        r = a / b
        if (r >= 10) printf "%.0f×", r; else if (r >= 1) printf "%.2f×", r; else if (r >= 0.1) printf "%.3f×", r; else printf "%.2g×", r
    }'
}
row() { # row NAME WHAT RPS AVG P50 P99
    awk -v n="$1" -v w="$2" -v r="$3" -v a="$4" -v p="$5" -v q="$6" \
        'BEGIN { printf "| %-7s | %-74s | %10.0f | %8.3f | %8.3f | %8.3f |\n", n, w, r, a, p, q }'
}
# shellcheck disable=SC2153 # STACK_P50 & co. are set through read/printf -v above
{
    printf '| %-7s | %-74s | %10s | %8s | %8s | %8s |\n' name what "req/s, tps" "avg ms" "p50 ms" "p99 ms"
    printf '|---------|%s|-----------:|---------:|---------:|---------:|\n' "$(printf -- '-%.0s' $(seq 1 76))"
    row stack "aries serve: GET /v1/tenants/bench/locations/{id}, tenant API key (wrk)" \
        "$STACK_RPS" "$STACK_AVG" "$STACK_P50" "$STACK_P99"
    row bare "aries-bench-bare: same route, same body, no I/O (wrk)" \
        "$BARE_RPS" "$BARE_AVG" "$BARE_P50" "$BARE_P99"
    row pg-raw "SELECT location by pk as superuser postgres (no RLS), $RAW_NOTE (pgbench)" \
        "$PG_RAW_RPS" "$PG_RAW_AVG" "$PG_RAW_P50" "$PG_RAW_P99"
    row pg-rls "SELECT location by pk as $PG_APP, tenant set per session, RLS (pgbench)" \
        "$PG_RLS_RPS" "$PG_RLS_AVG" "$PG_RLS_P50" "$PG_RLS_P99"
    row pg-tx "BEGIN; set_config; SELECT; COMMIT as $PG_APP, 4 round trips (pgbench)" \
        "$PG_TX_RPS" "$PG_TX_AVG" "$PG_TX_P50" "$PG_TX_P99"
    row pg-tx3 "BEGIN+set_config in one message; SELECT; COMMIT: the app's tx (pgbench)" \
        "$PG_TX3_RPS" "$PG_TX3_AVG" "$PG_TX3_P50" "$PG_TX3_P99"
    row writer "POST locations of bench-move during its move (4 keep-alive conns, python)" \
        "$MOVE_W_RPS" "$MOVE_W_AVG" "$MOVE_W_P50" "$MOVE_W_P99"
} >"$TMP/table.md"
{
    echo "| move of bench-move ($MOVE_COPIED rows) to a second Postgres server | value |"
    echo "|---|---:|"
    echo "| request → flip (copy, catch-up, freeze, verify) | $MOVE_FLIP ms |"
    echo "| request → done (source rows removed) | $MOVE_TOOK ms |"
    echo "| freeze (writes held, then served on the target) | $MOVE_PAUSE ms |"
    echo "| longest write during the run (writer's max latency, $MOVE_W_REQUESTS writes) | $MOVE_W_MAX ms |"
    echo "| writes replayed by the catch-up / rounds | $MOVE_CHANGES / $MOVE_ROUNDS |"
    echo "| failed writes | $MOVE_W_FAILED |"
} >"$TMP/move.md"
{
    echo "- stack ÷ bare:  throughput $(ratio "$STACK_RPS" "$BARE_RPS"), p50 latency $(ratio "$STACK_P50" "$BARE_P50"), p99 latency $(ratio "$STACK_P99" "$BARE_P99")"
    echo "- stack ÷ pg-tx3: throughput $(ratio "$STACK_RPS" "$PG_TX3_RPS"), p50 latency $(ratio "$STACK_P50" "$PG_TX3_P50"), p99 latency $(ratio "$STACK_P99" "$PG_TX3_P99") (against the transaction the app runs)"
    echo "- pg-tx ÷ pg-rls: throughput $(ratio "$PG_TX_RPS" "$PG_RLS_RPS"); pg-tx3 ÷ pg-rls: $(ratio "$PG_TX3_RPS" "$PG_RLS_RPS") (what the tenant transaction's round trips cost)"
} >"$TMP/ratios.md"

problems=()
((STACK_NON2XX == 0)) || problems+=("stack answered $STACK_NON2XX non-2xx responses: its figures are not valid")
((BARE_NON2XX == 0)) || problems+=("bare answered $BARE_NON2XX non-2xx responses")
((STACK_SOCKERR == 0)) || problems+=("wrk saw $STACK_SOCKERR socket errors against the stack")
((BARE_SOCKERR == 0)) || problems+=("wrk saw $BARE_SOCKERR socket errors against bare")
((MOVE_W_FAILED == 0)) || problems+=("$MOVE_W_FAILED writes failed during the move (see $OUT/move-writer.json)")

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git status --porcelain 2>/dev/null | head -n1) ]] || commit+=" (+ uncommitted changes)"
{
    echo "# make bench — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- commit: $commit"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
    echo "- software: $(rustc --version 2>/dev/null || echo rustc ?), $( (wrk --version 2>&1 || true) | head -n1 | awk '{ print $1, $2 }'), PostgreSQL $(as_postgres "psql -X -At -c 'show server_version'"), $(pgbench --version)"
    echo "- load generators share the 2 cores with the servers (all on 127.0.0.1)"
    echo "- wrk: \`wrk ${WRK_ARGS[*]} [-H 'Authorization: Bearer …'] URL\` after a ${WARMUP}s warm-up"
    echo "- pgbench: \`pgbench ${PGBENCH_ARGS[*]} -f SCRIPT -D tid=… -D lid=… --log\` on $SHARD_DB after a ${WARMUP}s warm-up; avg is pgbench's own, p50/p99 from per-client completion times in the --log files (see docs/BENCHMARKS.md)"
    echo
    cat "$TMP/table.md"
    echo
    cat "$TMP/ratios.md"
    echo
    cat "$TMP/move.md"
    for p in "${problems[@]}"; do echo "- **WARNING: $p**"; done
} >"$OUT/latest.md"

echo
cat "$TMP/table.md"
echo
cat "$TMP/ratios.md"
echo
cat "$TMP/move.md"
echo
log "written to $OUT/latest.md (raw outputs: $OUT/wrk-*.txt, $OUT/pgbench-*.txt)"
if ((${#problems[@]} > 0)); then
    for p in "${problems[@]}"; do warn "$p"; done
    exit 1
fi
