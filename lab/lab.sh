#!/usr/bin/env bash
# The gameday lab: hosts made of network namespaces on a bridge, running real services
# (haproxy, nginx, redis under supervisord, dnsmasq, and a demo service that writes to disk), a
# gameday controller, a gameday-agent on every service host, and the team's monitoring on a
# host of its own (Prometheus, the blackbox exporter and Alertmanager, which delivers alerts
# to the controller). Root required. Nothing touches the machine's own network or /etc:
# everything lives in namespaces the lab creates, in /etc/netns/<lab namespace>/ and in the
# lab's state directory. See lab/README.md.
#
#   sudo lab/lab.sh up                   bring the lab up (refuses if it is already up)
#   sudo lab/lab.sh run FILE [ARGS...]   `gameday run [ARGS...] FILE` from the controller's host
#   sudo lab/lab.sh status               hosts, processes, agents, haproxy's servers, monitoring
#   sudo lab/lab.sh exec HOST CMD...     run a command inside a host (e.g. exec lb curl -s lb.lab)
#   sudo lab/lab.sh down                 tear everything down, then check that nothing is left
#
# Settings (environment):
#   LAB_PREFIX      namespace name prefix (default gdl): gdl-sw, gdl-ctl, gdl-lb, ...
#   LAB_NET         the lab's /24, as its first three octets (default 10.66.0)
#   LAB_DIR         state directory: configs, certificates, logs, pids
#                   (default /tmp/gameday-lab-$LAB_PREFIX)
#   GAMEDAY         the gameday binary (default: this repo's target/debug/gameday, else PATH)
#   GAMEDAY_AGENT   the gameday-agent binary (same defaults)
#   LAB_KEEP_FAILED=1  leave a lab whose `up` failed in place, to look at (default: tear it down)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONF=$REPO/lab/conf
LAB_PREFIX=${LAB_PREFIX:-gdl}
LAB_NET=${LAB_NET:-10.66.0}
LAB_DIR=${LAB_DIR:-/tmp/gameday-lab-$LAB_PREFIX}

# The catalog's scenarios are written for the default lab; `run` rewrites these two into the
# running lab's own (see render_scenario).
DEFAULT_NET=10.66.0
DEFAULT_DIR=/tmp/gameday-lab-gdl

HOSTS=(ctl lb web1 web2 cache app dns mon)
AGENT_HOSTS=(lb web1 web2 cache app dns)
declare -A OCTET=([ctl]=10 [lb]=11 [web1]=21 [web2]=22 [cache]=31 [app]=41 [dns]=53 [mon]=60)
declare -A ROLE=([lb]=lb [web1]=web [web2]=web [cache]=cache [app]=app [dns]=dns)
CTL_PORT=7443
ALERTS_PORT=9443 # the controller's alert receiver (also in lab/conf/alertmanager.yml)
# On mon (also in lab/conf/prometheus.yml): Prometheus, Alertmanager, the blackbox exporter.
PROM_PORT=9090
AM_PORT=9093
BLACKBOX_PORT=9115
MARKER=.gameday-lab # in LAB_DIR: proof that the directory is a lab's, before `down` deletes it

say() { printf '%s\n' "$*" >&2; }
die() {
  say "lab: $*"
  exit 1
}

ns() { printf '%s-%s' "$LAB_PREFIX" "$1"; }
addr() { printf '%s.%s' "$LAB_NET" "${OCTET[$1]}"; }
all_ns() {
  ns sw
  echo
  for h in "${HOSTS[@]}"; do
    ns "$h"
    echo
  done
}
ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

