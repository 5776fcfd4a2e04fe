#!/usr/bin/env python3
"""Checks what the roles installed under the test root (see tests/inventory.yml).

Usage: check.py files ROOT          files, owners, modes, rendered configs, no CA key on agents
       check.py units ROOT UNIT...  systemd-analyze verify and security on unit files
       check.py variants OUT        units rendered with the roles' defaults (tests/render_units.yml)
       check.py filters PLUGINS_DIR the TOML and systemd filters, against tomllib
Prints the number of checks passed (every check with GAMEDAY_CHECK_VERBOSE=1); exits non-zero,
naming the check, at the first failure.
"""

import grp
import hashlib
import os
import pwd
import re
import stat
import subprocess
import sys
import tomllib

CHECKS = 0
VERBOSE = os.environ.get("GAMEDAY_CHECK_VERBOSE") == "1"


def ok(what):
    global CHECKS
    CHECKS += 1
    if VERBOSE:
        print(f"  ok  {what}")


def section(title):
    if VERBOSE:
        print(title)


def fail(what):
    print(f"  FAIL {what}", file=sys.stderr)
    sys.exit(1)


def expect(cond, what):
    ok(what) if cond else fail(what)


def mode_owner(path, mode, owner, group):
    st = os.lstat(path)
    actual = (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)
    expect(
        actual == (mode, owner, group),
        f"{path}: {oct(actual[0])} {actual[1]}:{actual[2]} (want {oct(mode)} {owner}:{group})",
    )


def toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def unit_settings(path):
    """[Service] settings of a unit file: name -> list of values in order."""
    settings, section = {}, None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key), []).append(value)
    return lambda key, section="[Service]": settings.get((section, key), [])


