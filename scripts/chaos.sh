#!/usr/bin/env bash
# `make chaos`: faults under a steady load, then proof that nothing was lost (docs/CHAOS.md).
#
# Environment, all private so no fault touches the machine's shared services: a Redis and a RabbitMQ
# node of our own (free ports, data under a temp dir), the catalog and shard-0 on the machine's
# Postgres (databases aries_chaos_*), shard-1 on a second Postgres server started here, two
# `aries serve` instances (a release build WITH the fault-injection feature, in its own target dir
# target/chaos-build, so target/release/aries stays the normal binary), two tenants (one per shard),
# each with a webhook endpoint on a local receiver that verifies signatures and applies each event once.
#
# While scripts/chaos/chaos.py writes locations and patients through both instances (each write under
# its own Idempotency-Key, retried with the same key until acknowledged), one fault after another:
#   restart RabbitMQ · restart Redis · stop shard-1's Postgres server (-m immediate) and start it ·
#   panic a tenant actor's handler (POST /v1/platform/faults/…) · kill -9 one instance and start it.
# After each, the time until both instances are ready and a write per tenant succeeds is measured.
# Then the load stops, the outbox drains, and every acknowledged write is looked up in its shard
# (exactly one row) and in the receiver's log (its event applied once). The table goes to the terminal
# and target/chaos/latest.md; the exit status is 1 if anything was lost or duplicated, an event went
# missing, or a recovery took over 10 s. Everything started here is stopped, the databases dropped.
#
# Knobs: ARIES_CHAOS_RATE (writes/s, default 100), ARIES_CHAOS_GAP (seconds of steady load between
#        faults, default 6), ARIES_NO_BUILD=1 (use the binary already built),
#        ARIES_CHAOS_BIN (default target/chaos-build/release/aries).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARIES_ROOT"

RATE=${ARIES_CHAOS_RATE:-100}
GAP=${ARIES_CHAOS_GAP:-6}
[[ $RATE =~ ^[1-9][0-9]*$ && $GAP =~ ^[1-9][0-9]*$ ]] || die "ARIES_CHAOS_RATE/ARIES_CHAOS_GAP must be whole numbers"
BIN=${ARIES_CHAOS_BIN:-target/chaos-build/release/aries}
PG_OWNER=$(sql_ident "${ARIES_PG_OWNER:-aries_owner}")
PG_APP=$(sql_ident "${ARIES_PG_APP:-aries_app}")
DBS=(aries_chaos_catalog aries_chaos_shard_0)
SHARD1_DB=aries_chaos_shard_1
OUT=target/chaos
RUN=$OUT/run
CHAOS_PY=scripts/chaos/chaos.py

# --- tools, services, build ----------------------------------------------------------------------

