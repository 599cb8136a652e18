#!/usr/bin/env bash
# `make bench`: issue 9's scenarios, each beside its ceiling, in one loopback run:
#   (a) GET location, tenant API key, rate limiter on, response cache hit  vs  aries-bench-bare (same JSON)
#   (b) the same GET with the response cache off (the tenant transaction)  vs  pgbench running the app's
#       transaction for that SELECT (two forms; the faster is the ceiling), pg-raw for scale
#   (c) POST order (write + outbox + audit + Idempotency-Key)  vs  pgbench running the same statements in
#       one transaction (bench/sql/order-create.sql)
#   (a)-(c) again at half of the stack's peak rate, open loop (aries-load), for p99 at half load
#   (d) 5,000 live-dashboard sockets over 100 tenants, 1,000 events/s: event → socket latency; then
#       again at half the events/s the sockets sustained
#   (e) 10,000 tenants provisioned, then a fresh instance activates each (first request, uncached):
#       latency, and resident memory per active tenant actor; the same requests warm are its ceiling;
#       then one cached answer per tenant, for what the response cache adds
#   (f) a tenant with 100,000 rows moved online to a shard on a second Postgres server (a throwaway
#       cluster started here) while a writer keeps creating locations in it
# Peak memory is the server's VmHWM during the row. Results go to the terminal and target/bench/latest.md
# (raw outputs beside it). docs/BENCHMARKS.md explains the method. Everything started here is stopped,
# and the bench databases dropped, on exit.
#
# Knobs: ARIES_BENCH_DURATION (seconds per measurement, default 10), ARIES_BENCH_WARMUP (default 3),
#        ARIES_BENCH_TENANTS (default 10000), ARIES_BENCH_SOCKETS (5000), ARIES_BENCH_WS_TENANTS (100),
#        ARIES_BENCH_EVENTS (events/s, 1000), ARIES_BENCH_MOVE_ROWS (100000),
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
LOAD_BIN=target/release/aries-load
OUT=target/bench
WRK_ARGS=(-t2 -c32 "-d${DURATION}s" --latency)
PGBENCH_ARGS=(-n -c 16 -j 2 "-T" "$DURATION")

# --- tools and services --------------------------------------------------------------------------

bash "$ARIES_ROOT/scripts/services.sh"

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v perf >/dev/null 2>&1 || need+=(linux-perf) # profiles of the stack's warm-ups
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
[[ -x $LOAD_BIN ]] || die "$LOAD_BIN not found (build with: cargo build --release -p aries-bench)"
# 5,000 sockets need 5,000 descriptors in the generator and as many in the server (which inherits this).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
(($(ulimit -n) >= 12000)) || warn "only $(ulimit -n) file descriptors: the socket scenario may fail"

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

# wrk_parse FILE → "rps avg_ms p50_ms p99_ms non2xx socket_errors elapsed_ms max_ms"
wrk_parse() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/)  return v * 60000
            if (v ~ /s$/)  return v * 1000
            return v + 0
        }
        $1 == "Latency" && $2 != "Distribution" && avg == "" { avg = ms($2); max = ms($4) }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
        / requests in / { t = $4; sub(/,$/, "", t); elapsed = ms(t) }
        END { printf "%s %s %s %s %d %d %.0f %s\n", rps, avg, p50, p99, non2xx, sockerr, elapsed, max }
    ' "$1"
}

# profile_pid PID NAME SECONDS (background): perf samples of the server while the warm-up runs (not
# during the measured run, which it would slow down); the flat profile and the split by binary go to
# $OUT/perf-NAME.txt.
profile_pid() {
    command -v perf >/dev/null 2>&1 || return 0
    local data="$TMP/perf-$2.data"
    perf record -F 499 -g -p "$1" -o "$data" -- sleep "$3" >/dev/null 2>&1 || return 0
    {
        echo "# perf record -F 499 -g -p <aries serve> during the warm-up of $2 (${3}s)"
        echo "## by binary"
        perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12 || true
        echo "## by symbol (self time, top 40)"
        perf report -i "$data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40 || true
    } >"$OUT/perf-$2.txt"
}

# profile_all NAME SECONDS (background): perf samples of the whole machine (every process: the
# server, Postgres, RabbitMQ, Redis, the load generator) for SECONDS, into $TMP/perf-NAME.data;
# report_all NAME then writes the split by process and the top symbols to $OUT/perf-NAME.txt (after
# the measurement: the report itself takes CPU). For the scenarios whose cost is spread over many
# processes.
profile_all() {
    command -v perf >/dev/null 2>&1 || return 0
    perf record -F 199 -a -g -o "$TMP/perf-$1.data" -- sleep "$2" >/dev/null 2>&1 || return 0
}
report_all() {
    local data="$TMP/perf-$1.data"
    [[ -s $data ]] || return 0
    {
        echo "# perf record -F 199 -a -g (whole machine) during the warm-up of $1"
        echo "## by process"
        perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 16 || true
        echo "## by process and symbol (self time, top 50)"
        perf report -i "$data" --no-children --sort comm,dso,symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 50 || true
    } >"$OUT/perf-$1.txt" || true # head closing the pipe early is not a failure
}

run_wrk() { # run_wrk NAME URL [wrk args...]
    local name=$1 url=$2
    shift 2
    if ((WARMUP > 0)); then
        log "wrk warm-up $name (${WARMUP}s)"
        local prof=""
        if [[ -n ${PROFILE_PID:-} ]]; then
            profile_pid "$PROFILE_PID" "$name" "$WARMUP" &
            prof=$!
        fi
        wrk -t2 -c32 "-d${WARMUP}s" "$@" "$url" >/dev/null
        [[ -z $prof ]] || wait "$prof" || true
    fi
    log "wrk ${WRK_ARGS[*]} $url  [$name]"
    wrk "${WRK_ARGS[@]}" "$@" "$url" >"$OUT/wrk-$name.txt" || die "wrk $name failed (see $OUT/wrk-$name.txt)"
    local key=${name^^} elapsed
    key=${key//-/_}
    read -r "${key}_RPS" "${key}_AVG" "${key}_P50" "${key}_P99" "${key}_NON2XX" "${key}_SOCKERR" elapsed "${key}_MAX" \
        < <(wrk_parse "$OUT/wrk-$name.txt")
    local rps="${key}_RPS" p99="${key}_P99"
    [[ -n ${!rps} && -n ${!p99} && -n $elapsed ]] || die "could not parse $OUT/wrk-$name.txt"
    # On Ctrl-C wrk stops early, prints partial figures and exits 0, and bash then drops the
    # interrupt (it assumes the child handled it): a short run means we were interrupted.
    ((elapsed >= DURATION * 900)) || die "wrk $name stopped after $elapsed ms of ${DURATION} s (interrupted?)"
}

# log_stats PREFIX → "avg_ms p50_ms p99_ms count max_ms" of per-transaction latencies from pgbench --log files.
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
            if (NR == 0) { print "nan nan nan 0 nan"; exit }
            printf "%.3f %.3f %.3f %d %.3f\n", sum / NR / 1000, rank(0.50) / 1000, rank(0.99) / 1000, NR, v[NR] / 1000
        }'
}

