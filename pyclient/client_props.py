"""Kafka client properties files (``--command-config FILE``, as Kafka's own tools take them).

One file describes how to reach a cluster: ``security.protocol``, ``sasl.mechanism``,
``sasl.jaas.config``, ``ssl.truststore.location``... It is parsed as Java properties
(:func:`parse_properties`) and translated for the backend in use (:func:`for_backend`): the
Java-only keys that matter become librdkafka's (confluent-kafka) or kafka-python's; librdkafka
keys (as in a kcat ``-F`` file) are accepted too. A Java-only setting that the Python clients
cannot honour (a JKS truststore, an OAUTHBEARER or Kerberos login module) is an error naming
the key and what to write instead, never silently dropped.

Where the file comes from: the ``command_config`` argument, else ``$KAFKA_KIT_CLIENT_CONFIG``,
else none (:func:`client_properties`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

#: Environment variable naming the client properties file when no argument gives one.
ENV = "KAFKA_KIT_CLIENT_CONFIG"

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> list[str]:
    """Join continuation lines (an odd number of trailing backslashes), drop comments."""
    out: list[str] = []
    cur: str | None = None
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if cur is None and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        cont = trailing % 2 == 1
        if cont:
            line = line[:-1]
        cur = line if cur is None else cur + line
        if not cont:
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def _unescape(s: str, where: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "u":
            code = s[i + 2:i + 6]
            if len(code) != 4 or not all(h in "0123456789abcdefABCDEF" for h in code):
                raise ValueError(f"{where}: malformed \\uXXXX escape {s[i:i + 6]!r}")
            out.append(chr(int(code, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(n, n))
        i += 2
    return "".join(out)


def parse_properties(text: str, source: str = "<properties>") -> dict[str, str]:
    """Parse Java ``.properties`` text: ``key=value``, ``key: value`` or ``key value``,
    ``#``/``!`` comments, backslash continuations and escapes (``\\t``, ``\\uXXXX``...).
    A later duplicate key wins, as in Java."""
    props: dict[str, str] = {}
    for n, line in enumerate(_logical_lines(text), 1):
        i, esc = 0, False
        while i < len(line):
            c = line[i]
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c in "=: \t\f":
                break
            i += 1
        key, rest = line[:i], line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        props[_unescape(key, f"{source}: entry {n}")] = _unescape(rest, f"{source}: entry {n}")
    return props


def load_client_properties(path: str | Path) -> dict[str, str]:
    """The client properties file at ``path`` as a dict of Kafka's (Java) keys, untranslated.

    Raises FileNotFoundError / ValueError naming the file. Pass the dict as ``settings`` to any
    pyclient API (the backend translates it, :func:`for_backend`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"client properties file {str(p)!r} not found (--command-config "
                                f"or ${ENV})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"client properties file {str(p)!r} is not UTF-8 text ({e.reason} at "
                         f"byte {e.start})") from None
    return parse_properties(text, str(p))


def client_properties(command_config: str | Path | None = None) -> dict[str, str]:
    """The properties of ``command_config``, else of ``$KAFKA_KIT_CLIENT_CONFIG``, else {}."""
    path = command_config or os.environ.get(ENV)
    return load_client_properties(path) if path else {}


_JAAS = re.compile(r'\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*(.*?)\s*;?\s*$',
                   re.S)
_JAAS_OPT = re.compile(r'([\w.]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s";]+))', re.S)
_LOGIN_MODULES = {"org.apache.kafka.common.security.plain.PlainLoginModule": "PLAIN",
                  "org.apache.kafka.common.security.scram.ScramLoginModule": "SCRAM"}


def parse_jaas(value: str) -> tuple[str, dict[str, str]]:
    """``sasl.jaas.config`` -> (login module class, options). PLAIN and SCRAM only."""
    m = _JAAS.match(value)
    if not m:
        raise ValueError(f"sasl.jaas.config: cannot parse {_mask(value)!r}; write "
                         '<LoginModule> required username="..." password="...";')
    module, _flag, rest = m.groups()
    if module not in _LOGIN_MODULES:
        raise ValueError(f"sasl.jaas.config: login module {module} is not supported by the Python "
                         f"clients; use {' or '.join(_LOGIN_MODULES)} (PLAIN, SCRAM-SHA-256/512)")
    # findall gives "" for the alternative that did not match: unquoted value or quoted one.
    opts = {k: u or re.sub(r"\\(.)", r"\1", q) for k, q, u in _JAAS_OPT.findall(rest)}
    missing = [k for k in ("username", "password") if k not in opts]
    if missing:
        raise ValueError(f"sasl.jaas.config: {module} needs {' and '.join(missing)}")
    return module, opts


def _mask(value: str) -> str:
    return re.sub(r'(password\s*=\s*)("(?:[^"\\]|\\.)*"|\S+)', r"\1***", value)


def _is_pem(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"-----BEGIN" in f.read(4096)
    except OSError:
        return False


def _store_is_pem(settings: dict[str, Any], kind: str) -> bool:
    """Whether ``ssl.<kind>store`` is PEM; a JKS/PKCS12 store is an error (no keytool here)."""
    typ = str(settings.get(f"ssl.{kind}store.type", "")).upper()
    loc = settings.get(f"ssl.{kind}store.location")
    if typ == "PEM" or (not typ and loc and _is_pem(str(loc))):
        return True
    raise ValueError(f"ssl.{kind}store.location={loc}: the Python clients read PEM files only "
                     f"(ssl.{kind}store.type={typ or 'JKS (Java default)'}); convert it to PEM "
                     f"and set ssl.{kind}store.type=PEM")


#: Keys each backend names differently: Kafka/librdkafka key -> (confluent key, kafka-python key).
_RENAME = {"sasl.mechanisms": ("sasl.mechanism", "sasl.mechanism"),
           "sasl.username": ("sasl.username", "sasl.plain.username"),
           "sasl.password": ("sasl.password", "sasl.plain.password"),
           "ssl.ca.location": ("ssl.ca.location", "ssl.cafile"),
           "ssl.certificate.location": ("ssl.certificate.location", "ssl.certfile"),
           "ssl.key.location": ("ssl.key.location", "ssl.keyfile"),
           "ssl.key.password": ("ssl.key.password", "ssl.password")}
#: Java-only keys the Python clients cannot honour: key -> what to do instead.
_UNSUPPORTED = {"ssl.keystore.password": "PEM keystores use ssl.key.password",
                "ssl.truststore.password": "PEM truststores have no password",
                "sasl.login.callback.handler.class": "Java classes cannot run in Python",
                "sasl.client.callback.handler.class": "Java classes cannot run in Python",
                "ssl.truststore.certificates": "put the PEM in a file: ssl.truststore.location",
                "ssl.keystore.certificate.chain": "put key and chain in a file: ssl.keystore.location",
                "ssl.keystore.key": "put key and chain in a file: ssl.keystore.location"}


def for_backend(settings: dict[str, Any], backend: str) -> dict[str, Any]:
    """``settings`` with Kafka's Java-only client keys translated for ``backend``.

    confluent: librdkafka keys (``sasl.jaas.config`` -> ``sasl.username``/``sasl.password``,
    PEM ``ssl.truststore.location`` -> ``ssl.ca.location``, PEM ``ssl.keystore.location`` ->
    ``ssl.certificate.location`` + ``ssl.key.location``, ``ssl.endpoint.identification.algorithm``
    empty -> ``none``). kafka-python: the same, as its argument names (``sasl.plain.username``,
    ``ssl.cafile``, ``ssl.check.hostname``...). Other keys pass through unchanged."""
    kp = backend == "kafka-python"
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _UNSUPPORTED:
            raise ValueError(f"{key}: not supported by the Python clients ({_UNSUPPORTED[key]})")
        if key in ("ssl.truststore.type", "ssl.keystore.type"):
            continue  # checked with the location below
        if key == "sasl.jaas.config":
            _module, opts = parse_jaas(str(value))
            out["sasl.plain.username" if kp else "sasl.username"] = opts["username"]
            out["sasl.plain.password" if kp else "sasl.password"] = opts["password"]
        elif key == "ssl.truststore.location":
            _store_is_pem(settings, "trust")
            out["ssl.cafile" if kp else "ssl.ca.location"] = value
        elif key == "ssl.keystore.location":
            _store_is_pem(settings, "key")
            out.update({"ssl.certfile": value, "ssl.keyfile": value} if kp else
                       {"ssl.certificate.location": value, "ssl.key.location": value})
        elif key == "ssl.endpoint.identification.algorithm":
            on = str(value).strip().lower() not in ("", "none")
            if kp:
                out["ssl.check.hostname"] = on
            else:
                out[key] = "https" if on else "none"
        elif key == "security.protocol" and kp:
            out[key] = str(value).upper()
        elif key in _RENAME:
            out[_RENAME[key][1 if kp else 0]] = value
        else:
            out[key] = value
    for kind in ("trust", "key"):
        if f"ssl.{kind}store.type" in settings and f"ssl.{kind}store.location" not in settings:
            if str(settings[f"ssl.{kind}store.type"]).upper() != "PEM":
                _store_is_pem(settings, kind)
    return out
