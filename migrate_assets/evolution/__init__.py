"""Pipeline evolution: one schema change carried across registry → lakehouse → source DDL → connector → verify."""
