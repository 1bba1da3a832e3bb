"""The plan benchmark's verdicts read the targets as issues 15 and 21 state them."""

from benchmarks.bench_plan import issue_targets


def _row(n: int, seconds: float, rss: float, ratio: float = 0.4) -> dict:
    return {"tables": n, "plan_s": seconds, "peak_rss_mib": rss, "process_ratio_vs_pg_dump": ratio}


def test_rss_is_judged_at_2000_tables_and_by_its_growth() -> None:
    rows = [_row(100, 0.1, 48), _row(500, 0.25, 59), _row(2000, 1.0, 89), _row(10000, 5.0, 230)]
    text = issue_targets(rows)
    assert "at 2,000 tables (89): **met**" in text
    assert "at most linearly" in text and "): **met**; ms/table" in text
    assert "pg_dump (500: 0.40x, 2000: 0.40x, 10000: 0.40x): **met**" in text


def test_each_target_can_be_missed() -> None:
    text = issue_targets([_row(100, 0.1, 48), _row(500, 0.25, 59), _row(2000, 1.0, 160, 0.6),
                          _row(10000, 9.0, 900)])
    assert "at 2,000 tables (160): **missed**" in text
    assert "2000: 0.60x, 10000: 0.40x): **missed**" in text  # no floor figures: none named
    assert "): **missed**; ms/table" in text  # MiB per table above 100 tables: 0.0275, 0.0589, 0.0861
    assert "**missed**; peak RSS <= 150" in text  # 0.6x pg_dump at 2,000
    assert text.endswith("**missed**.")  # ms/table 0.50, 0.50, 0.90


def test_a_slow_creep_in_memory_per_table_is_not_linear() -> None:
    """Each step only 20 % over the one before, but 44 % over the first: missed."""
    rows = [_row(100, 0.1, 40), _row(500, 0.25, 80), _row(2000, 1.0, 40 + 0.12 * 1900),
            _row(10000, 5.0, 40 + 0.144 * 9900)]
    assert "0.1000, 0.1200, 0.1440): **missed**" in issue_targets(rows)


def test_the_floor_is_named_beside_the_ratios() -> None:
    """The floor process (start-up, imports, catalog rows, YAML parse alone) is reported with the ratios it bounds."""
    rows = [{**_row(500, 0.25, 59, 1.06), "floor_ratio_vs_pg_dump": 0.9}, {**_row(2000, 1.0, 89, 0.9),
                                                                           "floor_ratio_vs_pg_dump": 0.52}]
    text = issue_targets(rows)
    assert "pg_dump (500: 1.06x, 2000: 0.90x; the floor process alone: 500: 0.90x, 2000: 0.52x): **missed**" in text