run_pgbench() { # run_pgbench NAME SCRIPT MODE(tcp-app|tcp-super|socket-super) [PROTOCOL, default prepared] [-D var=value...]
    local name=$1 script=$2 mode=$3 protocol=${4:-prepared} logdir="$TMP/log-$1"
    shift 4 || shift $#
    mkdir -p "$logdir"
    chmod 777 "$logdir"
    local args=("${PGBENCH_ARGS[@]}" -M "$protocol" -f "$script" -D "tid=$TENANT_ID" -D "lid=$LOCATION_ID" "$@")
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
    read -r log_avg "${key}_P50" "${key}_P99" "${key}_N" "${key}_MAX" < <(log_stats "$logdir/tx")
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
RUN_ID=$(random_hex | cut -c1-12)
STACK_ENV=(
    ARIES__HTTP__BIND="$STACK_ADDR"
    # Redis keys, exchanges and queues of this run's own: with the default "aries" the bench would
    # share sessions, caches and locks with a `make run` on this machine and take its queued events.
    ARIES__REDIS__KEY_PREFIX="aries-bench-$RUN_ID"
    ARIES__RABBITMQ__NAMESPACE="aries-bench-$RUN_ID"
    ARIES__RABBITMQ__QUEUE_EXPIRES_MS=600000
    ARIES__DATABASE__CATALOG_URL=postgres://127.0.0.1:5432/aries_bench_catalog
    ARIES__AUTH__OPERATOR_TOKEN="$TOKEN"
    ARIES__LOG__LEVEL=warn
    # The limiter is on and checks every tenant request; its limits are set above the load so the
    # bench measures the check, not refusals (one credential at full speed would be refused by any
    # production limit).
    ARIES__RATE_LIMIT__ENABLED=true
    ARIES__RATE_LIMIT__PER_CREDENTIAL_PER_SECOND=10000000
    ARIES__RATE_LIMIT__STARTER_PER_SECOND=10000000
    ARIES__RATE_LIMIT__STANDARD_PER_SECOND=10000000
    ARIES__RATE_LIMIT__ENTERPRISE_PER_SECOND=10000000
)
aries() {
    env "${STACK_ENV[@]}" "$ARIES_BIN" "$@" >>"$OUT/aries-setup.log" 2>&1 || {
        tail -n 30 "$OUT/aries-setup.log" >&2
        die "'aries $*' failed (full output in $OUT/aries-setup.log)"
    }
}
: >"$OUT/aries-setup.log"
: >"$OUT/aries-serve.log"
log "aries migrate; aries shards add ×2; aries migrate"
aries migrate
aries shards add shard-0 postgres://127.0.0.1:5432/aries_bench_shard_0
aries shards add shard-1 postgres://127.0.0.1:5432/aries_bench_shard_1
aries migrate

start_stack() { # start_stack [ENV=VALUE...]: aries serve with STACK_ENV plus these
    log "starting aries serve on $STACK_ADDR ${*:-}"
    echo "=== aries serve ${*:-} ===" >>"$OUT/aries-serve.log"
    env "${STACK_ENV[@]}" "$@" "$ARIES_BIN" serve >>"$OUT/aries-serve.log" 2>&1 &
    STACK_PID=$!
    wait_http_200 "http://$STACK_ADDR/health/live" 60 "$STACK_PID" "aries serve"
}
stop_stack() {
    stop_pid "$STACK_PID" "aries serve"
    STACK_PID=""
}
# Peak memory of a process between reset_peak and peak_mib: the kernel's high-water mark of its
# resident set (VmHWM), reset by writing 5 to clear_refs.
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || warn "cannot reset the peak RSS of pid $1"; }
peak_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo ""; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# post_id PATH JSON: POST to the stack (tenant key for tenant URLs), expect 201, print the new id.
post_id() {
    local status
    status=$(http POST "http://$STACK_ADDR$1" "$2")
    expect_status 201 "$status" "POST $1"
    json_field "$TMP/resp" id
}

start_stack
STACK_URL_BASE="http://$STACK_ADDR"

# A tenant with what an order needs (prescriber, location, price list, payer, patient, policy);
# prints "tenant_id key prescriber location patient policy".
provision_world() { # provision_world SLUG
    local slug=$1 status tid key prescriber location list payer patient policy
    status=$(http POST "$STACK_URL_BASE/v1/platform/tenants" "{\"slug\":\"$slug\",\"name\":\"Bench DME $slug\",\"plan\":\"standard\"}")
    expect_status 201 "$status" "POST /v1/platform/tenants ($slug)"
    tid=$(json_field "$TMP/resp" id)
    status=$(http POST "$STACK_URL_BASE/v1/platform/tenants/$slug/api-keys" '{"name":"bench","roles":["owner"]}')
    expect_status 201 "$status" "POST /v1/platform/tenants/$slug/api-keys"
    key=$(json_field "$TMP/resp" secret)
    local saved=${TENANT_KEY:-}
    TENANT_KEY=$key
    prescriber=$(post_id "/v1/tenants/$slug/prescribers" '{"first_name":"Ann","last_name":"Lee","npi":"1234567893","pecos_enrolled":true}')
    location=$(post_id "/v1/tenants/$slug/locations" \
        '{"code":"MAIN","name":"Main branch","address":{"line1":"1 Main St","city":"Austin","state":"TX","postal_code":"78701"},"phone":"+1-512-555-0100"}')
    list=$(post_id "/v1/tenants/$slug/price-lists" '{"name":"Medicare TX"}')
    payer=$(post_id "/v1/tenants/$slug/payers" "{\"name\":\"Medicare DME MAC D\",\"payer_type\":\"medicare\",\"default_price_list_id\":\"$list\"}")
    patient=$(post_id "/v1/tenants/$slug/patients" "{\"first_name\":\"Rosa\",\"last_name\":\"Diaz\",\"date_of_birth\":\"1948-05-17\",\"address\":{\"line1\":\"12 Elm St\",\"city\":\"Austin\",\"state\":\"TX\",\"postal_code\":\"78701\"},\"primary_prescriber_id\":\"$prescriber\",\"location_id\":\"$location\",\"diagnosis_codes\":[\"G47.33\"]}")
    policy=$(post_id "/v1/tenants/$slug/patients/$patient/policies" "{\"payer_id\":\"$payer\",\"policy_number\":\"1EG4TE5MK72\"}")
    TENANT_KEY=$saved
    echo "$tid $key $prescriber $location $patient $policy"
}
read -r TENANT_ID TENANT_KEY PRESCRIBER_ID LOCATION_ID PATIENT_ID POLICY_ID < <(provision_world "$SLUG")
[[ -n $POLICY_ID ]] || die "could not set up tenant $SLUG"
read -r PGT_ID PGT_KEY PGT_PRESCRIBER PGT_LOCATION PGT_PATIENT PGT_POLICY < <(provision_world bench-pg)
[[ -n $PGT_POLICY ]] || die "could not set up tenant bench-pg"

