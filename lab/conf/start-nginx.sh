#!/usr/bin/env bash
# Starts @HOST@'s nginx (lab host @HOST@, namespace @NS@) and exits 0 once it listens on
# @ADDR@:80; exits 1 with a message when it cannot. lab.sh writes this file as
# @HOST_DIR@/start-nginx from lab/conf/start-nginx.sh and `up` starts nginx with it, so a
# remediation step that runs it (an agent policy's [policy.remediation] commands) does exactly
# what the lab does.
#
# nginx runs in a session of its own (setsid), its output in the lab's log, never on this
# script's stdout or stderr: it outlives the script, and whoever runs the script (an agent
# capturing a step's output, killing what a step leaves in its process group) is done when
# the script is. Its pid goes to the lab's pid file, so `lab.sh status` shows it and
# `lab.sh down` stops it. It can be run from anywhere (inside the namespace or not: it enters
# @NS@ itself), as root.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

NS=@NS@
HOST_DIR=@HOST_DIR@
LAB_DIR=@LAB_DIR@
ADDR=@ADDR@
NAME=nginx-@HOST@
WAIT_SECONDS=5 # how long nginx may take to listen

say() { printf 'start-nginx (@HOST@): %s\n' "$*"; }

field() { # field PID comm|state|start: from /proc/PID/stat (start: clock ticks after boot)
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) } # the fields after the command name, which may hold spaces
  case $2 in
  comm)
    stat=${stat#*(}
    echo "${stat%)*}"
    ;;
  state) echo "${rest%% *}" ;;
  start)
    # shellcheck disable=SC2086 # split the fields on purpose
    set -- $rest
    echo "${20}"
    ;;
  esac
}

listens() { ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/$ADDR/80" 2>/dev/null; }

ip netns pids "$NS" >/dev/null 2>&1 || {
  say "no namespace $NS: is the lab up?"
  exit 1
}

# One nginx per host: a second would not get the port. A paused (stopped) one is still there,
# holding the port: starting another would not help.
for pid in $(ip netns pids "$NS"); do
  [ "$(field "$pid" comm)" = nginx ] || continue
  state=$(field "$pid" state) || continue
  [ "$state" != Z ] || continue # killed, not yet reaped
  if [ "$state" = T ] || [ "$state" = t ]; then
    say "nginx is there but stopped (pid $pid, state $state): not starting a second one"
    exit 1
  fi
  if listens; then
    say "nginx already runs (pid $pid) and listens on $ADDR:80"
    exit 0
  fi
  say "nginx is there (pid $pid) but nothing listens on $ADDR:80: not starting a second one"
  exit 1
done

# `ip netns exec` and `setsid` both exec, so $! is nginx's own pid (the master). setsid does
# not fork: a background job of a script is not a process group leader.
ip netns exec "$NS" setsid nginx -e "$HOST_DIR/nginx-error.log" -c "$HOST_DIR/nginx.conf" \
  </dev/null >>"$LAB_DIR/logs/$NAME.log" 2>&1 &
pid=$!
echo "$pid $(field "$pid" start || echo 0) @HOST@" >"$LAB_DIR/pids/$NAME"

deadline=$((SECONDS + WAIT_SECONDS))
until listens; do
  state=$(field "$pid" state) || state=gone
  if [ "$state" = Z ] || [ "$state" = gone ]; then
    say "nginx exited at once; the end of $HOST_DIR/nginx-error.log and logs/$NAME.log:"
    tail -n 3 "$HOST_DIR/nginx-error.log" "$LAB_DIR/logs/$NAME.log" 2>/dev/null || true
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    say "nginx (pid $pid) does not listen on $ADDR:80 after ${WAIT_SECONDS}s; see $HOST_DIR/nginx-error.log"
    exit 1
  fi
  sleep 0.02
done
say "nginx started (pid $pid), listening on $ADDR:80"
