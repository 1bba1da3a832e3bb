"""The application layer: use cases the CLI and Dagster call (they hold no layer logic of their own)."""
