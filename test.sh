#!/usr/bin/env bash
# Runs every gameday test on this machine, installing what the tests need first when it is
# missing (Debian packages, as root or through sudo). Usage: ./test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")"

# command -> Debian package that provides it
declare -A needs=(
  [sleep]=coreutils
  [kill]=procps
  [ip]=iproute2
  [nft]=nftables
  [dig]=dnsutils
  [dnsmasq]=dnsmasq
  [curl]=curl
  [mkfs.ext4]=e2fsprogs
  [xmllint]=libxml2-utils
  [chromium]=chromium
  # The namespace lab (lab/lab.sh, controller/tests/lab_e2e.rs): real services.
  [haproxy]=haproxy
  [nginx]=nginx
  [redis-server]=redis-server
  [supervisord]=supervisor
  [supervisorctl]=supervisor
  [findmnt]=util-linux
  [setsid]=util-linux
  # Time to detect against a real Prometheus, Alertmanager and blackbox exporter
  # (controller/tests/alerts.rs).
  [prometheus]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
  # The Ansible roles' test (ansible/tests/run.sh).
  [systemd-analyze]=systemd
  [setpriv]=util-linux
  [openssl]=openssl
  [python3]=python3-venv
)
missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Privileged tests fail (rather than skip) when a prerequisite is missing under CI.
export GAMEDAY_CI="${GAMEDAY_CI:-${CI:-}}"

# The integration tests start the real binaries, so build them all first.
cargo build --workspace --all-targets
cargo test --workspace "$@"

# The Ansible roles, run for real under a throw-away root (pip-installs ansible-core and
# ansible-lint into a virtualenv the first time).
bash ansible/tests/run.sh
