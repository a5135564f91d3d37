#!/usr/bin/env bash
# Run the whole Children's Trust Platform on this machine (the README's "run it" command).
#
#   deploy/local/run.sh            build, start everything, load the demo catalogue and staff directory,
#                                  then follow the logs; Ctrl-C stops everything it started
#   deploy/local/run.sh --detach   the same, but leave the platform running and exit
#   deploy/local/run.sh stop       stop what an earlier run started (SIGTERM, then wait)
#
# What it starts, all on 127.0.0.1, with state under .run/ in the repository:
#   PostgreSQL :5432 and a dev NATS :4222   via deploy/local/ensure-infra.sh (installed when missing)
#   the platform NATS :4223                 deploy/nats/local.conf (partner users and permissions), store .run/nats
#   an SMTP sink :2525                      Python's aiosmtpd, one file per email in .run/mail/new
#   the four services                       gRPC :50051-50054, metrics :9101-9104, logs .run/logs/<service>.log
#   credentials for indicator-ingest's API  .run/operator.token (the performance team) and
#                                           .run/tokens/<partner>.token (each demo partner), issued once
#
# Environment:
#   TRUST_ADMIN_DATABASE_URL  superuser URL for `trustctl db provision`
#                             (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

RUN_DIR=.run
LOG_DIR=$RUN_DIR/logs
MAIL_DIR=$RUN_DIR/mail
NATS_STORE=$RUN_DIR/nats
NATS_PORT=4223
SMTP_PORT=2525
SERVICES=(indicator-ingest safeguarding-qa commissioning notifications)
GRPC_PORTS=(50051 50052 50053 50054)
METRICS_PORTS=(9101 9102 9103 9104)
TRUSTCTL=target/release/trustctl
STOP_WAIT_SECS=30
OPERATOR_TOKEN=$RUN_DIR/operator.token
TOKEN_DIR=$RUN_DIR/tokens
DEMO_CATALOGUE=deploy/demo/catalogue.toml

SCRIPT_NAME=run.sh
# shellcheck source=deploy/local/common.sh
source "$ROOT/deploy/local/common.sh"
step() { printf '\n==> %s\n' "$*"; }

usage() {
    sed -n '2,8s/^# \{0,1\}//p' "$ROOT/deploy/local/run.sh"
}

# --- Processes this script started --------------------------------------------------------------------
# Each is recorded as .run/<name>.pid. Before signalling a pid we check that it is still the program we
# started (pids are reused), so `stop` never touches anything else.

# The word that must appear in the process's command line.
program_of() {
    case $1 in
        nats) echo nats-server ;;
        smtp) echo aiosmtpd ;;
        *) echo "$1" ;;
    esac
}

# Print the pid of <name> if it is running and is ours.
running_pid() {
    local name=$1 file="$RUN_DIR/$1.pid" pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(program_of "$name")" || return 1
    echo "$pid"
}

# Names started by this invocation, in order.
started=()

# start <name> <command...>: run in the background, output to .run/logs/<name>.log.
start() {
    local name=$1
    shift
    # nohup: a --detach'ed platform outlives the terminal it was started from.
    nohup "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
    echo $! >"$RUN_DIR/$name.pid"
    started+=("$name")
}

# stop <name...>: SIGTERM to each that is running, then wait for all of them together; SIGKILL whatever
# is still there after STOP_WAIT_SECS.
stop() {
    local name pid i
    local -a names=() pids=()
    for name in "$@"; do
        if pid=$(running_pid "$name"); then
            say "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            names+=("$name")
            pids+=("$pid")
        fi
        rm -f "$RUN_DIR/$name.pid"
    done
    for ((i = 0; i < STOP_WAIT_SECS * 5; i++)); do
        alive "${pids[@]}" || return 0
        sleep 0.2
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[i]}" 2>/dev/null; then
            say "${names[i]} (pid ${pids[i]}) did not stop within ${STOP_WAIT_SECS}s of SIGTERM; sending SIGKILL"
            kill -KILL "${pids[i]}" 2>/dev/null || true
        fi
    done
}

# True while any of the pids is running.
alive() {
    local pid
    for pid in "$@"; do
        kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}

# Services first, so they can flush their outboxes to NATS, then the SMTP sink and NATS.
stop_all() {
    stop "${SERVICES[@]}"
    stop smtp nats
}

show_log_tail() {
    local name=$1
    if [[ -s $LOG_DIR/$name.log ]]; then
        say "--- last lines of $LOG_DIR/$name.log ---"
        tail -n 20 "$LOG_DIR/$name.log"
    fi
}

# --- Arguments -------------------------------------------------------------------------------------------
detach=0
case "${1:-}" in
    "") ;;
    --detach | -d) detach=1 ;;
    stop)
        if [[ ! -d $RUN_DIR ]] || ! compgen -G "$RUN_DIR/*.pid" >/dev/null; then
            say "nothing to stop (no pid files in $RUN_DIR)"
            exit 0
        fi
        stop_all
        say "stopped"
        exit 0
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        say "run.sh: unknown argument: $1" >&2
        usage >&2
        exit 2
        ;;
