"""The local stack: private PostgreSQL, Apache Kafka (KRaft), Kafka Connect + Debezium, bundled registry, Iceberg."""
