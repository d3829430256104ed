"""The refusals of a kit CA rotation step that come before any host is touched
(roles/kafka/tasks/tls_ca_rotation.yml, run through ansible-playbook with the local connection
and a temporary kafka_security_dir): with your own CA, under --limit, `start` after `switch`,
`switch` before `start`, `finish` before `switch`. Each names the variable and what to run.
Also the controller's side of `start` and of `finish` stopped after each of their steps and
rerun, and finish's refusal while a host certificate is the old CA's. The rotation itself, and its gate on pending
restarts, run on the lab
(tests/security/test_lab_ca_rotation.py, make lab-rotation)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).parent))
from _certs import make_ca, make_leaf  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAY = """
- hosts: kafka_controller:kafka_broker
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: kafka
        tasks_from: tls_ca_rotation.yml
"""


def _write_play(tmp: Path, sec: Path, **extra: str) -> None:
    """hosts.yml (kr1 and kr2, controllers and brokers, this machine over the local connection,
    kafka_security_dir ``sec``) and play.yml (the rotation's task file) in ``tmp``."""
    inv = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "kafka_security_dir": str(sec), **extra},
                   "children": {"kafka_controller": {"hosts": {"kr1": None, "kr2": None}},
                                "kafka_broker": {"hosts": {"kr1": None, "kr2": None}}}}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp / "play.yml").write_text(PLAY)


def _systemctl_stub(tmp: Path) -> Path:
    """A bin dir whose systemctl answers "inactive": the pending-restart check asks it, and no
    Kafka service runs on this machine."""
    shim = tmp / "bin"
    shim.mkdir()
    (shim / "systemctl").write_text("#!/bin/sh\necho ActiveState=inactive\n")
    (shim / "systemctl").chmod(0o755)
    return shim


def _start_step(run: Path, step: str, shim: Path) -> subprocess.Popen:
    """ansible-playbook of rotation step ``step`` on run/sec, the systemctl stub first on PATH;
    output (stdout and stderr) on the process's stdout."""
    _write_play(run, run / "sec")
    return subprocess.Popen(
        [str(ANSIBLE_PLAYBOOK), "-i", str(run / "hosts.yml"), str(run / "play.yml"),
         "-e", f"kafka_tls_ca_rotation={step}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                 ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_NOCOLOR="1",
                 PATH=f"{shim}:{os.environ['PATH']}"))


def _run(tmp: Path, phase: str | None, *args: str, **extra: str) -> str:
    sec = tmp / "sec"
    (sec / "ca").mkdir(parents=True, exist_ok=True)
    if phase:
        (sec / "ca" / "rotation.json").write_text(json.dumps({"phase": phase}))
    _write_play(tmp, sec, **extra)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_NOCOLOR="1")
    r = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml"), *args],
                       capture_output=True, text=True, env=env, timeout=300)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode != 0, out[-3000:]
    return out


@pytest.mark.parametrize("phase, step, args, extra, message", [
    (None, "start", [], {"kafka_tls_ca_mode": "user"}, "the kit CA only (kafka_tls_ca_mode kit)"),
    (None, "start", ["--limit", "kr1"], {}, "run it over every Kafka host, without --limit (missing: kr2)"),
    ("switched", "start", [], {}, "the host certificates were switched already; run kafka_tls_ca_rotation=finish"),
    (None, "switch", [], {}, "no rotation was started; run kafka_tls_ca_rotation=start first"),
    ("started", "finish", [], {}, "the host certificates are still those of the old CA; run kafka_tls_ca_rotation=switch first"),
])
def test_rotation_step_refused(tmp_path: Path, phase, step, args, extra, message) -> None:
    out = _run(tmp_path, phase, *args, "-e", f"kafka_tls_ca_rotation={step}", **extra)
    assert f"kafka_tls_ca_rotation={step}: {message}" in out, out[-3000:]
    assert not (tmp_path / "sec" / "ca" / "next.key").exists()  # refused before any step


