#!/usr/bin/env bash
# A private, throwaway PostgreSQL server for Puhui's tests.
#
#   bash infra/scripts/postgres.sh start   # install (Debian) if needed, initdb, start, provision
#   bash infra/scripts/postgres.sh stop    # stop it (harmless if not running)
#   bash infra/scripts/postgres.sh status  # exit 0 if running, 3 if not
#   bash infra/scripts/postgres.sh url     # the SQLAlchemy URL of the test database
#
# The cluster lives in ${PUHUI_STATE_DIR:-<repo>/var}/postgres:
#   data/            the data directory (initdb), owned by the `postgres` OS user
#   run/             the unix socket directory
#   postgresql.log   the server log (pg_ctl -l)
# It listens on 127.0.0.1:${PUHUI_PG_PORT:-55432} only, trusts every local connection and runs
# with fsync off: it is for tests, never for data that matters. Debian's default cluster (5432),
# if the package created one, is neither used nor touched.
#
# Every subcommand is idempotent. Progress goes to stderr; only `url` writes to stdout.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PUHUI_PG_PORT:-55432}"
STATE_DIR="${PUHUI_STATE_DIR:-$REPO_ROOT/var}"
PG_USER="postgres"      # OS user and bootstrap superuser
APP_ROLE="puhui"
APP_PASSWORD="puhui"
APP_DATABASES=(puhui puhui_test)

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] && (( PORT > 0 && PORT < 65536 )) || die "bad PUHUI_PG_PORT: $PORT"

CLUSTER_DIR="" DATA_DIR="" SOCKET_DIR="" LOG_FILE=""

# Absolute, symlink-free paths (the postgres user walks them; the socket path length counts).
init_paths() {
    mkdir -p "$STATE_DIR"
    STATE_DIR="$(cd "$STATE_DIR" && pwd -P)"
    CLUSTER_DIR="$STATE_DIR/postgres"
    DATA_DIR="$CLUSTER_DIR/data"
    SOCKET_DIR="$CLUSTER_DIR/run"
    LOG_FILE="$CLUSTER_DIR/postgresql.log"
}

