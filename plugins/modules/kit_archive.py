#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kafka-kit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one verified distribution archive on the Ansible controller.

The kafka and zookeeper roles (and the JMX exporter's jar) install archives fetched once, on
the controller, then copied to the hosts, so hosts never reach the internet. This is the one
implementation of "use this local file or download that URL, and verify its checksum".
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: kit_archive
short_description: A distribution archive on the controller, checked against its checksum
description:
  - "Run on the Ansible controller (C(delegate_to: localhost), C(run_once: true))."
  - With O(local_path), checks that the file exists and matches the checksum in
    C(<local_path>.sha512) (sha512sum format) or O(checksum).
  - "Otherwise downloads O(url) into O(cache_dir) unless a file there already matches, and
    verifies it against O(checksum) or, when empty, the checksum published at C(<url>.sha512)
    (sha512sum or gpg's C(name: AAAA BBBB ...) layout, as Apache publishes it)."
  - Supports check mode (reports the download it would make).
options:
  local_path: {description: Archive already on the controller; empty to download., type: str, default: ""}
  url: {description: Where to download the archive from., type: str, default: ""}
  checksum: {description: "Expected checksum, C(sha512:<hex>) or C(sha256:<hex>); empty: the sidecar or published one.", type: str, default: ""}
  cache_dir: {description: Controller directory the download goes to., type: str, default: ""}
  name: {description: File name in O(cache_dir); default the URL's last part., type: str, default: ""}
  variable: {description: "Prefix of the role's variables, named in error messages (e.g. kafka_archive).", type: str, default: archive}
author: kafka-kit contributors
"""

EXAMPLES = r"""
- name: Fetch and verify the Kafka archive on the controller
  kit_archive:
    local_path: "{{ kafka_archive_local_path }}"
    url: "{{ kafka_archive_url }}"
    checksum: "{{ kafka_archive_checksum }}"
    cache_dir: "{{ kafka_archive_cache_dir }}"
    variable: kafka_archive
  delegate_to: localhost
  run_once: true
  become: false
  register: kafka_archive_fetch
"""

RETURN = r"""
path: {description: The verified archive on the controller., type: str, returned: always}
checksum: {description: "C(algorithm:hex) it was verified against.", type: str, returned: always}
"""

import hashlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402

_HEX = {"sha512": 128, "sha256": 64}


def parse_published(text, algorithm="sha512"):
    """The hex digest of a published checksum file: sha512sum's `HEX  name` or gpg's
    `name: AAAA BBBB` over several lines. Empty string when none is found."""
    text = text or ""
    length = _HEX[algorithm]
    if ":" in text.split("\n", 1)[0]:
        digest = re.sub(r"\s", "", text.split(":", 1)[1]).lower()
        return digest if re.fullmatch("[0-9a-f]{%d}" % length, digest) else ""
    first = text.split()
    digest = first[0].lower() if first else ""
    return digest if re.fullmatch("[0-9a-f]{%d}" % length, digest) else ""


def parse_expected(checksum):
    """(algorithm, hex) of `sha512:<hex>` / `sha256:<hex>` (a bare hex of 128 is sha512)."""
    checksum = (checksum or "").strip()
    if not checksum:
        return None
    algorithm, _, digest = checksum.partition(":") if ":" in checksum else ("sha512", "", checksum)
    algorithm = algorithm.lower()
    digest = digest.strip().lower()
    if algorithm not in _HEX or not re.fullmatch("[0-9a-f]{%d}" % _HEX[algorithm], digest):
        raise ValueError("checksum %r: write it as sha512:<128 hex digits> or sha256:<64 hex digits>" % checksum)
    return algorithm, digest


def file_digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read(module, url):
    try:
        return open_url(url, timeout=60).read()
    except Exception as exc:  # noqa: BLE001 - any transport error is one message
        module.fail_json(msg="%s: cannot read %s: %s. Check the URL and the controller's network, or "
                             "download the file yourself and set %s_local_path."
                             % (module.params["variable"] + "_url", url, exc, module.params["variable"]))
    return b""


def _local(module, var):
    path = module.params["local_path"]
    if not os.path.isfile(path):
        module.fail_json(msg="%s_local_path=%s: no such file on the controller; build it "
                             "(tools/build-kafka-dist, tools/fetch-jmx-exporter) or fix the path." % (var, path))
    sidecar = path + ".sha512"
    expected = None
    if os.path.isfile(sidecar):
        with open(sidecar) as f:
            digest = parse_published(f.read())
        expected = ("sha512", digest) if digest else None
    if expected is None:
        expected = parse_expected(module.params["checksum"])
    if expected is not None:
        actual = file_digest(path, expected[0])
        if actual != expected[1]:
            module.fail_json(msg="%s_local_path=%s: %s %s does not match the expected %s; the archive is corrupt "
                                 "or not the one you meant: rebuild or re-download it."
                                 % (var, path, expected[0], actual, expected[1]))
    module.exit_json(changed=False, path=path, checksum="%s:%s" % expected if expected else "")


def _download(module, var):
    url = module.params["url"]
    if not url or not module.params["cache_dir"]:
        module.fail_json(msg="%s: set %s_local_path, or %s_url and %s_cache_dir." % (var, var, var, var))
    expected = parse_expected(module.params["checksum"])
    if expected is None:
        digest = parse_published(_read(module, url + ".sha512").decode("utf-8", "replace"))
        if not digest:
            module.fail_json(msg="%s_url: %s.sha512 holds no sha512; pin %s_checksum: sha512:<hex>." % (var, url, var))
        expected = ("sha512", digest)
    dest = os.path.join(module.params["cache_dir"], module.params["name"] or url.rstrip("/").rsplit("/", 1)[-1])
    result = {"path": dest, "checksum": "%s:%s" % expected}
    if os.path.isfile(dest) and file_digest(dest, expected[0]) == expected[1]:
        module.exit_json(changed=False, **result)
    if module.check_mode:
        module.exit_json(changed=True, **result)
    os.makedirs(module.params["cache_dir"], exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=module.params["cache_dir"], prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                shutil.copyfileobj(open_url(url, timeout=600), out, 1 << 20)
            except Exception as exc:  # noqa: BLE001
                module.fail_json(msg="%s_url: cannot download %s: %s" % (var, url, exc))
        actual = file_digest(tmp, expected[0])
        if actual != expected[1]:
            module.fail_json(msg="%s_url: %s downloaded with %s %s, expected %s: not kept. A broken mirror or a "
                                 "wrong %s_checksum." % (var, url, expected[0], actual, expected[1], var))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    module.exit_json(changed=True, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(local_path=dict(type="str", default=""), url=dict(type="str", default=""),
                           checksum=dict(type="str", default="", no_log=False),
                           cache_dir=dict(type="str", default=""), name=dict(type="str", default=""),
                           variable=dict(type="str", default="archive")),
        supports_check_mode=True)
    var = module.params["variable"]
    try:
        if module.params["local_path"]:
            _local(module, var)
        else:
            _download(module, var)
    except ValueError as exc:
        module.fail_json(msg="%s_checksum: %s" % (var, exc))


if __name__ == "__main__":
    main()
