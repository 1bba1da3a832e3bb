"""`verify --probe`: read the newest event of a table's topic and decode it through the registry.

Reads partition by partition with `assign()` (no consumer-group join to wait for, no offsets committed) from a
little before the high watermark until the partition stays idle: events still being written while it reads are
seen too, so the watermark is a starting point, not an end. `LsnWatch` follows how far a Debezium connector has
streamed by the `source.lsn` of what it writes (the connector step's progress check under a long offset flush).
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from migrate_assets.errors import LayerUnreachableError


def read_events(bootstrap: str, topic: str, registry_url: str, idle: float = 1.0,
                back: int | None = None) -> list[tuple[int, Any]]:
    """(timestamp ms, decoded value) of the topic's events: all of them, or the last `back` per partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "migrate-assets-probe-" + uuid.uuid4().hex[:6],
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    deser = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    out: list[tuple[int, Any]] = []
    try:
        md = consumer.list_topics(topic, timeout=10)
        if topic not in md.topics or md.topics[topic].error is not None:
            return out
        parts = []
        for pid in md.topics[topic].partitions:
            start = OFFSET_BEGINNING
            if back is not None:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, pid), timeout=10)
                start = max(lo, hi - back)
            parts.append(TopicPartition(topic, pid, start))
        consumer.assign(parts)
        while True:
            msg = consumer.poll(idle)
            if msg is None:
                break
            if msg.error() or msg.value() is None:
                continue
            out.append((msg.timestamp()[1], deser(msg.value(), ctx)))
    except KafkaException as exc:
        raise LayerUnreachableError("kafka", str(exc)) from exc
    finally:
        consumer.close()
    return out


def newest_event(bootstrap: str, topic: str, registry_url: str, idle: float = 1.0, back: int = 20) -> Any | None:
    events = read_events(bootstrap, topic, registry_url, idle, back)
    return max(events, key=lambda e: e[0])[1] if events else None


def probe(bootstrap: str, subject: str, registry_url: str, columns: list[str]) -> dict[str, Any]:
    """Verdict for the topic of `subject`: the newest event's row must carry every column."""
    topic = subject.removesuffix("-value")
    event = newest_event(bootstrap, topic, registry_url)
    if event is None:
        return {"status": "drift", "differences": [f"no event in topic {topic}"]}
    row = event.get("after") or event.get("before") if isinstance(event, dict) and "op" in event else event
    fields = set(row or {})
    missing = [c for c in columns if c not in fields]
    diffs = [f"newest event of {topic} has no field {c}" for c in missing]
    return {"status": "drift" if diffs else "consistent", "differences": diffs, "topic": topic}


class LsnWatch:
    """The newest PostgreSQL LSN a Debezium connector has written to one of its topics, read as it arrives.

    Debezium confirms its replication slot only when Kafka Connect commits offsets (`offset.flush.interval.ms`,
    60 s by default), but every record it writes carries `source.lsn` at once: a record at LSN L on the topic
    means the connector streamed everything committed before L. One consumer stays assigned to the topic's
    partitions from their end as seen when the watch starts (no group, nothing committed); each `newest()`
    reads what has arrived since. Avro values (Confluent's framing) are decoded with the writer schema fetched
    by id from the registry, JSON ones as they are.
    """

    def __init__(self, bootstrap: str, topic: str, registry_url: str | None) -> None:
        self.topic = topic
        # a fetch that finds nothing returns after 20 ms, not librdkafka's 500 ms: the wait polls in a loop
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "enable.auto.commit": False,
                                   "group.id": "migrate-assets-lsn-" + uuid.uuid4().hex[:6],
                                   "fetch.wait.max.ms": 20})
        self._registry = registry_url.rstrip("/") if registry_url else None
        self._schemas: dict[int, Any] = {}
        self._assigned = False
        self.lsn: int | None = None

    def _assign(self) -> bool:
        md = self._consumer.list_topics(self.topic, timeout=5)
        if self.topic not in md.topics or md.topics[self.topic].error is not None:
            return False  # not created yet: the connector's first record creates it
        parts = []
        for pid in md.topics[self.topic].partitions:
            lo, hi = self._consumer.get_watermark_offsets(TopicPartition(self.topic, pid), timeout=5)
            parts.append(TopicPartition(self.topic, pid, max(lo, hi - 1)))
        self._consumer.assign(parts)
        self._assigned = True
        return True

    def newest(self, wait: float = 0.1) -> int | None:
        """The highest `source.lsn` seen so far (None before any record), after reading what has arrived."""
        try:
            if not self._assigned and not self._assign():
                return self.lsn
            msg = self._consumer.poll(wait)
            while msg is not None:
                lsn = self._lsn(msg.value()) if not msg.error() else None
                if lsn is not None and (self.lsn is None or lsn > self.lsn):
                    self.lsn = lsn
                msg = self._consumer.poll(0)
        except KafkaException as exc:
            raise LayerUnreachableError("kafka", str(exc)) from exc
        return self.lsn

    def _lsn(self, raw: bytes | None) -> int | None:
        try:
            value = self._decode(raw) if raw else None
            lsn = value["source"]["lsn"] if isinstance(value, dict) else None
        except Exception:  # noqa: BLE001 - a record that cannot be read is no evidence of progress
            return None
        return int(lsn) if lsn is not None else None

    def _decode(self, raw: bytes) -> Any:
        if raw[:1] == b"\x00" and len(raw) > 5 and self._registry:
            schema_id = int.from_bytes(raw[1:5], "big")
            if schema_id not in self._schemas:
                import fastavro
                import httpx

                body = httpx.get(f"{self._registry}/schemas/ids/{schema_id}", timeout=5).json()
                self._schemas[schema_id] = fastavro.parse_schema(json.loads(body["schema"]))
            from fastavro import schemaless_reader

            return schemaless_reader(io.BytesIO(raw[5:]), self._schemas[schema_id], None)
        value = json.loads(raw)
        return value.get("payload", value) if isinstance(value, dict) else value

    def close(self) -> None:
        self._consumer.close()
