"""Declarative schema management: table model, canonical types, spec loading, introspection, diff, DDL."""
