# Shared shell functions for the run and test commands: tools, venv, private Postgres.
# Sourced, never executed. Everything it starts lives under ./var (or $SB_VAR).

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
SB_VAR="${SB_VAR:-$ROOT/var}"

say() { printf '\033[1m[switchboard]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

# Installs the Debian packages that are missing (postgresql, redis-server).
ensure_system_packages() {
  local missing=()
  pg_bindir >/dev/null || missing+=(postgresql postgresql-contrib)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Creates .venv and installs the project (with test extras) when pyproject.toml changed.
ensure_venv() {
  local stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "installing Python packages into .venv"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    mkdir -p "$SB_VAR"
    { "$VENV/bin/pip" install --disable-pip-version-check --upgrade pip &&
      "$VENV/bin/pip" install --disable-pip-version-check -e "$ROOT[test]"; } >"$SB_VAR/pip.log" 2>&1 \
      || { tail -n 30 "$SB_VAR/pip.log" >&2; say "pip install failed (full log: var/pip.log)"; return 1; }
    rm -f "$VENV"/.installed-*; touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# Runs a command as the postgres system user when we are root (Postgres refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts (initialising on first use) a private cluster. Args: name port [extra postgres -c options].
# Prints the DATABASE_URL of its `switchboard` database.
start_private_postgres() {
  local name="$1" port="$2" opts="${3:-}"
  local bin; bin="$(pg_bindir)"
  local dir="$SB_VAR/$name"
  mkdir -p "$SB_VAR"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$SB_VAR" 2>/dev/null; then
    # The checkout is not reachable by the postgres user (e.g. under /root): keep the cluster
    # in a per-checkout folder it can reach.
    dir="/var/tmp/switchboard-$(echo "$ROOT" | sha256sum | cut -c1-12)/$name"
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "initialising private Postgres cluster in $dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    say "starting Postgres ($name) on 127.0.0.1:$port"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 $opts" >/dev/null \
      || { tail -n 20 "$dir/postgres.log" >&2; return 1; }
  fi
  local url="postgresql://postgres@127.0.0.1:$port/switchboard"
  as_pg "$bin/psql" -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "SELECT 1 FROM pg_database WHERE datname='switchboard'" | grep -q 1 \
    || as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres switchboard
  echo "$url"
}

stop_private_postgres() {
  local name="$1" dir="$SB_VAR/$1" bin; bin="$(pg_bindir)"
  [ -f "$dir/data/PG_VERSION" ] || dir="/var/tmp/switchboard-$(echo "$ROOT" | sha256sum | cut -c1-12)/$name"
  if [ -f "$dir/data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    say "stopping Postgres ($name)"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
}

# A secret for signing tokens: from the environment, else generated once into ./var (never committed).
ensure_secret() {
  if [ -z "${SWITCHBOARD_SECRET:-}" ]; then
    mkdir -p "$SB_VAR"
    [ -s "$SB_VAR/secret" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$SB_VAR/secret")
    SWITCHBOARD_SECRET="$(cat "$SB_VAR/secret")"
    export SWITCHBOARD_SECRET
  fi
}
