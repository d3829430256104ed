#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kafka-kit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: plan or apply the kafka-kit OS tuning on the managed host."""
from __future__ import annotations

DOCUMENTATION = r"""
module: os_tuning
short_description: Plan or apply kernel, NIC queue and IRQ tuning of a Kafka host
description:
  - Reads /proc and /sys, computes the plan (sysctl, THP, governor, I/O scheduler, noatime,
    NIC rings and channels, queue IRQ affinity, RPS/XPS) and applies what differs.
  - Supports check mode and diff. Items the host forbids (read-only /proc/sys in a
    container) are returned in C(not_applied) and do not fail unless O(strict=true).
options:
  config:
    description: The plan's inputs, as written to /etc/kafka-kit/os-tuning.json by the role.
    type: dict
    required: true
  state:
    description:
      - C(planned) only reads and returns the plan (never changes anything).
      - C(applied) applies every item that differs.
    type: str
    choices: [planned, applied]
    default: applied
  strict:
    description: Fail when an item could not be applied (blocked or failed).
    type: bool
    default: false
author: kafka-kit contributors
"""

EXAMPLES = r"""
- name: Apply the tuning plan
  os_tuning:
    config: "{{ __os_tuning_config }}"
  register: os_tuning_result
"""

RETURN = r"""
sysctl:
  description: The sysctl values to persist (raise-only keys already resolved).
  type: dict
  returned: always
items:
  description: Every plan item with kind, target, current, desired, state and reason.
  type: list
  returned: always
applied:
  description: Items applied (or, in check mode, that would be).
  type: list
  returned: state=applied
not_applied:
  description: Items that could not be applied, with the reason.
  type: list
  returned: state=applied
summary:
  description: Count of items per state.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.os_tuning_apply import apply_plan, diff_text
from ansible.module_utils.os_tuning_plan import build_plan, effective_sysctl, summary
from ansible.module_utils.os_tuning_sysfs import Host


def _brief(entries):
    return ["%s %s: %s -> %s%s" % (e["kind"], e["target"], e["current"], e["desired"],
                                   " (%s)" % e["reason"] if e["reason"] else "") for e in entries]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="dict", required=True),
            state=dict(type="str", default="applied", choices=["planned", "applied"]),
            strict=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    config = module.params["config"]
    host = Host("/", runner=lambda argv: module.run_command(argv))
    sysctl = effective_sysctl(host, config)
    if module.params["state"] == "planned":
        items = build_plan(host, config)
        module.exit_json(changed=False, sysctl=sysctl, items=items, summary=summary(items))
    result = apply_plan(host, config, check_mode=module.check_mode)
    not_applied = [e for e in result["not_applied"] if e["state"] in ("blocked", "failed")]
    out = dict(changed=result["changed"], sysctl=sysctl, items=result["items"],
               summary=summary(result["items"]), applied=_brief(result["applied"]),
               not_applied=_brief(result["not_applied"]), refused_irqs=result["refused_irqs"])
    if module._diff:
        out["diff"] = diff_text(result["applied"])
    if module.params["strict"] and not_applied:
        module.fail_json(msg="strict: %d item(s) could not be applied" % len(not_applied), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
