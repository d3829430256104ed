"""SCRAM users and ACLs as code, through Kafka's Admin API (confluent-kafka).

``ensure_access`` compares what is declared with what the cluster holds and applies the
difference (or, with ``check=True``, only reports it). It returns what changed and a diff that
names users and ACL bindings, never a password. Passwords cannot be read back from Kafka
(SCRAM stores salted keys), so a user's password is set when the user is created, and again on
every run only with ``update_password="always"``.

ACLs the cluster holds but the declaration does not are reported in ``undeclared_acls`` and
removed only with ``remove_undeclared_acls=True``; super users and the brokers' own principals
need no ACL and none is ever created for them implicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

MECHANISMS = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512, "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}
Acl = tuple[str, str, str, str, str, str, str]  # resource type, name, pattern, principal, host, op, permission


class AccessError(ValueError):
    """A declaration that cannot be applied; the message names the entry and the fix."""


@dataclass
class AccessResult:
    changed: bool = False
    users_created: list[str] = field(default_factory=list)
    users_updated: list[str] = field(default_factory=list)
    users_removed: list[str] = field(default_factory=list)
    acls_added: list[str] = field(default_factory=list)
    acls_removed: list[str] = field(default_factory=list)
    undeclared_acls: list[str] = field(default_factory=list)

    @property
    def diff(self) -> dict[str, str]:
        before = sorted(self.users_removed + self.users_updated) + sorted(self.acls_removed)
        after = sorted(self.users_created + self.users_updated) + sorted(self.acls_added)
        return {"before": "".join(f"{x}\n" for x in before), "after": "".join(f"{x}\n" for x in after)}


def _enum(kind: Any, value: str, where: str) -> Any:
    try:
        return kind[str(value).upper()]
    except KeyError:
        names = ", ".join(m.name for m in kind if m.name not in ("UNKNOWN", "ANY", "MATCH"))
        raise AccessError(f"{where}: {value!r} is not one of {names}") from None


def declared_acls(acls: Sequence[Mapping[str, Any]]) -> set[Acl]:
    """Expand the declaration (one entry: principal, resource_type, name, pattern_type,
    operations, permission, host) into one binding per operation."""
    out: set[Acl] = set()
    for i, entry in enumerate(acls):
        where = f"acls[{i}]"
        principal = str(entry.get("principal", ""))
        if not principal.startswith("User:"):
            raise AccessError(f"{where}.principal={principal!r}: write it as User:<name>")
        rtype = _enum(ResourceType, entry.get("resource_type", "topic"), f"{where}.resource_type").name
        pattern = _enum(ResourcePatternType, entry.get("pattern_type", "literal"), f"{where}.pattern_type").name
        permission = _enum(AclPermissionType, entry.get("permission", "allow"), f"{where}.permission").name
        name = str(entry.get("name", "kafka-cluster" if rtype == "BROKER" else ""))
        if not name:
            raise AccessError(f"{where}: name the {rtype.lower()} (or a prefix with pattern_type: prefixed)")
        operations = entry.get("operations") or []
        if not operations:
            raise AccessError(f"{where}: list its operations (e.g. [read, describe])")
        for op in operations:
            out.add((rtype, name, pattern, principal, str(entry.get("host", "*")),
                     _enum(AclOperation, op, f"{where}.operations").name, permission))
    return out


def _label(acl: Acl) -> str:
    rtype, name, pattern, principal, host, op, permission = acl
    return f"acl {permission} {principal} {op} {rtype}:{pattern}:{name} from {host}"


def _binding(acl: Acl) -> AclBinding:
    rtype, name, pattern, principal, host, op, permission = acl
    return AclBinding(ResourceType[rtype], name, ResourcePatternType[pattern], principal, host,
                      AclOperation[op], AclPermissionType[permission])


def _current_acls(admin: AdminClient, timeout: float) -> set[Acl]:
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    bindings = admin.describe_acls(everything, request_timeout=timeout).result()
    return {(b.restype.name, b.name, b.resource_pattern_type.name, b.principal, b.host, b.operation.name,
             b.permission_type.name) for b in bindings}


def _current_users(admin: AdminClient, timeout: float) -> set[str]:
    described = admin.describe_user_scram_credentials(request_timeout=timeout).result()
    return {name for name, info in described.items() if info is not None}


def ensure_access(settings: Mapping[str, Any], users: Sequence[Mapping[str, Any]],
                  acls: Sequence[Mapping[str, Any]], *, remove_undeclared_acls: bool = False,
                  update_password: str = "on_create", mechanism: str = "SCRAM-SHA-512",
                  iterations: int = 4096, check: bool = False, timeout: float = 30.0) -> AccessResult:
    """Bring the cluster's SCRAM users and ACLs to the declaration; see the module docstring."""
    if update_password not in ("on_create", "always"):
        raise AccessError(f"update_password={update_password!r}: use on_create or always")
    if mechanism not in MECHANISMS:
        raise AccessError(f"mechanism={mechanism!r}: use one of {', '.join(MECHANISMS)}")
    want_acls = declared_acls(acls)
    for i, user in enumerate(users):
        if not user.get("name"):
            raise AccessError(f"users[{i}] has no name")
        if user.get("state", "present") == "present" and not user.get("password"):
            raise AccessError(f"users[{i}] ({user['name']}) has no password: set it from Ansible Vault")
    admin = AdminClient(dict(settings))
    result = AccessResult()
    existing = _current_users(admin, timeout)
    info = ScramCredentialInfo(MECHANISMS[mechanism], iterations)
    alterations: list[Any] = []
    for user in users:
        name = str(user["name"])
        if user.get("state", "present") == "absent":
            if name in existing:
                result.users_removed.append(f"user {name}")
                alterations.append(UserScramCredentialDeletion(name, MECHANISMS[mechanism]))
            continue
        if name not in existing:
            result.users_created.append(f"user {name}")
        elif update_password == "always":
            result.users_updated.append(f"user {name} (password set)")
        else:
            continue
        alterations.append(UserScramCredentialUpsertion(name, info, str(user["password"]).encode()))
    have_acls = _current_acls(admin, timeout)
    add = sorted(want_acls - have_acls)
    extra = sorted(have_acls - want_acls)
    result.acls_added = [_label(a) for a in add]
    result.undeclared_acls = [_label(a) for a in extra]
    if remove_undeclared_acls:
        result.acls_removed = list(result.undeclared_acls)
    result.changed = bool(alterations or add or (extra and remove_undeclared_acls))
    if check or not result.changed:
        return result
    if alterations:
        for future in admin.alter_user_scram_credentials(alterations, request_timeout=timeout).values():
            future.result()
    if add:
        for future in admin.create_acls([_binding(a) for a in add], request_timeout=timeout).values():
            future.result()
    if extra and remove_undeclared_acls:
        filters = [AclBindingFilter(ResourceType[a[0]], a[1], ResourcePatternType[a[2]], a[3], a[4],
                                    AclOperation[a[5]], AclPermissionType[a[6]]) for a in extra]
        for future in admin.delete_acls(filters, request_timeout=timeout).values():
            future.result()
    return result


