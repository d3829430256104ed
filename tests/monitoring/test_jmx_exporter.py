"""The JMX exporter agent as the kafka and zookeeper roles install it, on real JVMs.

The roles' own tasks (tasks/jmx_exporter.yml) run through ansible-playbook on localhost into a
temporary directory: the jar from .cache/dist checked against the pinned sha256, copied, the
rules file rendered; a second run changes nothing; a wrong checksum fails naming the variable.
Then a real KRaft broker (tests/pyclient/_broker.py) and a real ZooKeeper (Kafka 3.9.2's libs)
start with the -javaagent option the roles write into kafka.env / zookeeper.env, and /metrics is
read for the series the alert rules and the dashboard use.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from render_role import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
JAR = REPO / ".cache" / "dist" / "jmx_prometheus_javaagent-1.0.1.jar"
RULES = REPO / "roles" / "monitoring" / "templates" / "etc" / "prometheus" / "rules" / "kafka-kit.rules.yml.j2"

pytestmark = pytest.mark.skipif(not JAR.exists(), reason="run tools/fetch-jmx-exporter (make deps)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _install(work: Path, role: str, extra: dict, env_template: str,
             more_tasks: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run <role>'s tasks/jmx_exporter.yml (and more_tasks) on localhost, then render its env
    file."""
    prefix = role
    inventory = {"all": {"hosts": {"node-1": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        f"{prefix}_jmx_exporter_install_dir": str(work / "opt"),
        f"{prefix}_config_dir": str(work / "etc"),
        f"{prefix}_jmx_exporter_local_path": str(JAR),
        f"{prefix}_user": "root", f"{prefix}_group": "root",
        **extra}}}}
    (work / "etc").mkdir(exist_ok=True)
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (work / "play.yml").write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {{name: {role}, tasks_from: jmx_exporter.yml, public: true}}
{{more}}    - ansible.builtin.template:
        src: {REPO}/roles/{role}/templates/etc/{role}/{env_template}.j2
        dest: {work}/etc/{env_template}
        mode: "0644"
""".replace("{more}", "".join(
        f"    - ansible.builtin.include_role: {{name: {role}, tasks_from: {t}, public: true}}\n"
        for t in more_tasks)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(work / "hosts.yml"), str(work / "play.yml")],
                          capture_output=True, text=True, env=env, timeout=300)


def _opts(env_file: Path, key: str) -> list[str]:
    line = next(l for l in env_file.read_text().splitlines() if l.startswith(f"{key}="))
    return shlex.split(line.split("=", 1)[1])


def _start_broker_with_agent(work: Path, wd: Path):
    """A real broker+controller (tests/pyclient/_broker.py) started with the -javaagent option
    the role wrote into work/etc/kafka.env."""
    import _broker

    agent = _opts(work / "etc" / "kafka.env", "KAFKA_OPTS")[0]
    popen = subprocess.Popen

    def with_agent(args, **kwargs):  # only the broker JVM, not the storage tool before it
        if isinstance(args, list) and "kafka.Kafka" in args:
            args = [args[0], agent, *args[1:]]
        return popen(args, **kwargs)

    _broker.subprocess.Popen = with_agent
    try:
        return _broker.start_broker(wd)
    finally:
        _broker.subprocess.Popen = popen


def _start_zookeeper_with_agent(work: Path) -> subprocess.Popen:
    """A one-member replicated ZooKeeper (standaloneEnabled=false) from Kafka 3.9.2's libs,
    started with the -javaagent option the role wrote into work/etc/zookeeper.env."""
    archive = REPO / ".cache" / "dist" / "kafka_2.13-3.9.2.tgz"
    if not archive.exists():
        pytest.skip("ZooKeeper runs from Kafka 3.9.2's libs: tools/build-kafka-dist 3.9.2")
    with tarfile.open(archive) as tar:
        tar.extractall(work / "dist", filter="data")
    data = work / "data"
    data.mkdir()
    (data / "myid").write_text("1\n")
    client, peer, election = _free_port(), _free_port(), _free_port()
    (work / "zoo.cfg").write_text(
        f"dataDir={data}\nclientPort={client}\nclientPortAddress=127.0.0.1\ntickTime=2000\ninitLimit=10\n"
        f"syncLimit=5\nstandaloneEnabled=false\nadmin.enableServer=false\n"
        f"server.1=127.0.0.1:{peer}:{election}\n")
    agent = _opts(work / "etc" / "zookeeper.env", "ZOOKEEPER_OPTS")
    return subprocess.Popen(
        ["java", "-Xmx128m", *agent, "-cp", f"{work}/dist/kafka_2.13-3.9.2/libs/*",
         "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(work / "zoo.cfg")],
        stdout=open(work / "zk.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _scrape(port: int, auth: tuple[str, str] | None = None, timeout: float = 60,
            scheme: str = "http", context=None) -> str:
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/metrics")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(request, timeout=10, context=context).read().decode()
        except urllib.error.HTTPError:
            raise
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _series(text: str) -> dict[str, float]:
    """'name{labels}' -> value of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _names(series: dict[str, float]) -> set[str]:
    return {k.split("{", 1)[0] for k in series}


