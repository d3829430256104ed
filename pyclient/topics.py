"""Topics as code: declared topics against the cluster's, as a plan of actions, then applied.

``plan()`` is pure (declared specs + current state -> actions and refusals) and unit-tested
without a broker; ``describe()`` reads the current state and ``apply()`` carries out a plan,
both through confluent-kafka's AdminClient. ``ensure_topics()`` puts the three together with a
``check`` flag, so the Ansible module (roles/kafka_topics/library/kafka_topic.py) gets check
mode and diffs for free.

What a plan does: creates missing topics; raises partition counts; sets declared topic configs
that differ from the topic's own (dynamic) settings. What it refuses, before anything changes:
lowering a partition count (Kafka cannot), changing a replication factor (that is a replica
reassignment, not a config change) and touching internal topics (names starting with ``__``).
Topics not declared are left alone unless ``delete_undeclared`` is set. Configs a topic has but
the declaration does not mention are left alone too: the declaration owns the keys it names.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .backends import KafkaKitError

ActionKind = Literal["create", "add_partitions", "alter_configs", "delete"]
_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


class TopicPlanError(KafkaKitError):
    """The declaration cannot be reached safely; ``errors`` lists every reason."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class TopicSpec:
    """A declared topic. ``None`` partitions or replication factor: the broker's default."""

    name: str
    partitions: int | None = None
    replication_factor: int | None = None
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster has it; ``configs`` holds only its own (dynamic) settings."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    topic: str
    partitions: int | None = None
    replication_factor: int | None = None
    configs: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "create":
            return (f"create {self.topic} (partitions {self.partitions or 'default'}, replication "
                    f"factor {self.replication_factor or 'default'}"
                    + (f", configs {self.configs}" if self.configs else "") + ")")
        if self.kind == "add_partitions":
            return f"raise partitions of {self.topic} to {self.partitions}"
        if self.kind == "alter_configs":
            return f"set configs of {self.topic}: {self.configs}"
        return f"delete {self.topic}"