# ---------------------------------------------------------------------------------------------
# Client quotas (KIP-546: DescribeClientQuotas / AlterClientQuotas)
# ---------------------------------------------------------------------------------------------
# librdkafka has no client-quota Admin API, so quotas go through kafka-python's protocol layer
# (3.x: typed ApiMessage requests sent by its connection manager) with the same admin settings.

QUOTA_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage",
              "controller_mutation_rate")
#: ``user: <default>`` / ``client_id: <default>`` in a declaration: the entity type's default.
DEFAULT_ENTITY = "<default>"
Entity = tuple[tuple[str, "str | None"], ...]   # ((type, name or None for the default), ...), user first
_ENTITY_TYPES = {"user": "user", "client_id": "client-id"}
_ENTITY_ORDER = {"user": 0, "client-id": 1}


def _entity(parts: Any) -> Entity:
    return tuple(sorted(parts, key=lambda p: (_ENTITY_ORDER.get(p[0], 2), p[0])))
_KP_KEYS = {"bootstrap.servers": "bootstrap_servers", "security.protocol": "security_protocol",
            "sasl.mechanism": "sasl_mechanism", "sasl.username": "sasl_plain_username",
            "sasl.password": "sasl_plain_password", "ssl.ca.location": "ssl_cafile",
            "ssl.certificate.location": "ssl_certfile", "ssl.key.location": "ssl_keyfile",
            "ssl.key.password": "ssl_password",
            "ssl.endpoint.identification.algorithm": "ssl_check_hostname"}


