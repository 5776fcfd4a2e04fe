# Filters the gameday roles render their config files and systemd units with.
#
# The two roles ship identical copies of this file (ansible/tests/run.sh checks that they are),
# so that each role works on its own.
#
#   gameday_to_toml      a mapping -> a TOML document (strings escaped per the TOML spec,
#                        None values left out, lists of mappings as [[arrays of tables]])
#   gameday_systemd_arg  a value -> one systemd unit-file word: `%` and `\` escaped, quoted
#                        when it holds spaces or quotes; exec=True also escapes `$` (for
#                        ExecStart=, where `$` expands environment variables)

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _string(value: str) -> str:
    """A TOML basic string: every character TOML forbids raw is escaped."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append("\\u%04X" % code)
        elif 0xD800 <= code <= 0xDFFF:
            raise AnsibleFilterError(
                "gameday_to_toml: %r holds a lone surrogate, which TOML cannot encode" % value
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(key) -> str:
    if not isinstance(key, str):
        raise AnsibleFilterError("gameday_to_toml: keys must be strings, found %r" % (key,))
    return key if _BARE_KEY.match(key) else _string(key)


def _is_list(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_array_of_tables(value) -> bool:
    return _is_list(value) and len(value) > 0 and all(isinstance(v, Mapping) for v in value)


def _inline(value, where: str) -> str:
    if value is None:
        raise AnsibleFilterError("gameday_to_toml: %s is null, which TOML cannot hold" % where)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(float(value))
    if isinstance(value, str):
        return _string(str(value))
    if isinstance(value, Mapping):
        items = [
            "%s = %s" % (_key(k), _inline(v, "%s.%s" % (where, k)))
            for k, v in value.items()
            if v is not None
        ]
        return "{ %s }" % ", ".join(items) if items else "{}"
    if _is_list(value):
        return "[%s]" % ", ".join(
            _inline(v, "%s[%d]" % (where, i)) for i, v in enumerate(value)
        )
    raise AnsibleFilterError(
        "gameday_to_toml: %s has a value of type %s, which TOML cannot hold"
        % (where, type(value).__name__)
    )


def _table(data: Mapping, path: list, lines: list) -> None:
    scalars, tables, arrays = [], [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, Mapping):
            tables.append((k, v))
        elif _is_array_of_tables(v):
            arrays.append((k, v))
        else:
            scalars.append((k, v))
    for k, v in scalars:
        lines.append("%s = %s" % (_key(k), _inline(v, ".".join(path + [str(k)]))))
    for k, v in tables:
        sub = path + [k]
        lines.append("")
        lines.append("[%s]" % ".".join(_key(p) for p in sub))
        _table(v, sub, lines)
    for k, v in arrays:
        sub = path + [k]
        for item in v:
            lines.append("")
            lines.append("[[%s]]" % ".".join(_key(p) for p in sub))
            _table(item, sub, lines)


def gameday_to_toml(data) -> str:
    """Renders a mapping as a TOML document (ending in a newline)."""
    if not isinstance(data, Mapping):
        raise AnsibleFilterError("gameday_to_toml: expected a mapping, found %s" % type(data).__name__)
    lines: list = []
    _table(data, [], lines)
    while lines and lines[0] == "":
        lines.pop(0)
    return "\n".join(lines) + "\n"


def gameday_systemd_arg(value, exec=False) -> str:  # noqa: A002 - the keyword reads well in templates
    """One word of a systemd unit file setting."""
    text = str(value)
    if any(c in text for c in "\n\r\0"):
        raise AnsibleFilterError("gameday_systemd_arg: %r spans lines" % text)
    text = text.replace("\\", "\\\\").replace("%", "%%")
    if exec:
        text = text.replace("$", "$$")
    if text == "" or any(c in text for c in " \t\"';"):
        text = '"%s"' % text.replace('"', '\\"')
    return text


class FilterModule:
    """gameday's filters."""

    def filters(self):
        return {
            "gameday_to_toml": gameday_to_toml,
            "gameday_systemd_arg": gameday_systemd_arg,
        }
