"""A Kafka Connect worker (Apache Kafka's connect-runtime) with Debezium's PostgreSQL connector, the Apache Iceberg
sink and the Confluent AvroConverter as isolated plugins.

Distributed mode by default (connector configs and offsets live in broker topics, so the worker can be
stopped and started again with its connectors), standalone on request. `offset.flush.interval.ms=1000` keeps
Debezium's confirmed_flush_lsn moving every second; the connector step does not need it (it reads Debezium's
progress from Kafka), and `offset_flush_ms=None` starts a worker with Connect's own 60 s default.
The classpath is Kafka's own jars; each plugin is a folder of its own under `plugin.path` (found through its
`META-INF/services` manifests, `plugin.discovery=service_load`), so their dependencies cannot clash.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from migrate_assets.local import artifacts, procs

PART = "kafka-connect"
JVM_FLAGS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")


def plugin_path(root: Path) -> Path:
    """`<root>/plugins/<name>` links to each cached plugin folder: Connect takes every child of a plugin.path
    entry as one plugin with its own class loader."""
    top = root / "plugins"
    top.mkdir(parents=True, exist_ok=True)
    wanted = artifacts.connect_plugin_dirs()
    for child in top.iterdir():
        if child.name not in wanted or not child.is_symlink() or child.resolve() != wanted[child.name].resolve():
            child.unlink()
    for name, target in wanted.items():
        link = top / name
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return top


#: the stack's offset flush interval; None leaves Connect's own default (60 s), as production workers run
OFFSET_FLUSH_MS: int | None = 1000


def worker_properties(root: Path, bootstrap: str, rest_port: int, mode: str, group: str = "migrate-assets-connect",
                      offset_flush_ms: int | None = OFFSET_FLUSH_MS) -> str:
    props = {
        "bootstrap.servers": bootstrap,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter.schemas.enable": "true",
        "listeners": f"http://127.0.0.1:{rest_port}",
        "rest.advertised.host.name": "127.0.0.1",
        "rest.advertised.port": str(rest_port),
        "plugin.path": str(plugin_path(root)),
        "plugin.discovery": "service_load",
        "task.shutdown.graceful.timeout.ms": "5000",
    }
    if offset_flush_ms is not None:
        props["offset.flush.interval.ms"] = str(offset_flush_ms)
    if mode == "standalone":
        props["offset.storage.file.filename"] = str(root / "connect.offsets")
    else:
        props.update(
            {
                "group.id": group,
                "config.storage.topic": f"_{group}-configs",
                "offset.storage.topic": f"_{group}-offsets",
                "status.storage.topic": f"_{group}-status",
                "config.storage.replication.factor": "1",
                "offset.storage.replication.factor": "1",
                "status.storage.replication.factor": "1",
                "offset.storage.partitions": "1",
                "status.storage.partitions": "1",
                "session.timeout.ms": "2000",
                "heartbeat.interval.ms": "500",
                "scheduled.rebalance.max.delay.ms": "0",
            }
        )
    return "".join(f"{k}={v}\n" for k, v in props.items())


def start(
    root: Path, bootstrap: str, rest_port: int, mode: str = "distributed", timeout: float = 120.0,
    group: str = "migrate-assets-connect", offset_flush_ms: int | None = OFFSET_FLUSH_MS,
) -> int:
    """Start a worker; `group` names its cluster (a second cluster on the same broker needs its own, two workers
    with one group share its connectors). `offset_flush_ms=None` keeps Connect's default flush interval."""
    java = artifacts.java_binary()
    libdir = artifacts.kafka_libdir()
    root.mkdir(parents=True, exist_ok=True)
    props = root / f"worker-{mode}.properties"
    props.write_text(worker_properties(root, bootstrap, rest_port, mode, group, offset_flush_ms))
    main = (
        "org.apache.kafka.connect.cli.ConnectStandalone"
        if mode == "standalone"
        else "org.apache.kafka.connect.cli.ConnectDistributed"
    )
    # Kafka logs through log4j2: without a config it prints errors only
    log4j = root / "connect-log4j2.properties"
    log4j.write_text(artifacts.log4j2_properties({"org.apache.kafka.clients": "WARN",
                                                  "org.reflections": "ERROR"}))
    argv = [
        java, *JVM_FLAGS,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp", f"{libdir}/*", main, str(props),
    ]
    log = root / "connect.log"
    pid = procs.spawn(argv, log)
    # a JVM that hits a startup error may hang instead of exiting: wait_until kills it after the timeout
    procs.wait_until(lambda: healthy(rest_port), timeout, PART, "answering GET /connectors", log, pid)
    return pid


def healthy(rest_port: int) -> bool:
    r = httpx.get(f"http://127.0.0.1:{rest_port}/connectors", timeout=3)
    return r.status_code == 200