STACK_URL="$STACK_URL_BASE/v1/tenants/$SLUG/locations/$LOCATION_ID"
status=$(http GET "$STACK_URL")
expect_status 200 "$status" "GET $STACK_URL"
cp "$TMP/resp" "$OUT/location.json"
[[ $(json_field "$OUT/location.json" id) == "$LOCATION_ID" ]] || die "GET returned another location: $(cat "$OUT/location.json")"
log "tenant $SLUG ($TENANT_ID), location $LOCATION_ID: $(wc -c <"$OUT/location.json") bytes of JSON"

# shard_db_of SLUG: the bench database holding the tenant's rows.
shard_db_of() {
    local dsn db
    dsn=$(psql_su aries_bench_catalog <<<"\\pset tuples_only on
\\pset format unaligned
select s.dsn from placement p join shard s using (shard_id) join tenant t using (tenant_id) where t.slug = '$1';")
    db=${dsn%%\?*}
    db=${db##*/}
    [[ " ${BENCH_DBS[*]} " == *" $db "* && $db == *shard* ]] || die "tenant $1 is placed on '$dsn', which is not a bench shard"
    echo "$db"
}
SHARD_DB=$(shard_db_of "$SLUG")
PGT_DB=$(shard_db_of bench-pg)
log "tenant $SLUG lives on $SHARD_DB, bench-pg on $PGT_DB"

# aries_load NAME MODE ARGS...: the fixed-rate generator; its JSON to $OUT/load-NAME.json, and
# NAME_{RPS,P50,P99,MAX,FAILED} set from it.
aries_load() {
    local name=$1
    shift
    log "aries-load $* [$name]"
    "$LOAD_BIN" "$@" --out "$OUT/load-$name.json" >/dev/null 2>"$OUT/load-$name.err" || {
        cat "$OUT/load-$name.err" >&2
        die "aries-load $name failed"
    }
    local key=${name//-/_}
    key=${key^^}
    read -r "${key}_RPS" "${key}_P50" "${key}_P99" "${key}_MAX" "${key}_FAILED" < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); l = d.get("latency", {})
print(round(d.get("rps", 0), 1), l.get("p50_ms", 0), l.get("p99_ms", 0), l.get("max_ms", 0), d.get("failed", 0))' "$OUT/load-$name.json")
}
half() { awk -v r="$1" 'BEGIN { printf "%.0f", r / 2 }'; }

# --- (a) cached, authenticated, rate-limited GET vs a bare actix-web handler ----------------------

log "starting aries-bench-bare on $BARE_ADDR"
"$BARE_BIN" "$BARE_ADDR" "$OUT/location.json" >"$OUT/bare.log" 2>&1 &
BARE_PID=$!
BARE_URL="http://$BARE_ADDR/v1/tenants/$SLUG/locations/$LOCATION_ID"
wait_http_200 "$BARE_URL" 20 "$BARE_PID" "aries-bench-bare"
curl -s "$BARE_URL" | cmp -s - "$OUT/location.json" || die "the bare handler's body differs from the stack's"
curl -s -D - -o /dev/null -H "Authorization: Bearer $TENANT_KEY" "$STACK_URL" | grep -qi '^ratelimit-limit:' ||
    die "the stack's answer carries no RateLimit-Limit header: is the limiter on?"

reset_peak "$STACK_PID"
PROFILE_PID=$STACK_PID run_wrk a-stack "$STACK_URL" -H "Authorization: Bearer $TENANT_KEY"
A_STACK_MEM=$(peak_mib "$STACK_PID")
reset_peak "$BARE_PID"
run_wrk a-bare "$BARE_URL"
A_BARE_MEM=$(peak_mib "$BARE_PID")
stop_pid "$BARE_PID" "aries-bench-bare"
BARE_PID=""
grep -qi '^X-Cache: hit' <(curl -s -D - -o /dev/null -H "Authorization: Bearer $TENANT_KEY" "$STACK_URL" | tr -d '\r') ||
    warn "the stack's GET did not answer X-Cache: hit after the run"
aries_load a-half http --url "$STACK_URL" --header "Authorization: Bearer $TENANT_KEY" \
    --rate "$(half "$A_STACK_RPS")" --duration "$DURATION" --warmup "$WARMUP"

# --- (c) creating an order (write + outbox + audit + idempotency) vs pgbench -----------------------

ORDER_BODY="{\"patient_id\":\"$PATIENT_ID\"}"
cat >"$TMP/order.lua" <<LUA
-- POST an order; a distinct Idempotency-Key per request (as a careful client sends).
wrk.method = "POST"
wrk.body = '$ORDER_BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TENANT_KEY"
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
function request()
  n = n + 1
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Idempotency-Key"] = "wrk-" .. tostring(tid) .. "-" .. n .. "-" .. math.random(1000000000)
  return wrk.format(nil, nil, h, nil)
end
LUA
orders_before=$(psql_su "$SHARD_DB" <<<"\\pset tuples_only on
select count(*) from patient_order where tenant_id = '$TENANT_ID';" | tr -d ' ')
reset_peak "$STACK_PID"
PROFILE_PID=$STACK_PID run_wrk c-stack "$STACK_URL_BASE/v1/tenants/$SLUG/orders" -s "$TMP/order.lua"
C_STACK_MEM=$(peak_mib "$STACK_PID")
printf '%s' "$ORDER_BODY" >"$TMP/order.json"
aries_load c-half http --url "$STACK_URL_BASE/v1/tenants/$SLUG/orders" --method POST --body-file "$TMP/order.json" \
    --header "Authorization: Bearer $TENANT_KEY" --header "Content-Type: application/json" \
    --header "Idempotency-Key: half-{n}" --rate "$(half "$C_STACK_RPS")" --duration "$DURATION" --warmup "$WARMUP"

# rows_per_order DB TENANT: rows per order in the tables an order creation writes (the same ratios
# for the API's orders and pgbench's transactions show that both did the same work).
rows_per_order() {
    psql_su "$1" <<<"\\pset tuples_only on
\\pset format unaligned
with o as (select count(*)::numeric n from patient_order where tenant_id = '$2')
select concat_ws('/', round((select count(*) from order_policy where tenant_id = '$2') / o.n, 2),
       round((select count(*) from outbox_event where tenant_id = '$2' and event_type = 'order.created') / o.n, 2),
       round((select count(*) from audit_event where tenant_id = '$2' and action = 'order.created') / o.n, 2),
       round((select count(*) from idempotency_key where tenant_id = '$2') / o.n, 2)) from o;"
}
C_APP_ROWS=$(rows_per_order "$SHARD_DB" "$TENANT_ID")

# --- (b) uncached GET by id: the stack with the response cache off ---------------------------------

stop_stack
start_stack ARIES__CACHE__ENABLED=false
grep -qi '^X-Cache: bypass' <(curl -s -D - -o /dev/null -H "Authorization: Bearer $TENANT_KEY" "$STACK_URL" | tr -d '\r') ||
    die "with cache.enabled=false the GET should answer X-Cache: bypass"
reset_peak "$STACK_PID"
PROFILE_PID=$STACK_PID run_wrk b-stack "$STACK_URL" -H "Authorization: Bearer $TENANT_KEY"
B_STACK_MEM=$(peak_mib "$STACK_PID")
aries_load b-half http --url "$STACK_URL" --header "Authorization: Bearer $TENANT_KEY" \
    --rate "$(half "$B_STACK_RPS")" --duration "$DURATION" --warmup "$WARMUP"
stop_stack

# --- Postgres ------------------------------------------------------------------------------------

tid=$(sql_literal "$TENANT_ID")
lid=$(sql_literal "$LOCATION_ID")
app_psql() { env PGPASSWORD="$PG_APP_PASSWORD" "$@" psql -X -w -q -At -h 127.0.0.1 -p 5432 -U "$PG_APP" -d "$SHARD_DB"; }
# Sanity: each form must find the row (else we would time empty answers), and RLS must bite without the setting.
n_super=$(psql_su "$SHARD_DB" <<<"\\pset tuples_only on
select count(*) from location where tenant_id = $tid and location_id = $lid;" | tr -d ' ')
n_tx=$(app_psql <<<"select aries_enter($tid, 1, false) \\; begin \\g /dev/null
select count(*) from location where tenant_id = $tid and location_id = $lid; commit;")
n_plain=$(app_psql <<<"select count(*) from location where tenant_id = $tid and location_id = $lid;" 2>&1 || true)
[[ $n_super == 1 && $n_tx == 1 ]] ||
    die "the location row is not found by every form (superuser=$n_super, tenant tx=$n_tx)"
if [[ $n_plain == 0 || $n_plain == *ERROR* ]]; then
    log "RLS bites: as $PG_APP without the tenant setting the row is invisible ($(head -n1 <<<"$n_plain"))"
else
    warn "RLS did NOT hide the row from $PG_APP without the tenant setting (got: $n_plain)"
fi

cat >"$TMP/raw.sql" <<'SQL'
select * from location where tenant_id = :tid and location_id = :lid;
SQL
# The app's read: the fence (`aries_enter`: placement check + the tenant setting) and BEGIN in one
# message, the SELECT, COMMIT — three round trips. pgbench allows a compound statement (\;) only in
# simple mode, so this script runs with -M simple and carries its values as literals.
cat >"$TMP/get3.sql" <<SQL
select aries_enter('$TENANT_ID', 1, false) \\; begin;
select * from location where tenant_id = '$TENANT_ID' and location_id = '$LOCATION_ID';
commit;
SQL
# The same statements prepared, the fence in its own round trip inside the transaction (four).
cat >"$TMP/get4.sql" <<'SQL'
begin;
select aries_enter(:tid, 1, false);
select * from location where tenant_id = :tid and location_id = :lid;
commit;
SQL
cp bench/sql/order-create.sql "$TMP/order-create.sql"
chmod 644 "$TMP"/*.sql

# The raw ceiling runs as the superuser postgres (RLS does not apply to it): over TCP like the others
# when the server lets postgres in without a password (trust), else over the unix socket (peer auth).
if PGPASSWORD='' PGCONNECT_TIMEOUT=3 psql -X -w -q -h 127.0.0.1 -U postgres -d "$SHARD_DB" -c 'select 1' >/dev/null 2>&1; then
    RAW_MODE=tcp-super RAW_NOTE="TCP"
else
    RAW_MODE=socket-super RAW_NOTE="unix socket"
fi
run_pgbench pg-raw "$TMP/raw.sql" "$RAW_MODE"
run_pgbench pg-get3 "$TMP/get3.sql" tcp-app simple
run_pgbench pg-get4 "$TMP/get4.sql" tcp-app prepared
# (b)'s ceiling: the faster of the two forms of the app's transaction.
if awk -v a="$PG_GET3_RPS" -v b="$PG_GET4_RPS" 'BEGIN { exit !(a >= b) }'; then B_CEIL=PG_GET3; else B_CEIL=PG_GET4; fi
B_CEIL_RPS=${B_CEIL}_RPS
B_CEIL_RPS=${!B_CEIL_RPS}

saved_db=$SHARD_DB
SHARD_DB=$PGT_DB
run_pgbench pg-order "$TMP/order-create.sql" tcp-app prepared \
    -D "pid=$PGT_PATIENT" -D "prid=$PGT_PRESCRIBER" -D "polid=$PGT_POLICY" -D "tid=$PGT_ID" -D "lid=$PGT_LOCATION"
SHARD_DB=$saved_db
C_PG_ROWS=$(rows_per_order "$PGT_DB" "$PGT_ID")
log "rows per order (policies/outbox/audit/idempotency): API $C_APP_ROWS, pgbench $C_PG_ROWS"
[[ $C_APP_ROWS == "$C_PG_ROWS" ]] || warn "the API's orders and pgbench's transactions wrote different rows per order"
# half of pgbench's peak, for its own p99 (pgbench --rate measures from the schedule, too)

# --- (e) cold activation of 10,000 provisioned tenants ---------------------------------------------

COLD_TENANTS=${ARIES_BENCH_TENANTS:-10000}
start_stack
aries_load e-provision provision --base "$STACK_URL_BASE" --operator-token "$TOKEN" --count "$COLD_TENANTS" \
    --prefix cold- --concurrency 8 --tenants "$OUT/cold-tenants.txt"
E_PROVISION_SECS=$(json_field "$OUT/load-e-provision.json" seconds)
# A fresh instance: no tenant actor runs. One request to the bench tenant first, so the figures
# below are the tenants' own cost, not the instance's first-request warm-up.
stop_stack
start_stack
status=$(http GET "$STACK_URL")
expect_status 200 "$status" "GET $STACK_URL (warm-up)"
sleep 1
E_RSS_BEFORE=$(rss_kib "$STACK_PID")
reset_peak "$STACK_PID"
# Activation by a request the response cache does not keep (the tenant's API keys, first page), so
# the memory measured is the active tenant's own: the actor, its mailbox, timer and state, its
# directory entry, its credential cache holding the key, its rate-limit lease, the plan cache.
E_PATH='/api-keys?limit=1'
aries_load e-cold activate --base "$STACK_URL_BASE" --tenants "$OUT/cold-tenants.txt" --concurrency 4 --path "$E_PATH"
E_COLD_MEM=$(peak_mib "$STACK_PID")
sleep 2 # let the background work settle
E_RSS_AFTER=$(rss_kib "$STACK_PID")
E_PER_ACTOR_KIB=$(awk -v a="$E_RSS_AFTER" -v b="$E_RSS_BEFORE" -v n="$COLD_TENANTS" 'BEGIN { printf "%.2f", (a - b) / n }')
ACTORS=$(curl -s -H "Authorization: Bearer $TOKEN" "$STACK_URL_BASE/metrics" | awk '/^aries_tenant_actors_active / { print $2 }' || true)
log "resident set: $E_RSS_BEFORE KiB before, $E_RSS_AFTER KiB after activating $COLD_TENANTS tenants: $E_PER_ACTOR_KIB KiB each${ACTORS:+ ($ACTORS actors active)}"
# The same requests again, every actor now running: the ceiling of the cold figures.
aries_load e-warm activate --base "$STACK_URL_BASE" --tenants "$OUT/cold-tenants.txt" --concurrency 4 --path "$E_PATH"
# Then one cached answer per tenant (GET …/locations?limit=1): what the response cache adds.
sleep 1
E_RSS_WARM=$(rss_kib "$STACK_PID")
aries_load e-cache activate --base "$STACK_URL_BASE" --tenants "$OUT/cold-tenants.txt" --concurrency 4
sleep 2
E_RSS_CACHED=$(rss_kib "$STACK_PID")
E_PER_ENTRY_KIB=$(awk -v a="$E_RSS_CACHED" -v b="$E_RSS_WARM" -v n="$COLD_TENANTS" 'BEGIN { printf "%.2f", (a - b) / n }')
log "resident set: $E_RSS_WARM KiB → $E_RSS_CACHED KiB after one cached answer per tenant: $E_PER_ENTRY_KIB KiB each"

# --- (d) live sockets: 5,000 dashboards, 1,000 events/s --------------------------------------------

WS_SOCKETS=${ARIES_BENCH_SOCKETS:-5000}
WS_TENANTS=${ARIES_BENCH_WS_TENANTS:-100}
WS_RATE=${ARIES_BENCH_EVENTS:-1000}
# The events are committed straight into the tenants' outboxes (as a write's transaction does: the
# cursor upsert and the event row in one statement, per shard, every 100 ms), so the fan-out path —
# relay, RabbitMQ, the instance queue, the hub, 5,000 sockets — is measured at 1,000 events/s rather
# than the write path's own ceiling, which (c) measures and which is below 1,000 writes/s here.
ws_slugs=$(head -n "$WS_TENANTS" "$OUT/cold-tenants.txt" | awk '{ printf "%s'"'"'%s'"'"'", (NR > 1 ? "," : ""), $1 }')
declare -A WS_IDS=()
while IFS='|' read -r db id; do
    [[ -n $db ]] && WS_IDS[$db]+="${WS_IDS[$db]:+,}$id"
done < <(psql_su aries_bench_catalog <<SQL
\pset tuples_only on
\pset format unaligned
select regexp_replace(split_part(s.dsn, '?', 1), '^.*/', ''), t.tenant_id
from placement p join shard s using (shard_id) join tenant t using (tenant_id) where t.slug in ($ws_slugs)
order by t.tenant_id;
SQL
)
# drive_events DB IDS SECONDS PER_TICK TICK_US: PER_TICK events for each tenant of IDS every
# TICK_US µs, one statement per tick on one connection, ticks on a fixed schedule. IDS are in
# tenant-id order, so every tick locks the cursors in one order.
drive_events() {
    local db=$1 ids=$2 secs=$3 per=$4 tick_us=$5 ticks i start due now
    local stmt="with c as (insert into outbox_cursor (tenant_id, last_seq) select t, $per from unnest('{$ids}'::uuid[]) t
  on conflict (tenant_id) do update set last_seq = outbox_cursor.last_seq + $per returning tenant_id, last_seq)
insert into outbox_event (tenant_id, event_id, aggregate_id, event_type, payload, seq)
select c.tenant_id, gen_random_uuid(), gen_random_uuid(), 'location.updated', '{\"code\": \"LIVE\"}'::jsonb, c.last_seq - $per + k
from c, generate_series(1, $per) k;"
    ticks=$((secs * 1000000 / tick_us))
    start=${EPOCHREALTIME/./}
    for ((i = 0; i < ticks; i++)); do
        echo "$stmt"
        due=$((start + (i + 1) * tick_us))
        now=${EPOCHREALTIME/./}
        ((due <= now)) || sleep "$(awk -v d=$((due - now)) 'BEGIN { printf "%.6f", d / 1e6 }')"
    done | psql_su "$db" >/dev/null
}
READY_FILE="$TMP/ws.ready"
# ws_round NAME RATE [profile]: opens the sockets, drives RATE events/s over the tenants into their
# outboxes for warm-up + duration, measures; writes $OUT/d-NAME.json: aries-load's summary with the
# latency flattened (p50_ms, p99_ms, max_ms) and what the script knows (peak_mib, rate, expected
# frames, schedule). `d_field NAME FIELD` reads it back.
ws_round() {
    local name=$1 rate=$2 profile=${3:-} per tick_us pid p db profiler="" out="$OUT/load-d-$1.json"
    # Up to 10 events per tenant per second: one per tenant per tick, the tick stretched; above,
    # several per tenant every 100 ms.
    read -r per tick_us < <(awk -v r="$rate" -v n="$WS_TENANTS" 'BEGIN {
        if (r / n >= 10) printf "%d 100000\n", r / n / 10; else printf "1 %d\n", 1e6 * n / r }')
    rm -f "$READY_FILE"
    reset_peak "$STACK_PID"
    log "aries-load ws ($name): $WS_SOCKETS sockets over $WS_TENANTS tenants; events: $per per tenant every ${tick_us} µs into the outboxes of ${!WS_IDS[*]}"
    ARIES_LOAD_READY_FILE=$READY_FILE "$LOAD_BIN" ws --base "$STACK_URL_BASE" --tenants "$OUT/cold-tenants.txt" --tenant-count "$WS_TENANTS" \
        --sockets "$WS_SOCKETS" --drive none --duration "$DURATION" --warmup "$WARMUP" \
        --out "$out" >/dev/null 2>"$OUT/load-d-$name.err" &
    pid=$!
    until [[ -e $READY_FILE ]]; do
        kill -0 "$pid" 2>/dev/null || { cat "$OUT/load-d-$name.err" >&2; die "aries-load ws failed before its sockets were open"; }
        sleep 0.1
    done
    local drivers=() since relay=()
    since=$(date -u +%FT%T.%6NZ)
    for db in "${!WS_IDS[@]}"; do
        drive_events "$db" "${WS_IDS[$db]}" $((WARMUP + DURATION + 1)) "$per" "$tick_us" &
        drivers+=($!)
    done
    # The warm-up seconds (events flowing, not yet measured) are profiled, the whole machine.
    if [[ -n $profile ]] && ((WARMUP > 0)); then
        profile_all "d-$name" "$WARMUP" &
        profiler=$!
    fi
    wait "$pid" || { cat "$OUT/load-d-$name.err" >&2; die "aries-load ws failed"; }
    for p in "${drivers[@]}"; do wait "$p" || die "an event driver failed"; done
    [[ -z $profiler ]] || wait "$profiler" || true
    [[ -z $profile ]] || report_all "d-$name"
    # The relay's share of the latency: commit → broker confirmed and marked (`published_at`),
    # per shard, over this round's events.
    for db in "${!WS_IDS[@]}"; do
        relay+=("$(psql_su "$db" <<SQL
\pset tuples_only on
\pset format unaligned
select round((1000 * percentile_cont(0.5) within group (order by extract(epoch from published_at - occurred_at)))::numeric, 1)
    || ' ' || round((1000 * percentile_cont(0.99) within group (order by extract(epoch from published_at - occurred_at)))::numeric, 1)
from outbox_event where occurred_at >= '$since' and published_at is not null;
SQL
)")
    done
    python3 - "$out" "$OUT/d-$name.json" "$(peak_mib "$STACK_PID")" "$per" "$tick_us" "$WS_TENANTS" "$DURATION" \
        "$((WS_SOCKETS / WS_TENANTS))" "${relay[*]}" <<'PY'
import json, sys
src, dst, peak, per, tick_us, tenants, duration, per_tenant, relay = sys.argv[1:]
d = json.load(open(src))
# "p50 p99" per shard: the worst shard's figures.
shards = [tuple(float(x) for x in relay.split()[i:i + 2]) for i in range(0, len(relay.split()) - 1, 2)]
d.update(relay_p50_ms=max((s[0] for s in shards), default=""), relay_p99_ms=max((s[1] for s in shards), default=""))
per, tick_us, tenants, duration, per_tenant = int(per), int(tick_us), int(tenants), int(duration), int(per_tenant)
d.update({k: d["latency"][k] for k in ("p50_ms", "p99_ms", "max_ms")})
rate = per * tenants * 1e6 / tick_us
d.update(peak_mib=peak, rate=f"{rate:.0f}", expected=int(rate * duration * per_tenant),
         schedule=f"{per} per tenant every {tick_us // 1000} ms")
json.dump(d, open(dst, "w"))
PY
}
# d_field NAME FIELD: a field of ws_round NAME's summary.
d_field() { json_field "$OUT/d-$1.json" "$2"; }
# settle_events: waits (up to 180 s) until every event committed so far is published and the
# run's RabbitMQ queues are empty, so a round does not measure the previous round's backlog.
settle_events() {
    local deadline=$((SECONDS + 180)) left db queued
    while ((SECONDS < deadline)); do
        left=0
        for db in "${!WS_IDS[@]}"; do
            left=$((left + $(psql_su "$db" <<<"\pset tuples_only on
select count(*) from outbox_event where published_at is null;" | tr -d '[:space:]')))
        done
        queued=$(rabbitmqctl -q list_queues name messages 2>/dev/null |
            awk -v ns="aries-bench-$RUN_ID" 'index($1, ns) == 1 && $2 ~ /^[0-9]+$/ { n += $2 } END { print n + 0 }')
        if ((left == 0 && queued == 0)); then
            log "events settled (outboxes published, queues empty)"
            return 0
        fi
        sleep 1
    done
    warn "events did not settle in 180 s ($left unpublished, $queued queued)"
}
ws_round ws "$WS_RATE" profile
settle_events
# Half of the rate the sockets sustained: the fan-out's latency below saturation.
ws_round half "$(awk -v r="$(d_field ws events_per_second)" -v n="$WS_TENANTS" 'BEGIN { h = r / 2; printf "%.0f", (h < n / 10 ? n / 10 : h) }')"
stop_stack
# --- (f) tenant move under load ------------------------------------------------------------------

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

start_stack
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
stop_stack

# --- report --------------------------------------------------------------------------------------

ratio() { # a ÷ b with 2-3 significant digits, e.g. 0.0312×, 0.31×, 3.2×, 31×
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b + 0 == 0) { print "n/a"; exit }
        r = a / b
        if (r >= 10) printf "%.0f×", r; else if (r >= 1) printf "%.2f×", r; else if (r >= 0.1) printf "%.3f×", r; else printf "%.2g×", r
    }'
}
# row SCENARIO NAME WHAT TOOL RPS P50 P99 MAX MEM RATIO
row() {
    awk -v s="$1" -v n="$2" -v w="$3" -v t="$4" -v r="$5" -v p="$6" -v q="$7" -v m="$8" -v mem="$9" -v x="${10}" 'BEGIN {
        f = (m == "" ? "—" : sprintf("%.1f", m))
        printf "| %s | %-9s | %-62s | %-10s | %10.0f | %8.3f | %8.3f | %8s | %6s | %-14s |\n", s, n, w, t, r, p, q, f, (mem == "" ? "—" : mem), x
    }'
}
# meets VALUE OP LIMIT → ✓ or ✗
meets() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == ">=" ? v >= l : v < l); print (ok ? "✓" : "✗") }'; }

A_RATIO=$(ratio "$A_STACK_RPS" "$A_BARE_RPS")
B_RATIO=$(ratio "$B_STACK_RPS" "$B_CEIL_RPS")
C_RATIO=$(ratio "$C_STACK_RPS" "$PG_ORDER_RPS")
E_COLD_RPS=$(json_field "$OUT/load-e-cold.json" rps)
{
    printf '| %s | %-9s | %-62s | %-10s | %10s | %8s | %8s | %8s | %6s | %-14s |\n' \
        "" row what tool "req/s, tps" "p50 ms" "p99 ms" "max ms" "peak MiB" "÷ ceiling"
    echo "|---|-----------|----------------------------------------------------------------|------------|-----------:|---------:|---------:|---------:|-------:|----------------|"
    row a stack "GET location, API key, rate-limited, response cache hit" wrk "$A_STACK_RPS" "$A_STACK_P50" "$A_STACK_P99" "$A_STACK_MAX" "$A_STACK_MEM" "$A_RATIO"
    row a bare "ceiling: bare actix-web handler, same JSON" wrk "$A_BARE_RPS" "$A_BARE_P50" "$A_BARE_P99" "$A_BARE_MAX" "$A_BARE_MEM" "1"
    row a "stack ½" "the stack GET at half its peak rate (open loop)" aries-load "$A_HALF_RPS" "$A_HALF_P50" "$A_HALF_P99" "$A_HALF_MAX" "" ""
    row b stack "GET location, cache off: tenant transaction on the shard" wrk "$B_STACK_RPS" "$B_STACK_P50" "$B_STACK_P99" "$B_STACK_MAX" "$B_STACK_MEM" "$B_RATIO"
    row b pg-get3 "ceiling: the app's tx (fence+BEGIN; SELECT; COMMIT), simple" pgbench "$PG_GET3_RPS" "$PG_GET3_P50" "$PG_GET3_P99" "$PG_GET3_MAX" "" "$([[ $B_CEIL == PG_GET3 ]] && echo 1 || echo "")"
    row b pg-get4 "ceiling: the same 4 statements prepared" pgbench "$PG_GET4_RPS" "$PG_GET4_P50" "$PG_GET4_P99" "$PG_GET4_MAX" "" "$([[ $B_CEIL == PG_GET4 ]] && echo 1 || echo "")"
    row b pg-raw "for scale: the bare SELECT, superuser, no tx ($RAW_NOTE)" pgbench "$PG_RAW_RPS" "$PG_RAW_P50" "$PG_RAW_P99" "$PG_RAW_MAX" "" ""
    row b "stack ½" "the uncached GET at half its peak rate (open loop)" aries-load "$B_HALF_RPS" "$B_HALF_P50" "$B_HALF_P99" "$B_HALF_MAX" "" ""
    row c stack "POST order (+ outbox, audit, Idempotency-Key)" wrk "$C_STACK_RPS" "$C_STACK_P50" "$C_STACK_P99" "$C_STACK_MAX" "$C_STACK_MEM" "$C_RATIO"
    row c pg-order "ceiling: the same statements in one tx (bench/sql)" pgbench "$PG_ORDER_RPS" "$PG_ORDER_P50" "$PG_ORDER_P99" "$PG_ORDER_MAX" "" "1"
    row c "stack ½" "POST order at half the peak rate (open loop)" aries-load "$C_HALF_RPS" "$C_HALF_P50" "$C_HALF_P99" "$C_HALF_MAX" "" ""
    row d sockets "$WS_SOCKETS sockets / $WS_TENANTS tenants, event → socket; rate = events/s" aries-load "$(d_field ws events_per_second)" "$(d_field ws p50_ms)" "$(d_field ws p99_ms)" "$(d_field ws max_ms)" "$(d_field ws peak_mib)" ""
    row d "sockets ½" "the same at half the events/s the sockets sustained" aries-load "$(d_field half events_per_second)" "$(d_field half p50_ms)" "$(d_field half p99_ms)" "$(d_field half max_ms)" "$(d_field half peak_mib)" ""
    row e cold "first GET …/api-keys of each of $COLD_TENANTS tenants (actor start)" aries-load "$E_COLD_RPS" "$E_COLD_P50" "$E_COLD_P99" "$E_COLD_MAX" "$E_COLD_MEM" "$(ratio "$E_COLD_P99" "$E_WARM_P99") p99"
    row e warm "ceiling: the same requests, actors running" aries-load "$E_WARM_RPS" "$E_WARM_P50" "$E_WARM_P99" "$E_WARM_MAX" "" "1"
    row f writer "POST locations of bench-move during its move" python "$MOVE_W_RPS" "$MOVE_W_P50" "$MOVE_W_P99" "$MOVE_W_MAX" "" ""
} >"$TMP/table.md"
{
    echo "| target | measured | |"
    echo "|---|---|---|"
    echo "| (a) stack ≥ 0.5 × bare req/s | $A_RATIO | $(meets "$A_STACK_RPS" ">=" "$(awk -v b="$A_BARE_RPS" 'BEGIN { print b / 2 }')") |"
    echo "| (b) uncached GET ≥ 0.7 × pgbench tps | $B_RATIO | $(meets "$B_STACK_RPS" ">=" "$(awk -v b="$B_CEIL_RPS" 'BEGIN { print b * 0.7 }')") |"
    echo "| (c) POST order ≥ 0.6 × pgbench tps | $C_RATIO | $(meets "$C_STACK_RPS" ">=" "$(awk -v b="$PG_ORDER_RPS" 'BEGIN { print b * 0.6 }')") |"
    echo "| (a)–(c) p99 < 10 ms at half of peak | ${A_HALF_P99} / ${B_HALF_P99} / ${C_HALF_P99} ms | $(meets "$(printf '%s\n' "$A_HALF_P99" "$B_HALF_P99" "$C_HALF_P99" | sort -g | tail -n1)" "<" 10) |"
    echo "| (d) p99 event → socket < 100 ms at $WS_RATE events/s | $(d_field ws p99_ms) ms at $(d_field ws events_per_second) events/s delivered of $(d_field ws rate) ($(d_field ws frames_per_second) frames/s); $(d_field half p99_ms) ms at $(d_field half events_per_second) events/s | $(meets "$(d_field ws p99_ms)" "<" 100) |"
    echo "| (e) cold activation p99 < 10 ms | $E_COLD_P99 ms | $(meets "$E_COLD_P99" "<" 10) |"
    echo "| (e) < 4 KiB per idle active tenant actor | $E_PER_ACTOR_KIB KiB (RSS $E_RSS_BEFORE → $E_RSS_AFTER KiB for $COLD_TENANTS tenants); + $E_PER_ENTRY_KIB KiB with one cached answer each | $(meets "$E_PER_ACTOR_KIB" "<" 4) |"
} >"$TMP/targets.md"
{
    echo "- (c) rows per order (policies/outbox/audit/idempotency keys): API $C_APP_ROWS, pgbench $C_PG_ROWS"
    for n in ws half; do
        label="(d)"
        [[ $n == half ]] && label="(d ½)"
        echo "- $label sockets opened in $(d_field $n open_seconds) s; frames received $(d_field $n frames_received) of ~$(d_field $n expected) expected; resyncs $(d_field $n resyncs); sockets dropped $(d_field $n sockets_dropped); of the latency, commit → broker confirmed (the relay, worst shard) p50 $(d_field $n relay_p50_ms) ms, p99 $(d_field $n relay_p99_ms) ms; events committed straight into the outboxes ($(d_field $n schedule))"
    done
    echo "- (e) $COLD_TENANTS tenants provisioned through the API in ${E_PROVISION_SECS} s (tenant + API key each, 8 in flight)"
} >"$TMP/notes.md"
{
    echo "| (f) move of bench-move ($MOVE_COPIED rows) to a second Postgres server | value |"
    echo "|---|---:|"
    echo "| request → flip (copy, catch-up, freeze, verify) | $MOVE_FLIP ms |"
    echo "| request → done (source rows removed) | $MOVE_TOOK ms |"
    echo "| freeze (writes held, then served on the target) | $MOVE_PAUSE ms |"
    echo "| longest write during the run (writer's max latency, $MOVE_W_REQUESTS writes) | $MOVE_W_MAX ms |"
    echo "| writes replayed by the catch-up / rounds | $MOVE_CHANGES / $MOVE_ROUNDS |"
    echo "| failed writes | $MOVE_W_FAILED |"
} >"$TMP/move.md"

problems=()
for k in A_STACK A_BARE B_STACK C_STACK; do
    n="${k}_NON2XX" e="${k}_SOCKERR"
    ((${!n} == 0)) || problems+=("${k,,}: ${!n} non-2xx responses: its figures are not valid")
    ((${!e} == 0)) || problems+=("${k,,}: wrk saw ${!e} socket errors")
done
for k in A_HALF B_HALF C_HALF E_COLD E_WARM E_CACHE; do
    n="${k}_FAILED"
    ((${!n} == 0)) || problems+=("${k,,}: ${!n} failed requests (see $OUT/load-*.json)")
done
(($(d_field ws sockets_dropped) == 0 && $(d_field half sockets_dropped) == 0)) || problems+=("sockets: $(d_field ws sockets_dropped) and $(d_field half sockets_dropped) dropped")
((MOVE_W_FAILED == 0)) || problems+=("$MOVE_W_FAILED writes failed during the move (see $OUT/move-writer.json)")

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git status --porcelain 2>/dev/null | head -n1) ]] || commit+=" (+ uncommitted changes)"
{
    echo "# make bench — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- commit: $commit"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
    echo "- software: $(rustc --version 2>/dev/null || echo rustc ?), $( (wrk --version 2>&1 || true) | head -n1 | awk '{ print $1, $2 }'), PostgreSQL $(as_postgres "psql -X -At -c 'show server_version'"), $(pgbench --version)"
    echo "- load generators share the $(nproc) cores with the servers (all on 127.0.0.1); ${DURATION}s per measurement after ${WARMUP}s of warm-up"
    echo "- wrk: \`wrk ${WRK_ARGS[*]} [-H 'Authorization: Bearer …'] [-s order.lua] URL\`; pgbench: \`pgbench ${PGBENCH_ARGS[*]} -M … -f SCRIPT -D … --log\` as $PG_APP; aries-load: bench/src/load.rs (open loop, latency from each request's due time)"
    echo
    cat "$TMP/table.md"
    echo
    cat "$TMP/targets.md"
    echo
    cat "$TMP/notes.md"
    echo
    cat "$TMP/move.md"
    for p in "${problems[@]}"; do echo "- **WARNING: $p**"; done
} >"$OUT/latest.md"

echo
cat "$TMP/table.md"
echo
cat "$TMP/targets.md"
echo
cat "$TMP/notes.md"
echo
cat "$TMP/move.md"
echo
log "written to $OUT/latest.md (raw outputs: $OUT/wrk-*.txt, $OUT/pgbench-*.txt, $OUT/load-*.json)"
if ((${#problems[@]} > 0)); then
    for p in "${problems[@]}"; do warn "$p"; done
    exit 1
fi
