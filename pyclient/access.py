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
