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