# -- finish stopped at any point, then rerun ------------------------------------------------

def _removal_order() -> list[str]:
    """The files finish removes, in the order the role removes them (read from the role)."""
    tasks = yaml.safe_load((REPO / "roles/kafka/tasks/tls_ca_rotation.yml").read_text())
    for t in tasks:
        for sub in t.get("block", []):
            if sub.get("name", "").startswith("Finish, remove the next CA"):
                return list(sub["loop"])
    raise AssertionError("no removal task in tls_ca_rotation.yml")


def test_finish_stopped_at_any_point_is_rerun_to_its_end(tmp_path: Path) -> None:
    """finish on the controller: the old CA copied to retired/ (pem, key), the next CA copied
    over ca.* (key, pem), then the removals in the role's own order. Stopped after each of
    these steps (and before the first), a rerun of finish must end with the next CA as ca.*,
    the OLD CA in retired/, no next.* and no rotation state, and trust.pem the new CA alone.
    Found two defects: a rerun overwrote the retired copy with the new CA, and a stop after
    next.key's removal made the rerun fail. The hosts are this machine through the local
    connection; the pending-restart check asks systemctl, which a stub on PATH answers
    "inactive" (there is no Kafka service here): the real hosts' side runs on the lab
    (make lab-rotation)."""
    old_pem, old_key, _, _ = make_ca("old CA", 2)
    new_pem, new_key, nk, nc = make_ca("next CA", 1)
    stamp = nc.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ")  # type: ignore[attr-defined]
    leaf = make_leaf("kr", nk, nc)
    steps = ["retire pem", "retire key", "key", "pem"] + [f"rm {f}" for f in _removal_order()]
    shim = _systemctl_stub(tmp_path)
    runs = []
    for stop in range(len(steps) + 1):
        run = tmp_path / f"stop{stop}"
        cad = run / "sec" / "ca"
        (cad / "retired").mkdir(parents=True)
        for h in ("kr1", "kr2"):
            (run / "sec" / "hosts" / h).mkdir(parents=True)
            (run / "sec" / "hosts" / h / "cert.pem").write_bytes(leaf)
        files = {"ca.pem": old_pem, "ca.key": old_key, "next.pem": new_pem, "next.key": new_key,
                 "rotation.json": json.dumps({"phase": "switched"}).encode()}
        for step in steps[:stop]:  # what the stopped finish had done
            if step == "retire pem":
                (cad / "retired" / f"{stamp}-ca.pem").write_bytes(old_pem)
            elif step == "retire key":
                (cad / "retired" / f"{stamp}-ca.key").write_bytes(old_key)
            elif step in ("key", "pem"):
                files[f"ca.{step}"] = files[f"next.{step}"]
            else:
                files.pop(step[3:])
        for n, b in files.items():
            (cad / n).write_bytes(b)
        runs.append((stop, cad, _start_step(run, "finish", shim)))
    for stop, cad, proc in runs:  # the reruns run side by side: one each
        out, _ = proc.communicate(timeout=600)
        where = f"finish stopped after {steps[:stop] or 'nothing'}, rerun"
        assert proc.returncode == 0, f"{where}: failed\n{out[-3000:]}"
        assert (cad / "ca.pem").read_bytes() == new_pem and (cad / "ca.key").read_bytes() == new_key, where
        assert (cad / "retired" / f"{stamp}-ca.pem").read_bytes() == old_pem, \
            f"{where}: the retired copy is not the old CA"
        assert (cad / "retired" / f"{stamp}-ca.key").read_bytes() == old_key, where
        left = [n for n in ("next.pem", "next.key", "rotation.json") if (cad / n).exists()]
        assert not left, f"{where}: {left} left"
        assert (cad / "trust.pem").read_text().strip() == new_pem.decode().strip(), where