def check_files(root):
    ctl = f"{root}/ctl"
    section("controller (ctl):")
    mode_owner(f"{ctl}/usr/local/bin/gameday", 0o755, "root", "root")
    expect(sha256(f"{ctl}/usr/local/bin/gameday") == sha256(f"{root}/bin/gameday"), "controller binary is the built one")
    mode_owner(f"{ctl}/etc/gameday", 0o750, "root", "nogroup")
    mode_owner(f"{ctl}/etc/gameday/ca", 0o700, "root", "root")
    mode_owner(f"{ctl}/etc/gameday/ca/ca.key", 0o600, "root", "root")
    mode_owner(f"{ctl}/etc/gameday/tls", 0o750, "root", "nogroup")
    mode_owner(f"{ctl}/etc/gameday/tls/ca.pem", 0o644, "root", "nogroup")
    mode_owner(f"{ctl}/etc/gameday/tls/controller.pem", 0o644, "root", "nogroup")
    mode_owner(f"{ctl}/etc/gameday/tls/controller.key", 0o600, "nobody", "nogroup")
    mode_owner(f"{ctl}/etc/gameday/controller.toml", 0o640, "root", "nogroup")
    mode_owner(f"{ctl}/etc/gameday/scenarios/demo.toml", 0o640, "root", "nogroup")
    mode_owner(f"{ctl}/var/lib/gameday", 0o750, "nobody", "nogroup")
    mode_owner(f"{ctl}/etc/systemd/system/gameday-controller.service", 0o644, "root", "root")
    expect(not os.path.exists(f"{ctl}/etc/gameday/tls/ca.key"), "the service's TLS directory has no CA key")
    mode_owner(f"{root}/operators", 0o700, "root", "root")
    mode_owner(f"{root}/operators/operator-alice.key", 0o600, "root", "root")
    mode_owner(f"{root}/operators/operator-alice.pem", 0o644, "root", "root")

    c = toml(f"{ctl}/etc/gameday/controller.toml")
    expect(c["listen"].startswith("127.0.0.1:"), f"controller.toml listen = {c['listen']}")
    expect(c["data_dir"] == f"{ctl}/var/lib/gameday", "controller.toml data_dir")
    expect(c["sample_retention"] == "30d", "controller.toml sample_retention")
    expect((c["heartbeat_interval"], c["heartbeat_timeout"], c["lease"]) == ("1s", "5s", "10s"), "controller.toml timing defaults")
    expect(c["tls"] == {k: f"{ctl}/etc/gameday/tls/{v}" for k, v in
                        [("ca", "ca.pem"), ("cert", "controller.pem"), ("key", "controller.key")]}, "controller.toml [tls]")
    expect(all(os.path.isfile(p) for p in c["tls"].values()), "controller.toml TLS files exist")
    expect("schedules" not in c and "metrics_listen" not in c, "controller.toml leaves unset options out")
    ctl_unit = unit_settings(f"{ctl}/etc/systemd/system/gameday-controller.service")
    expect(ctl_unit("User") == ["nobody"] and ctl_unit("Group") == ["nogroup"], "controller unit runs as the service user")
    expect(ctl_unit("CapabilityBoundingSet") == [""], "controller unit has no capabilities (port >= 1024)")
    expect(ctl_unit("ReadWritePaths") == [f"{ctl}/var/lib/gameday"], "controller unit writes only its data dir")
    expect(ctl_unit("Environment") == ['"GAMEDAY_LOG=info,gameday=debug"'] or
           ctl_unit("Environment") == ["GAMEDAY_LOG=info,gameday=debug"], "controller unit log filter")
    ca_pem = open(f"{ctl}/etc/gameday/ca/ca.pem").read()

    agents = {
        "web-1": {
            "labels": {"role": "web", "zone": "eu-1a", "team.name": 'sre "blue" \\ tab\there 🎲 del\x7f'},
            "allow": ["process_kill", "process_pause", "network_partition"],
            "caps": "CAP_KILL CAP_NET_ADMIN",
            "writable": [],
        },
        "cache-1": {
            "labels": {"role": "cache"},
            "allow": ["process_kill", "disk_fill", "dns_poison"],
            # hosts mode only: no CAP_NET_ADMIN
            "caps": "CAP_DAC_OVERRIDE CAP_KILL",
            "writable": [f"-{root}/fill", f"-{root}/hosts"],
        },
    }
    for name, want in agents.items():
        a = f"{root}/{name}"
        section(f"agent ({name}):")
        mode_owner(f"{a}/usr/local/bin/gameday-agent", 0o755, "root", "root")
        expect(sha256(f"{a}/usr/local/bin/gameday-agent") == sha256(f"{root}/bin/gameday-agent"), "agent binary is the built one")
        mode_owner(f"{a}/etc/gameday-agent", 0o750, "root", "root")
        mode_owner(f"{a}/etc/gameday-agent/tls", 0o700, "root", "root")
        mode_owner(f"{a}/etc/gameday-agent/tls/agent.key", 0o600, "root", "root")
        mode_owner(f"{a}/etc/gameday-agent/tls/agent.pem", 0o644, "root", "root")
        mode_owner(f"{a}/etc/gameday-agent/tls/ca.pem", 0o644, "root", "root")
        mode_owner(f"{a}/etc/gameday-agent/agent.toml", 0o640, "root", "root")
        mode_owner(f"{a}/var/lib/gameday-agent", 0o700, "root", "root")
        mode_owner(f"{a}/var/lib/gameday-agent/journal", 0o700, "root", "root")
        expect(not os.path.exists(f"{a}/var/lib/gameday-agent/ansible-restart-pending"), "no restart pending")
        expect(open(f"{a}/etc/gameday-agent/tls/ca.pem").read() == ca_pem, "agent trusts the fleet CA")
        expect(open(f"{a}/etc/gameday-agent/tls/agent.key").read()
               == open(f"{ctl}/etc/gameday/ca/agent-{name}.key").read(), "agent key is the one issued for it")
        keys = [os.path.join(d, f) for d, _, fs in os.walk(a) for f in fs if f == "ca.key"]
        expect(keys == [], "the CA key never reached the agent")

        cfg = toml(f"{a}/etc/gameday-agent/agent.toml")
        expect(cfg["name"] == name, f"agent.toml name = {cfg['name']}")
        expect(cfg["controller"] == c["listen"].replace("127.0.0.1:", "https://127.0.0.1:"), "agent.toml controller")
        expect(cfg["heartbeat"] == "500ms" and cfg["lease"] == "10s", "agent.toml heartbeat and lease")
        expect(cfg["state_dir"] == f"{a}/var/lib/gameday-agent", "agent.toml state_dir")
        expect(cfg["labels"] == want["labels"], f"agent.toml labels round-trip exactly: {cfg['labels']!r}")
        expect(cfg["tls"]["key"] == f"{a}/etc/gameday-agent/tls/agent.key", "agent.toml tls.key")
        pol = cfg["policy"]
        expect(pol["allow_faults"] == want["allow"], f"agent.toml allow_faults = {pol['allow_faults']}")
        expect(pol["process_kill"]["deny"] == ["^sshd", "^systemd"], "agent.toml process_kill.deny default")

        unit = unit_settings(f"{a}/etc/systemd/system/gameday-agent.service")
        caps = unit("CapabilityBoundingSet")
        expect(caps == [want["caps"]], f"agent unit CapabilityBoundingSet={caps} (want {want['caps']!r})")
        rw = unit("ReadWritePaths")
        expect(rw == [f"{a}/var/lib/gameday-agent"] + want["writable"], f"agent unit ReadWritePaths={rw}")
        expect(unit("ProtectSystem") == ["strict"] and unit("NoNewPrivileges") == ["yes"], "agent unit sandbox")
        expect(unit("Restart") == ["on-failure"] and unit("KillMode") == ["mixed"], "agent unit restart and stop")
        want_private_tmp = "no" if any(re.match(r"-?/(var/)?tmp(/|$)", p) for p in want["writable"]) else "yes"
        expect(unit("PrivateTmp") == [want_private_tmp], f"agent unit PrivateTmp={want_private_tmp}")
        expect(unit("ExecStart") == [f"{a}/usr/local/bin/gameday-agent --config {a}/etc/gameday-agent/agent.toml"],
               "agent unit ExecStart")

    web = toml(f"{root}/web-1/etc/gameday-agent/agent.toml")["policy"]
    expect(web["process_kill"] == {"allow": ["^nginx", "^api-worker$"], "deny": ["^sshd", "^systemd"],
                                   "signals": ["SIGKILL", "SIGTERM"]}, "web-1 process_kill policy")
    expect(web["network_partition"] == {"protect": ["10.0.0.0/24"], "protect_ports": [22], "max_duration": "5m"},
           "web-1 network_partition policy")
    expect(web["remediation"] == {"commands": ["/usr/local/bin/restart-nginx"], "max_timeout": "2m"},
           "web-1 remediation policy")
    expect("disk_fill" not in web and "dns_poison" not in web, "web-1 leaves empty policy tables out")
    cache = toml(f"{root}/cache-1/etc/gameday-agent/agent.toml")["policy"]
    expect(cache["disk_fill"] == {"max_fill_percent": 90, "paths": [f"{root}/fill"]}, "cache-1 disk_fill policy")
    expect("remediation" not in cache, "cache-1 runs no remediation steps")
    expect(cache["dns_poison"] == {"hosts_file": f"{root}/hosts", "names": ["*.internal"]}, "cache-1 dns_poison policy")
    expect("signals" not in cache["process_kill"], "cache-1 leaves signals out (every signal)")


