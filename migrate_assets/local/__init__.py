"""The local stack: private PostgreSQL, Tansu broker, Kafka Connect + Debezium, bundled registry, Iceberg."""
