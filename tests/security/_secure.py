"""tests/security: one real secure broker set up by the kafka role's own
tasks (tls.yml, clients.yml, client_files.yml, storage.yml, the server.properties template) with
kafka_security_profile=secure; see test_secure_broker.py for what it proves."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pyclient"))
from _broker import LOG4J2, _die_with_parent, free_port, kafka_home  # noqa: E402

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

INVENTORY = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {python}
  children:
    kafka_controller: {{hosts: {{kk-sec-1: }}}}
    kafka_broker: {{hosts: {{kk-sec-1: }}}}
  hosts:
    kk-sec-1:
      kafka_node_id: 1
      kafka_listener_address: 127.0.0.1
      kafka_broker_port: {port}
      kafka_controller_port: {cport}
      kafka_security_profile: secure
      kafka_user: {user}
      kafka_group: {group}
      kafka_install_root: {root}/opt
      kafka_config_dir: {root}/etc
      kafka_data_dirs: [{root}/data]
      kafka_security_dir: {root}/controller
      kafka_client_files_dir: {root}/controller/clients
      kafka_server_properties:
        offsets.topic.replication.factor: 1
        transaction.state.log.replication.factor: 1
        transaction.state.log.min.isr: 1
        default.replication.factor: 1
        min.insync.replicas: 1
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: TLS material, credentials and client files (the role's tasks)
      ansible.builtin.include_role:
        name: kafka
        tasks_from: "{{{{ item }}}}"
        public: true
      loop: [tls.yml, clients.yml, client_files.yml]
    - name: Render server.properties with the role's template
      ansible.builtin.template:
        src: {repo}/roles/kafka/templates/etc/kafka/server.properties.j2
        dest: "{{{{ kafka_config_dir }}}}/server.properties"
        mode: "0640"
    - name: Format the storage (the role's task, with --add-scram)
      ansible.builtin.include_role:
        name: kafka
        tasks_from: storage.yml
"""


def _java(home: Path, *args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["java", "-Xmx256m", "-cp", f"{home}/libs/*", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = kafka_home()
    root = tmp_path_factory.mktemp("secure")
    (root / "opt").mkdir()
    (root / "opt" / "current").symlink_to(home)
    (root / "etc").mkdir()
    port, cport = free_port(), free_port()
    inventory = INVENTORY.format(python=sys.executable, port=port, cport=cport, root=root,
                                 user=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name)
    (root / "hosts.yml").write_text(inventory)
    (root / "play.yml").write_text(PLAYBOOK.format(repo=REPO))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    run = subprocess.run([str(ANSIBLE_PLAYBOOK), "-v", "--diff", "-i", str(root / "hosts.yml"),
                          str(root / "play.yml")], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    (root / "log4j2.properties").write_text(LOG4J2.format(log=root / "server.log"))

    def start() -> subprocess.Popen:
        log = open(root / "broker.log", "a")
        proc = subprocess.Popen(["java", "-Xmx384m", f"-Dlog4j2.configurationFile={root / 'log4j2.properties'}",
                                 "-cp", f"{home}/libs/*", "kafka.Kafka",
                                 str(root / "etc" / "server.properties")], stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc
            except OSError:
                assert proc.poll() is None, (root / "broker.log").read_text()[-4000:]
                time.sleep(1)
        proc.terminate()
        pytest.fail("the secure broker did not listen: " + (root / "broker.log").read_text()[-4000:])

    def restart() -> None:
        """Stop the node (SIGTERM, a clean shutdown) and start it again on the same storage."""
        c["proc"].terminate()
        c["proc"].wait(timeout=60)
        c["proc"] = start()

    c = {"root": root, "home": home, "port": port, "cport": cport, "play": run.stdout + run.stderr,
         "bootstrap": f"127.0.0.1:{port}", "proc": start(), "restart": restart}
    try:
        yield c
    finally:
        c["proc"].terminate()
        c["proc"].wait(timeout=60)


def describe_quotas(c: dict) -> str:
    """Kafka's own view of the client quotas (kafka-configs.sh: org.apache.kafka.tools.ConfigCommand) with the
    role's admin client file: users, client ids, and users with client ids."""
    out = []
    for types in (["users"], ["clients"], ["users", "clients"]):
        args = [a for t in types for a in ("--entity-type", t)]
        run = _java(c["home"], "org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", c["bootstrap"], "--command-config",
                    str(c["root"] / "etc" / "client" / "admin.properties"), "--describe", *args)
        assert run.returncode == 0, run.stdout + run.stderr
        out.append(run.stdout)
    return "".join(out)