def _recap_changed(stdout: str) -> int:
    return int(re.search(r"changed=(\d+)", stdout).group(1))


@pytest.fixture(scope="module")
def kafka_install(tmp_path_factory):
    work = tmp_path_factory.mktemp("jmx-kafka")
    port = _free_port()
    # HTTP with the plaintext profile; HTTPS (the secure default) is tls_broker's.
    extra = {"kafka_jmx_exporter_port": port, "kafka_jmx_exporter_bind_address": "127.0.0.1", "kafka_node_id": 1,
             "kafka_security_profile": "plaintext"}
    first = _install(work, "kafka", extra, "kafka.env")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    second = _install(work, "kafka", extra, "kafka.env")
    return work, port, first, second


def test_role_installs_the_pinned_jar_and_the_rules(kafka_install):
    work, port, first, _ = kafka_install
    jar = work / "opt" / "jmx_prometheus_javaagent-1.0.1.jar"
    assert jar.read_bytes() == JAR.read_bytes()
    rules = yaml.safe_load((work / "etc" / "jmx_exporter.yml").read_text())
    assert rules["lowercaseOutputName"] is True and rules["rules"]
    assert "httpServer" not in rules
    opts = _opts(work / "etc" / "kafka.env", "KAFKA_OPTS")
    assert opts == [f"-javaagent:{jar}=127.0.0.1:{port}:{work / 'etc' / 'jmx_exporter.yml'}"]


def test_kafka_env_carries_the_roles_default_jvm_flags(kafka_install):
    """The production JIT and GC (G1, C2) the role renders by default; the Molecule scenarios
    override them with the test JVM (README, "Tests"), so this is where the default is checked."""
    work, _, _, _ = kafka_install
    defaults = yaml.safe_load((REPO / "roles" / "kafka" / "defaults" / "main.yml").read_text())
    opts = _opts(work / "etc" / "kafka.env", "KAFKA_JVM_PERFORMANCE_OPTS")
    assert opts == defaults["kafka_jvm_performance_opts"].split()
    assert "-XX:+UseG1GC" in opts and not any(o.startswith("-XX:TieredStopAtLevel") for o in opts)


def test_second_run_changes_nothing(kafka_install):
    _, _, _, second = kafka_install
    assert second.returncode == 0, second.stdout[-3000:]
    assert _recap_changed(second.stdout) == 0, second.stdout[-3000:]


def test_disabled_agent_leaves_kafka_opts_alone(tmp_path):
    (tmp_path / "etc").mkdir()
    result = _install(tmp_path, "kafka", {"kafka_jmx_exporter_enabled": False, "kafka_node_id": 1,
                                          "kafka_jvm_extra_opts": "-Dfoo=bar"}, "kafka.env")
    assert result.returncode == 0, result.stdout[-3000:]
    assert _opts(tmp_path / "etc" / "kafka.env", "KAFKA_OPTS") == ["-Dfoo=bar"]


def test_wrong_checksum_fails_naming_the_variable(tmp_path):
    result = _install(tmp_path, "kafka", {"kafka_node_id": 1, "kafka_jmx_exporter_checksum": "sha256:" + "0" * 64},
                      "kafka.env")
    assert result.returncode != 0
    assert "kafka_jmx_exporter_local_path=" in result.stdout
    assert "is not kafka_jmx_exporter_checksum" in result.stdout
    assert not (tmp_path / "opt" / "jmx_prometheus_javaagent-1.0.1.jar").exists()


