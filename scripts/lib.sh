# shellcheck shell=bash
# Helpers shared by scripts/*.sh. Sourced, never executed:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every message is prefixed "[aries]" so our output stands out from cargo's, apt's and the server's.

ARIES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ARIES_ROOT

log() { printf '[aries] %s\n' "$*" >&2; }
warn() { printf '[aries] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[aries] ERROR: %s\n' "$*" >&2
    exit 1
}

# tcp_open HOST PORT: true when something accepts TCP connections there (bash's /dev/tcp, 2 s cap).
tcp_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# as_postgres 'COMMAND': run a shell command as the postgres OS user (peer auth on the unix socket).
# We cd to / first so psql does not complain that it cannot read root's current directory.
as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && su postgres -s /bin/sh -c "$1")
    elif command -v sudo >/dev/null 2>&1; then
        (cd / && sudo -n -u postgres /bin/sh -c "$1")
    else
        die "this step runs commands as the 'postgres' OS user: run as root (or with passwordless sudo)"
    fi
}

# psql_su [DB]: psql as postgres over the unix socket, SQL on stdin, stop at the first error.
psql_su() {
    as_postgres "psql -X -q -v ON_ERROR_STOP=1 -d ${1:-postgres}"
}

# sql_ident NAME: NAME if it is a plain lower-case SQL identifier, else die (keeps quoting trivial).
sql_ident() {
    [[ $1 =~ ^[a-z_][a-z0-9_]*$ ]] || die "'$1' is not a plain lower-case SQL identifier"
    printf '%s' "$1"
}

# sql_literal TEXT: TEXT as a single-quoted SQL string literal.
sql_literal() {
    local s=${1//\'/\'\'}
    printf "'%s'" "$s"
}

# require_root WHAT: apt-get and su need root.
require_root() {
    [[ $EUID -eq 0 ]] || die "$1 needs root (it runs apt-get / su): re-run as root"
}

# apt_install PKG...: install Debian packages non-interactively (apt-get update first, once per script run).
ARIES_APT_UPDATED=0
apt_install() {
    (($# > 0)) || return 0
    require_root "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    if ((ARIES_APT_UPDATED == 0)); then
        log "apt-get update"
        apt-get update -q >/dev/null
        ARIES_APT_UPDATED=1
    fi
    log "apt-get install $*"
    apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# pg_bindir: directory of the newest installed PostgreSQL server binaries (pg_ctl, initdb, postgres).
pg_bindir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
    [[ -n $d ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    printf '%s' "$d"
}

# random_hex: 32 random bytes as 64 hex characters.
random_hex() {
    head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# free_port FROM TO: the first port of FROM..TO on which nothing accepts connections on 127.0.0.1.
free_port() {
    local p
    for p in $(seq "$1" "$2"); do
        tcp_open 127.0.0.1 "$p" || {
            printf '%s' "$p"
            return 0
        }
    done
    die "no free port in $1-$2"
}

# --- a throwaway PostgreSQL cluster (bench's move target, chaos's second shard server) ------------
# The cluster lives in DIR (any directory the postgres user can reach), listens on 127.0.0.1:PORT and
# on a unix socket in /tmp, trusts every local connection, and logs to DIR/log.

# pg_cluster_init DIR LOG: initdb into DIR (created, owned by postgres); initdb's output goes to LOG.
pg_cluster_init() {
    mkdir -p "$1" && chown postgres "$1"
    as_postgres "$(pg_bindir)/initdb -D '$1' -A trust -U postgres --no-sync" >"$2" 2>&1 ||
        die "initdb in $1 failed (see $2)"
}

# pg_cluster_start DIR PORT: start the cluster (again) and wait until it accepts connections.
pg_cluster_start() {
    as_postgres "$(pg_bindir)/pg_ctl -D '$1' -o \"-p $2 -k /tmp -c listen_addresses=127.0.0.1\" -l '$1/log' -w start" >/dev/null ||
        die "the Postgres server in $1 did not start (see $1/log)"
}

# pg_cluster_stop DIR: stop it at once, as a crash would (-m immediate: connections are cut).
pg_cluster_stop() {
    as_postgres "$(pg_bindir)/pg_ctl -D '$1' -m immediate -w stop" >/dev/null 2>&1
}

# pg_cluster_psql PORT [DB]: psql as postgres on the cluster's socket, SQL on stdin, stop at the first error.
pg_cluster_psql() {
    as_postgres "psql -X -q -v ON_ERROR_STOP=1 -h /tmp -p $1 -d ${2:-postgres}"
}

# pg_cluster_roles PORT OWNER APP: the application's roles on the cluster (passwords from
# ARIES_PG_OWNER_PASSWORD / ARIES_PG_APP_PASSWORD, default the role names, as services.sh makes them).
pg_cluster_roles() {
    pg_cluster_psql "$1" <<SQL
create role $(sql_ident "$2") login password $(sql_literal "${ARIES_PG_OWNER_PASSWORD:-aries_owner}") createdb;
create role $(sql_ident "$3") login password $(sql_literal "${ARIES_PG_APP_PASSWORD:-aries_app}");
SQL
}
