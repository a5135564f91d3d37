# shellcheck shell=bash
# Shell helpers shared by ensure-infra.sh and run.sh. Sourced, not run. The sourcing script sets
# SCRIPT_NAME (used in error messages) before sourcing.

say() { printf '%s\n' "$*"; }
die() {
    printf '%s: %s\n' "${SCRIPT_NAME:-trust}" "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# Plain bash TCP probe: nc is not installed on minimal images.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for() { # seconds, command...
    local secs=$1
    shift
    local i
    for ((i = 0; i < secs * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

# Debian ships nats-server in /usr/sbin, which is not on a normal user's PATH.
nats_bin() {
    if have nats-server; then
        command -v nats-server
    elif [[ -x /usr/sbin/nats-server ]]; then
        echo /usr/sbin/nats-server
    else
        return 1
    fi
}
