#!/usr/bin/env bash
# Bring up, on loopback, the services parkgrid's tests and demo need on a Debian 12 box:
# PostgreSQL (trust auth on 127.0.0.1:5432) with the TimescaleDB extension preloaded
# (apt package when one exists, else built from Debian 13's source package), Redis on
# 127.0.0.1:6379, mbpoll, and the databases parkgrid and parkgrid_test with the extension.
# With --browser it also installs chromium and a CJK font for the browser tests.
# Idempotent: whatever is already installed or running is left alone, and apt-get update
# runs only when something has to be installed. Runs as root; prints one line per step.
# Long command output goes to logs under /var/cache/parkgrid-build/logs.
set -Eeuo pipefail

readonly PG_HOST=127.0.0.1
readonly PG_PORT=5432
readonly REDIS_HOST=127.0.0.1
readonly REDIS_PORT=6379
readonly DATABASES=(parkgrid parkgrid_test)
readonly WORK_DIR=/var/cache/parkgrid-build
readonly LOG_DIR=$WORK_DIR/logs
readonly SOURCE_SUITE=trixie
readonly DIED=97 # exit status of die(); any failure exits non-zero with a message

export DEBIAN_FRONTEND=noninteractive
export PGCONNECT_TIMEOUT=5
export PGOPTIONS='-c client_min_messages=warning'

STEP=startup
APT_UPDATED=0
WANT_BROWSER=0
PG_VERSION=
PG_CLUSTER=

say() { printf '%s\n' "$*"; }

die() {
    printf 'services.sh: ERROR in step "%s": %s\n' "$STEP" "$*" >&2
    exit "$DIED"
}

# A die() inside $(...) has already explained itself; do not report the same failure twice.
on_error() {
    local rc=$1 line=$2 command=$3
    if ((rc == DIED)); then
        exit "$DIED"
    fi
    die "command failed (exit $rc, line $line): $command"
}

trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR

usage() {
    cat <<'EOF'
usage: scripts/services.sh [--browser]
  Installs and starts PostgreSQL + TimescaleDB, Redis and mbpoll on loopback, and creates
  the databases parkgrid and parkgrid_test.
  --browser  also install chromium and fonts-wqy-microhei for the browser tests
EOF
}

# Run a command with its output appended to a log; on failure show the log tail and stop.
# The lock descriptor is closed so daemons started here (postgres, redis) do not keep it.
run_logged() {
    local log=$1
    shift
    printf '=== %s: %s\n' "$(date -Is)" "${*@Q}" >>"$log"
    if ! "$@" >>"$log" 2>&1 9>&-; then
        printf -- '--- last lines of %s ---\n' "$log" >&2
        tail -n 30 "$log" >&2 || true
        die "command failed: ${*@Q} (full log: $log)"
    fi
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

apt_update_once() {
    ((APT_UPDATED)) && return 0
    run_logged "$LOG_DIR/apt.log" apt-get update
    APT_UPDATED=1
}

# Install the packages among the arguments that are not installed yet; print what was done.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    apt_update_once
    run_logged "$LOG_DIR/apt.log" apt-get install -y "${missing[@]}"
    say "$STEP: installed ${missing[*]} with apt"
}

# --- PostgreSQL ---------------------------------------------------------------------------

psql_as_superuser() {
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -X -q -t -A -v ON_ERROR_STOP=1 "$@"
}

pg_answers() {
    pg_isready -h "$PG_HOST" -p "$PG_PORT" -q
}

wait_for_pg() {
    local i
    for ((i = 0; i < 120; i++)); do
        pg_answers && return 0
        sleep 0.5
    done
    die "PostgreSQL does not answer on $PG_HOST:$PG_PORT after 60 s (see /var/log/postgresql/)"
}