check_settings() {
  [[ $LAB_PREFIX =~ ^[a-z][a-z0-9]{0,9}$ ]] ||
    die "LAB_PREFIX must be 1-10 lowercase letters or digits, starting with a letter (got '$LAB_PREFIX')"
  local o
  [[ $LAB_NET =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
    die "LAB_NET must be three octets like 10.66.0 (got '$LAB_NET')"
  for o in "${BASH_REMATCH[@]:1}"; do
    ((o <= 255)) || die "LAB_NET: $o is not an octet"
  done
  [[ $LAB_DIR == /* && $LAB_DIR != / && $LAB_DIR != *[[:space:]]* ]] ||
    die "LAB_DIR must be an absolute path without spaces, and not / (got '$LAB_DIR')"
}

require_root() {
  [ "$(id -u)" -eq 0 ] || die "this needs root (namespaces, mounts, /etc/netns): sudo $0 $*"
}

# The binaries: an explicit setting, else this repo's debug build, else PATH.
find_bin() {
  local name=$1 given=$2
  if [ -n "$given" ]; then
    [ -x "$given" ] || die "$given is not an executable"
    realpath "$given"
  elif [ -x "$REPO/target/debug/$name" ]; then
    echo "$REPO/target/debug/$name"
  elif command -v "$name" >/dev/null; then
    realpath "$(command -v "$name")"
  else
    die "$name not found: build it (cargo build --workspace) or set ${3}=/path/to/$name"
  fi
}

check_tools() {
  local missing=() t
  for t in ip nft haproxy nginx redis-server supervisord dnsmasq curl findmnt setsid \
    prometheus promtool prometheus-alertmanager amtool prometheus-blackbox-exporter; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] ||
    die "missing: ${missing[*]} (Debian: apt-get install iproute2 nftables haproxy nginx redis-server supervisor dnsmasq curl util-linux prometheus prometheus-alertmanager prometheus-blackbox-exporter)"
}

# Prints a template from lab/conf with the host's values filled in.
render() {
  local template=$1 host=$2
  sed -e "s|@LAB_DIR@|$LAB_DIR|g" \
    -e "s|@HOST_DIR@|$LAB_DIR/$host|g" \
    -e "s|@HOST@|$host|g" \
    -e "s|@NET@|$LAB_NET|g" \
    -e "s|@NS@|$(ns "$host")|g" \
    -e "s|@ADDR@|$(addr "$host")|g" \
    "$template"
}

# Polls `cmd...` every 100ms until it succeeds, for at most `seconds`; then fails with `what`.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
    sleep 0.1
  done
}

tcp_open() { # tcp_open HOST ADDRESS PORT: a connection from inside HOST succeeds
  ip netns exec "$(ns "$1")" bash -c "exec 3<>/dev/tcp/$2/$3"
}

start_time() { # the process's start time (clock ticks after boot): tells a pid from its reuse
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $stat
  echo "${20}"
}

# start NAME HOST CMD...: runs CMD inside HOST in a session of its own (so closing the terminal
# that ran `up` does not take it down), output to logs/NAME.log, pid to pids/NAME.
# `ip netns exec` and `setsid` both exec, so $! is the service's own pid.
start() {
  local name=$1 host=$2
  shift 2
  ip netns exec "$(ns "$host")" setsid "$@" </dev/null >>"$LAB_DIR/logs/$name.log" 2>&1 &
  local pid=$!
  echo "$pid $(start_time "$pid" || echo 0) $host" >"$LAB_DIR/pids/$name"
}

alive() { # alive NAME: the recorded process still runs (and is the one we started)
  local pid start _
  [ -f "$LAB_DIR/pids/$1" ] || return 1
  read -r pid start _ <"$LAB_DIR/pids/$1"
  [ "$(start_time "$pid" 2>/dev/null)" = "$start" ]
}

operator_env() {
  echo "GAMEDAY_CONTROLLER=https://$(addr ctl):$CTL_PORT"
  echo "GAMEDAY_CA=$LAB_DIR/pki/ca.pem"
  echo "GAMEDAY_CERT=$LAB_DIR/pki/operator-lab.pem"
  echo "GAMEDAY_KEY=$LAB_DIR/pki/operator-lab.key"
}

gameday_in_ctl() { # gameday ARGS... as the lab's operator, from the controller's host
  # shellcheck disable=SC2046
  ip netns exec "$(ns ctl)" env $(cat "$LAB_DIR/env") "$GAMEDAY" "$@"
}

lab_present() { # anything of this lab exists: its directory, a namespace, an /etc/netns entry
  local n
  [ -e "$LAB_DIR" ] && return 0
  while read -r n; do
    [ -n "$n" ] || continue
    ns_exists "$n" && return 0
    [ -e "/etc/netns/$n" ] && return 0
  done < <(all_ns)
  return 1
}

# ---------------------------------------------------------------------------------- up --

up_network() {
  local sw h n
  sw=$(ns sw)
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for h in "${HOSTS[@]}"; do
    n=$(ns "$h")
    ip netns add "$n"
    ip -n "$n" link set lo up
    # Both ends are created inside namespaces: no interface ever appears on the machine itself.
    ip -n "$sw" link add "v-$h" type veth peer name eth0 netns "$n"
    ip -n "$sw" link set "v-$h" master br0 up
    ip -n "$n" addr add "$(addr "$h")/24" dev eth0
    ip -n "$n" link set eth0 up
  done
}

# /etc/netns/<ns>/{hostname,hosts,resolv.conf}: `ip netns exec` bind-mounts them over /etc/...
# for every process it starts in that namespace.
up_etc() {
  local h d
  for h in "${HOSTS[@]}"; do
    d=/etc/netns/$(ns "$h")
    mkdir -p "$d"
    echo "$h" >"$d/hostname"
    {
      echo "127.0.0.1 localhost"
      echo "::1 localhost ip6-localhost ip6-loopback"
      echo "# The lab's hosts (lab/conf/lab.hosts); origin.lab is left to DNS."
      sed -e "s|@NET@|$LAB_NET|g" "$CONF/lab.hosts" | grep -v '^#' | grep -v 'origin\.lab'
    } >"$d/hosts"
    {
      echo "# The lab's dnsmasq (host dns)."
      echo "nameserver $(addr dns)"
      echo "search lab"
      echo "options timeout:1 attempts:2"
    } >"$d/resolv.conf"
  done
}

up_certs() {
  local args=(certs init --dir "$LAB_DIR/pki" --operator lab
    --controller-san "$(addr ctl)" --controller-san ctl.lab) h
  for h in "${AGENT_HOSTS[@]}"; do args+=(--agent "$h"); done
  "$GAMEDAY" "${args[@]}" >"$LAB_DIR/logs/certs.log" 2>&1 ||
    die "gameday certs init failed: $(cat "$LAB_DIR/logs/certs.log")"
  # The bearer token Alertmanager presents to the controller's alert receiver.
  (
    umask 077
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$LAB_DIR/pki/alerts.token"
  )
}

up_controller() {
  local d=$LAB_DIR/ctl
  mkdir -p "$d/data"
  cat >"$d/controller.toml" <<EOF
# The lab's controller (written by lab/lab.sh).
listen = "$(addr ctl):$CTL_PORT"
data_dir = "$d/data"
heartbeat_interval = "500ms"
heartbeat_timeout = "3s"
lease = "5s"

[tls]
ca = "$LAB_DIR/pki/ca.pem"
cert = "$LAB_DIR/pki/controller.pem"
key = "$LAB_DIR/pki/controller.key"

# Alertmanager on mon delivers the lab's alerts here (lab/conf/alertmanager.yml).
[alerts]
listen = "$(addr ctl):$ALERTS_PORT"
token_file = "$LAB_DIR/pki/alerts.token"
EOF
  start controller ctl "$GAMEDAY" serve --config "$d/controller.toml"
  wait_for "the controller on $(addr ctl):$CTL_PORT (logs/controller.log)" 20 \
    tcp_open ctl "$(addr ctl)" "$CTL_PORT"
  wait_for "the controller's alert receiver on $(addr ctl):$ALERTS_PORT (logs/controller.log)" 10 \
    tcp_open ctl "$(addr ctl)" "$ALERTS_PORT"
}

up_dns() {
  local d=$LAB_DIR/dns
  mkdir -p "$d/hosts.d"
  render "$CONF/lab.hosts" dns >"$d/hosts.d/lab.hosts"
  render "$CONF/dnsmasq.conf" dns >"$d/dnsmasq.conf"
  start dnsmasq dns dnsmasq --keep-in-foreground --conf-file="$d/dnsmasq.conf"
  wait_for "dnsmasq on $(addr dns):53 (logs/dnsmasq.log)" 10 tcp_open dns "$(addr dns)" 53
}

# nginx is started by the host's start-nginx script (lab/conf/start-nginx.sh), the one a
# remediation step runs to bring a killed nginx back: it waits, bounded, until nginx listens,
# and records its pid.
up_web() {
  local h=$1 d=$LAB_DIR/$1
  mkdir -p "$d/tmp"
  render "$CONF/nginx.conf" "$h" >"$d/nginx.conf"
  render "$CONF/start-nginx.sh" "$h" >"$d/start-nginx"
  chmod 0755 "$d/start-nginx"
  "$d/start-nginx" >>"$LAB_DIR/logs/start-nginx-$h.log" 2>&1 ||
    die "nginx on $h.lab:80 did not start: $(tail -n 3 "$LAB_DIR/logs/start-nginx-$h.log")"
}

up_cache() {
  local d=$LAB_DIR/cache
  mkdir -p "$d"
  render "$CONF/redis.conf" cache >"$d/redis.conf"
  render "$CONF/supervisord.conf" cache >"$d/supervisord.conf"
  start supervisord cache supervisord --nodaemon --configuration "$d/supervisord.conf"
  wait_for "redis on cache.lab:6379 (cache/supervisord.log, cache/redis.log)" 15 \
    tcp_open cache "$(addr cache)" 6379
}

up_app() {
  local d=$LAB_DIR/app
  mkdir -p "$d/data"
  # A small filesystem of its own, so filling it hurts nothing else.
  mount -t tmpfs -o size=4m,mode=0755 "$LAB_PREFIX-app-data" "$d/data"
  start app app "$GAMEDAY" demo-service --listen 0.0.0.0:8080 --write-to "$d/data"
  wait_for "the app on app.lab:8080 (logs/app.log)" 10 tcp_open app "$(addr app)" 8080
}

haproxy_servers_up() { # every server of every backend is UP
  local csv
  csv=$(ip netns exec "$(ns lb)" curl -sf --max-time 1 'http://127.0.0.1:8404/;csv') || return 1
  # Columns: pxname,svname,...,status(18th). Real servers are the rows that are not the
  # FRONTEND/BACKEND summary lines.
  ! awk -F, '$1 != "stats" && $2 != "FRONTEND" && $2 != "BACKEND" && $1 !~ /^#/ && $18 != "UP"' \
    <<<"$csv" | grep -q .
}

up_lb() {
  local d=$LAB_DIR/lb
  mkdir -p "$d"
  render "$CONF/haproxy.cfg" lb >"$d/haproxy.cfg"
  ip netns exec "$(ns lb)" haproxy -c -q -f "$d/haproxy.cfg" >"$LAB_DIR/logs/haproxy-check.log" 2>&1 ||
    die "haproxy rejects $d/haproxy.cfg: $(cat "$LAB_DIR/logs/haproxy-check.log")"
  start haproxy lb haproxy -db -f "$d/haproxy.cfg"
  local p
  for p in 80 81 82 83 84; do
    wait_for "haproxy on lb.lab:$p (logs/haproxy.log)" 10 tcp_open lb "$(addr lb)" "$p"
  done
  wait_for "haproxy to see every backend server UP (lab.sh exec lb curl -s '127.0.0.1:8404/;csv')" \
    15 haproxy_servers_up
}

# The team's monitoring, on mon: Prometheus scrapes a blackbox HTTP probe of web1's nginx every
# second and evaluates the alert rules every second; Alertmanager delivers Web1Down to the
# controller's alert receiver, with the lab's bearer token, over TLS checked against the lab's
# CA. lab/conf/prometheus.yml says when an alert fires; lab/conf/alertmanager.yml when it is
# delivered.
mon_url() { printf 'http://%s:%s' "$(addr mon)" "$1"; }

prom_api() { # prom_api PATH [CURL ARGS...]: Prometheus's HTTP API, from inside mon
  local path=$1
  shift
  ip netns exec "$(ns mon)" curl -sf --max-time 2 "$@" "$(mon_url "$PROM_PORT")$path"
}

prom_sees_web1_up() { # Prometheus's last probe of web1 succeeded
  prom_api /api/v1/query --data-urlencode 'query=probe_success{job="web1"} == 1' |
    grep -q '"result":\[{'
}

prom_quiet() { # no alert pending or firing in Prometheus
  prom_api /api/v1/alerts | grep -q '"alerts":\[\]'
}

http_ready() { # http_ready HOST URL: the URL answers 2xx from inside HOST
  ip netns exec "$(ns "$1")" curl -sf --max-time 1 -o /dev/null "$2"
}

up_mon() {
  local d=$LAB_DIR/mon
  mkdir -p "$d/prometheus" "$d/alertmanager"
  render "$CONF/prometheus.yml" mon >"$d/prometheus.yml"
  render "$CONF/prometheus-rules.yml" mon >"$d/rules.yml"
  render "$CONF/blackbox.yml" mon >"$d/blackbox.yml"
  render "$CONF/alertmanager.yml" mon >"$d/alertmanager.yml"
  promtool check config "$d/prometheus.yml" >"$LAB_DIR/logs/promtool-check.log" 2>&1 ||
    die "promtool rejects $d/prometheus.yml: $(cat "$LAB_DIR/logs/promtool-check.log")"
  amtool check-config "$d/alertmanager.yml" >"$LAB_DIR/logs/amtool-check.log" 2>&1 ||
    die "amtool rejects $d/alertmanager.yml: $(cat "$LAB_DIR/logs/amtool-check.log")"
  start blackbox mon prometheus-blackbox-exporter --config.file="$d/blackbox.yml" \
    --web.listen-address="$(addr mon):$BLACKBOX_PORT"
  # No cluster: one Alertmanager, no gossip port.
  start alertmanager mon prometheus-alertmanager --config.file="$d/alertmanager.yml" \
    --storage.path="$d/alertmanager" --web.listen-address="$(addr mon):$AM_PORT" \
    --cluster.listen-address=
  start prometheus mon prometheus --config.file="$d/prometheus.yml" \
    --storage.tsdb.path="$d/prometheus" --web.listen-address="$(addr mon):$PROM_PORT"
  wait_for "the blackbox exporter on mon.lab:$BLACKBOX_PORT (logs/blackbox.log)" 10 \
    http_ready mon "$(mon_url "$BLACKBOX_PORT")/-/healthy"
  wait_for "Alertmanager on mon.lab:$AM_PORT (logs/alertmanager.log)" 20 \
    http_ready mon "$(mon_url "$AM_PORT")/-/ready"
  wait_for "Prometheus on mon.lab:$PROM_PORT (logs/prometheus.log)" 30 \
    http_ready mon "$(mon_url "$PROM_PORT")/-/ready"
  # Seen up before any game day: an alert can only come from a fault.
  wait_for "Prometheus to see web1 up (logs/prometheus.log, logs/blackbox.log)" 20 \
    prom_sees_web1_up
}

up_agents() {
  local h d
  for h in "${AGENT_HOSTS[@]}"; do
    d=$LAB_DIR/$h
    mkdir -p "$d/agent-state"
    {
      cat <<EOF
# The gameday agent of lab host $h (written by lab/lab.sh; policy from lab/conf/policy/$h.toml).
name = "$h"
controller = "https://$(addr ctl):$CTL_PORT"
heartbeat = "500ms"
lease = "5s"
state_dir = "$d/agent-state"

[labels]
role = "${ROLE[$h]}"
host = "$h"
lab = "$LAB_PREFIX"

[tls]
ca = "$LAB_DIR/pki/ca.pem"
cert = "$LAB_DIR/pki/agent-$h.pem"
key = "$LAB_DIR/pki/agent-$h.key"

EOF
      render "$CONF/policy/$h.toml" "$h"
    } >"$d/agent.toml"
    start "agent-$h" "$h" "$GAMEDAY_AGENT" --config "$d/agent.toml"
  done
  all_agents_connected() {
    local out h
    out=$(gameday_in_ctl agents 2>/dev/null) || return 1
    for h in "${AGENT_HOSTS[@]}"; do
      grep -q "^$h " <<<"$out" || return 1
    done
  }
  wait_for "every agent to connect (logs/agent-*.log)" 30 all_agents_connected
}

on_up_exit() {
  local code=$?
  [ "$code" -ne 0 ] || return 0
  say "lab: up failed (exit $code). Last lines of the logs:"
  local f
  for f in "$LAB_DIR"/logs/*.log; do
    [ -s "$f" ] || continue
    say "--- ${f#"$LAB_DIR"/}"
    tail -n 5 "$f" >&2
  done
  if [ "${LAB_KEEP_FAILED:-}" = 1 ]; then
    say "lab: left in place (LAB_KEEP_FAILED=1); tear it down with: $0 down"
  else
    say "lab: tearing the partial lab down"
    cmd_down >&2 || true
  fi
  exit "$code"
}

cmd_up() {
  require_root up
  check_settings
  check_tools
  GAMEDAY=$(find_bin gameday "${GAMEDAY:-}" GAMEDAY)
  GAMEDAY_AGENT=$(find_bin gameday-agent "${GAMEDAY_AGENT:-}" GAMEDAY_AGENT)
  if lab_present; then
    die "lab '$LAB_PREFIX' is already up, or left over from a failed run ($LAB_DIR or namespaces $LAB_PREFIX-* exist): run '$0 down' first"
  fi
  trap on_up_exit EXIT
  mkdir -p "$LAB_DIR"/{logs,pids}
  chmod 0755 "$LAB_DIR"
  touch "$LAB_DIR/$MARKER"
  say "lab: network $LAB_NET.0/24, namespaces $LAB_PREFIX-*, state in $LAB_DIR"
  up_network
  up_etc
  up_certs
  operator_env >"$LAB_DIR/env"
  up_controller
  up_dns
  up_web web1
  up_web web2
  up_cache
  up_app
  up_lb
  up_mon
  up_agents
  trap - EXIT
  cat <<EOF

The lab is up.
  hosts:     $(for h in "${HOSTS[@]}"; do printf '%s=%s ' "$h" "$(addr "$h")"; done)
  services:  lb.lab:80 (round robin web1+web2), :81 (redundant), :82 (web1 only), :83 (origin.lab via DNS),
             :84 (web1, web2 as backup); cache.lab:6379 (redis under supervisord),
             app.lab:8080 (writes to a 4 MiB tmpfs), dns.lab:53
  monitoring: mon.lab: Prometheus :$PROM_PORT (alert Web1Down), Alertmanager :$AM_PORT -> the controller's
             alert receiver ctl.lab:$ALERTS_PORT; web1's nginx restarts with $LAB_DIR/web1/start-nginx
  operator:  $LAB_DIR/env

Run a game day from the catalog:
  sudo $0 run scenarios/lab/kill-redis.toml
  sudo $0 run scenarios/lab/kill-redis.toml --output json     # the full report
or by hand, from the controller's host:
  sudo ip netns exec $(ns ctl) env \$(cat $LAB_DIR/env) $GAMEDAY run scenarios/lab/kill-redis.toml

  sudo $0 status        # hosts, processes, agents, haproxy's servers
  sudo $0 down          # tear it all down
EOF
  gameday_in_ctl agents
}

# -------------------------------------------------------------------------------- down --

# stop NAMES...: SIGTERM to each recorded process still alive, then SIGKILL after 10s.
stop_recorded() {
  local name pid start _ pids=()
  for name in "$@"; do
    [ -f "$LAB_DIR/pids/$name" ] || continue
    read -r pid start _ <"$LAB_DIR/pids/$name"
    [ "$(start_time "$pid" 2>/dev/null)" = "$start" ] || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  stop_wait "${pids[@]}"
}

# stop_wait PIDS...: waits up to 10s for them to exit, then SIGKILLs whatever is left.
stop_wait() {
  local pid deadline=$((SECONDS + 10)) left
  while :; do
    left=()
    for pid in "$@"; do
      [ -e "/proc/$pid" ] && left+=("$pid")
    done
    [ ${#left[@]} -eq 0 ] && return 0
    if ((SECONDS >= deadline)); then
      say "lab: still running after 10s, killing: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
  done
}

leftovers() { # prints what of this lab still exists, one line each
  local n
  while read -r n; do
    [ -n "$n" ] || continue
    ns_exists "$n" && echo "namespace $n"
    [ -e "/etc/netns/$n" ] && echo "directory /etc/netns/$n"
  done < <(all_ns)
  findmnt -rn -o TARGET,SOURCE | awk -v d="$LAB_DIR/" -v s="$LAB_PREFIX-app-data" \
    'index($1, d) == 1 || $2 == s { print "mount " $1 " (" $2 ")" }'
  [ -e "$LAB_DIR" ] && echo "directory $LAB_DIR"
  local pid
  for pid in "${STOPPED_PIDS[@]}"; do
    [ -e "/proc/$pid" ] && echo "process $pid ($(cat "/proc/$pid/comm" 2>/dev/null))"
  done
  return 0
}

cmd_down() {
  require_root down
  check_settings
  STOPPED_PIDS=()
  local f pid _ n
  # Remember every recorded pid, to check after the state directory is gone.
  for f in "$LAB_DIR"/pids/*; do
    [ -f "$f" ] || continue
    read -r pid _ <"$f"
    STOPPED_PIDS+=("$pid")
  done
  # Agents first: on SIGTERM they revert their live faults. Then the controller and services.
  local agents=() others=()
  for f in "$LAB_DIR"/pids/*; do
    [ -f "$f" ] || continue
    case ${f##*/} in
    agent-*) agents+=("${f##*/}") ;;
    *) others+=("${f##*/}") ;;
    esac
  done
  stop_recorded "${agents[@]}"
  stop_recorded "${others[@]}"
  # Anything else still inside a lab namespace (started by hand, or by an `up` that failed
  # before it recorded a pid) goes too: every process in a lab namespace is the lab's.
  local strays=()
  while read -r n; do
    [ -n "$n" ] || continue
    ns_exists "$n" || continue
    for pid in $(ip netns pids "$n" 2>/dev/null); do
      kill -TERM "$pid" 2>/dev/null && strays+=("$pid")
    done
  done < <(all_ns)
  stop_wait "${strays[@]}"
  STOPPED_PIDS+=("${strays[@]}")
  # Namespaces take their interfaces, the bridge and any nftables table with them.
  while read -r n; do
    [ -n "$n" ] || continue
    ns_exists "$n" && ip netns del "$n"
    rm -rf "/etc/netns/${n:?}"
  done < <(all_ns)
  # The app's tmpfs, and anything else mounted under the state directory.
  local target
  while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target"
  done < <(findmnt -rn -o TARGET,SOURCE | awk -v d="$LAB_DIR/" -v s="$LAB_PREFIX-app-data" \
    'index($1, d) == 1 || $2 == s { print $1 }' | sort -r)
  if [ -e "$LAB_DIR" ]; then
    if [ -e "$LAB_DIR/$MARKER" ]; then
      rm -rf "${LAB_DIR:?}"
    else
      say "lab: not deleting $LAB_DIR: it has no $MARKER file, so it may not be a lab's"
    fi
  fi
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    say "lab: down check FAILED, still present:"
    say "$left"
    return 1
  fi
  say "lab: down check ok: no namespace, process, mount, /etc/netns entry or state directory of lab '$LAB_PREFIX' is left"
}

# ------------------------------------------------------------------------ run, status --

# The catalog is written for the default lab (10.66.0.x, /tmp/gameday-lab-gdl). For another
# LAB_NET or LAB_DIR, run a copy with those rewritten into this lab's.
render_scenario() {
  local file=$1 out
  if [ "$LAB_NET" = "$DEFAULT_NET" ] && [ "$LAB_DIR" = "$DEFAULT_DIR" ]; then
    echo "$file"
    return
  fi
  mkdir -p "$LAB_DIR/scenarios"
  out=$LAB_DIR/scenarios/$(basename "$file")
  sed -e "s|$DEFAULT_DIR/|$LAB_DIR/|g" -e "s|\b${DEFAULT_NET//./\\.}\.|$LAB_NET.|g" "$file" >"$out"
  if cmp -s "$file" "$out"; then
    rm -f "$out"
    echo "$file"
  else
    say "lab: running $out (the scenario rewritten for LAB_NET=$LAB_NET, LAB_DIR=$LAB_DIR)"
    echo "$out"
  fi
}

# The services are all healthy: every haproxy server UP (:84 on its primary again), redis, the
# app and dnsmasq answering; and the monitoring quiet: Prometheus sees web1 up, no alert is
# pending or firing.
lab_healthy() {
  haproxy_servers_up &&
    http_ready ctl "http://$(addr lb):84/" &&
    tcp_open ctl "$(addr cache)" 6379 &&
    http_ready ctl "http://$(addr app):8080/" &&
    tcp_open ctl "$(addr dns)" 53 &&
    prom_sees_web1_up &&
    prom_quiet
}

cmd_run() {
  require_root run
  check_settings
  [ $# -ge 1 ] || die "usage: $0 run SCENARIO.toml [gameday run options, e.g. --output json]"
  [ -f "$LAB_DIR/env" ] || die "lab '$LAB_PREFIX' is not up (no $LAB_DIR/env): run '$0 up' first"
  GAMEDAY=$(find_bin gameday "${GAMEDAY:-}" GAMEDAY)
  local file
  file=$(render_scenario "$(realpath "$1")")
  shift
  # A run right after another may find a backend still on its way back UP (haproxy needs
  # `rise` good checks): wait for a healthy lab, so the steady state measures the lab, not the
  # previous game day. LAB_NO_WAIT=1 skips this (to see an INCONCLUSIVE run, say).
  if [ "${LAB_NO_WAIT:-}" != 1 ] && ! lab_healthy >/dev/null 2>&1; then
    say "lab: waiting for every service to be healthy before the run (LAB_NO_WAIT=1 skips this)"
    wait_for "a healthy lab (see: $0 status)" 20 lab_healthy
  fi
  gameday_in_ctl run "$@" "$file"
}

cmd_status() {
  require_root status
  check_settings
  [ -e "$LAB_DIR" ] || {
    say "lab '$LAB_PREFIX' is not up ($LAB_DIR does not exist)"
    return 1
  }
  GAMEDAY=$(find_bin gameday "${GAMEDAY:-}" GAMEDAY)
  local h f name pid _ state
  echo "lab '$LAB_PREFIX': $LAB_NET.0/24, state in $LAB_DIR"
  echo
  printf '%-6s %-14s %-12s %s\n' HOST NAMESPACE ADDRESS PROCESSES
  for h in "${HOSTS[@]}"; do
    local procs=""
    for f in "$LAB_DIR"/pids/*; do
      [ -f "$f" ] || continue
      read -r pid _ host <"$f"
      [ "$host" = "$h" ] || continue
      name=${f##*/}
      if alive "$name"; then state="pid $pid"; else state="EXITED"; fi
      procs+="$name ($state)  "
    done
    printf '%-6s %-14s %-12s %s\n' "$h" "$(ns "$h")$(ns_exists "$(ns "$h")" || echo ' (GONE)')" \
      "$(addr "$h")" "$procs"
  done
  echo
  echo "agents (gameday agents):"
  gameday_in_ctl agents || true
  echo
  echo "haproxy servers (backend/server: status, check):"
  ip netns exec "$(ns lb)" curl -sf --max-time 1 'http://127.0.0.1:8404/;csv' |
    awk -F, '$1 != "stats" && $2 != "FRONTEND" && $2 != "BACKEND" && $1 !~ /^#/ \
      { printf "  %s/%s: %s, %s\n", $1, $2, $18, $37 }' || echo "  (haproxy stats unavailable)"
  echo
  echo "redis under supervisord:"
  ip netns exec "$(ns cache)" supervisorctl -c "$LAB_DIR/cache/supervisord.conf" status 2>&1 |
    sed 's/^/  /' || true
  echo
  echo "app data tmpfs:"
  df -h "$LAB_DIR/app/data" 2>&1 | sed 's/^/  /' || true
  echo
  echo "monitoring on mon (Prometheus $(mon_url "$PROM_PORT"), Alertmanager $(mon_url "$AM_PORT")):"
  local prom am
  prom=$(mon_url "$PROM_PORT")
  am=$(mon_url "$AM_PORT")
  echo "  blackbox probe of web1 (probe_success; 1 = up):"
  ip netns exec "$(ns mon)" promtool query instant "$prom" 'probe_success' 2>&1 | sed 's/^/    /' || true
  echo "  alerts in Prometheus (pending or firing):"
  ip netns exec "$(ns mon)" promtool query instant "$prom" 'ALERTS' 2>&1 |
    sed -e '/^[[:space:]]*$/d' -e 's/^/    /' | grep . || echo "    none"
  echo "  alerts in Alertmanager:"
  ip netns exec "$(ns mon)" amtool alert query --alertmanager.url="$am" 2>&1 | sed 's/^/    /' || true
  echo "  deliveries to the controller's alert receiver (sent, failed):"
  ip netns exec "$(ns mon)" curl -sf --max-time 1 "$am/metrics" 2>/dev/null |
    grep -E '^alertmanager_notifications(_failed)?_total\{integration="webhook"\}' |
    sed 's/^/    /' || echo "    (Alertmanager's metrics unavailable)"
}

cmd_exec() {
  require_root exec
  check_settings
  [ $# -ge 2 ] || die "usage: $0 exec HOST COMMAND... (hosts: ${HOSTS[*]} sw)"
  local h=$1
  shift
  [ -n "${OCTET[$h]:-}" ] || [ "$h" = sw ] || die "no host '$h' (hosts: ${HOSTS[*]} sw)"
  exec ip netns exec "$(ns "$h")" "$@"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
run)
  shift
  cmd_run "$@"
  ;;
exec)
  shift
  cmd_exec "$@"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