# Run a command as the postgres OS user (initdb and the server refuse root). From `/`, so that a
# working directory the postgres user cannot enter causes no warnings.
as_pg() {
    if (( EUID == 0 )); then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

# The server binaries: the version the cluster was made with, else the newest installed.
find_bindir() {
    if [[ -f "$DATA_DIR/PG_VERSION" ]]; then
        local want
        want="$(<"$DATA_DIR/PG_VERSION")"
        if [[ -x "/usr/lib/postgresql/$want/bin/initdb" ]]; then
            printf '%s\n' "/usr/lib/postgresql/$want/bin"
            return 0
        fi
        log "cluster was made by PostgreSQL $want, whose binaries are missing"
        return 1
    fi
    local initdb newest=""
    shopt -s nullglob
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        newest="$(printf '%s\n%s\n' "$newest" "$(dirname "$initdb")" | sed '/^$/d' | sort -V | tail -n1)"
    done
    shopt -u nullglob
    [[ -n "$newest" ]] || return 1
    printf '%s\n' "$newest"
}

ensure_installed() {
    if find_bindir >/dev/null; then
        return 0
    fi
    [[ ! -f "$DATA_DIR/PG_VERSION" ]] || die "install PostgreSQL $(<"$DATA_DIR/PG_VERSION") or remove $CLUSTER_DIR"
    (( EUID == 0 )) || die "PostgreSQL server binaries missing and not root: apt-get install postgresql"
    log "PostgreSQL server binaries missing: installing Debian's postgresql package"
    local started=$SECONDS
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    find_bindir >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb"
    log "installed in $(( SECONDS - started ))s"
}

# The postgres user must be able to walk down to the cluster directory. A clone in a folder made
# by `mktemp -d` (0700) or under /root is not traversable by others: add the search bit (o+x,
# not o+r) to each ancestor that the postgres user cannot enter.
ensure_traversable() {
    (( EUID == 0 )) || return 0
    local dir="$1" parents=()
    while [[ "$dir" != "/" && -n "$dir" ]]; do
        parents=("$dir" "${parents[@]}")
        dir="$(dirname "$dir")"
    done
    for dir in "${parents[@]}"; do
        if ! runuser -u "$PG_USER" -- test -x "$dir" 2>/dev/null; then
            log "chmod o+x $dir (the $PG_USER user must traverse it)"
            chmod o+x "$dir"
        fi
    done
}

is_running() {
    [[ -f "$DATA_DIR/PG_VERSION" ]] || return 1
    local bindir
    bindir="$(find_bindir)" || return 1
    as_pg "$bindir/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

running_port() {
    sed -n '4p' "$DATA_DIR/postmaster.pid" 2>/dev/null || true
}

sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

cmd_start() {
    local started=$SECONDS bindir
    ensure_installed
    bindir="$(find_bindir)" || die "no PostgreSQL server binaries"

    mkdir -p "$CLUSTER_DIR"
    if (( EUID == 0 )); then
        chown "$PG_USER:$PG_USER" "$CLUSTER_DIR"
        ensure_traversable "$STATE_DIR"
    fi
    chmod 0700 "$CLUSTER_DIR"
    as_pg mkdir -p "$SOCKET_DIR"

    if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
        if [[ -e "$DATA_DIR" ]]; then
            log "removing incomplete data directory $DATA_DIR"
            rm -rf "$DATA_DIR"
        fi
        log "initdb $DATA_DIR ($("$bindir/postgres" --version))"
        local t0=$SECONDS
        as_pg "$bindir/initdb" -D "$DATA_DIR" -U "$PG_USER" --auth=trust \
            --encoding=UTF8 --locale=C --no-sync --no-instructions >/dev/null
        printf "\n# Puhui test server settings, rewritten by infra/scripts/postgres.sh start\ninclude_if_exists = 'puhui.conf'\n" \
            | as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
        log "initdb done in $(( SECONDS - t0 ))s"
    fi

    if is_running; then
        local current
        current="$(running_port)"
        [[ "$current" == "$PORT" ]] || die "already running on port $current, not $PORT: stop it first"
        log "already running on 127.0.0.1:$PORT"
    else
        # A unix socket path is limited to 107 bytes; past that, TCP on loopback only.
        local sockets
        if (( ${#SOCKET_DIR} + ${#PORT} + 10 <= 107 )); then
            sockets="$(sql_quote "$SOCKET_DIR")"
        else
            log "socket path too long, unix socket disabled: $SOCKET_DIR"
            sockets="''"
        fi
        as_pg tee "$DATA_DIR/puhui.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = $sockets
max_connections = 100
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        log "starting on 127.0.0.1:$PORT (log: $LOG_FILE)"
        local t0=$SECONDS
        # 9>&-: the server must not inherit (and so hold forever) the lock below.
        if ! as_pg "$bindir/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 -s 9>&-; then
            tail -n 20 "$LOG_FILE" >&2 || true
            die "pg_ctl start failed"
        fi
        log "started in $(( SECONDS - t0 ))s"
    fi

    local host="127.0.0.1"
    [[ -S "$SOCKET_DIR/.s.PGSQL.$PORT" ]] && host="$SOCKET_DIR"
    local sql dbname
    sql="SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', $(sql_quote "$APP_ROLE"), $(sql_quote "$APP_PASSWORD"))
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(sql_quote "$APP_ROLE"))\\gexec"
    for dbname in "${APP_DATABASES[@]}"; do
        sql+="
SELECT format('CREATE DATABASE %I OWNER %I', $(sql_quote "$dbname"), $(sql_quote "$APP_ROLE"))
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = $(sql_quote "$dbname"))\\gexec"
    done
    printf '%s\n' "$sql" | as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 \
        -h "$host" -p "$PORT" -U "$PG_USER" -d postgres >/dev/null
    log "ready: role $APP_ROLE, databases ${APP_DATABASES[*]} ($(( SECONDS - started ))s)"
}

cmd_stop() {
    if ! is_running; then
        log "not running"
        return 0
    fi
    local bindir
    bindir="$(find_bindir)"
    log "stopping (port $(running_port))"
    as_pg "$bindir/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 60 -s
    log "stopped"
}

cmd_status() {
    if is_running; then
        log "running on 127.0.0.1:$(running_port), data $DATA_DIR"
        return 0
    fi
    log "not running (data $DATA_DIR)"
    return 3
}

cmd_url() {
    printf 'postgresql+psycopg://%s:%s@127.0.0.1:%s/puhui_test\n' "$APP_ROLE" "$APP_PASSWORD" "$PORT"
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        url) cmd_url; return ;;
        start|stop|status) ;;
        *) die "usage: $0 start|stop|status|url" ;;
    esac
    if [[ "$cmd" != start && ! -d "$STATE_DIR/postgres" ]]; then
        log "not running (no cluster under $STATE_DIR)"
        [[ "$cmd" == stop ]] && return 0
        return 3
    fi
    init_paths
    # One start/stop at a time (parallel test sessions, CI steps).
    exec 9>"$STATE_DIR/postgres.lock"
    flock 9
    "cmd_$cmd"
}

main "$@"