def check_units(root, units):
    for unit in units:
        section(f"unit {unit[len(root):]}:")
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
        # The test runs the controller as `nobody` (it creates no users); nothing else may warn.
        noise = [l for l in (r.stdout + r.stderr).splitlines()
                 if l.strip() and "Special user nobody configured" not in l]
        expect(r.returncode == 0 and not noise, "systemd-analyze verify: clean" + "".join(f"\n      {l}" for l in noise))
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=30", unit],
                           capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
        expect(r.returncode == 0 and m is not None, f"systemd-analyze security: exposure {m.group(1) if m else '?'} (at most 3.0)")


def check_variants(out):
    want = {
        "controller-default/gameday-controller.service": {
            "User": ["gameday"], "StateDirectory": ["gameday"], "ReadWritePaths": ["/var/lib/gameday"],
            "CapabilityBoundingSet": [""], "AmbientCapabilities": [""], "PrivateUsers": ["yes"],
            "ProtectSystem": ["strict"], "NoNewPrivileges": ["yes"], "PrivateTmp": ["yes"],
        },
        "controller-port-443/gameday-controller.service": {
            "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"], "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"],
            "PrivateUsers": [],
        },
        "agent-default/gameday-agent.service": {
            "User": ["root"], "StateDirectory": ["gameday-agent"], "ReadWritePaths": ["/var/lib/gameday-agent"],
            "CapabilityBoundingSet": [""], "PrivateTmp": ["yes"], "Restart": ["on-failure"],
        },
        "agent-all-faults/gameday-agent.service": {
            "CapabilityBoundingSet": ["CAP_DAC_OVERRIDE CAP_KILL CAP_NET_ADMIN CAP_NET_BIND_SERVICE"],
            "ReadWritePaths": ["/var/lib/gameday-agent", "-/srv/data", '"-/srv/with space"', "-/etc/hosts"],
        },
    }
    for unit, settings in want.items():
        get = unit_settings(f"{out}/{unit}")
        for key, values in settings.items():
            expect(get(key) == values, f"{unit}: {key}={get(key)} (want {values})")


