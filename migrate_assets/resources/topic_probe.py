"""`verify --probe`: read the newest event of a table's topic and decode it through the registry.

Reads partition by partition with `assign()` (no consumer-group join to wait for, no offsets committed) from a
little before the high watermark until the partition stays idle: events still being written while it reads are
seen too, so the watermark is a starting point, not an end.
"""

from __future__ import annotations

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
