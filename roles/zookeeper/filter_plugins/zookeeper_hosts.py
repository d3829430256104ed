"""Filters of the zookeeper role: read another member's values from hostvars; the SANs of a
member's /metrics certificate."""

from __future__ import annotations

import ipaddress

from collections.abc import Mapping, Sequence
from typing import Any


def zookeeper_first_of(hostvars_of_host: Mapping[str, Any], paths: Sequence[str]) -> Any:
    """The first non-empty value among dotted ``paths`` (``ansible_facts.default_ipv4.address``)
    of one host's hostvars; the empty string when none is set."""
    for path in paths:
        value: Any = hostvars_of_host
        for key in path.split("."):
            try:
                value = value[key]
            except (KeyError, TypeError, IndexError):
                value = None
            if value is None:
                break
        if value not in (None, ""):
            return value
    return ""


def zookeeper_tls_sans(names: Sequence[Any]) -> list[str]:
    """subjectAltName entries for a member's certificate: IP:<address> for addresses, DNS:<name>
    for names, empty values skipped, each once, in the order given."""
    sans: list[str] = []
    for value in names:
        if value in (None, ""):
            continue
        try:
            sans.append(f"IP:{ipaddress.ip_address(str(value))}")
        except ValueError:
            sans.append(f"DNS:{value}")
    return list(dict.fromkeys(sans))


class FilterModule:
    """zookeeper role filters."""

    def filters(self) -> dict[str, Any]:
        return {"zookeeper_first_of": zookeeper_first_of, "zookeeper_tls_sans": zookeeper_tls_sans}