def config_value(value: Any) -> str:
    """A config value as Kafka stores it: booleans lower case, lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(config_value(v) for v in value)
    return str(value)


def spec_from_dict(d: Mapping[str, Any]) -> TopicSpec:
    """A TopicSpec from ``{name, partitions, replication_factor, configs}`` (inventory data)."""
    unknown = set(d) - {"name", "partitions", "replication_factor", "configs"}
    if unknown:
        raise TopicPlanError([f"topic {d.get('name')!r}: unknown keys {sorted(unknown)}; use "
                              "name, partitions, replication_factor, configs"])

    def _opt_int(key: str) -> int | None:
        v = d.get(key)
        return None if v is None or v == "" else int(v)

    return TopicSpec(str(d.get("name", "")), _opt_int("partitions"), _opt_int("replication_factor"),
                     {str(k): config_value(v) for k, v in (d.get("configs") or {}).items()})


def is_internal(name: str) -> bool:
    return name.startswith("__")


def plan(desired: Iterable[TopicSpec], current: Mapping[str, TopicState],
         delete_undeclared: bool = False) -> tuple[list[Action], list[str]]:
    """Actions that bring ``current`` to ``desired``, and the reasons it cannot (refusals).

    A non-empty refusal list means nothing must be applied: the caller fixes the declaration.
    """
    actions: list[Action] = []
    errors: list[str] = []
    declared: set[str] = set()
    for spec in desired:
        name = spec.name
        if not _NAME.match(name) or name in (".", ".."):
            errors.append(f"topic {name!r}: not a valid Kafka topic name (1-249 characters of "
                          "a-z A-Z 0-9 . _ -)")
            continue
        if name in declared:
            errors.append(f"topic {name}: declared twice; keep one entry")
            continue
        declared.add(name)
        if is_internal(name):
            errors.append(f"topic {name}: internal topics (names starting with __) belong to Kafka; "
                          "remove it from the declaration")
            continue
        if spec.partitions is not None and spec.partitions < 1:
            errors.append(f"topic {name}: partitions={spec.partitions}; declare 1 or more")
            continue
        if spec.replication_factor is not None and spec.replication_factor < 1:
            errors.append(f"topic {name}: replication_factor={spec.replication_factor}; declare 1 "
                          "or more")
            continue
        have = current.get(name)
        if have is None:
            actions.append(Action("create", name, spec.partitions, spec.replication_factor,
                                  dict(spec.configs)))
            continue
        if spec.partitions is not None and spec.partitions < have.partitions:
            errors.append(f"topic {name}: has {have.partitions} partitions, declared "
                          f"{spec.partitions}; Kafka cannot remove partitions. Declare "
                          f"partitions: {have.partitions} (or more), or delete and recreate the "
                          "topic (its records are lost)")
        elif spec.partitions is not None and spec.partitions > have.partitions:
            actions.append(Action("add_partitions", name, partitions=spec.partitions))
        if (spec.replication_factor is not None
                and spec.replication_factor != have.replication_factor):
            errors.append(f"topic {name}: has replication factor {have.replication_factor}, "
                          f"declared {spec.replication_factor}; changing it is a replica "
                          "reassignment (kafka-reassign-partitions), not done by topics as code. "
                          f"Declare replication_factor: {have.replication_factor}, or reassign "
                          "first")
        changed = {k: v for k, v in spec.configs.items() if have.configs.get(k) != v}
        if changed:
            actions.append(Action("alter_configs", name, configs=changed))
    if delete_undeclared:
        for name in sorted(set(current) - declared):
            if not is_internal(name):
                actions.append(Action("delete", name))
    return actions, errors


def diff(actions: Iterable[Action], current: Mapping[str, TopicState],
         desired: Iterable[TopicSpec]) -> dict[str, str]:
    """Before/after text of the topics the actions touch (for Ansible's --diff)."""
    want = {s.name: s for s in desired}
    names = sorted({a.topic for a in actions})

    def show(name: str, state: TopicState | TopicSpec | None) -> list[str]:
        if state is None:
            return []
        lines = [f"{name}:", f"  partitions: {state.partitions if state.partitions is not None else 'default'}",
                 f"  replication_factor: "
                 f"{state.replication_factor if state.replication_factor is not None else 'default'}"]
        lines += [f"  {k}: {v}" for k, v in sorted(state.configs.items())]
        return lines

    before: list[str] = []
    after: list[str] = []
    for n in names:
        have, spec = current.get(n), want.get(n)
        before += show(n, have)
        if spec is None:
            continue  # deleted
        merged = dict(have.configs) if have else {}
        merged.update(spec.configs)
        after += show(n, TopicState(
            n, spec.partitions if spec.partitions is not None else (have.partitions if have else 0),
            spec.replication_factor if spec.replication_factor is not None
            else (have.replication_factor if have else 0), merged)
            if have else spec)
    return {"before": "\n".join(before) + ("\n" if before else ""),
            "after": "\n".join(after) + ("\n" if after else "")}


# ---------------------------------------------------------------------------------------------
# Against a cluster (confluent-kafka)
# ---------------------------------------------------------------------------------------------

def _client(settings: Mapping[str, Any], command_config: str | None = None) -> Any:
    """An AdminClient for ``settings`` over the client properties file ``command_config`` (else
    ``$KAFKA_KIT_CLIENT_CONFIG``), Java-only keys translated for librdkafka."""
    from confluent_kafka.admin import AdminClient

    from .config import LIBRDKAFKA_LOGGER, client_properties, for_backend
    cfg = for_backend({**client_properties(command_config), **settings}, "confluent")
    cfg.setdefault("logger", LIBRDKAFKA_LOGGER)
    return AdminClient(cfg)


def describe(settings: Mapping[str, Any], names: Iterable[str] | None = None,
             timeout: float = 30.0, command_config: str | None = None) -> dict[str, TopicState]:
    """Every topic of the cluster; the dynamic configs of ``names`` (all topics when None)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    admin = _client(settings, command_config)
    md = admin.list_topics(timeout=timeout)
    states: dict[str, TopicState] = {}
    want = set(md.topics) if names is None else set(names) & set(md.topics)
    configs: dict[str, dict[str, str]] = {n: {} for n in want}
    if want:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in sorted(want)],
                                         request_timeout=timeout)
        for res, fut in futures.items():
            try:
                entries = fut.result(timeout)
            except KafkaException as e:
                raise KafkaKitError(f"describe configs of topic {res.name!r}: {e.args[0].str()}") from e
            configs[res.name] = {k: str(e.value) for k, e in entries.items()
                                 if int(getattr(e.source, "value", e.source)) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
                                 and not e.is_sensitive}
    for name, t in md.topics.items():
        if t.error is not None:
            raise KafkaKitError(f"describe topic {name!r}: {t.error.str()}")
        rf = max((len(p.replicas) for p in t.partitions.values()), default=0)
        states[name] = TopicState(name, len(t.partitions), rf, configs.get(name, {}))
    return states


def apply(settings: Mapping[str, Any], actions: Iterable[Action], timeout: float = 30.0,
          command_config: str | None = None) -> None:
    """Carry out a plan, in order; raise KafkaKitError naming the first action that failed."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, NewTopic, ResourceType)

    admin = _client(settings, command_config)
    for a in actions:
        if a.kind == "create":
            fut = admin.create_topics([NewTopic(a.topic, a.partitions or -1, a.replication_factor or -1,
                                                config=dict(a.configs))],
                                      request_timeout=timeout)[a.topic]
        elif a.kind == "add_partitions":
            fut = admin.create_partitions([NewPartitions(a.topic, int(a.partitions or 0))],
                                          request_timeout=timeout)[a.topic]
        elif a.kind == "alter_configs":
            res = ConfigResource(ResourceType.TOPIC, a.topic, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in sorted(a.configs.items())])
            fut = next(iter(admin.incremental_alter_configs([res], request_timeout=timeout).values()))
        else:
            fut = admin.delete_topics([a.topic], request_timeout=timeout)[a.topic]
        try:
            fut.result(timeout)
        except KafkaException as e:
            raise KafkaKitError(f"{a.describe()}: {e.args[0].str()}") from e