bash "$ARIES_ROOT/scripts/services.sh"
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
((${#need[@]} == 0)) || apt_install "${need[@]}"

if [[ ${ARIES_NO_BUILD:-0} != 1 ]]; then
    log "cargo build --release -p aries-http --features fault-injection --target-dir target/chaos-build"
    cargo build --release -p aries-http --features fault-injection --target-dir target/chaos-build
fi
[[ -x $BIN ]] || die "$BIN not found (build with: cargo build --release -p aries-http --features fault-injection --target-dir target/chaos-build)"

# --- cleanup -------------------------------------------------------------------------------------

mkdir -p "$OUT"
rm -rf -- "$RUN"
mkdir -p "$RUN"
TMP=$(mktemp -d /tmp/aries-chaos.XXXXXX)
chmod 755 "$TMP" # the postgres and rabbitmq users must reach their directories inside
declare -A PID # name → pid of everything started here (instances a and b, redis, receiver, load)
RABBIT_NODE="aries-chaos-$$@localhost"
RABBIT_UP=""
PG2_DIR=$TMP/pg2
PG2_UP=""

stop_pid() { # stop_pid NAME: TERM, up to 10 s, then KILL
    local pid=${PID[$1]:-}
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PID[$1]=""
}

drop_dbs() {
    local sql="SET client_min_messages TO warning;"$'\n' db
    for db in "${DBS[@]}"; do sql+="DROP DATABASE IF EXISTS $db WITH (FORCE);"$'\n'; done
    psql_su postgres <<<"$sql"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n ${RUN:-} ]] && touch "$RUN/load.stop" 2>/dev/null
    local name
    for name in load a b receiver redis; do stop_pid "$name"; done
    [[ -n $RABBIT_UP ]] && rabbit_stop
    stop_pid rabbit
    [[ -n $PG2_UP ]] && { pg_cluster_stop "$PG2_DIR" || true; }
    drop_dbs 2>/dev/null || warn "could not drop the chaos databases (${DBS[*]})"
    rm -rf -- "$TMP"
    ((rc == 0)) || warn "chaos failed (exit $rc); logs and records in $OUT/"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# --- private Redis and RabbitMQ ------------------------------------------------------------------

REDIS_PORT=$(free_port 56380 56399)
redis_start() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >>"$OUT/redis.log" 2>&1 &
    PID[redis]=$!
    local deadline=$((SECONDS + 20))
    until tcp_open 127.0.0.1 "$REDIS_PORT"; do
        ((SECONDS < deadline)) || die "redis-server did not start on $REDIS_PORT (see $OUT/redis.log)"
        sleep 0.05
    done
}

RABBIT_PORT=$(free_port 56720 56739)
RABBIT_DIST=$(free_port 56740 56759)
mkdir -p "$TMP/rmq/mnesia" "$TMP/rmq/log"
echo '[].' >"$TMP/rmq/plugins"
chown -R rabbitmq:rabbitmq "$TMP/rmq"
rabbit_start() { # the same node name and directories each time: durable queues come back
    local try deadline
    for try in 1 2 3; do
        env RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST" \
            RABBITMQ_MNESIA_BASE="$TMP/rmq/mnesia" RABBITMQ_LOG_BASE="$TMP/rmq/log" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$TMP/rmq/plugins" RABBITMQ_FEATURE_FLAGS_FILE="$TMP/rmq/feature_flags" \
            RABBITMQ_CONFIG_FILE="$TMP/rmq/none" rabbitmq-server >>"$OUT/rabbitmq.log" 2>&1 &
        PID[rabbit]=$!
        RABBIT_UP=1
        deadline=$((SECONDS + 90))
        until tcp_open 127.0.0.1 "$RABBIT_PORT"; do
            # A node that exits at boot (its port still held by the old one's sockets): try again.
            kill -0 "${PID[rabbit]}" 2>/dev/null || break
            ((SECONDS < deadline)) || die "rabbitmq node $RABBIT_NODE did not start (see $OUT/rabbitmq.log)"
            sleep 0.1
        done
        tcp_open 127.0.0.1 "$RABBIT_PORT" && return 0
        warn "rabbitmq node $RABBIT_NODE exited while booting (attempt $try); trying again"
        sleep 2
    done
    die "rabbitmq node $RABBIT_NODE did not start (see $OUT/rabbitmq.log)"
}
rabbit_stop() { # stop the node, then wait for its port to close and its process to end
    rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    while tcp_open 127.0.0.1 "$RABBIT_PORT" && ((SECONDS < deadline)); do sleep 0.1; done
    while [[ -n ${PID[rabbit]:-} ]] && kill -0 "${PID[rabbit]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    RABBIT_UP=""
}

log "private Redis on $REDIS_PORT, RabbitMQ node $RABBIT_NODE on $RABBIT_PORT"
: >"$OUT/redis.log"
: >"$OUT/rabbitmq.log"
redis_start
rabbit_start

# --- Postgres: catalog and shard-0 on the machine's server, shard-1 on a second one ---------------

log "fresh databases ${DBS[*]} on the machine's Postgres"
drop_dbs
for db in "${DBS[@]}"; do
    printf "CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';\n" "$db" "$PG_OWNER"
done | psql_su postgres
PG2_PORT=$(free_port 55461 55480)
log "second Postgres server on $PG2_PORT for shard-1"
pg_cluster_init "$PG2_DIR" "$OUT/pg2-initdb.log"
pg_cluster_start "$PG2_DIR" "$PG2_PORT"
PG2_UP=1
pg_cluster_roles "$PG2_PORT" "$PG_OWNER" "$PG_APP"
pg_cluster_psql "$PG2_PORT" <<<"create database $SHARD1_DB owner $PG_OWNER template template0 encoding 'UTF8' lc_collate 'C.UTF-8' lc_ctype 'C.UTF-8';"

# --- two instances -------------------------------------------------------------------------------

TOKEN=$(random_hex)
PORT_A=$(free_port 18180 18189)
PORT_B=$(free_port $((PORT_A + 1)) 18199)
ENVS=(
    ARIES__DATABASE__CATALOG_URL=postgres://127.0.0.1:5432/aries_chaos_catalog
    ARIES__AUTH__OPERATOR_TOKEN="$TOKEN"
    ARIES__REDIS__URL="redis://127.0.0.1:$REDIS_PORT"
    ARIES__RABBITMQ__URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
    ARIES__WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true
    ARIES__LOG__LEVEL=info
    # The limiter stays on (a Redis restart must not break it) but far above the load's rate.
    ARIES__RATE_LIMIT__PER_CREDENTIAL_PER_SECOND=100000
    ARIES__RATE_LIMIT__STANDARD_PER_SECOND=100000
)
aries() {
    env "${ENVS[@]}" "$BIN" "$@" >>"$OUT/aries-setup.log" 2>&1 || {
        tail -n 30 "$OUT/aries-setup.log" >&2
        die "'aries $*' failed (full output in $OUT/aries-setup.log)"
    }
}
: >"$OUT/aries-setup.log"
log "aries migrate; shards add shard-0 (5432), shard-1 ($PG2_PORT); aries migrate"
aries migrate
aries shards add shard-0 postgres://127.0.0.1:5432/aries_chaos_shard_0
aries shards add shard-1 "postgres://127.0.0.1:$PG2_PORT/$SHARD1_DB"
aries migrate

start_instance() { # start_instance a|b PORT
    env "${ENVS[@]}" ARIES__HTTP__BIND="127.0.0.1:$2" "$BIN" serve >>"$OUT/aries-$1.log" 2>&1 &
    PID[$1]=$!
}
wait_live() { # wait_live NAME PORT SECONDS
    local deadline=$((SECONDS + $3))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$2/health/live" 2>/dev/null || true) == 200 ]]; do
        kill -0 "${PID[$1]}" 2>/dev/null || {
            tail -n 30 "$OUT/aries-$1.log" >&2
            die "instance $1 exited"
        }
        ((SECONDS < deadline)) || die "instance $1 did not answer /health/live within $3 s"
        sleep 0.1
    done
}
: >"$OUT/aries-a.log"
: >"$OUT/aries-b.log"
log "instances a on $PORT_A and b on $PORT_B"
start_instance a "$PORT_A"
start_instance b "$PORT_B"
wait_live a "$PORT_A" 60
wait_live b "$PORT_B" 60

# api METHOD PATH BEARER [JSON]: body to $TMP/resp, prints the status (000 when no answer).
api() {
    local args=(-sS -o "$TMP/resp" -w '%{http_code}' --max-time 10 -X "$1" -H "Authorization: Bearer $3")
    (($# >= 4)) && args+=(-H 'Content-Type: application/json' --data-binary "$4")
    : >"$TMP/resp"
    curl "${args[@]}" "http://127.0.0.1:$PORT_A$2" 2>/dev/null || true
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$TMP/resp" "$1"; }
expect() { # expect WANT GOT WHAT
    [[ $2 == "$1" ]] || die "$3: expected HTTP $1, got $2: $(head -c 1000 "$TMP/resp")"
}

# --- tenants (one per shard), webhook receiver --------------------------------------------------

RECV_PORT=$(free_port 18200 18219)
python3 "$CHAOS_PY" receiver "$RUN" "$RECV_PORT" 2>>"$OUT/receiver.log" &
PID[receiver]=$!
declare -A ON_SHARD
TENANTS_JSON=""
SECRETS_JSON=""
for i in 1 2 3 4 5 6; do
    slug=chaos-$i
    st=$(api POST /v1/platform/tenants "$TOKEN" "{\"slug\":\"$slug\",\"name\":\"Chaos $i\",\"plan\":\"standard\"}")
    expect 201 "$st" "POST /v1/platform/tenants ($slug)"
    tid=$(field id)
    shard=$(field shard)
    [[ -z ${ON_SHARD[$shard]:-} ]] || continue
    ON_SHARD[$shard]=$slug
    st=$(api POST "/v1/platform/tenants/$slug/api-keys" "$TOKEN" '{"name":"chaos","roles":["owner"]}')
    expect 201 "$st" "POST api-keys ($slug)"
    key=$(field secret)
    st=$(api POST "/v1/tenants/$slug/webhooks" "$key" \
        "{\"url\":\"http://127.0.0.1:$RECV_PORT/hooks/$slug\",\"event_types\":[\"location.created\",\"patient.created\"]}")
    expect 201 "$st" "POST webhooks ($slug)"
    secret=$(field secret)
    TENANTS_JSON+="${TENANTS_JSON:+,}{\"slug\":\"$slug\",\"id\":\"$tid\",\"shard\":\"$shard\",\"key\":\"$key\"}"
    SECRETS_JSON+="${SECRETS_JSON:+,}\"$slug\":\"$secret\""
    log "tenant $slug on $shard"
    ((${#ON_SHARD[@]} < 2)) || break
done
((${#ON_SHARD[@]} == 2)) || die "could not place a tenant on each shard (${!ON_SHARD[*]})"
printf '{%s}\n' "$SECRETS_JSON" >"$RUN/webhook-secrets.json"
printf '{"instances":["127.0.0.1:%s","127.0.0.1:%s"],"token":"%s","rate":%s,"threads":24,"tenants":[%s]}\n' \
    "$PORT_A" "$PORT_B" "$TOKEN" "$RATE" "$TENANTS_JSON" >"$RUN/config.json"
SHARD0_TENANT=${ON_SHARD[shard-0]}

# --- load and faults -----------------------------------------------------------------------------

recover() { # recover NAME RETURNED_AT STARTED_AT
    log "fault '$1': waiting for both instances to be ready and a write per tenant to succeed"
    python3 "$CHAOS_PY" recover "$RUN" "$1" "$2" "$3" || warn "fault '$1': no recovery within 60 s"
}

log "steady load: $RATE writes/s through both instances; a fault every ~$GAP s"
python3 "$CHAOS_PY" load "$RUN" >"$OUT/load.json" 2>"$OUT/load.log" &
PID[load]=$!
sleep "$GAP"

log "fault: restart RabbitMQ"
t=$(now)
rabbit_stop
sleep 3
rabbit_start
recover "restart RabbitMQ" "$(now)" "$t"
sleep "$GAP"

log "fault: restart Redis"
t=$(now)
kill -KILL "${PID[redis]}"
wait "${PID[redis]}" 2>/dev/null || true
sleep 3
redis_start
recover "restart Redis" "$(now)" "$t"
sleep "$GAP"

log "fault: stop shard-1's Postgres server (immediate), start it again"
t=$(now)
pg_cluster_stop "$PG2_DIR" || die "could not stop the second Postgres server"
sleep 5
pg_cluster_start "$PG2_DIR" "$PG2_PORT"
recover "stop shard-1 Postgres" "$(now)" "$t"
sleep "$GAP"

log "fault: panic $SHARD0_TENANT's actor handler on both instances"
t=$(now)
for port in "$PORT_A" "$PORT_B"; do
    st=$(curl -sS -o "$TMP/resp" -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:$port/v1/platform/faults/tenants/$SHARD0_TENANT/panic" 2>/dev/null || true)
    expect 202 "$st" "POST /v1/platform/faults/tenants/$SHARD0_TENANT/panic on $port"
done
recover "panic tenant actor" "$(now)" "$t"
sleep "$GAP"

log "fault: kill -9 instance b, start it again"
t=$(now)
kill -KILL "${PID[b]}"
wait "${PID[b]}" 2>/dev/null || true
sleep 3
start_instance b "$PORT_B"
recover "kill -9 instance b" "$(now)" "$t"
sleep "$GAP"

log "stopping the load (writes still being retried get 30 s)"
touch "$RUN/load.stop"
wait "${PID[load]}" || die "the load generator failed (see $OUT/load.log)"
PID[load]=""
log "waiting for the outbox to drain (every acknowledged write's event at the receiver, up to 60 s)"
python3 "$CHAOS_PY" drain "$RUN" 60

# --- verification --------------------------------------------------------------------------------

ids=""
for t in $(python3 -c 'import json,sys; print(" ".join(t["id"] for t in json.load(open(sys.argv[1]))["tenants"]))' "$RUN/config.json"); do
    ids+="${ids:+,}'$t'"
done
rows_sql() { # rows_sql SHARD: tab-separated (shard, tenant, kind, id, marker) of the chaos tenants' rows
    cat <<SQL
\\pset tuples_only on
\\pset format unaligned
\\pset fieldsep '\\t'
select '$1', tenant_id, 'location', location_id, name from location where tenant_id in ($ids)
union all
select '$1', tenant_id, 'patient', patient_id, delivery_directions from patient where tenant_id in ($ids);
SQL
}
rows_sql shard-0 | psql_su aries_chaos_shard_0 >"$RUN/rows-shard-0.tsv"
rows_sql shard-1 | pg_cluster_psql "$PG2_PORT" "$SHARD1_DB" >"$RUN/rows-shard-1.tsv"
log "rows: shard-0 $(wc -l <"$RUN/rows-shard-0.tsv"), shard-1 $(wc -l <"$RUN/rows-shard-1.tsv")"

rc=0
python3 "$CHAOS_PY" verify "$RUN" >"$TMP/verify.out" || rc=$?
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git status --porcelain 2>/dev/null | head -n1) ]] || commit+=" (+ uncommitted changes)"
{
    echo "# make chaos — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- commit: $commit"
    echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
    echo "- load: $RATE writes/s (locations and patients, 2 tenants, one per shard) through 2 instances; $GAP s of steady load between faults"
    echo
    cat "$RUN/table.md"
} >"$OUT/latest.md"
echo
cat "$TMP/verify.out"
log "written to $OUT/latest.md (records in $RUN/, server logs in $OUT/aries-*.log)"
((rc == 0)) || die "chaos found problems (see above)"
