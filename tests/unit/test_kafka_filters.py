"""The kafka role's filter plugins: property values and KRaft cluster ids."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[2] / "roles/kafka/filter_plugins/kafka_properties.py"
_spec = importlib.util.spec_from_file_location("kafka_properties", _PATH)
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)


@pytest.mark.parametrize("value, printed", [
    (True, "true"), (False, "false"), (3, "3"), ("lz4", "lz4"),
    (["/a", "/b"], "/a,/b"), ([True, 1], "true,1"),
])
def test_property_value(value, printed):
    assert filters.kafka_property_value(value) == printed


def test_property_value_refuses_mapping():
    with pytest.raises(AnsibleFilterError, match="mapping"):
        filters.kafka_property_value({"a": 1})


def test_cluster_id_is_kafka_format():
    cid = filters.kafka_cluster_id("0123456789abcdef0123456789ABCDEF")
    assert len(cid) == 22
    assert filters.kafka_is_cluster_id(cid)
    raw = base64.urlsafe_b64decode(cid + "==")
    assert raw.hex() == "0123456789abcdef0123456789abcdef"


def test_cluster_id_never_starts_with_dash():
    # 0xf8 0x... encodes to a leading '-' in URL-safe base64; Kafka never issues such ids.
    cid = filters.kafka_cluster_id("f8" + "00" * 15)
    assert not cid.startswith("-")


@pytest.mark.parametrize("bad", ["", "xyz", "0123"])
def test_cluster_id_rejects_bad_seed(bad):
    with pytest.raises(AnsibleFilterError, match="32 hex digits"):
        filters.kafka_cluster_id(bad)


@pytest.mark.parametrize("value, ok", [
    ("krb-Qor3H2p-5Pvmau1mUg", True), ("short", False), ("krb-Qor3H2p-5Pvmau1mU!", False),
])
def test_is_cluster_id(value, ok):
    assert filters.kafka_is_cluster_id(value) is ok
