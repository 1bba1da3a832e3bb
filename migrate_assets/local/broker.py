"""Apache Kafka in KRaft mode: one JVM that is both broker and controller, its log under `<state>/kafka/`.

The storage is formatted once with Kafka's `StorageTool` (a random cluster id); later starts reuse it, so topics
survive a restart of the broker as they do in production. Settings keep a single node cheap: internal topics
with one partition and replication factor 1, no initial rebalance delay for consumer groups.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from migrate_assets.errors import StackError
from migrate_assets.local import artifacts, procs

PART = "broker"
JVM_FLAGS = ("-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")

LOG4J2 = artifacts.log4j2_properties({"kafka": "WARN", "org.apache.kafka": "WARN",
                                      "kafka.server.KafkaRaftServer": "INFO"})


def server_properties(data: Path, port: int, controller_port: int) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",  # the distributed worker uses 2 s: fast failover in tests
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "log.cleaner.threads": "1",
        "num.recovery.threads.per.data.dir": "1",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _java(root: Path) -> list[str]:
    log4j = root / "log4j2.properties"
    log4j.write_text(LOG4J2)
    return [
        artifacts.java_binary(), *JVM_FLAGS, f"-Dlog4j2.configurationFile={log4j}",
        "-cp", f"{artifacts.kafka_libdir()}/*",
    ]


def _cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes in URL-safe base64 without padding (what `random-uuid` prints). Never one
    starting with `-` (1 in 64), which the tool's argument parser reads as an option, as Kafka's own
    Uuid.randomUuid avoids: `format` then failed with "--cluster-id: expected one argument"."""
    while (found := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return found


def format_storage(root: Path, props: Path, data: Path) -> None:
    if (data / "meta.properties").exists():
        return
    argv = [*_java(root), "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise StackError(PART, "formatting the KRaft storage failed", (r.stdout + r.stderr)[-2000:])


def start(root: Path, port: int, controller_port: int, timeout: float = 60.0) -> int:
    """Start the broker (formatting its storage on first start); returns the JVM's PID once it serves metadata."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    props = root / "server.properties"
    props.write_text(server_properties(data, port, controller_port))
    format_storage(root, props, data)
    log = root / "broker.log"
    pid = procs.spawn([*_java(root), "kafka.Kafka", str(props)], log)
    # a JVM that hits a startup error may hang instead of exiting: wait_until kills it after the timeout
    procs.wait_until(lambda: healthy(port), timeout, PART, "answering metadata requests", log, pid)
    return pid


def healthy(port: int) -> bool:
    if not procs.port_open(port):
        return False
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 2000})
    md = admin.list_topics(timeout=2)
    return md.brokers is not None and len(md.brokers) > 0
