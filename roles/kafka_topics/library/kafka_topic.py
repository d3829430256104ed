#!/usr/bin/python
"""Ansible module: declared Kafka topics, created or altered idempotently (pyclient.topics)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Bring a Kafka cluster's topics to a declared list
description:
  - Creates missing topics, raises partition counts and sets the declared topic configs that
    differ from the topic's own settings, through C(pyclient.topics) and confluent-kafka.
  - Refuses, before changing anything, to lower a partition count, to change a replication
    factor (a replica reassignment) or to touch internal topics (names starting with C(__)).
  - Topics not in the list are left alone unless I(delete_undeclared) is true. Config keys a
    topic has but the declaration does not name are left alone.
  - Runs where C(pyclient) and C(confluent-kafka) are installed (the Ansible controller's venv).
options:
  bootstrap_servers:
    description: Comma-separated host:port list of brokers.
    type: str
    required: true
  topics:
    description: Declared topics, each C({name, partitions, replication_factor, configs}).
      Partitions or replication factor left out take the broker's defaults on creation and
      are not compared afterwards.
    type: list
    elements: dict
    required: true
  delete_undeclared:
    description: Delete topics that are not declared (never internal ones).
    type: bool
    default: false
  admin_config:
    description: Extra client settings, as Kafka's own keys (security.protocol, sasl.*, ssl.*).
    type: dict
    default: {}
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
- name: Declare the training-data topic
  kafka_topic:
    bootstrap_servers: 192.0.2.11:9092,192.0.2.12:9092
    topics:
      - name: deepseek-training-data
        partitions: 50
        replication_factor: 3
        configs: {min.insync.replicas: 2, compression.type: lz4}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
actions:
  description: What was (or, in check mode, would be) done, one line per action.
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from pyclient.topics import TopicPlanError, ensure_topics
    from pyclient.backends import KafkaKitError
    IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported to the user below
    IMPORT_ERROR = traceback.format_exc()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "bootstrap_servers": {"type": "str", "required": True},
            "topics": {"type": "list", "elements": "dict", "required": True},
            "delete_undeclared": {"type": "bool", "default": False},
            "admin_config": {"type": "dict", "default": {}, "no_log": True},
            "timeout": {"type": "float", "default": 30.0},
        },
        supports_check_mode=True,
    )
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib(
            "pyclient and confluent-kafka (pip install -e . in the repository's venv; run the task "
            "with ansible_python_interpreter set to that venv's python)"), exception=IMPORT_ERROR)
    p = module.params
    settings = dict(p["admin_config"])
    settings["bootstrap.servers"] = p["bootstrap_servers"]
    try:
        result = ensure_topics(settings, p["topics"], delete_undeclared=p["delete_undeclared"],
                               check=module.check_mode, timeout=p["timeout"])
    except TopicPlanError as e:
        module.fail_json(msg="The declared topics cannot be reached safely; nothing was changed: "
                             + " | ".join(e.errors), errors=e.errors)
    except (KafkaKitError, ValueError) as e:
        module.fail_json(msg=str(e))
    out = {"changed": result.changed, "actions": [a.describe() for a in result.actions]}
    if result.changed and module._diff:
        out["diff"] = result.diff
    module.exit_json(**out)


if __name__ == "__main__":
    main()
