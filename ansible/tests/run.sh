#!/usr/bin/env bash
# Tests the Ansible roles: syntax check, ansible-lint, then the playbook run FOR REAL on this
# machine (-c local) against a throw-away root per host (gameday_install_prefix), with service
# management off. It checks the files, modes, owners, rendered configs (parsed back with
# tomllib) and unit files (systemd-analyze verify and security), starts the installed controller
# (as an unprivileged user) and agents from the rendered configs and certificates and sees the
# agents register, checks that a second run changes nothing, and that an agent with live faults
# is not restarted. Nothing outside the temporary directory is touched.
#
# Needs the debug binaries (cargo build --workspace; ./test.sh runs this after it), python3 >=
# 3.11, systemd-analyze, setpriv and openssl. ansible-core and ansible-lint are installed with
# pip into a virtualenv (GAMEDAY_ANSIBLE_VENV, default ~/.cache/gameday/ansible-venv) when it
# is missing. GAMEDAY_CHECK_VERBOSE=1 lists every check; GAMEDAY_KEEP_TMP=1 keeps the root.
set -euo pipefail

ANSIBLE_CORE_VERSION=2.19.14
ANSIBLE_LINT_VERSION=25.12.2

here=$(cd "$(dirname "$0")" && pwd)
ansible_dir=$(dirname "$here")
repo=$(dirname "$ansible_dir")
bin_dir=${GAMEDAY_BIN_DIR:-$repo/target/debug}
venv=${GAMEDAY_ANSIBLE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gameday/ansible-venv}

passed=0
step_name=""
step_start=0
t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
step() {
  step_done
  step_name=$1
  step_start=$(date +%s.%N)
  echo "ansible test: $step_name ..."
}
step_done() {
  if [ -n "$step_name" ]; then
    passed=$((passed + 1))
    echo "ansible test: $step_name: ok ($(elapsed "$step_start"))"
    step_name=""
  fi
}
die() {
  echo "ansible test: FAILED: $*" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  # Files owned by `nobody`, agents that run as root as their unit does: root only.
  [ -n "${GAMEDAY_CI:-${CI:-}}" ] && die "needs root"
  echo "ansible test: skipped: needs root"
  echo "ansible: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
for cmd in python3 systemd-analyze setpriv openssl; do
  command -v "$cmd" >/dev/null || die "$cmd is missing (./test.sh installs it)"
done
for b in gameday gameday-agent; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing: run cargo build --workspace first"
done

# --- ansible-core and ansible-lint, pinned, in their own virtualenv ---------------------------
pins="ansible-core==$ANSIBLE_CORE_VERSION ansible-lint==$ANSIBLE_LINT_VERSION"
if [ ! -x "$venv/bin/ansible-lint" ] || [ "$(cat "$venv/.gameday-pins" 2>/dev/null)" != "$pins" ]; then
  step "install $pins into $venv"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "ansible-core $ANSIBLE_CORE_VERSION needs python3 >= 3.11 (found $(python3 --version))"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" >"$venv/.gameday-pins"
fi
export PATH="$venv/bin:$PATH"
python="$venv/bin/python"

# --- the throw-away root ---------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gameday-ansible.XXXXXX")
# Traversable, so the controller can run as `nobody` from the files installed under it.
chmod 0755 "$tmp"
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${GAMEDAY_KEEP_TMP:-}" = 1 ]; then echo "ansible test: kept $tmp"; else rm -rf "$tmp"; fi
  if [ $rc -ne 0 ]; then
    echo "ansible test: ${step_name:-setup} failed; logs were in $tmp" >&2
    echo "ansible: $passed passed, 1 failed"
  fi
}
trap cleanup EXIT

export ANSIBLE_CONFIG="$ansible_dir/ansible.cfg"
export ANSIBLE_HOME="$tmp/ansible-home"
export ANSIBLE_LOCAL_TEMP="$tmp/ansible-home/tmp"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0
export PYTHONDONTWRITEBYTECODE=1
cd "$ansible_dir"

# Runs the playbook against tests/inventory.yml; output in $tmp/LOG.log. Returns its status.
play() {
  local log=$1
  shift
  ansible-playbook -i tests/inventory.yml site.yml -e "@$tmp/extra.json" "$@" >"$tmp/$log.log" 2>&1
}
show() { tail -n "${2:-40}" "$tmp/$1.log" >&2; }
recap() { grep -E '^[A-Za-z0-9._-]+ +: ok=' "$tmp/$1.log"; }
# Every host in the recap of LOG reports changed=0 and failed=0.
expect_no_changes() {
  local lines
  lines=$(recap "$1") || die "no PLAY RECAP in $1"
  if echo "$lines" | grep -vqE 'changed=0 +unreachable=0 +failed=0'; then
    grep -E '^(changed|TASK|RUNNING HANDLER)' "$tmp/$1.log" | grep -B1 '^changed' >&2 || true
    echo "$lines" >&2
    die "$1: the run was not idempotent"
  fi
}

# --- static checks ---------------------------------------------------------------------------
step "syntax check"
ansible-playbook -i inventory/example/hosts.yml site.yml --syntax-check >"$tmp/syntax.log" 2>&1 || { show syntax; die "syntax check"; }
ansible-playbook -i tests/inventory.yml site.yml --syntax-check >>"$tmp/syntax.log" 2>&1 || { show syntax; die "syntax check"; }

step "ansible-lint (profile production)"
ansible-lint --nocolor >"$tmp/lint.log" 2>&1 || { cat "$tmp/lint.log" >&2; die "ansible-lint"; }

step "filters: TOML and systemd quoting"
"$python" tests/check.py filters filter_plugins

