"""Reads a kastor events topic to its end and prints one line per event: aggregate ID,
version, type and the decoded event as JSON, separated by tabs. The recipe of
docs/wire-format.md; interop/interop_test.go checks its output.

Usage: python3 read_events.py BOOTSTRAP_SERVERS EVENTS_TOPIC
"""
import io
import json
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form


def read_all(brokers, topic):
    """Yields every record of topic from its start to its end (the last stable offset)."""
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "kastor-interop",  # required by librdkafka; nothing is committed
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,  # say when a partition's end is reached
    })
    try:
        parts = c.list_topics(topic, timeout=30).topics[topic].partitions
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pending = set(parts)
        while pending:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
                pending.discard(m.partition())
                continue
            yield m
    finally:
        c.close()


def main(brokers, events_topic):
    # 1. Every writer schema, by the fingerprint in its key.
    schemas = {}
    for m in read_all(brokers, "_kastor.schemas"):
        if m.value() is None:
            continue  # a tombstone: no schema
        s = json.loads(m.value())
        fp = m.key().decode()
        # fastavro prints CRC-64-AVRO little-endian; kastor's hex is the number, big-endian.
        mine = bytes.fromhex(fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO"))[::-1].hex()
        if mine != fp:
            raise ValueError(f"schema {s.get('name')}: fingerprint {mine} is not its key {fp}")
        schemas[fp] = parse_schema(s)  # a fresh name space per schema: versions share names

    # 2. The events, each decoded with its writer schema.
    for m in read_all(brokers, events_topic):
        h = {k: v.decode() for k, v in m.headers() or []}  # the last one wins; kastor.tag repeats
        writer = schemas[h["kastor.schema"].lower()]
        value = m.value() or b""  # zero fields: empty (older data: None)
        event = schemaless_reader(io.BytesIO(value), writer)  # pass your reader schema to resolve
        print(m.key().decode(), h["kastor.version"], h["kastor.type"], json.dumps(event), sep="\t")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
