"""The one place that knows what a secret looks like, so none leaves its source.

- `redact_dsn`: a libpq URL (`postgresql://user:PW@host/db?password=PW`) or key=value conninfo
  (`host=h password='PW'`) with every password hidden. It fails closed: whatever cannot be parsed loses its
  whole userinfo (URL) or everything from the first `password` on (conninfo).
- `redact_url`: any URL with userinfo (`http://user:PW@connect:8083`) shows the user only.
- `is_secret_key` / `redact_config`: connector and client config keys that hold secrets (`database.password`,
  `*.secret*`, `sasl.jaas.config`, `basic.auth.user.info`, `*.key`, tokens, credentials) get `MASK`; URLs in
  the other values lose their password. A config whose secrets are `MASK` can be written back by a client
  that fills them from the live config (`restore_masked`).
- `redact_text`: free text (error messages, log lines) with URL passwords, `password=` pairs and every secret
  value seen so far (`remember`) hidden.
- `scrub`: the same over JSON-shaped data (plans, run records, Dagster outputs) — config dicts and the
  `[key, value]` pair lists actions store.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "********"

_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
#: `scheme://userinfo@` anywhere in a text; userinfo may hold anything but whitespace and quotes
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s\"'<>]*)@")
_QUERY_SECRET = re.compile(r"(?i)(?P<key>[?&](?:ssl)?password=)[^&#\s]*")
_CONNINFO_SECRET = re.compile(r"(?i)(?P<key>\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s']+)")
#: `key=value` pairs (conninfo, properties, JAAS) and JSON `"key": "value"` members under a secret-looking key;
#: a YAML-ish `password: x` in prose is left alone (messages about a column named `password` stay readable)
_TEXT_PAIR_SECRET = re.compile(
    r"(?i)(?P<key>\b[\w.-]*(?:password|secret|passwd|jaas\.config|user\.info)[\w.-]*\s*=\s*|"
    r"\"[\w.-]*(?:password|secret|passwd|jaas\.config|user\.info)[\w.-]*\"\s*:\s*(?=\"))"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;}\]]+)")

#: parts of a config key that mark a secret value (checked on the lower-cased key)
_SECRET_WORDS = ("password", "passwd", "secret", "jaas.config", "user.info", "credential", "token",
                 "api.key", "api-key", "apikey", "access.key", "access-key", "private.key", "private-key")
#: keys ending in `.key` that are not secrets (converters, key columns)
_NOT_SECRET_KEY_SUFFIXES = ("message.key", "primary.key", "record.key", "kafka.key")

_known: set[str] = set()
_known_lock = threading.Lock()
#: secrets shorter than this are not searched for in free text (it would mangle ordinary words)
_MIN_KNOWN = 4


def remember(*secrets: str | None) -> None:
    """Secret values `redact_text` hides wherever they appear (passwords of the DSN, the URLs, connectors)."""
    with _known_lock:
        _known.update(s for s in secrets if s and len(s) >= _MIN_KNOWN and s != MASK)


# -- URLs and DSNs ----------------------------------------------------------------------------------------


def _split_url(url: str) -> tuple[str, str | None, str] | None:
    """(scheme://, userinfo or None, rest) of a URL; None when it is not one. The userinfo runs to the
    *last* `@` before the path/query (a password may hold `@`, `/`, `?` when not percent-encoded), or, failing
    that, to the last `@` anywhere — hiding a host by mistake is better than showing a password."""
    m = _SCHEME.match(url)
    if m is None:
        return None
    head, body = url[: m.end()], url[m.end():]
    at = body.rfind("@")
    if at < 0:
        return head, None, body
    return head, body[:at], body[at + 1:]


def redact_url(url: str) -> str:
    """`scheme://user:PW@host...` → `scheme://user:********@host...`; query passwords too."""
    parts = _split_url(url)
    if parts is None:
        return url
    head, userinfo, rest = parts
    rest = _QUERY_SECRET.sub(lambda m: m.group("key") + MASK, rest)
    if userinfo is None:
        return head + rest
    user, colon, _ = userinfo.partition(":")
    if not colon:
        if "%" in user or any(c in user for c in "/?#"):  # odd user part: maybe a password in disguise
            return f"{head}{MASK}@{rest}"
        return f"{head}{user}@{rest}"
    return f"{head}{user}:{MASK}@{rest}"


def redact_dsn(dsn: str) -> str:
    """A libpq URL or conninfo with every password hidden (see the module docstring; fails closed)."""
    if _SCHEME.match(dsn):
        return redact_url(dsn)
    masked = _CONNINFO_SECRET.sub(lambda m: m.group("key") + MASK, dsn)
    if _conninfo_parses(dsn):
        return masked
    low = dsn.lower()
    cut = low.find("password")
    if cut < 0:
        return masked
    return dsn[:cut] + f"password={MASK} (the rest is hidden: this conninfo cannot be parsed)"


def _conninfo_parses(dsn: str) -> bool:
    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(dsn)
    except Exception:  # psycopg.ProgrammingError: libpq refused it
        return False
    return True


def dsn_secrets(dsn: str) -> list[str]:
    """The password(s) of a DSN, as written and as decoded, for `remember`."""
    out: list[str] = []
    parts = _split_url(dsn) if _SCHEME.match(dsn) else None
    if parts is not None and parts[1] and ":" in parts[1]:
        raw = parts[1].split(":", 1)[1]
        out.append(raw)
        try:
            from urllib.parse import unquote

            out.append(unquote(raw, errors="strict"))
        except UnicodeDecodeError:
            pass
    try:
        from psycopg.conninfo import conninfo_to_dict

        out += [str(v) for k, v in conninfo_to_dict(dsn).items() if "password" in k and v]
    except Exception:  # noqa: S110 - a DSN libpq refuses has nothing more to find
        pass
    for m in _CONNINFO_SECRET.finditer(dsn):
        out.append(m.group(0)[len(m.group("key")):].strip("'"))
    return out


# -- configs ----------------------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    low = key.lower()
    if any(w in low for w in _SECRET_WORDS):
        return True
    return low.endswith((".key", "-key", "_key")) and not low.endswith(_NOT_SECRET_KEY_SUFFIXES)


def redact_value(key: str, value: Any) -> Any:
    if is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str) and "://" in value:
        return redact_text(value)
    return value


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config with every secret value `MASK`ed (and URL passwords hidden in the others)."""
    return {k: redact_value(k, v) for k, v in config.items()}


def config_secrets(config: Mapping[str, Any]) -> list[str]:
    return [str(v) for k, v in config.items() if is_secret_key(k) and v not in (None, "", MASK)]


class MaskedSecretMissing(ValueError):
    """A masked value has no live value to put back (the key is gone from the live config)."""


def restore_masked(config: Mapping[str, str], live: Mapping[str, str]) -> dict[str, str]:
    """`config` with every masked value (a `MASK`, or a URL whose password is masked) replaced by the live
    value of the same key whose masked form it is — secrets never travel through a stored plan: they stay
    where they are. MaskedSecretMissing names the keys that cannot be filled."""
    out: dict[str, str] = {}
    missing = []
    for k, v in config.items():
        if MASK not in v:
            out[k] = v
        elif k in live and redact_value(k, live[k]) == v:
            out[k] = live[k]
        else:
            missing.append(k)
    if missing:
        raise MaskedSecretMissing(", ".join(sorted(missing)))
    return out


# -- text and data ----------------------------------------------------------------------------------------


def redact_text(text: str, known: bool = True) -> str:
    """Free text with URL passwords, `password=...` style pairs and (`known`) every remembered secret hidden."""
    if not text:
        return text

    def url(m: re.Match[str]) -> str:
        user, colon, _ = m.group("userinfo").partition(":")
        return m.group("scheme") + (f"{user}:{MASK}" if colon else user) + "@"

    out = _URL_USERINFO.sub(url, text)
    out = _QUERY_SECRET.sub(lambda m: m.group("key") + MASK, out)
    out = _TEXT_PAIR_SECRET.sub(lambda m: m.group("key") + MASK, out)
    if not known:
        return out
    with _known_lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def scrub(data: Any, text: bool = False) -> Any:
    """JSON-shaped data with secrets hidden: values under secret keys, in config dicts and in the
    `[key, value]` pair lists actions store; with `text`, every string also through `redact_text`. Without
    it, other strings (SQL of a stored plan, say) stay exactly as they are, so the plan still runs. Returns
    new containers; the input is left as it was."""
    if isinstance(data, Mapping):
        return {k: (redact_value(k, v) if isinstance(k, str) and is_secret_key(k) else scrub(v, text))
                for k, v in data.items()}
    if isinstance(data, list | tuple):
        if len(data) == 2 and isinstance(data[0], str) and isinstance(data[1], str) and is_secret_key(data[0]):
            items = [data[0], redact_value(data[0], data[1])]
        else:
            items = [scrub(v, text) for v in data]
        return tuple(items) if isinstance(data, tuple) else items
    if isinstance(data, str) and text:
        return redact_text(data)
    return data


#: fields of a stored run record or step that hold free text (messages), not data an undo reads back
_TEXT_FIELDS = ("error", "compensation")


def redact_row(row: dict[str, Any]) -> dict[str, Any]:
    """A persisted run record (plan, steps, error) as it may be stored: secret config values masked
    everywhere, messages through `redact_text`. Everything an undo reads back (SQL, ids, versions, masked
    configs) is kept as it was."""
    def fields(d: Mapping[str, Any]) -> dict[str, Any]:
        out = scrub(d)
        for key in _TEXT_FIELDS:
            if isinstance(out.get(key), str):
                out[key] = redact_text(out[key])
        return out

    out = fields(row)
    if isinstance(out.get("steps"), list):
        out["steps"] = [fields(s) if isinstance(s, Mapping) else s for s in out["steps"]]
    return out
