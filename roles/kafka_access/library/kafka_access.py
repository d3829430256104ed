#!/usr/bin/python
"""Ansible module: SCRAM users, ACLs and client quotas of a Kafka cluster as declared
(pyclient.access)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_access
short_description: Bring a Kafka cluster's SCRAM users, ACLs and client quotas to a declaration
description:
  - Creates, updates (I(update_password=always)) and removes SCRAM users and creates the
    declared ACL bindings through the Admin API (C(pyclient.access), confluent-kafka).
  - ACLs the cluster holds but the declaration does not are returned in I(undeclared_acls) and
    removed only with I(remove_undeclared_acls=true).
  - Sets the declared client quotas (per user, client id, or both; C(<default>) for a type's
    default) through DescribeClientQuotas/AlterClientQuotas (kafka-python's protocol layer:
    librdkafka has no quota API); undeclared quota entities are returned in I(undeclared_quotas)
    and cleared only with I(remove_undeclared_quotas=true).
  - The diff names users, ACL bindings and quota values, never a password; the module's input is
    no_log.
options:
  admin_config:
    description: Client settings of the admin, as Kafka's own keys (bootstrap.servers,
      security.protocol, sasl.*, ssl.*).
    type: dict
    required: true
  users:
    description: SCRAM users, each C({name, password, state}) (state present or absent).
    type: list
    elements: dict
    default: []
  acls:
    description: ACL entries, each C({principal, resource_type, name, pattern_type, operations,
      permission, host}); resource_type topic, group, cluster, transactional_id; pattern_type
      literal or prefixed; permission allow or deny.
    type: list
    elements: dict
    default: []
  remove_undeclared_acls:
    description: Delete the ACLs not declared.
    type: bool
    default: false
  quotas:
    description: Client quotas, each C({user, client_id, producer_byte_rate, consumer_byte_rate,
      request_percentage, controller_mutation_rate}); at least one of user and client_id (a name or
      C(<default>)) and one quota key. A declared entity gets exactly its declared keys.
    type: list
    elements: dict
    default: []
  remove_undeclared_quotas:
    description: Clear the quota entities not declared.
    type: bool
    default: false
  update_password:
    description: C(on_create) sets a password when the user is created; C(always) on every run
      (Kafka cannot tell whether a password changed).
    type: str
    choices: [on_create, always]
    default: on_create
  mechanism:
    description: SCRAM mechanism of the users.
    type: str
    default: SCRAM-SHA-512
  timeout:
    description: Seconds per admin request.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author: kafka-kit
"""

EXAMPLES = r"""
- name: Users and ACLs of the training cluster
  kafka_access:
    admin_config: "{{ admin_client_settings }}"
    users:
      - {name: training-ingest, password: "{{ vault_training_ingest_password }}"}
    acls:
      - {principal: "User:training-ingest", resource_type: topic, name: corpus, operations: [write, describe]}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
undeclared_acls:
  description: ACL bindings the cluster holds that are not declared.
  returned: always
  type: list
  elements: str
undeclared_quotas:
  description: Client quota entities the cluster holds that are not declared, with their values.
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from pyclient.access import AccessError, ensure_access, ensure_quotas
    IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported to the user below
    IMPORT_ERROR = traceback.format_exc()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "admin_config": {"type": "dict", "required": True, "no_log": True},
            # Only the passwords are secret: the names must show in the diff.
            "users": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str", "required": True},
                "password": {"type": "str", "no_log": True},
                "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            }},
            "acls": {"type": "list", "elements": "dict", "default": []},
            "remove_undeclared_acls": {"type": "bool", "default": False},
            "quotas": {"type": "list", "elements": "dict", "default": []},
            "remove_undeclared_quotas": {"type": "bool", "default": False},
            "update_password": {"type": "str", "choices": ["on_create", "always"], "default": "on_create",
                                "no_log": False},
            "mechanism": {"type": "str", "default": "SCRAM-SHA-512"},
            "timeout": {"type": "float", "default": 30.0},
        },
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib(
            "pyclient and confluent-kafka (pip install -e . in the repository's venv; run the task "
            "with ansible_python_interpreter set to that venv's python)"), exception=IMPORT_ERROR)
    p = module.params
    try:
        result = ensure_access(p["admin_config"], p["users"], p["acls"],
                               remove_undeclared_acls=p["remove_undeclared_acls"],
                               update_password=p["update_password"], mechanism=p["mechanism"],
                               check=module.check_mode, timeout=p["timeout"])
        quotas = None
        if p["quotas"] or p["remove_undeclared_quotas"]:
            quotas = ensure_quotas(p["admin_config"], p["quotas"],
                                   remove_undeclared=p["remove_undeclared_quotas"],
                                   check=module.check_mode, timeout=p["timeout"])
    except AccessError as e:
        module.fail_json(msg=f"Nothing was changed: {e}")
    except Exception as e:  # the Admin API's errors (KafkaException) carry the broker's message
        module.fail_json(msg=f"The Admin API refused the change: {e}")
    changed = result.changed or bool(quotas and quotas.changed)
    out = {"changed": changed, "undeclared_acls": result.undeclared_acls,
           "users_created": result.users_created, "users_removed": result.users_removed,
           "acls_added": result.acls_added, "acls_removed": result.acls_removed,
           "quotas_set": quotas.quotas_set if quotas else [],
           "quotas_removed": quotas.quotas_removed if quotas else [],
           "undeclared_quotas": quotas.undeclared_quotas if quotas else []}
    if changed and module._diff:
        diff = result.diff
        if quotas:
            extra = quotas.diff
            diff = {k: diff[k] + extra[k] for k in ("before", "after")}
        out["diff"] = diff
    module.exit_json(**out)


if __name__ == "__main__":
    main()
