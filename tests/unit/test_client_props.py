"""Kafka client properties files: Java properties parsing and the translation of Java-only
client keys for each backend (pyclient.client_props, pyclient.config.load_client_properties)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from pyclient.client_props import ENV, client_properties, for_backend, parse_jaas, parse_properties
from pyclient.config import PRODUCER_DEFAULTS, load_client_properties, merged

sys.path.insert(0, str(Path(__file__).parent))
from _certs import make_ca  # noqa: E402

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_java_properties_syntax() -> None:
    text = ("# comment\n! also a comment\n\n"
            "a=1\n"
            "b : 2\n"
            "c 3\n"
            "  d=  spaced value  \n"
            "e=line one \\\n    continued\n"
            "f=tab\\there\\u00e9\n"
            "g\\=key=with escaped equals\n"
            "h=\n"
            "i\n"
            "a=last wins\n"
            "path=C:\\\\dir\\\\file\n")
    assert parse_properties(text) == {
        "a": "last wins", "b": "2", "c": "3", "d": "spaced value  ", "e": "line one continued",
        "f": "tab\there\u00e9", "g=key": "with escaped equals", "h": "", "i": "",
        "path": "C:\\dir\\file"}


def test_bad_unicode_escape_names_the_file() -> None:
    with pytest.raises(ValueError, match=r"f.properties: entry 1: malformed \\uXXXX"):
        parse_properties("x=\\u12g4\n", "f.properties")


def test_properties_round_trip_random_values() -> None:
    """Seeded property test: values written with Java escaping parse back exactly."""
    rnd = random.Random(13)
    alphabet = "abc =:#!\\\t\u00e9\u4e2d\"'"
    for _ in range(300):
        props = {f"k{i}.{rnd.choice('xyz')}": "".join(rnd.choice(alphabet)
                                                      for _ in range(rnd.randint(0, 12)))
                 for i in range(rnd.randint(1, 6))}

        def esc(s: str, key: bool) -> str:
            out = s.replace("\\", "\\\\").replace("\t", "\\t")
            for c in "=:#!" + (" " if key else ""):
                out = out.replace(c, "\\" + c)
            return out[:1].replace(" ", "\\ ") + out[1:] if not key else out

        text = "".join(f"{esc(k, True)}={esc(v, False)}\n" for k, v in props.items())
        assert parse_properties(text) == props, text


def test_jaas_scram_and_plain() -> None:
    assert parse_jaas(f'{SCRAM} required username="alice" password="s3cr;et\\"q";') == (
        SCRAM, {"username": "alice", "password": 's3cr;et"q'})
    assert parse_jaas(f"{PLAIN} required username=bob password=pw;")[1] == {
        "username": "bob", "password": "pw"}
    with pytest.raises(ValueError, match="OAuthBearerLoginModule is not supported"):
        parse_jaas("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;")
    with pytest.raises(ValueError, match="needs password"):
        parse_jaas(f'{SCRAM} required username="alice";')
    with pytest.raises(ValueError, match=r"password=\*\*\*") as e:
        parse_jaas('username="a" password="topsecret"')
    assert "topsecret" not in str(e.value)


def _ca_pem() -> str:
    """A real self-signed CA certificate (librdkafka parses the file at client creation)."""
    return make_ca("test CA", days=1)[0].decode()


def _secure(tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_text(_ca_pem())
    return {"bootstrap.servers": "b1:9093", "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": f'{SCRAM} required username="ingest" password="pw";',
            "ssl.truststore.location": str(ca), "ssl.truststore.type": "PEM",
            "ssl.endpoint.identification.algorithm": "https"}


def test_translation_for_confluent(tmp_path: Path) -> None:
    out = for_backend(_secure(tmp_path), "confluent")
    assert out == {"bootstrap.servers": "b1:9093", "security.protocol": "SASL_SSL",
                   "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "ingest",
                   "sasl.password": "pw", "ssl.ca.location": str(tmp_path / "ca.pem"),
                   "ssl.endpoint.identification.algorithm": "https"}
    # librdkafka accepts every key of the result (client creation parses them all)
    import confluent_kafka as ck
    ck.Producer(out).flush(0)


def test_translation_for_kafka_python(tmp_path: Path) -> None:
    out = for_backend({**_secure(tmp_path), "ssl.endpoint.identification.algorithm": "",
                       "security.protocol": "sasl_ssl"}, "kafka-python")
    assert out == {"bootstrap.servers": "b1:9093", "security.protocol": "SASL_SSL",
                   "sasl.mechanism": "SCRAM-SHA-512", "sasl.plain.username": "ingest",
                   "sasl.plain.password": "pw", "ssl.cafile": str(tmp_path / "ca.pem"),
                   "ssl.check.hostname": False}
    # every key maps onto a kafka-python argument (translate raises for unknown ones)
    import kafka

    from pyclient.backends.kafkapython import translate
    args = translate(out, kafka.KafkaProducer.DEFAULT_CONFIG)
    assert args["sasl_plain_username"] == "ingest" and args["ssl_check_hostname"] is False


def test_hostname_verification_off_and_librdkafka_keys(tmp_path: Path) -> None:
    s = {"ssl.endpoint.identification.algorithm": "", "sasl.username": "u", "sasl.password": "p",
         "ssl.ca.location": "/ca.pem", "sasl.mechanisms": "PLAIN"}
    assert for_backend(s, "confluent") == {"ssl.endpoint.identification.algorithm": "none",
                                           "sasl.username": "u", "sasl.password": "p",
                                           "ssl.ca.location": "/ca.pem", "sasl.mechanism": "PLAIN"}
    assert for_backend(s, "kafka-python") == {"ssl.check.hostname": False,
                                              "sasl.plain.username": "u",
                                              "sasl.plain.password": "p", "ssl.cafile": "/ca.pem",
                                              "sasl.mechanism": "PLAIN"}
    # translating twice changes nothing (merged() and Admin both translate)
    for be in ("confluent", "kafka-python"):
        once = for_backend(s, be)
        assert for_backend(once, be) == once


def test_pem_keystore_and_key_password(tmp_path: Path) -> None:
    ks = tmp_path / "client.pem"
    ks.write_text(PEM + "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    s = {"ssl.keystore.location": str(ks), "ssl.keystore.type": "PEM", "ssl.key.password": "kp"}
    assert for_backend(s, "confluent") == {"ssl.certificate.location": str(ks),
                                           "ssl.key.location": str(ks), "ssl.key.password": "kp"}
    assert for_backend(s, "kafka-python") == {"ssl.certfile": str(ks), "ssl.keyfile": str(ks),
                                              "ssl.password": "kp"}


def test_java_only_stores_are_refused_with_the_fix(tmp_path: Path) -> None:
    jks = tmp_path / "trust.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed binary")
    with pytest.raises(ValueError, match=r"PEM files only \(ssl.truststore.type=JKS \(Java "
                                         r"default\)\); convert it to PEM"):
        for_backend({"ssl.truststore.location": str(jks)}, "confluent")
    with pytest.raises(ValueError, match="ssl.truststore.type=PKCS12"):
        for_backend({"ssl.truststore.location": str(jks), "ssl.truststore.type": "PKCS12"},
                    "kafka-python")
    with pytest.raises(ValueError, match="ssl.truststore.password: not supported"):
        for_backend({"ssl.truststore.password": "x"}, "confluent")
    # a PEM file without ssl.truststore.type is recognised by its content
    pem = tmp_path / "ca.crt"
    pem.write_text(PEM)
    assert for_backend({"ssl.truststore.location": str(pem)}, "confluent") == {
        "ssl.ca.location": str(pem)}


def test_load_client_properties_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "client.properties"
    f.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                 f'sasl.jaas.config={SCRAM} required \\\n    username="u" password="p";\n')
    props = load_client_properties(f)
    assert props["sasl.jaas.config"] == f'{SCRAM} required username="u" password="p";'
    monkeypatch.delenv(ENV, raising=False)
    assert client_properties() == {}
    monkeypatch.setenv(ENV, str(f))
    assert client_properties() == props
    other = tmp_path / "other.properties"
    other.write_text("security.protocol=PLAINTEXT\n")
    assert client_properties(other) == {"security.protocol": "PLAINTEXT"}  # argument wins
    with pytest.raises(FileNotFoundError, match="client properties file .*nope.* not found"):
        load_client_properties(tmp_path / "nope")
    bad = tmp_path / "latin1.properties"
    bad.write_bytes(b"sasl.password=caf\xe9\n")
    with pytest.raises(ValueError, match="latin1.properties' is not UTF-8"):
        load_client_properties(bad)


def test_merged_layers_file_under_bootstrap_and_settings(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.properties"
    f.write_text("bootstrap.servers=file:9092\nlinger.ms=99\nclient.id=from-file\n"
                 f'sasl.jaas.config={PLAIN} required username="u" password="p";\n')
    monkeypatch.delenv(ENV, raising=False)
    cfg = merged(PRODUCER_DEFAULTS, "confluent", "arg:9092", {"linger.ms": 1}, f)
    assert cfg["bootstrap.servers"] == "arg:9092" and cfg["linger.ms"] == 1
    assert cfg["client.id"] == "from-file" and cfg["sasl.username"] == "u"
    assert "sasl.jaas.config" not in cfg
    assert merged(PRODUCER_DEFAULTS, "kafka-python", None, None, f)["bootstrap.servers"] == "file:9092"
    monkeypatch.setenv(ENV, str(f))
    assert merged(PRODUCER_DEFAULTS, "confluent", None, None)["client.id"] == "from-file"
