# Shared by scripts/pg-cluster and scripts/pg-ha (sourced, not run): PostgreSQL's binaries,
# the dedicated OS user that owns throwaway clusters (initdb and postgres refuse root), and
# free loopback ports.
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=${PG_OS_USER:-vtpbench-pg}

# Creates the dedicated OS user when we are root (a no-op otherwise).
ensure_os_user() {
    [ "$(id -u)" = 0 ] || return 0
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
}

# Run a command as the cluster owner (ourselves unless we are root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        ensure_os_user
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

# Hands a directory to the cluster owner (when we are root).
own_dir() {
    [ "$(id -u)" = 0 ] || return 0
    ensure_os_user
    chown "$PG_USER" "$@"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
