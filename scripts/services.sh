#!/usr/bin/env bash
# Ensure the local services AriesOne needs, on loopback only:
#   PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, RabbitMQ 127.0.0.1:5672
# then the database roles and databases (idempotent).
#
# A service that already answers is left strictly alone (never restarted or reconfigured).
# A missing one is installed with apt (Debian 12) and started by hand: apt does not start
# services on this kind of machine (no systemd, policy-rc.d says no).
#
# Environment overrides (defaults in brackets):
#   ARIES_PG_OWNER [aries_owner]  ARIES_PG_OWNER_PASSWORD [aries_owner]   owns databases, runs migrations
#   ARIES_PG_APP   [aries_app]    ARIES_PG_APP_PASSWORD   [aries_app]     the application role (RLS applies)
#   ARIES_PG_DATABASES ["aries_catalog aries_shard_0 aries_shard_1"]      created OWNER $ARIES_PG_OWNER
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_OWNER=$(sql_ident "${ARIES_PG_OWNER:-aries_owner}")
PG_OWNER_PASSWORD=${ARIES_PG_OWNER_PASSWORD:-aries_owner}
PG_APP=$(sql_ident "${ARIES_PG_APP:-aries_app}")
PG_APP_PASSWORD=${ARIES_PG_APP_PASSWORD:-aries_app}
read -r -a PG_DATABASES <<<"${ARIES_PG_DATABASES:-aries_catalog aries_shard_0 aries_shard_1}"
for db in "${PG_DATABASES[@]}"; do sql_ident "$db" >/dev/null; done

# --- probes --------------------------------------------------------------------------------------

pg_up() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 -t 2
}

redis_up() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ $(timeout 3 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]
    else
        tcp_open 127.0.0.1 6379
    fi
}

rabbit_up() {
    tcp_open 127.0.0.1 5672
}

wait_for() { # wait_for SECONDS WHAT PROBE...
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || die "$what did not come up within ${secs}s"
        sleep 0.5
    done
}

# --- install what is missing (only when a service is down and its software is absent) -----------

