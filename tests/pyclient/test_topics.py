"""Topics as code against a real broker (the session fixture): create, no change, alter,
refuse a decrease, check mode changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyclient.topics import TopicPlanError, describe, ensure_topics

pytestmark = pytest.mark.kafka


def test_create_nochange_alter_refuse(bootstrap: str, topic_name: str) -> None:
    settings = {"bootstrap.servers": bootstrap}
    declared = [{"name": topic_name, "partitions": 2, "replication_factor": 1,
                 "configs": {"retention.ms": 3600000}}]

    # check mode: says it would create, creates nothing
    r = ensure_topics(settings, declared, check=True)
    assert r.changed and [a.kind for a in r.actions] == ["create"]
    assert topic_name not in describe(settings, [topic_name])

    r = ensure_topics(settings, declared)
    assert r.changed and [a.kind for a in r.actions] == ["create"]
    state = describe(settings, [topic_name])[topic_name]
    assert (state.partitions, state.replication_factor) == (2, 1)
    assert state.configs.get("retention.ms") == "3600000"

    # the same declaration again: nothing to do
    r = ensure_topics(settings, declared)
    assert not r.changed and r.actions == []

    # more partitions and a changed config
    declared[0]["partitions"] = 4
    declared[0]["configs"] = {"retention.ms": 7200000, "cleanup.policy": "delete"}
    r = ensure_topics(settings, declared)
    assert sorted(a.kind for a in r.actions) == ["add_partitions", "alter_configs"]
    state = describe(settings, [topic_name])[topic_name]
    assert state.partitions == 4
    assert state.configs.get("retention.ms") == "7200000"
    assert state.configs.get("cleanup.policy") == "delete"
    assert not ensure_topics(settings, declared).changed

    # fewer partitions, another replication factor: refused, nothing applied
    with pytest.raises(TopicPlanError) as exc:
        ensure_topics(settings, [{"name": topic_name, "partitions": 1, "replication_factor": 2,
                                  "configs": {"retention.ms": 1000}}])
    assert any("cannot remove partitions" in e for e in exc.value.errors)
    assert any("replication factor 1, declared 2" in e for e in exc.value.errors)
    state = describe(settings, [topic_name])[topic_name]
    assert state.partitions == 4 and state.configs.get("retention.ms") == "7200000"


def test_delete_undeclared(bootstrap: str, topic_name: str) -> None:
    settings = {"bootstrap.servers": bootstrap}
    keep, drop = f"{topic_name}-keep", f"{topic_name}-drop"
    ensure_topics(settings, [{"name": keep, "partitions": 1, "replication_factor": 1},
                             {"name": drop, "partitions": 1, "replication_factor": 1}])
    # not asked to delete: the undeclared topic stays
    assert not ensure_topics(settings, [{"name": keep, "partitions": 1}]).changed
    # asked: only undeclared, non-internal topics go (other tests' topics are declared here too)
    others = [{"name": n} for n in describe(settings, []) if n not in (keep, drop)
              and not n.startswith("__")]
    r = ensure_topics(settings, [{"name": keep, "partitions": 1}] + others,
                      delete_undeclared=True)
    assert [(a.kind, a.topic) for a in r.actions] == [("delete", drop)]
    internal = [n for n in describe(settings, []) if n.startswith("__")]
    assert drop not in describe(settings, [])
    assert internal == [n for n in describe(settings, []) if n.startswith("__")]


def test_command_config_file_is_used(bootstrap: str, topic_name: str, tmp_path: Path) -> None:
    """ensure_topics reads a client properties file (plaintext here); one asking for SSL on
    this plaintext listener fails, so the file is really applied."""
    good = tmp_path / "client.properties"
    good.write_text("security.protocol=PLAINTEXT\nclient.id=topics-test\n")
    declared = [{"name": topic_name, "partitions": 1, "replication_factor": 1}]
    settings = {"bootstrap.servers": bootstrap}
    assert ensure_topics(settings, declared, command_config=str(good)).changed
    assert topic_name in describe(settings, [topic_name], command_config=str(good))
    bad = tmp_path / "ssl.properties"
    bad.write_text("security.protocol=SSL\n")
    with pytest.raises(Exception, match="(?i)timed out|transport|ssl"):
        ensure_topics(settings, declared, command_config=str(bad), timeout=3)


def test_ensure_returns_only_when_the_cluster_shows_the_change(bootstrap: str, topic_name: str) -> None:
    """Read your writes: right after ensure_topics returns, describe (and a rerun) sees every
    change, never the old state (a rerun then re-applied it and reported `changed`). Attacked
    with back-to-back changes: a new config value, more partitions, a deleted topic."""
    settings = {"bootstrap.servers": bootstrap}
    extra = f"{topic_name}-gone"
    ensure_topics(settings, [{"name": topic_name, "partitions": 1, "replication_factor": 1}])
    for i in range(12):
        ms = 3600000 + 1000 * i
        declared = [{"name": topic_name, "partitions": 1 + i // 4, "replication_factor": 1,
                     "configs": {"retention.ms": ms}},
                    {"name": extra, "partitions": 1, "replication_factor": 1}]
        assert ensure_topics(settings, declared).changed
        state = describe(settings, [topic_name, extra])
        assert state[topic_name].configs.get("retention.ms") == str(ms), i
        assert state[topic_name].partitions == 1 + i // 4, i
        assert extra in state, i
        assert not ensure_topics(settings, declared).changed, i
        # the extra topic deleted (every other topic of the session declared): gone on return
        others = [{"name": n} for n in describe(settings, []) if n not in (topic_name, extra)
                  and not n.startswith("__")]
        r = ensure_topics(settings, declared[:1] + others, delete_undeclared=True)
        assert [(a.kind, a.topic) for a in r.actions] == [("delete", extra)], i
        assert extra not in describe(settings, [extra]), i