esac
[[ $# -le 1 ]] || {
    usage >&2
    exit 2
}

# If start-up fails part way, stop what this run started (and only that: a platform left running by an
# earlier --detach stays up) rather than leave half a platform behind.
ready=0
on_exit() {
    local status=$? name
    if [[ $ready -eq 0 && $status -ne 0 && ${#started[@]} -gt 0 ]]; then
        say "start-up failed; stopping what this run started" >&2
        # Services before the infrastructure they use.
        for name in "${started[@]}"; do
            [[ $name == nats || $name == smtp ]] || stop "$name"
        done
        for name in "${started[@]}"; do
            [[ $name == nats || $name == smtp ]] && stop "$name"
        done
    fi
}
trap on_exit EXIT

# --- Infrastructure and build ----------------------------------------------------------------------------
step "ensure local infrastructure (PostgreSQL, NATS, aiosmtpd)"
deploy/local/ensure-infra.sh

if ! have cargo; then
    say "cargo not found. Install Rust with rustup:" >&2
    say "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    say "then open a new shell (or 'source \$HOME/.cargo/env') and re-run." >&2
    exit 1
fi

step "cargo build --release --bins"
cargo build --release --bins

mkdir -p "$LOG_DIR" "$MAIL_DIR"/{cur,new,tmp} "$NATS_STORE"

# --- Platform NATS -----------------------------------------------------------------------------------------
step "platform NATS on 127.0.0.1:$NATS_PORT"
if pid=$(running_pid nats); then
    say "already running (pid $pid)"
elif port_open "$NATS_PORT"; then
    say "something already listens on 127.0.0.1:$NATS_PORT; using it as the platform NATS"
else
    nats=$(nats_bin) || die "nats-server not found (deploy/local/ensure-infra.sh should have installed it)"
    start nats "$nats" -c deploy/nats/local.conf -sd "$NATS_STORE"
    wait_for 20 port_open "$NATS_PORT" || {
        show_log_tail nats
        die "nats-server did not listen on 127.0.0.1:$NATS_PORT within 20s; see $LOG_DIR/nats.log"
    }
    say "started (pid $(<"$RUN_DIR/nats.pid")), log $LOG_DIR/nats.log"
fi

# --- SMTP sink ------------------------------------------------------------------------------------------------
step "SMTP sink on 127.0.0.1:$SMTP_PORT (mail to $MAIL_DIR/new)"
if pid=$(running_pid smtp); then
    say "already running (pid $pid)"
elif port_open "$SMTP_PORT"; then
    say "something already listens on 127.0.0.1:$SMTP_PORT; notifications will send its email there"
else
    start smtp /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" \
        -c aiosmtpd.handlers.Mailbox "$ROOT/$MAIL_DIR"
    wait_for 20 port_open "$SMTP_PORT" || {
        show_log_tail smtp
        die "aiosmtpd did not listen on 127.0.0.1:$SMTP_PORT within 20s; see $LOG_DIR/smtp.log"
    }
    say "started (pid $(<"$RUN_DIR/smtp.pid")), log $LOG_DIR/smtp.log"
fi

# --- Database --------------------------------------------------------------------------------------------------
step "provision the database (one role and schema per service)"
"$TRUSTCTL" db provision --database trust

# --- Services --------------------------------------------------------------------------------------------------
# The key notifications signs its emails' acknowledgement links with: made once and kept (only this user can
# read it), so links in emails already sent keep working across restarts.
LINKS_SECRET=$RUN_DIR/links.secret
if [[ ! -s $LINKS_SECRET ]]; then
    (umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$LINKS_SECRET")
fi

step "start the services"
for i in "${!SERVICES[@]}"; do
    service=${SERVICES[i]}
    if pid=$(running_pid "$service"); then
        if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == *' (deleted)' ]]; then
            say "$service: already running (pid $pid) an older build; 'deploy/local/run.sh stop' and start again to run the new one"
        else
            say "$service: already running (pid $pid)"
        fi
        continue
    fi
    if port_open "${GRPC_PORTS[i]}"; then
        die "$service: something else already listens on 127.0.0.1:${GRPC_PORTS[i]}; stop it first"
    fi
    own=()
    if [[ $service == notifications ]]; then
        own=(TRUST__LINKS__SECRET="$(<"$LINKS_SECRET")")
    fi
    start "$service" env \
        TRUST__NATS__URL="nats://127.0.0.1:$NATS_PORT" \
        TRUST__NATS__USER="$service" \
        TRUST__NATS__PASSWORD="$service-dev-password" \
        "${own[@]}" \
        "target/release/$service"
    say "$service: started (pid $(<"$RUN_DIR/$service.pid")), log $LOG_DIR/$service.log"
done

step "wait until every service reports SERVING"
if ! "$TRUSTCTL" health --wait-secs 60; then
    for service in "${SERVICES[@]}"; do
        show_log_tail "$service"
    done
    die "not every service became healthy within 60s; logs are in $LOG_DIR/"
fi

# --- Credentials and demo data ----------------------------------------------------------------------------------
# indicator-ingest's API takes a bearer token (trustctl --token, or TRUST_TOKEN). Tokens are issued in its
# database by `trustctl credential issue` (only their SHA-256 is kept there) and kept here in files only
# this user can read. A file whose token the service no longer accepts (the database was dropped, or the
# credential revoked) is replaced.

# True if the token in <file> is accepted by indicator-ingest.
token_works() {
    [[ -s $1 ]] && TRUST_TOKEN=$(<"$1") "$TRUSTCTL" catalogue show >/dev/null 2>&1
}

# ensure_token <file> <trustctl credential issue arguments...>
ensure_token() {
    local file=$1
    shift
    if token_works "$file"; then
        say "$file: kept"
        return 0
    fi
    (umask 077 && "$TRUSTCTL" credential issue --label run.sh "$@" >"$file.new") || {
        rm -f "$file.new"
        die "could not issue a credential ($*); see the message above"
    }
    mv "$file.new" "$file"
    say "$file: issued"
}

# The partner codes of the demo catalogue.
demo_partners() {
    awk '/^\[\[/ { in_partner = ($0 == "[[partner]]") } in_partner && /^code *=/ { gsub(/"/, "", $3); print $3 }' \
        "$DEMO_CATALOGUE"
}

step "issue the operator's credential ($OPERATOR_TOKEN)"
ensure_token "$OPERATOR_TOKEN" --operator "performance team"

step "load the demo catalogue, staff directory and routing"
TRUST_TOKEN=$(<"$OPERATOR_TOKEN") "$TRUSTCTL" catalogue load "$DEMO_CATALOGUE"
"$TRUSTCTL" directory load deploy/demo/directory.toml
"$TRUSTCTL" routing load deploy/demo/routing.toml

step "issue each demo partner's credential ($TOKEN_DIR/<partner>.token)"
mkdir -p "$TOKEN_DIR"
chmod 700 "$TOKEN_DIR"
for partner in $(demo_partners); do
    ensure_token "$TOKEN_DIR/$partner.token" --partner "$partner"
done

ready=1
cat <<EOF

The Children's Trust Platform is running.

  gRPC (health, reflection, dead letters, and the service's own API)    Prometheus metrics
    indicator-ingest  127.0.0.1:${GRPC_PORTS[0]}                                   http://127.0.0.1:${METRICS_PORTS[0]}/metrics
    safeguarding-qa   127.0.0.1:${GRPC_PORTS[1]}                                   http://127.0.0.1:${METRICS_PORTS[1]}/metrics
    commissioning     127.0.0.1:${GRPC_PORTS[2]}                                   http://127.0.0.1:${METRICS_PORTS[2]}/metrics
    notifications     127.0.0.1:${GRPC_PORTS[3]}                                   http://127.0.0.1:${METRICS_PORTS[3]}/metrics
  NATS      nats://127.0.0.1:$NATS_PORT (users and permissions in deploy/nats/partners.conf)
  Postgres  database "trust" on 127.0.0.1:5432, one role and schema per service
  Mail      SMTP sink on 127.0.0.1:$SMTP_PORT; every email lands as a file in $MAIL_DIR/new
  Links     acknowledgement links in emails: http://127.0.0.1:8104/ack/... (key in $LINKS_SECRET)
  Logs      $LOG_DIR/

  Publish a breaching observation as Connexions (NEET 16-18 in East North East, target 8.0):
    $TRUSTCTL publish --partner connexions --indicator NEET_16_18 --locality AREA_EAST_NORTH_EAST --period 2026-Q2 --value 9.4
  and the locality enabler's email appears in $MAIL_DIR/new.

  Read the board as the performance team, or as a partner (only what the information sharing protocol lets it):
    TRUST_TOKEN=\$(cat $OPERATOR_TOKEN) $TRUSTCTL board --indicator NEET_16_18
    TRUST_TOKEN=\$(cat $TOKEN_DIR/vcsf.token) $TRUSTCTL board

  Check health:   $TRUSTCTL health
  Stop:           deploy/local/run.sh stop
EOF

if [[ $detach -eq 1 ]]; then
    exit 0
fi

# --- Foreground: follow the logs until Ctrl-C, or until a service dies ------------------------------------------
say ""
say "Following the logs; Ctrl-C stops the platform."
tail -n 0 -F "$LOG_DIR"/*.log &
tail_pid=$!

finish() {
    local status=$1
    trap - INT TERM EXIT
    kill "$tail_pid" 2>/dev/null || true
    say ""
    stop_all
    exit "$status"
}
trap 'finish 0' INT TERM

while sleep 2; do
    for service in "${SERVICES[@]}"; do
        if ! running_pid "$service" >/dev/null; then
            printf '\nrun.sh: %s has exited; see %s\n' "$service" "$LOG_DIR/$service.log" >&2
            finish 1
        fi
    done
done