@dataclass
class QuotaResult:
    changed: bool = False
    quotas_set: list[str] = field(default_factory=list)
    quotas_removed: list[str] = field(default_factory=list)
    undeclared_quotas: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)

    @property
    def diff(self) -> dict[str, str]:
        """The same form as AccessResult.diff: old values before, declared values after."""
        return {"before": "".join(f"{x}\n" for x in sorted(self.before + self.quotas_removed)),
                "after": "".join(f"{x}\n" for x in sorted(self.quotas_set))}


def _entity_label(entity: Entity) -> str:
    return " ".join(f"{t}={DEFAULT_ENTITY if n is None else n}" for t, n in entity)


def _quota_label(entity: Entity, values: Mapping[str, float]) -> str:
    shown = ", ".join(f"{k}={_number(v)}" for k, v in sorted(values.items()))
    return f"quota {_entity_label(entity)}: {shown}"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def declared_quotas(quotas: Sequence[Mapping[str, Any]]) -> dict[Entity, dict[str, float]]:
    """One entry: ``user`` and/or ``client_id`` (a name, or ``<default>``) and the quota keys
    (producer_byte_rate, consumer_byte_rate in bytes/s per broker, request_percentage,
    controller_mutation_rate). Each entity once."""
    out: dict[Entity, dict[str, float]] = {}
    for i, entry in enumerate(quotas):
        where = f"quotas[{i}]"
        unknown = sorted(set(entry) - set(_ENTITY_TYPES) - set(QUOTA_KEYS))
        if unknown:
            raise AccessError(f"{where}: unknown keys {unknown}; an entry names user and/or client_id "
                              f"and sets {', '.join(QUOTA_KEYS)}")
        parts = []
        for key, etype in _ENTITY_TYPES.items():
            if key in entry:
                name = str(entry[key])
                if not name:
                    raise AccessError(f"{where}.{key} is empty: name it, or write {DEFAULT_ENTITY}")
                parts.append((etype, None if name == DEFAULT_ENTITY else name))
        if not parts:
            raise AccessError(f"{where}: name a user and/or a client_id ({DEFAULT_ENTITY} for the default)")
        values: dict[str, float] = {}
        for key in QUOTA_KEYS:
            if key in entry:
                try:
                    values[key] = float(entry[key])
                except (TypeError, ValueError):
                    raise AccessError(f"{where}.{key}={entry[key]!r}: a number is needed") from None
                if values[key] <= 0:
                    raise AccessError(f"{where}.{key}={entry[key]!r}: must be above 0 (leave the key "
                                      f"out for no quota)")
        if not values:
            raise AccessError(f"{where}: set at least one of {', '.join(QUOTA_KEYS)}")
        entity = _entity(parts)
        if entity in out:
            raise AccessError(f"{where}: {_entity_label(entity)} is declared twice")
        out[entity] = values
    return out


