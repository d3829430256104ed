"""plugins/modules/kit_archive.py: the one archive fetch/verify implementation of the roles.

Pure parsing functions directly, and the module itself through ansible on localhost with real
files: a good local archive, a corrupt one (refused with the variable's name), a download from
a local HTTP server verified against a gpg-layout .sha512, and a wrong published checksum."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "modules"))

from kit_archive import parse_expected, parse_published  # noqa: E402

HEX = hashlib.sha512(b"x").hexdigest()


def test_published_checksum_layouts():
    assert parse_published(f"{HEX}  kafka_2.13-4.4.0.tgz\n") == HEX
    gpg = "kafka_2.13-4.4.0.tgz: " + " ".join(HEX[i:i + 8].upper() for i in range(0, 128, 8))
    gpg = gpg[:70] + "\n                      " + gpg[70:]
    assert parse_published(gpg) == HEX
    assert parse_published("") == ""
    assert parse_published("<html>not found</html>") == ""


def test_expected_checksum_forms():
    assert parse_expected("") is None
    assert parse_expected(f"sha512:{HEX}") == ("sha512", HEX)
    assert parse_expected(HEX.upper()) == ("sha512", HEX)
    with pytest.raises(ValueError, match="sha512:<128 hex digits>"):
        parse_expected("sha512:abc")
    with pytest.raises(ValueError):
        parse_expected("md5:" + "0" * 32)


def _run(tmp_path: Path, args: dict, check: bool = False) -> dict:
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "archive", "kit_archive": args, "register": "r"},
        {"name": "show", "ansible.builtin.debug": {"var": "r"}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LIBRARY=str(REPO / "plugins" / "modules"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}", str(play)]
    out = subprocess.run(cmd + (["--check"] if check else []), capture_output=True, text=True, env=env, timeout=120)
    result = json.loads(out.stdout)
    return result["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_local_archive_verified_and_corrupt_one_refused(tmp_path):
    archive = tmp_path / "kafka_2.13-9.9.9.tgz"
    archive.write_bytes(b"payload")
    (tmp_path / "kafka_2.13-9.9.9.tgz.sha512").write_text(hashlib.sha512(b"payload").hexdigest() + "  x\n")
    ok = _run(tmp_path, {"local_path": str(archive), "variable": "kafka_archive"})
    assert not ok.get("failed") and ok["path"] == str(archive) and ok["changed"] is False
    archive.write_bytes(b"payloaD")
    bad = _run(tmp_path, {"local_path": str(archive), "variable": "kafka_archive"})
    assert bad["failed"] and "kafka_archive_local_path=" in bad["msg"] and "does not match" in bad["msg"]
    missing = _run(tmp_path, {"local_path": str(tmp_path / "nope.tgz"), "variable": "zookeeper_archive"})
    assert missing["failed"] and "zookeeper_archive_local_path=" in missing["msg"] and "no such file" in missing["msg"]


def test_download_verified_against_published_gpg_checksum(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "k.tgz").write_bytes(b"archive bytes")
    digest = hashlib.sha512(b"archive bytes").hexdigest()
    (served / "k.tgz.sha512").write_text("k.tgz: " + " ".join(digest[i:i + 8].upper() for i in range(0, 128, 8)) + "\n")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/k.tgz"
    cache = tmp_path / "cache"
    try:
        dry = _run(tmp_path, {"url": url, "cache_dir": str(cache), "variable": "kafka_archive"}, check=True)
        assert dry["changed"] is True and not cache.exists()
        got = _run(tmp_path, {"url": url, "cache_dir": str(cache), "variable": "kafka_archive"})
        assert got["changed"] is True and Path(got["path"]).read_bytes() == b"archive bytes"
        again = _run(tmp_path, {"url": url, "cache_dir": str(cache), "variable": "kafka_archive"})
        assert again["changed"] is False
        wrong = _run(tmp_path, {"url": url, "cache_dir": str(tmp_path / "c2"), "variable": "kafka_archive",
                                "checksum": "sha512:" + HEX})
        assert wrong["failed"] and "not kept" in wrong["msg"]
        assert not (tmp_path / "c2" / "k.tgz").exists()
    finally:
        server.shutdown()