@pytest.fixture(scope="module")
def broker_metrics(kafka_install, tmp_path_factory):
    """A real broker+controller started with the role's KAFKA_OPTS; its /metrics text."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    work, port, _, _ = kafka_install
    broker = _start_broker_with_agent(work, tmp_path_factory.mktemp("jmx-broker"))
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("metrics-check", 3, 1)])["metrics-check"].result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for _ in range(200):
            producer.produce("metrics-check", b"x" * 100)
        producer.flush(30)
        yield _series(_scrape(port))
    finally:
        broker.stop()


def test_broker_series(broker_metrics):
    s = broker_metrics
    assert s["kafka_server_replicamanager_underreplicatedpartitions"] == 0
    assert s["kafka_server_replicamanager_underminisrpartitioncount"] == 0
    assert s["kafka_controller_kafkacontroller_activecontrollercount"] == 1
    assert s["kafka_controller_kafkacontroller_offlinepartitionscount"] == 0
    assert s["kafka_log_logmanager_offlinelogdirectorycount"] == 0
    # The quorum's current leader is this node (node.id 1), in state leader.
    assert s["kafka_server_raft_metrics_current_leader"] == 1
    assert s['kafka_server_raft_metrics_current_state{state="leader"}'] == 1
    assert 0 <= s["kafka_network_socketserver_networkprocessoravgidlepercent"] <= 1
    assert 0 <= s["kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent"] <= 1
    assert s['kafka_server_brokertopicmetrics_messagesin_total{topic="metrics-check"}'] >= 200
    assert "kafka_server_replicamanager_isrshrinks_total" in s
    assert s["process_start_time_seconds"] > 0
    assert any(k.startswith("jvm_memory_used_bytes") for k in s)


def test_every_kafka_series_of_the_alert_rules_is_exported(broker_metrics):
    """A rule on a series the agent never exports would never fire: check each name."""
    names = _names(broker_metrics)
    text = RULES.read_text()
    used = set(re.findall(r"(?<![.\w])(kafka_[a-z0-9_]+)\b", text))
    used = {n for n in used if not n.startswith("kafka_kit")}
    assert used, "the rules use kafka_* series"
    assert used <= names, sorted(used - names)


@pytest.fixture(scope="module")
def zookeeper_metrics(tmp_path_factory):
    """A one-member replicated ZooKeeper (standaloneEnabled=false) with the role's agent and
    basic authentication on /metrics."""
    work = tmp_path_factory.mktemp("jmx-zk")
    port = _free_port()
    auth = ("prometheus", "s3cret pass")
    result = _install(work, "zookeeper", {
        "zookeeper_jmx_exporter_port": port, "zookeeper_jmx_exporter_bind_address": "127.0.0.1",
        "zookeeper_id": 1, "kafka_security_profile": "plaintext",
        "zookeeper_jmx_exporter_basic_auth_username": auth[0],
        "zookeeper_jmx_exporter_basic_auth_password": auth[1]}, "zookeeper.env")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert oct((work / "etc" / "jmx_exporter.yml").stat().st_mode & 0o777) == "0o600"
    proc = _start_zookeeper_with_agent(work)
    try:
        deadline = time.monotonic() + 60
        while True:
            text = _scrape(port, auth)
            if ("zookeeper_role" in text and "zookeeper_datatree_nodecount" in text) or time.monotonic() > deadline:
                break
            time.sleep(1)
        try:
            _scrape(port, None, timeout=5)
            unauthenticated = 200
        except urllib.error.HTTPError as err:
            unauthenticated = err.code
        yield _series(text), unauthenticated
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_zookeeper_series_behind_basic_auth(zookeeper_metrics):
    s, unauthenticated = zookeeper_metrics
    assert unauthenticated == 401
    assert s['zookeeper_role{role="Leader"}'] == 1
    assert s["zookeeper_quorumsize"] == 1
    assert s["zookeeper_outstandingrequests"] == 0
    assert s["zookeeper_datatree_nodecount"] >= 1
    assert "zookeeper_avgrequestlatency" in s


def test_every_kafka_series_of_the_dashboard_is_exported(broker_metrics):
    from test_dashboard import dashboard_exprs, series_names

    used = {n for _, e in dashboard_exprs() for n in series_names(e)
            if n.startswith(("kafka_", "jvm_", "process_"))}
    assert len(used) > 10
    assert used <= _names(broker_metrics), sorted(used - _names(broker_metrics))


def test_every_zookeeper_series_of_rules_and_dashboard_is_exported(zookeeper_metrics):
    from test_dashboard import dashboard_exprs, series_names

    used = {n for _, e in dashboard_exprs() for n in series_names(e) if n.startswith("zookeeper_")}
    used |= set(re.findall(r"(?<![.\w])(zookeeper_[a-z0-9_]+)\b", RULES.read_text()))  # not __for.zookeeper_*
    assert used, "rules and dashboard read zookeeper_* series"
    assert used <= _names(zookeeper_metrics[0]), sorted(used - _names(zookeeper_metrics[0]))


def _issue(work: Path, name: str, ca: str = "ca") -> Path:
    """A CA (made once) and a certificate for 127.0.0.1 signed by it, as tasks/tls.yml writes
    them on a host: the PEM keystore (key, certificate, CA) and the PEM truststore."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)

    if not (work / f"{ca}.pem").exists():
        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
            f"{ca}.pem", "-days", "2", "-subj", "/CN=kafka-kit test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", "/CN=node-1")
    (work / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", "san.ext")
    tls = work / "etc" / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    (tls / "keystore.pem").write_text("".join((work / f).read_text()
                                              for f in (f"{name}.key", f"{name}.pem", f"{ca}.pem")))
    (tls / "truststore.pem").write_text((work / f"{ca}.pem").read_text())
    return work / f"{ca}.pem"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """The secure profile's HTTPS on /metrics: the role builds the agent's PKCS#12 keystore from
    the PEM keystore; a rerun changes nothing, a renewed certificate rebuilds it; a real broker
    serves /metrics over HTTPS only."""

    work = tmp_path_factory.mktemp("jmx-tls")
    (work / "etc").mkdir()
    ca = _issue(work, "host")
    port = _free_port()
    extra = {"kafka_jmx_exporter_port": port, "kafka_jmx_exporter_bind_address": "127.0.0.1",
             "kafka_node_id": 1, "kafka_security_profile": "secure",
             "kafka_tls_dir": str(work / "etc" / "tls")}
    runs = [_install(work, "kafka", extra, "kafka.env", ("jmx_exporter_tls.yml",))]
    assert runs[0].returncode == 0, runs[0].stdout[-3000:] + runs[0].stderr[-2000:]
    runs.append(_install(work, "kafka", extra, "kafka.env", ("jmx_exporter_tls.yml",)))
    p12 = work / "etc" / "tls" / "jmx_exporter.p12"
    first = p12.read_bytes()
    broker = _start_broker_with_agent(work, tmp_path_factory.mktemp("jmx-tls-broker"))
    try:
        import ssl as _ssl
        context = _ssl.create_default_context(cafile=str(ca))   # verifies chain and 127.0.0.1
        text = _scrape(port, scheme="https", context=context)
        try:
            _scrape(port, timeout=5)
            plain = "served"
        except (OSError, urllib.error.HTTPError) as err:
            plain = type(err).__name__
    finally:
        broker.stop()
    _issue(work, "renewed")                                    # the certificate renewed
    runs.append(_install(work, "kafka", extra, "kafka.env", ("jmx_exporter_tls.yml",)))
    yield {"runs": runs, "series": _series(text), "plain": plain, "p12": p12, "first": first,
           "work": work}


def test_metrics_over_https_only_with_the_secure_profile(tls_broker):
    s = tls_broker["series"]
    assert s["kafka_controller_kafkacontroller_activecontrollercount"] == 1
    assert tls_broker["plain"] != "served"                     # plain HTTP gets no metrics
    rules = tls_broker["work"] / "etc" / "jmx_exporter.yml"
    assert oct(rules.stat().st_mode & 0o777) == "0o600"      # it holds the keystore password
    assert oct(tls_broker["p12"].stat().st_mode & 0o777) == "0o600"


def test_metrics_keystore_rebuilt_only_when_the_certificate_changes(tls_broker):
    first, second, renewed = tls_broker["runs"]
    assert _recap_changed(second.stdout) == 0, second.stdout[-2000:]
    assert renewed.returncode == 0, renewed.stdout[-2000:]
    assert _recap_changed(renewed.stdout) >= 1
    assert tls_broker["p12"].read_bytes() != tls_broker["first"]


def test_https_needs_the_secure_profile(tmp_path):
    # one combined host (the group variables name the inventory's only group)
    result = _install(tmp_path, "kafka", {"kafka_node_id": 1, "kafka_jmx_exporter_tls": True,
                                          "kafka_security_profile": "plaintext",
                                          "kafka_broker_group": "all", "kafka_controller_group": "all"},
                      "kafka.env", ("assert.yml",))
    assert result.returncode != 0
    assert "kafka_jmx_exporter_tls is on" in result.stdout and "kafka_security_profile" in result.stdout


def _prometheus_scrapes_https(work: Path, port: int, ca: Path):
    """Run Debian's Prometheus against the agent on 127.0.0.1:port with the zookeeper job the
    monitoring role writes for HTTPS members; (target health, last error, value of
    zookeeper_role{role="Leader"}) once scraped, None without a prometheus binary."""
    import json
    import shutil

    binary = shutil.which("prometheus")
    if binary is None:
        return None
    web = _free_port()
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": "zookeeper", "scheme": "https", "tls_config": {"ca_file": str(ca)},
                                  "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                                      "labels": {"instance": "node-1", "myid": "1"}}]}]}
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([binary, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
                             f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=open(work / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        health, error, role = "unknown", "", ""
        while time.monotonic() < deadline:
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/targets", timeout=5))
                active = targets["data"]["activeTargets"]
                if active:
                    health, error = active[0]["health"], active[0].get("lastError", "")
                query = urllib.parse.quote('zookeeper_role{role="Leader",job="zookeeper"}')
                result = json.load(urllib.request.urlopen(
                    f"http://127.0.0.1:{web}/api/v1/query?query={query}", timeout=5))["data"]["result"]
                if result:
                    role = result[0]["value"][1]
                if health == "up" and role:
                    break
            except OSError:
                pass
            time.sleep(1)
        return health, error, role
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@pytest.fixture(scope="module")
def tls_zookeeper(tmp_path_factory):
    """HTTPS on a ZooKeeper member's /metrics, as the secure profile turns it on: the role issues
    the member's certificate from the kit CA on the controller (made there by the kafka role's
    tasks/tls_ca.yml), builds the PKCS#12 keystore there and installs it; a rerun changes
    nothing; a renewed certificate rebuilds the keystore; a real ZooKeeper serves /metrics over
    HTTPS only, verified against the kit CA for 127.0.0.1."""
    work = tmp_path_factory.mktemp("jmx-zk-tls")
    port = _free_port()
    security = work / "kit"
    extra = {"zookeeper_jmx_exporter_port": port, "zookeeper_jmx_exporter_bind_address": "127.0.0.1",
             "zookeeper_id": 1, "kafka_security_profile": "secure",
             "zookeeper_jmx_exporter_tls_security_dir": str(security)}
    runs = [_install(work, "zookeeper", extra, "zookeeper.env", ("jmx_exporter_tls.yml",))]
    assert runs[0].returncode == 0, runs[0].stdout[-3000:] + runs[0].stderr[-2000:]
    runs.append(_install(work, "zookeeper", extra, "zookeeper.env", ("jmx_exporter_tls.yml",)))
    p12 = work / "etc" / "jmx_exporter.p12"
    first = p12.read_bytes()
    proc = _start_zookeeper_with_agent(work)
    try:
        import ssl as _ssl
        context = _ssl.create_default_context(cafile=str(security / "ca" / "ca.pem"))
        deadline = time.monotonic() + 60
        while True:
            text = _scrape(port, scheme="https", context=context)
            if "zookeeper_role" in text or time.monotonic() > deadline:
                break
            time.sleep(1)
        try:
            _scrape(port, timeout=5)
            plain = "served"
        except (OSError, urllib.error.HTTPError) as err:
            plain = type(err).__name__
        prometheus = _prometheus_scrapes_https(work, port, security / "ca" / "ca.pem")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    (security / "hosts" / "node-1" / "zookeeper-metrics-cert.pem").unlink()   # renewed: signed anew
    runs.append(_install(work, "zookeeper", extra, "zookeeper.env", ("jmx_exporter_tls.yml",)))
    yield {"runs": runs, "series": _series(text), "plain": plain, "p12": p12, "first": first,
           "work": work, "security": security, "prometheus": prometheus}


def test_zookeeper_metrics_over_https_with_the_secure_profile(tls_zookeeper):
    s = tls_zookeeper["series"]
    assert s['zookeeper_role{role="Leader"}'] == 1
    assert tls_zookeeper["plain"] != "served"                   # plain HTTP gets no metrics
    rules = tls_zookeeper["work"] / "etc" / "jmx_exporter.yml"
    assert oct(rules.stat().st_mode & 0o777) == "0o600"       # it holds the keystore password
    assert oct(tls_zookeeper["p12"].stat().st_mode & 0o777) == "0o600"
    assert oct((tls_zookeeper["security"] / "hosts" / "node-1" / "zookeeper-metrics-key.pem").stat().st_mode
               & 0o777) == "0o600"


def test_prometheus_scrapes_the_https_agent_with_the_published_ca(tls_zookeeper):
    """A real Prometheus with the zookeeper job as the monitoring role writes it for HTTPS
    members (scheme https, tls_config.ca_file: the CA the member publishes): target up, the
    member's series stored."""
    if tls_zookeeper["prometheus"] is None:
        pytest.skip("prometheus: apt-get install prometheus (make deps)")
    health, error, role = tls_zookeeper["prometheus"]
    assert health == "up", error
    assert role == "1"


def test_zookeeper_metrics_keystore_changes_only_with_the_certificate(tls_zookeeper):
    first, second, renewed = tls_zookeeper["runs"]
    assert _recap_changed(second.stdout) == 0, second.stdout[-3000:]
    assert renewed.returncode == 0, renewed.stdout[-2000:]
    assert _recap_changed(renewed.stdout) >= 1
    assert tls_zookeeper["p12"].read_bytes() != tls_zookeeper["first"]


def test_zookeeper_https_with_own_ca_needs_its_files(tmp_path):
    result = _install(tmp_path, "zookeeper", {"zookeeper_id": 1, "zookeeper_jmx_exporter_tls": True,
                                              "zookeeper_hosts_group": "all",
                                              "zookeeper_jmx_exporter_tls_ca_mode": "user"},
                      "zookeeper.env", ("assert.yml",))
    assert result.returncode != 0
    assert "zookeeper_jmx_exporter_tls_user_ca_file" in result.stdout, result.stdout[-2000:]


def test_agent_benchmark_renders_the_roles_rules(tmp_path):
    """benchmarks/bench_jmx_agent.py runs the agent with the kafka role's rules template rendered
    outside Ansible: the template's variables and filters must all be given there (a filter
    added to the template once broke the benchmark unnoticed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_jmx_agent", REPO / "benchmarks" / "bench_jmx_agent.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.render_rules(tmp_path / "rules.yml")
    rules = yaml.safe_load((tmp_path / "rules.yml").read_text())
    assert "httpServer" not in rules and len(rules["rules"]) > 10


def test_zookeeper_https_with_no_security_dir_set(tmp_path):
    """With neither kafka_security_dir nor zookeeper_jmx_exporter_tls_security_dir in the
    inventory (the zookeeper scenario, a user's first inventory), the member's /metrics keystore
    is issued from the kit CA beside the inventory (the kafka role's default dir). This once
    failed with Ansible's "Recursive loop detected in template" (the include passed
    kafka_security_dir defined by itself)."""
    result = _install(tmp_path, "zookeeper", {"zookeeper_id": 1, "kafka_security_profile": "secure",
                                              "zookeeper_jmx_exporter_bind_address": "127.0.0.1"},
                      "zookeeper.env", ("jmx_exporter_tls.yml",))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (tmp_path / ".kafka-kit" / "ca" / "ca.pem").is_file()
    assert (tmp_path / ".kafka-kit" / "hosts" / "node-1").is_dir()
    assert (tmp_path / "etc" / "jmx_exporter.p12").is_file()