def _kafka_python_admin(settings: Mapping[str, Any], timeout: float) -> Any:
    from kafka.admin import KafkaAdminClient

    kw: dict[str, Any] = {"request_timeout_ms": int(timeout * 1000), "client_id": "kafka-kit-access"}
    for key, value in settings.items():
        if key not in _KP_KEYS:
            raise AccessError(f"admin setting {key!r} has no kafka-python counterpart (client quotas "
                              f"go through kafka-python): use {', '.join(sorted(_KP_KEYS))}")
        name = _KP_KEYS[key]
        if name == "ssl_check_hostname":
            value = str(value).lower() == "https"
        kw[name] = value
    if str(kw.get("security_protocol", "")).upper() in ("SSL", "SASL_SSL"):
        kw.setdefault("ssl_check_hostname", True)
    admin = KafkaAdminClient(**kw)
    if not hasattr(admin, "_manager"):
        import kafka
        admin.close()
        raise AccessError(f"client quotas need kafka-python 3.x (found {kafka.__version__}): "
                          f"pip install 'kafka-python>=3.0'")
    return admin


def _current_quotas(admin: Any) -> dict[Entity, dict[str, float]]:
    from kafka.protocol.admin import DescribeClientQuotasRequest

    async def describe() -> Any:
        return await admin._manager.send(DescribeClientQuotasRequest(components=[], strict=False))

    response = admin._manager.run(describe)
    if response.error_code:
        raise AccessError(f"DescribeClientQuotas failed: {response.error_message} "
                          f"(error {response.error_code})")
    out: dict[Entity, dict[str, float]] = {}
    for entry in response.entries or []:
        entity = _entity((e.entity_type, e.entity_name) for e in entry.entity)
        out[entity] = {v.key: float(v.value) for v in entry.values}
    return out


def _alter_quotas(admin: Any, changes: list[tuple[Entity, dict[str, float], list[str]]]) -> None:
    from kafka.protocol.admin import AlterClientQuotasRequest

    entries = [([(t, n) for t, n in entity],
                [(k, v, False) for k, v in sorted(sets.items())] + [(k, 0.0, True) for k in sorted(removes)])
               for entity, sets, removes in changes]

    async def alter() -> Any:
        return await admin._manager.send(AlterClientQuotasRequest(entries=entries, validate_only=False))

    response = admin._manager.run(alter)
    failed = [f"{_entity_label(_entity((e.entity_type, e.entity_name) for e in r.entity))}: {r.error_message}"
              for r in response.entries if r.error_code]
    if failed:
        raise AccessError("AlterClientQuotas refused " + "; ".join(failed))


def ensure_quotas(settings: Mapping[str, Any], quotas: Sequence[Mapping[str, Any]], *,
                  remove_undeclared: bool = False, check: bool = False,
                  timeout: float = 30.0) -> QuotaResult:
    """Bring the cluster's client quotas to the declaration: a declared entity gets exactly its
    declared keys (others of its keys removed); entities the cluster holds but the declaration
    does not are reported in ``undeclared_quotas`` and cleared only with ``remove_undeclared``."""
    want = declared_quotas(quotas)
    result = QuotaResult()
    admin = _kafka_python_admin(settings, timeout)
    try:
        have = _current_quotas(admin)
        changes: list[tuple[Entity, dict[str, float], list[str]]] = []
        for entity, values in sorted(want.items(), key=lambda kv: _entity_label(kv[0])):
            current = have.get(entity, {})
            sets = {k: v for k, v in values.items() if current.get(k) != v}
            removes = sorted(set(current) - set(values))
            if sets or removes:
                changes.append((entity, sets, removes))
                if current:
                    result.before.append(_quota_label(entity, current))
                result.quotas_set.append(_quota_label(entity, values))
        extra = sorted((e for e in have if e not in want and have[e]), key=_entity_label)
        result.undeclared_quotas = [_quota_label(e, have[e]) for e in extra]
        if remove_undeclared:
            for entity in extra:
                changes.append((entity, {}, sorted(have[entity])))
                result.quotas_removed.append(_quota_label(entity, have[entity]))
        result.changed = bool(changes)
        if changes and not check:
            _alter_quotas(admin, changes)
    finally:
        admin.close()
    return result
