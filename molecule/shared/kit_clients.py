"""How a scenario's checks reach its cluster, in either security profile.

The kafka role writes the admin's client files on the Ansible controller
(``kafka_client_files_dir``, tasks/client_files.yml): ``admin.properties`` (Java keys: Kafka's
tools and pyclient ``--command-config``) and ``admin.librdkafka.properties`` (librdkafka keys:
kcat ``-F``, confluent-kafka). The scenarios set ``kafka_client_files_dir`` to
``{{ kafka_security_dir }}/clients``, and ``kafka_security_dir`` is the role's default
``{{ inventory_dir }}/.kafka-kit``: the files lie beside the inventory the checks read, as in
the lab (inventories/lab/.kafka-kit/clients). ``KAFKA_KIT_CLIENT_FILES_DIR`` names another place.

On the hosts, the role writes the same for its own gates in every profile (root, 0600):
:data:`HOST_ADMIN` (the admin on the client listener) and :data:`HOST_CONTROLLER` (the host's own
certificate on the controller listener): a check that runs Kafka's tools on a host passes them.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from pathlib import Path

from pyclient.client_props import load_client_properties

#: The role's client files on every Kafka host (kafka_client_config_dir).
HOST_ADMIN = "/etc/kafka/client/admin.properties"
HOST_CONTROLLER = "/etc/kafka/client/controller.properties"


def clients_dir(inventory: str | Path) -> Path:
    """Where the admin's client files of the cluster of ``inventory`` are on this machine."""
    override = os.environ.get("KAFKA_KIT_CLIENT_FILES_DIR")
    return Path(override) if override else Path(inventory).parent / ".kafka-kit" / "clients"


def admin_properties(inventory: str | Path) -> Path:
    """The admin's Java client properties file (pyclient/Kafka tools ``--command-config``)."""
    path = clients_dir(inventory) / "admin.properties"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no admin client file. The scenario's inventory must set kafka_client_files_dir: "
            "\"{{ kafka_security_dir }}/clients\" (the converge writes it), or set "
            "KAFKA_KIT_CLIENT_FILES_DIR to the directory that holds admin.properties.")
    return path


def admin_config(inventory: str | Path) -> dict[str, str]:
    """The admin's settings in librdkafka's keys for confluent-kafka clients, without
    bootstrap.servers (each check names its own)."""
    path = admin_properties(inventory).with_name("admin.librdkafka.properties")
    settings = load_client_properties(path)
    settings.pop("bootstrap.servers", None)
    return settings


def metrics(url_host: str, inventory: str | Path, port: int = 9404, timeout: float = 10) -> str:
    """The text of a Kafka host's /metrics as Prometheus reads it: HTTPS verified against the
    cluster's CA (the one the admin's file trusts) with the secure profile, else HTTP."""
    ca = admin_config(inventory).get("ssl.ca.location")
    if ca:
        context = ssl.create_default_context(cafile=ca)
        return urllib.request.urlopen(f"https://{url_host}:{port}/metrics", timeout=timeout,
                                      context=context).read().decode()
    return urllib.request.urlopen(f"http://{url_host}:{port}/metrics", timeout=timeout).read().decode()


#: The refusal checks of ``pyclient smoke`` on a SASL listener (pyclient/smoke.py).
REFUSALS = ("anonymous refused", "user without ACLs refused", "wrong password refused")


def assert_refusals_checked(report: dict) -> None:
    """The smoke report (``pyclient smoke --json``) holds the three refused-access checks, all
    passed; print each with the broker's error (pytest -s, or the report of a failure)."""
    refused = {c["name"]: c for c in report["checks"] if c["name"].endswith(" refused")}
    assert sorted(refused) == list(REFUSALS), report["checks"]
    for c in refused.values():
        assert c["ok"], c
        print(f"{c['name']}: {c['detail']}")