def check_filters(plugins):
    # One copy, beside the playbook, for both roles (ansible.cfg's filter_plugins).
    sys.path.insert(0, plugins)
    import gameday_filters as f

    tricky = 'q" b\\ nl\n cr\r tab\t nul\x00 esc\x1b del\x7f é 🎲 \u2028 end'
    data = {
        "s": tricky,
        "n": 3, "neg": -7, "x": 1.5, "t": True, "f": False,
        "skip": None,
        "list": ["a", 1, [2, 3], {"in": "line"}],
        "empty": [],
        "dotted.key": "v", "": "empty key", "spaced key": tricky,
        "tab": {"inner": {"deep": tricky}, "empty": {}},
        "aot": [{"scenario": "a.toml"}, {"scenario": "b.toml", "sub": {"k": 1}}],
    }
    text = f.gameday_to_toml(data)
    parsed = tomllib.loads(text)
    want = {k: v for k, v in data.items() if v is not None}
    expect(parsed == want, "gameday_to_toml round-trips through tomllib (escapes, unicode, nesting, arrays of tables)")
    for bad in [{"x": [None]}, {1: "int key"}, {"x": object()}, {"x": "\ud800"}]:
        try:
            f.gameday_to_toml(bad)
        except Exception:
            ok(f"gameday_to_toml refuses {bad!r}")
        else:
            fail(f"gameday_to_toml accepted {bad!r}")
    expect(f.gameday_systemd_arg("/usr/bin/x") == "/usr/bin/x", "gameday_systemd_arg leaves plain paths alone")
    expect(f.gameday_systemd_arg("/a b/100%", exec=True) == '"/a b/100%%"', "gameday_systemd_arg quotes and escapes %")
    expect(f.gameday_systemd_arg("$HOME", exec=True) == "$$HOME", "gameday_systemd_arg escapes $ in ExecStart")


def main():
    cmd, target, *rest = sys.argv[1:]
    {"files": lambda: check_files(target), "units": lambda: check_units(target, rest),
     "filters": lambda: check_filters(target), "variants": lambda: check_variants(target)}[cmd]()
    print(f"  {sys.argv[1]}: {CHECKS} checks passed")


if __name__ == "__main__":
    main()
