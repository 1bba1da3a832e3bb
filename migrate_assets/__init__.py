"""migrate-assets: safe PostgreSQL schema changes carried through a CDC pipeline."""

__version__ = "0.1.0"
