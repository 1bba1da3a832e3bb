import psycopg


def test_fresh_database_is_empty_and_logical(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        n = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert n == (0,)