@dataclass
class Result:
    changed: bool
    actions: list[Action]
    diff: dict[str, str]


def ensure_topics(settings: Mapping[str, Any], desired: Iterable[TopicSpec | Mapping[str, Any]],
                  delete_undeclared: bool = False, check: bool = False,
                  timeout: float = 30.0, command_config: str | None = None) -> Result:
    """Bring the cluster's topics to the declaration; with ``check`` only say what would change.

    ``settings`` may hold Kafka's Java client keys (``sasl.jaas.config``...); ``command_config``
    names a client properties file under them (else ``$KAFKA_KIT_CLIENT_CONFIG``).

    Raises TopicPlanError (every refusal at once, nothing applied) or KafkaKitError.
    """
    specs = [s if isinstance(s, TopicSpec) else spec_from_dict(s) for s in desired]
    names = None if delete_undeclared else [s.name for s in specs]
    current = describe(settings, names, timeout, command_config)
    actions, errors = plan(specs, current, delete_undeclared)
    if errors:
        raise TopicPlanError(errors)
    if actions and not check:
        apply(settings, actions, timeout, command_config)
        _await_visible(settings, specs, names, delete_undeclared, timeout, command_config)
    return Result(bool(actions), actions, diff(actions, current, specs))


def _await_visible(settings: Mapping[str, Any], specs: list[TopicSpec], names: list[str] | None,
                   delete_undeclared: bool, timeout: float, command_config: str | None) -> None:
    """Return once describe shows the declaration (KRaft answers an alter when the controller
    committed it; a broker's metadata, which DescribeConfigs reads, follows a moment later, and
    a run right after then saw the old value and applied it again)."""
    deadline = time.monotonic() + timeout
    while True:
        pending, _ = plan(specs, describe(settings, names, timeout, command_config), delete_undeclared)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise KafkaKitError(f"applied, but after {timeout:.0f} s the cluster still does not show: "
                                + "; ".join(a.describe() for a in pending))
        time.sleep(0.1)