# --- a real run ------------------------------------------------------------------------------
# Binaries copied first: the checksums must describe exactly what is installed even if cargo
# rebuilds target/ meanwhile.
mkdir -p "$tmp/bin" "$tmp/fill"
cp "$bin_dir/gameday" "$bin_dir/gameday-agent" "$tmp/bin/"
printf '127.0.0.1 localhost\n' >"$tmp/hosts"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" - "$tmp" "$repo" "$port" >"$tmp/extra.json" <<'EOF'
import hashlib, json, sys
tmp, repo, port = sys.argv[1:]
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
print(json.dumps({
    "gameday_test_root": tmp,
    "gameday_test_repo": repo,
    "gameday_test_port": int(port),
    "gameday_test_bin_dir": f"{tmp}/bin",
    "gameday_test_controller_sha256": sha(f"{tmp}/bin/gameday"),
    "gameday_test_agent_sha256": sha(f"{tmp}/bin/gameday-agent"),
}))
EOF

step "first run (controller ctl, agents web-1 and cache-1, each under its own root)"
play run1 || { show run1 60; die "first run"; }

step "installed files, modes, owners, configs (tomllib)"
"$python" tests/check.py files "$tmp"

step "systemd-analyze verify and security on the installed units"
"$python" tests/check.py units "$tmp" "$tmp"/*/etc/systemd/system/*.service

step "units rendered with the roles' defaults (StateDirectory, capabilities per fault mix)"
ansible-playbook tests/render_units.yml -e "gameday_test_out=$tmp/units" \
  -e "gameday_controller_bin_path=$tmp/bin/gameday" -e "gameday_agent_bin_path=$tmp/bin/gameday-agent" \
  >"$tmp/render.log" 2>&1 || { show render; die "rendering the default units"; }
"$python" tests/check.py variants "$tmp/units"
"$python" tests/check.py units "$tmp" "$tmp"/units/*/*.service

step "the installed controller (as nobody) and agents start and register"
setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all \
  "$tmp/ctl/usr/local/bin/gameday" serve --config "$tmp/ctl/etc/gameday/controller.toml" \
  >"$tmp/controller.log" 2>&1 &
pids+=($!)
for a in web-1 cache-1; do
  "$tmp/$a/usr/local/bin/gameday-agent" --config "$tmp/$a/etc/gameday-agent/agent.toml" >"$tmp/agent-$a.log" 2>&1 &
  pids+=($!)
done
agents() {
  "$tmp/ctl/usr/local/bin/gameday" agents --controller "https://127.0.0.1:$port" \
    --ca "$tmp/ctl/etc/gameday/tls/ca.pem" \
    --cert "$tmp/operators/operator-alice.pem" --key "$tmp/operators/operator-alice.key"
}
deadline=$(($(date +%s) + 20))
until agents >"$tmp/agents.txt" 2>&1 &&
  grep -q '^web-1 .*process_kill,process_pause' "$tmp/agents.txt" &&
  grep -q '^cache-1 .*process_kill,disk_fill,dns_poison .*role=cache' "$tmp/agents.txt"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    cat "$tmp/agents.txt" "$tmp/controller.log" "$tmp"/agent-*.log >&2
    die "the agents did not register with the controller within 20s"
  fi
  sleep 0.2
done
grep -qF 'team.name=sre "blue"' "$tmp/agents.txt" || { cat "$tmp/agents.txt" >&2; die "web-1's labels"; }
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()

step "second run changes nothing"
play run2 || { show run2 60; die "second run"; }
expect_no_changes run2

step "an agent with live faults is not restarted"
# A journal entry is a live fault; a changed config needs a restart.
echo '{}' >"$tmp/web-1/var/lib/gameday-agent/journal/fault-test.json"
echo '# drift' >>"$tmp/web-1/etc/gameday-agent/agent.toml"
if play guard --limit web-1 -e gameday_agent_restart_wait_retries=1 -e gameday_agent_restart_wait_delay=1; then
  show guard
  die "the play restarted an agent that had a live fault"
fi
grep -q 'NOT restarting gameday-agent on web-1: it still has 1 live fault(s) (fault-test.json)' "$tmp/guard.log" ||
  { show guard; die "no clear message about the live fault"; }
[ -f "$tmp/web-1/var/lib/gameday-agent/ansible-restart-pending" ] || die "the held-back restart was not recorded"

step "the held-back restart is resumed, here forced, with a warning"
play forced --limit web-1 -e gameday_agent_restart_with_live_faults=true || { show forced; die "forced restart"; }
grep -q 'Restarting gameday-agent on web-1 with 1 live fault(s): the agent reverts them' "$tmp/forced.log" ||
  { show forced; die "no warning about reverting live faults"; }
[ ! -e "$tmp/web-1/var/lib/gameday-agent/ansible-restart-pending" ] || die "the pending restart was not cleared"
rm "$tmp/web-1/var/lib/gameday-agent/journal/fault-test.json"

step "a binary with the wrong checksum is refused"
good_sum=$(sha256sum "$tmp/cache-1/usr/local/bin/gameday-agent")
if play badsum --limit cache-1 -e gameday_agent_binary_sha256=0000000000000000000000000000000000000000000000000000000000000000; then
  die "a binary with the wrong sha256 was installed"
fi
grep -q 'expected 0000000000000000000000000000000000000000000000000000000000000000' "$tmp/badsum.log" ||
  { show badsum; die "no clear checksum message"; }
[ "$(sha256sum "$tmp/cache-1/usr/local/bin/gameday-agent")" = "$good_sum" ] || die "the installed binary changed"

step_done
echo "ansible test: all done in $(elapsed "$t0")"
echo "ansible: $passed passed, 0 failed"