def test_finish_refused_while_a_host_certificate_is_the_old_cas(tmp_path: Path) -> None:
    """finish's gate on the certificates: a host whose certificate the old CA issued (a switch
    that did not reach it) stops finish before it touches the controller's CA files, naming that
    host and only it, and what to run."""
    old_pem, old_key, ok, oc = make_ca("old CA", 2)
    new_pem, new_key, nk, nc = make_ca("next CA", 1)
    shim = _systemctl_stub(tmp_path)
    sec = tmp_path / "sec"
    cad = sec / "ca"
    cad.mkdir(parents=True)
    for h, leaf in (("kr1", make_leaf("kr1", nk, nc)), ("kr2", make_leaf("kr2", ok, oc))):
        (sec / "hosts" / h).mkdir(parents=True)
        (sec / "hosts" / h / "cert.pem").write_bytes(leaf)
    files = {"ca.pem": old_pem, "ca.key": old_key, "next.pem": new_pem, "next.key": new_key,
             "rotation.json": json.dumps({"phase": "switched"}).encode()}
    for n, b in files.items():
        (cad / n).write_bytes(b)
    proc = _start_step(tmp_path, "finish", shim)
    out = " ".join(proc.communicate(timeout=300)[0].split())
    assert proc.returncode != 0, out[-3000:]
    assert ("kafka_tls_ca_rotation=finish: the certificates of kr2 are not issued by the next CA; "
            "rerun kafka_tls_ca_rotation=switch, then finish.") in out, out[-3000:]
    # Nothing of finish happened on the controller.
    assert {p.name: p.read_bytes() for p in cad.iterdir() if p.is_file()} == files
    assert not (cad / "retired").exists()


def test_start_stopped_at_any_point_is_rerun_to_its_end(tmp_path: Path) -> None:
    """start on the controller: the next CA's key, then its self-signed certificate, then the
    state. Stopped before the key, after it, and after the certificate (before the state), a
    rerun of start must end with a next CA whose certificate is its key's, the state `started`,
    the old CA untouched, and trust.pem holding both CAs (the hosts' side of start is the same
    gated roll as switch's, run on the lab)."""
    old_pem, old_key, _, _ = make_ca("old CA", 2)
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)  # as the role makes it
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    name = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "kafka-kit CA 2026-12-08T05:00:00Z")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert_pem = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(cx509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    shim = _systemctl_stub(tmp_path)
    runs = []
    for stop, files in enumerate([{}, {"next.key": key_pem}, {"next.key": key_pem, "next.pem": cert_pem}]):
        run = tmp_path / f"stop{stop}"
        cad = run / "sec" / "ca"
        cad.mkdir(parents=True)
        for n, b in {"ca.pem": old_pem, "ca.key": old_key, **files}.items():
            (cad / n).write_bytes(b)
        runs.append((stop, files, cad, _start_step(run, "start", shim)))
    for stop, files, cad, proc in runs:
        out, _ = proc.communicate(timeout=600)
        where = f"start stopped after {sorted(files) or 'nothing'}, rerun"
        assert proc.returncode == 0, f"{where}: failed\n{out[-3000:]}"
        assert json.loads((cad / "rotation.json").read_text()) == {"phase": "started"}, where
        assert (cad / "ca.pem").read_bytes() == old_pem and (cad / "ca.key").read_bytes() == old_key, where
        nxt = cx509.load_pem_x509_certificate((cad / "next.pem").read_bytes())
        nkey = serialization.load_pem_private_key((cad / "next.key").read_bytes(), None)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        assert nxt.public_key().public_bytes(*spki) == nkey.public_key().public_bytes(*spki), \
            f"{where}: next.pem is not next.key's certificate"
        assert nxt.subject.rfc4514_string().startswith("CN=kafka-kit CA "), where
        for n, b in files.items():  # what the stopped start had made is kept, not made again
            assert (cad / n).read_bytes() == b, f"{where}: {n} was made again"
        trust = (cad / "trust.pem").read_text()
        assert old_pem.decode().strip() in trust and (cad / "next.pem").read_text().strip() in trust, where
