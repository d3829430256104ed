"""Topics as code, the pure part: declared specs + current state -> actions or refusals."""

from __future__ import annotations

import pytest

from pyclient.topics import (Action, TopicPlanError, TopicSpec, TopicState, config_value, diff,
                             plan, spec_from_dict)

TRAIN = TopicSpec("deepseek-training-data", 50, 3, {"min.insync.replicas": "2"})
CURRENT = {
    "deepseek-training-data": TopicState("deepseek-training-data", 50, 3, {"min.insync.replicas": "2"}),
    "__consumer_offsets": TopicState("__consumer_offsets", 50, 3, {"cleanup.policy": "compact"}),
    "scratch": TopicState("scratch", 1, 1, {}),
}


def test_create_missing_topic() -> None:
    actions, errors = plan([TRAIN], {})
    assert errors == []
    assert actions == [Action("create", "deepseek-training-data", 50, 3, {"min.insync.replicas": "2"})]


def test_no_change_when_matching() -> None:
    assert plan([TRAIN], CURRENT) == ([], [])


def test_default_partitions_and_rf_are_not_compared() -> None:
    assert plan([TopicSpec("deepseek-training-data")], CURRENT) == ([], [])


def test_increase_partitions() -> None:
    actions, errors = plan([TopicSpec("deepseek-training-data", 60, 3)], CURRENT)
    assert errors == []
    assert actions == [Action("add_partitions", "deepseek-training-data", partitions=60)]


def test_alter_only_changed_configs() -> None:
    spec = TopicSpec("deepseek-training-data", 50, 3,
                     {"min.insync.replicas": "2", "retention.ms": "86400000"})
    actions, errors = plan([spec], CURRENT)
    assert errors == []
    assert actions == [Action("alter_configs", "deepseek-training-data",
                              configs={"retention.ms": "86400000"})]


def test_undeclared_config_keys_are_left_alone() -> None:
    assert plan([TopicSpec("deepseek-training-data", 50, 3, {})], CURRENT) == ([], [])


def test_refuse_decrease_partitions() -> None:
    actions, errors = plan([TopicSpec("deepseek-training-data", 10, 3)], CURRENT)
    assert actions == []
    assert len(errors) == 1
    assert "has 50 partitions, declared 10" in errors[0]
    assert "cannot remove partitions" in errors[0] and "partitions: 50" in errors[0]


def test_refuse_replication_factor_change() -> None:
    _, errors = plan([TopicSpec("deepseek-training-data", 50, 2)], CURRENT)
    assert len(errors) == 1
    assert "replication factor 3, declared 2" in errors[0]
    assert "replication_factor: 3" in errors[0]


def test_refuse_internal_topic() -> None:
    _, errors = plan([TopicSpec("__consumer_offsets", 50, 3)], CURRENT)
    assert "internal topics" in errors[0]


@pytest.mark.parametrize("spec, needle", [
    (TopicSpec("bad name", 1, 1), "not a valid Kafka topic name"),
    (TopicSpec("t", 0, 1), "partitions=0"),
    (TopicSpec("t", 1, 0), "replication_factor=0"),
])
def test_refuse_invalid_spec(spec: TopicSpec, needle: str) -> None:
    assert needle in plan([spec], {})[1][0]


def test_refuse_duplicate() -> None:
    assert "declared twice" in plan([TRAIN, TRAIN], {})[1][0]


def test_undeclared_left_alone_by_default() -> None:
    assert plan([TRAIN], CURRENT)[0] == []


def test_delete_undeclared_never_internal() -> None:
    actions, errors = plan([TRAIN], CURRENT, delete_undeclared=True)
    assert errors == []
    assert actions == [Action("delete", "scratch")]


def test_refusals_and_actions_together() -> None:
    """A plan with a refusal still lists the rest; ensure_topics applies none of it."""
    actions, errors = plan([TopicSpec("deepseek-training-data", 10, 3), TopicSpec("new", 1, 1)], CURRENT)
    assert len(errors) == 1 and actions == [Action("create", "new", 1, 1, {})]


def test_spec_from_dict_normalises_values() -> None:
    spec = spec_from_dict({"name": "t", "partitions": "6", "replication_factor": 3,
                           "configs": {"max.message.bytes": 10485760, "unclean.leader.election.enable": False,
                                       "cleanup.policy": ["compact", "delete"]}})
    assert spec == TopicSpec("t", 6, 3, {"max.message.bytes": "10485760",
                                         "unclean.leader.election.enable": "false",
                                         "cleanup.policy": "compact,delete"})
    assert config_value(True) == "true"


def test_spec_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(TopicPlanError, match="unknown keys"):
        spec_from_dict({"name": "t", "partition": 3})


def test_diff_shows_only_touched_topics() -> None:
    spec = TopicSpec("deepseek-training-data", 60, 3, {"min.insync.replicas": "2"})
    actions, _ = plan([spec, TopicSpec("new", 2, 1)], CURRENT)
    d = diff(actions, CURRENT, [spec, TopicSpec("new", 2, 1)])
    assert "partitions: 50" in d["before"] and "partitions: 60" in d["after"]
    assert "new:" not in d["before"] and "new:" in d["after"]
    assert "scratch" not in d["before"] + d["after"]
    assert diff([], CURRENT, [spec]) == {"before": "", "after": ""}
