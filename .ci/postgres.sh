# Start a throw-away local PostgreSQL server for the postgres-marked tests and export
# PFDEPLOY_TEST_POSTGRES_URL. Source it (`. .ci/postgres.sh`); `pg_ci_stop` stops the server and
# removes its files (.ci/run calls it from its EXIT trap).
#
# - Uses the Debian/Ubuntu package's server (/usr/lib/postgresql/<version>/bin, newest first);
#   installs `postgresql` with apt-get when it is missing and we are root.
# - initdb into a fresh temporary directory. PostgreSQL refuses to run as root, so as root the
#   cluster belongs to the `postgres` user (created by the package) and its commands run through
#   runuser; as any other user they run directly.
# - Listens on a Unix socket in that directory only (no TCP port, nothing reachable from outside),
#   on a free port number (the socket file name carries it).
# shellcheck shell=bash

pg_ci_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
  return 1
}

pg_ci_start() {
  local bindir
  if ! bindir="$(pg_ci_bindir)"; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "ci: installing PostgreSQL (Debian package)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
      bindir="$(pg_ci_bindir)" || return 1
    else
      echo "ci: no PostgreSQL server found (install the postgresql package)" >&2
      return 1
    fi
  fi
  PG_CI_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pfdeploy-pg.XXXXXX")"
  chmod 755 "$PG_CI_DIR"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres || return 1
    chown postgres "$PG_CI_DIR"
    run=(runuser -u postgres --)
  fi
  PG_CI_RUN=("${run[@]}")
  PG_CI_BINDIR="$bindir"
  # a port number nobody listens on (it names the socket file; no TCP listener is opened)
  PG_CI_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "${run[@]}" "$bindir/initdb" -D "$PG_CI_DIR/data" -U postgres -A trust -E UTF8 --no-locale >"$PG_CI_DIR/initdb.log" 2>&1 \
    || { cat "$PG_CI_DIR/initdb.log" >&2; return 1; }
  "${run[@]}" "$bindir/pg_ctl" -D "$PG_CI_DIR/data" -l "$PG_CI_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses='' -k $PG_CI_DIR -p $PG_CI_PORT -c fsync=off -c full_page_writes=off" >/dev/null \
    || { cat "$PG_CI_DIR/server.log" >&2; return 1; }
  "${run[@]}" "$bindir/createdb" -h "$PG_CI_DIR" -p "$PG_CI_PORT" -U postgres pfdeploy_test || return 1
  export PFDEPLOY_TEST_POSTGRES_URL="postgresql://postgres@/pfdeploy_test?host=$PG_CI_DIR&port=$PG_CI_PORT"
  echo "ci: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $PFDEPLOY_TEST_POSTGRES_URL" >&2
}

pg_ci_stop() {
  if [ -n "${PG_CI_DIR:-}" ] && [ -d "$PG_CI_DIR/data" ]; then
    "${PG_CI_RUN[@]}" "$PG_CI_BINDIR/pg_ctl" -D "$PG_CI_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  [ -n "${PG_CI_DIR:-}" ] && rm -rf "$PG_CI_DIR"
  PG_CI_DIR=
}