missing=()
pg_up || {
    command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null ||
        missing+=(postgresql)
}
redis_up || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
rabbit_up || command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
if ((${#missing[@]} > 0)); then
    log "installing missing services: ${missing[*]}"
    apt_install "${missing[@]}"
fi

# --- PostgreSQL ----------------------------------------------------------------------------------

if pg_up; then
    log "postgres: running on 127.0.0.1:5432 (left alone)"
else
    require_root "starting PostgreSQL"
    # pg_isready exit 1 = "rejecting connections" (starting up / shutting down): a server is there, wait.
    rc=0
    pg_isready -q -h 127.0.0.1 -p 5432 -t 2 || rc=$?
    if ((rc == 1)); then
        log "postgres: a server on 127.0.0.1:5432 is starting, waiting for it"
    else
        # The cluster on port 5432, else <newest version>/main (created if apt did not create one).
        cluster=$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1 " " $2 " " $4; exit }')
        if [[ $cluster == *" online"* ]]; then
            die "postgres: cluster ${cluster% online} is running but does not accept TCP on 127.0.0.1:5432 (check listen_addresses / pg_hba.conf)"
        fi
        cluster=${cluster% *}
        if [[ -z $cluster ]]; then
            ver=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)
            [[ -n $ver ]] || ver=$(basename "$(dirname "$(pg_bindir)")")
            log "postgres: no cluster on port 5432, creating $ver/main"
            pg_createcluster --port 5432 --locale C.UTF-8 "$ver" main >/dev/null
            cluster="$ver main"
        fi
        log "postgres: starting cluster $cluster"
        # shellcheck disable=SC2086 # "$ver $name" splits on purpose
        pg_ctlcluster --skip-systemctl-redirect $cluster start
    fi
    wait_for 60 "postgres (127.0.0.1:5432)" pg_up
    log "postgres: up on 127.0.0.1:5432"
fi

# --- Redis ---------------------------------------------------------------------------------------

if redis_up; then
    log "redis: running on 127.0.0.1:6379 (left alone)"
else
    require_root "starting Redis"
    log "redis: starting (no persistence)"
    redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null
    wait_for 20 "redis (127.0.0.1:6379)" redis_up
    log "redis: up on 127.0.0.1:6379"
fi

# --- RabbitMQ ------------------------------------------------------------------------------------

if rabbit_up; then
    log "rabbitmq: running on 127.0.0.1:5672 (left alone)"
else
    require_root "starting RabbitMQ"
    # Bind the node, epmd and distribution to loopback. Appended only when the key is not set yet,
    # so repeated runs (and hand-written files) are respected.
    env_conf=/etc/rabbitmq/rabbitmq-env.conf
    mkdir -p /etc/rabbitmq
    touch "$env_conf"
    add_env() { # add_env KEY LINE
        if ! grep -Eq "^[[:space:]]*(export[[:space:]]+)?$1=" "$env_conf"; then
            printf '%s\n' "$2" >>"$env_conf"
            log "rabbitmq: added '$2' to $env_conf"
        fi
    }
    add_env NODE_IP_ADDRESS 'NODE_IP_ADDRESS=127.0.0.1'
    add_env NODENAME 'NODENAME=rabbit@localhost'
    add_env ERL_EPMD_ADDRESS 'ERL_EPMD_ADDRESS=127.0.0.1'
    if ! grep -q 'inet_dist_use_interface' "$env_conf"; then
        add_env SERVER_ADDITIONAL_ERL_ARGS 'SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"'
    fi
    # A node that is booting (port not open yet) answers ping: then only wait for it.
    if timeout 20 rabbitmqctl -q ping >/dev/null 2>&1; then
        log "rabbitmq: node is running but 5672 is not open yet, waiting for it"
    else
        log "rabbitmq: starting (rabbitmq-server -detached)"
        rabbitmq-server -detached >/dev/null 2>&1 || die "rabbitmq: 'rabbitmq-server -detached' failed (see /var/log/rabbitmq/)"
    fi
    # await_startup exits 69 until the node has registered with epmd, hence the loop.
    deadline=$((SECONDS + 120))
    until timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "rabbitmq did not start within 120s (see /var/log/rabbitmq/)"
        sleep 0.5
    done
    wait_for 30 "rabbitmq (127.0.0.1:5672)" rabbit_up
    log "rabbitmq: up on 127.0.0.1:5672"
fi

# --- roles and databases -------------------------------------------------------------------------
# Created when missing; role attributes and passwords are (re)asserted every run so a role that
# drifted (e.g. became superuser, which would silently disable row-level security) is corrected.

# UTF-8 whatever the cluster's default (a cluster created without a locale would be SQL_ASCII).
DB_OPTS="TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
DB_OPTS=${DB_OPTS//\'/\'\'} # it is embedded in a format() string literal below
db_list=""
for db in "${PG_DATABASES[@]}"; do
    db_list+="${db_list:+, }$(sql_literal "$db")"
done

psql_su postgres <<SQL
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['$PG_OWNER', '$PG_APP']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE $PG_OWNER LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD $(sql_literal "$PG_OWNER_PASSWORD");
ALTER ROLE $PG_APP LOGIN NOCREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD $(sql_literal "$PG_APP_PASSWORD");
-- Lets the owner drop a database the app still has sessions in (DROP DATABASE ... WITH (FORCE)),
-- which the tests do with their own databases.
GRANT pg_signal_backend TO $PG_OWNER;
SELECT format('CREATE DATABASE %I OWNER %I $DB_OPTS', d, '$PG_OWNER') FROM unnest(ARRAY[$db_list]) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d) \gexec
SQL

# A database created earlier by someone else keeps its owner; say so instead of silently changing it.
wrong_owner=$(psql_su postgres <<SQL
\pset tuples_only on
\pset format unaligned
SELECT d.datname || ' (owner ' || pg_get_userbyid(d.datdba) || ')' FROM pg_database d
 WHERE d.datname = ANY (ARRAY[$db_list]) AND pg_get_userbyid(d.datdba) <> '$PG_OWNER';
SQL
)
if [[ -n $wrong_owner ]]; then
    warn "database(s) not owned by $PG_OWNER: $(paste -sd" " <<<"$wrong_owner") — fix with ALTER DATABASE … OWNER TO $PG_OWNER"
fi
log "postgres: roles $PG_OWNER, $PG_APP and databases ${PG_DATABASES[*]} ready"