# Set PG_VERSION and PG_CLUSTER to the cluster on PG_PORT, creating one if none exists.
detect_pg_cluster() {
    local line
    line=$(pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }')
    if [[ -z $line ]]; then
        if [[ -n $(pg_lsclusters -h 2>/dev/null) ]]; then
            die "no PostgreSQL cluster is configured on port $PG_PORT: $(pg_lsclusters -h | tr '\n' ';')"
        fi
        local version
        version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' \
            | awk -F/ '{ print $5 }' | sort -V | tail -n 1)
        [[ -n $version ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
        run_logged "$LOG_DIR/postgresql.log" pg_createcluster --port "$PG_PORT" "$version" main
        say "$STEP: created cluster $version/main"
        line="$version main"
    fi
    read -r PG_VERSION PG_CLUSTER <<<"$line"
}

# Put trust lines for loopback at the top of pg_hba.conf (first match wins) and reload.
trust_loopback() {
    local hba
    hba=$(runuser -u postgres -- psql -X -q -t -A -c 'SHOW hba_file' 2>/dev/null || true)
    [[ -n $hba ]] || hba=/etc/postgresql/$PG_VERSION/$PG_CLUSTER/pg_hba.conf
    [[ -f $hba ]] || die "cannot find pg_hba.conf (tried $hba)"
    if ! grep -q '^# parkgrid dev/test box' "$hba"; then
        local merged
        merged=$({
            printf '%s\n' '# parkgrid dev/test box: trust loopback connections' \
                'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust'
            cat "$hba"
        })
        printf '%s\n' "$merged" >"$hba"
    fi
    run_logged "$LOG_DIR/postgresql.log" pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" reload
    say "$STEP: configured trust auth for loopback in $hba and reloaded"
}

ensure_postgresql() {
    STEP=postgresql
    if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
        apt_install postgresql
    fi
    detect_pg_cluster
    STEP="postgresql $PG_VERSION/$PG_CLUSTER"
    if pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; then
        say "$STEP: already running"
    else
        run_logged "$LOG_DIR/postgresql.log" \
            pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start
        say "$STEP: started"
    fi
    wait_for_pg
    if ! psql_as_superuser -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
        trust_loopback
        local err
        if ! err=$(psql_as_superuser -d postgres -c 'SELECT 1' 2>&1); then
            die "cannot connect as postgres to $PG_HOST:$PG_PORT: $err"
        fi
    fi
    say "$STEP: answers on $PG_HOST:$PG_PORT as postgres without a password"
}

# --- TimescaleDB ----------------------------------------------------------------------------

ts_available_version() {
    psql_as_superuser -d postgres \
        -c "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
}

ts_preloaded() {
    local libraries
    libraries=$(psql_as_superuser -d postgres -c 'SHOW shared_preload_libraries')
    [[ ,${libraries// /}, == *,timescaledb,* ]]
}

# Print "URI<TAB>SIGNED-BY-FILE" of the first enabled apt source for the release suite.
debian_archive_source() {
    local codename file found
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || die "VERSION_CODENAME missing from /etc/os-release"
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        found=$(awk -v want="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; signed = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^#/ || line ~ /^[ \t]/ || line !~ /:/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    val = line; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+/, " ", val)
                    if (key == "types") types = " " val " "
                    else if (key == "uris") uris = val
                    else if (key == "suites") suites = " " val " "
                    else if (key == "signed-by") signed = val
                    else if (key == "enabled") enabled = tolower(val)
                }
                if (enabled != "no" && types ~ / deb(-src)? / && index(suites, " " want " ") && uris != "") {
                    split(uris, u, " ")
                    if (signed !~ /^\//) signed = ""
                    print u[1] "\t" signed
                    exit
                }
            }' "$file")
        if [[ -n $found ]]; then
            printf '%s\n' "$found"
            return 0
        fi
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $file ]] || continue
        found=$(awk -v want="$codename" '
            /^[ \t]*deb(-src)?[ \t]/ {
                line = $0; sub(/^[ \t]+/, "", line)
                signed = ""
                if (match(line, /\[[^]]*\]/)) {
                    opts = substr(line, RSTART + 1, RLENGTH - 2)
                    line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
                    if (match(opts, /signed-by=[^ \t]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
                }
                n = split(line, w, /[ \t]+/)
                if (n >= 3 && w[3] == want) { print w[2] "\t" signed; exit }
            }' "$file")
        if [[ -n $found ]]; then
            printf '%s\n' "$found"
            return 0
        fi
    done
    die "no apt source for suite $codename in /etc/apt/sources.list or /etc/apt/sources.list.d/"
}

build_timescaledb_from_source() {
    local log=$LOG_DIR/timescaledb-build.log
    local apt_dir=$WORK_DIR/apt src_dir=$WORK_DIR/timescaledb
    local archive uri signed_by
    : >"$log"

    archive=$(debian_archive_source)
    uri=${archive%%$'\t'*}
    signed_by=${archive#*$'\t'}
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    if [[ -n $signed_by ]]; then
        printf 'deb-src [signed-by=%s] %s %s main\n' "$signed_by" "$uri" "$SOURCE_SUITE" \
            >"$apt_dir/sources.list"
    else
        printf 'deb-src %s %s main\n' "$uri" "$SOURCE_SUITE" >"$apt_dir/sources.list"
    fi
    local apt_opts=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list"
        -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache=$apt_dir/cache"
    )
    run_logged "$log" apt-get "${apt_opts[@]}" update

    rm -rf "$src_dir"
    mkdir -p "$src_dir"
    run_logged "$log" env -C "$src_dir" apt-get "${apt_opts[@]}" source --download-only timescaledb
    local dsc
    dsc=$(find "$src_dir" -maxdepth 1 -name 'timescaledb_*.dsc' | head -n 1)
    [[ -n $dsc ]] || die "apt-get source did not download a timescaledb .dsc (log: $log)"
    # gcc, make and dpkg-dev are on most machines already; a minimal one needs them too.
    apt_install "postgresql-server-dev-$PG_VERSION" cmake libssl-dev libkrb5-dev gcc make dpkg-dev
    run_logged "$log" dpkg-source -x "$dsc" "$src_dir/source"

    run_logged "$log" env -C "$src_dir/source" cmake -B build -DCMAKE_BUILD_TYPE=Release \
        "-DPG_CONFIG=/usr/lib/postgresql/$PG_VERSION/bin/pg_config" -DAPACHE_ONLY=1 \
        -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF \
        -DWARNINGS_AS_ERRORS=OFF
    run_logged "$log" make -C "$src_dir/source/build" -j2 install
    say "$STEP: built $(basename "$dsc" .dsc) from $SOURCE_SUITE source and installed it"
}

# Add timescaledb to shared_preload_libraries in conf.d and restart if it is not active yet.
ensure_timescaledb_preloaded() {
    if ts_preloaded; then
        return 0
    fi
    local config_file conf_dir current wanted
    config_file=$(psql_as_superuser -d postgres -c 'SHOW config_file')
    conf_dir=$(dirname "$config_file")/conf.d
    if ! grep -Eq "^[[:space:]]*include_dir[[:space:]]*=?[[:space:]]*'conf\.d'" "$config_file"; then
        printf "\ninclude_dir = 'conf.d'\n" >>"$config_file"
        say "$STEP: added include_dir = 'conf.d' to $config_file"
    fi
    mkdir -p "$conf_dir"
    chown postgres:postgres "$conf_dir"
    # Keep any libraries already preloaded elsewhere; this file is read last and wins.
    current=$(psql_as_superuser -d postgres -c 'SHOW shared_preload_libraries')
    wanted=timescaledb${current:+,$current}
    printf "shared_preload_libraries = '%s'\n" "$wanted" >"$conf_dir/timescaledb.conf"
    chown postgres:postgres "$conf_dir/timescaledb.conf"
    run_logged "$LOG_DIR/postgresql.log" \
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart
    wait_for_pg
    ts_preloaded || die "timescaledb is still not in shared_preload_libraries after a restart"
    say "$STEP: preloaded via $conf_dir/timescaledb.conf and restarted PostgreSQL"
}

ensure_timescaledb() {
    STEP=timescaledb
    local version
    version=$(ts_available_version)
    if [[ -n $version ]] && ts_preloaded; then
        say "$STEP: $version already available and preloaded"
        return 0
    fi
    if [[ -z $version ]]; then
        local package=postgresql-$PG_VERSION-timescaledb candidate
        apt_update_once
        candidate=$(apt-cache policy "$package" | awk '/Candidate:/ { print $2 }')
        if [[ -n $candidate && $candidate != "(none)" ]]; then
            apt_install "$package"
        else
            build_timescaledb_from_source
        fi
        version=$(ts_available_version)
        [[ -n $version ]] || die "extension still not in pg_available_extensions after install"
    fi
    ensure_timescaledb_preloaded
    say "$STEP: $version available and preloaded"
}

# --- Redis, mbpoll, browser -----------------------------------------------------------------

redis_answers() {
    [[ $(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null || true) == PONG ]]
}

ensure_redis() {
    STEP=redis
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server
    fi
    if redis_answers; then
        say "$STEP: already running on $REDIS_HOST:$REDIS_PORT"
        return 0
    fi
    run_logged "$LOG_DIR/redis.log" env -C / redis-server --daemonize yes --bind "$REDIS_HOST" \
        --port "$REDIS_PORT" --save "" --appendonly no
    local i
    for ((i = 0; i < 40; i++)); do
        if redis_answers; then
            say "$STEP: started on $REDIS_HOST:$REDIS_PORT"
            return 0
        fi
        sleep 0.25
    done
    die "redis-server started but does not answer PONG on $REDIS_HOST:$REDIS_PORT"
}

ensure_mbpoll() {
    STEP=mbpoll
    if command -v mbpoll >/dev/null; then
        say "$STEP: already installed"
    else
        apt_install mbpoll
    fi
}

ensure_browser() {
    STEP=browser
    if pkg_installed chromium && pkg_installed fonts-wqy-microhei; then
        say "$STEP: chromium and fonts-wqy-microhei already installed"
    else
        apt_install chromium fonts-wqy-microhei
    fi
    [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium missing after install"
}

# --- Databases ------------------------------------------------------------------------------

ensure_databases() {
    local db state
    for db in "${DATABASES[@]}"; do
        STEP="database $db"
        if [[ $(psql_as_superuser -d postgres -v name="$db" \
            <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'") == 1 ]]; then
            state=exists
        else
            psql_as_superuser -d postgres -c "CREATE DATABASE \"$db\" OWNER postgres"
            state=created
        fi
        psql_as_superuser -d "$db" -c 'CREATE EXTENSION IF NOT EXISTS timescaledb'
        say "$STEP: $state, timescaledb $(psql_as_superuser -d "$db" \
            -c "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")"
    done
    STEP=timescaledb
    say "$STEP: license $(psql_as_superuser -d "${DATABASES[0]}" -c 'SHOW timescaledb.license')"
}

main() {
    local arg
    for arg in "$@"; do
        case $arg in
            --browser) WANT_BROWSER=1 ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $arg" ;;
        esac
    done
    [[ $(id -u) == 0 ]] || die "must run as root"
    mkdir -p "$LOG_DIR"
    exec 9>"$WORK_DIR/services.lock" # fd 9 is closed for children in run_logged
    flock -w 900 9 || die "another services.sh run holds $WORK_DIR/services.lock"

    ensure_postgresql
    ensure_timescaledb
    ensure_redis
    ensure_mbpoll
    ensure_databases
    if ((WANT_BROWSER)); then
        ensure_browser
    fi
    STEP=finish
    say "services: all up"
}

main "$@"
