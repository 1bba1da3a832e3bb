"""The onboarding saga's own actions (issue 18, item 1) without a stack: they round-trip through a stored plan
with the connector's password masked and take it back from the source DSN, and the onboarding verify lets only an
empty table's subject be missing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from migrate_assets.evolution.actions import (
    CreateConnector,
    DeleteConnector,
    DriftDetected,
    RunContext,
    VerifyOnboarded,
    action_from_dict,
)
from migrate_assets.evolution.actions.onboard import ConnectorCreated
from migrate_assets.evolution.results import Verified
from migrate_assets.redact import MASK, scrub

CONFIG = (("database.password", "s3cret-pw"), ("slot.name", "ma_shop"), ("table.include.list", r"public\.t"))


def ctx_with(**source: Any) -> RunContext:
    return RunContext(source=cast(Any, SimpleNamespace(**source)))


def test_create_connector_round_trips_without_its_secret() -> None:
    action = CreateConnector("shop-cdc", CONFIG, "ma_shop", "ma_shop_pub", ("shop.public.t-value", "shop.public.t-key"))
    stored = scrub(action.to_dict())
    assert "s3cret-pw" not in repr(stored)
    back = action_from_dict(stored)
    assert isinstance(back, CreateConnector) and dict(back.config)["database.password"] == MASK
    assert back.new_subjects == action.new_subjects
    # a resumed run takes the password from the source DSN, never writes the mask into Connect
    assert back._config(ctx_with(dsn="postgresql://app:s3cret-pw@db:5432/shop"))["database.password"] == "s3cret-pw"
    with pytest.raises(Exception, match="masked"):
        back._config(ctx_with())
    undo = back.inverse(ConnectorCreated(True, "RUNNING"))
    assert undo == DeleteConnector("shop-cdc", "ma_shop", "ma_shop_pub", action.new_subjects)
    assert back.inverse(ConnectorCreated(False)) is None


def test_verify_onboarded_allows_a_missing_subject_only_while_the_table_is_empty() -> None:
    missing = "schema_registry: subject shop.public.t-value does not exist"
    step = VerifyOnboarded("public.t", "shop.public.t-value")
    for rows, other in ((0, []), (0, ["lakehouse: column x missing"]), (3, [])):
        ctx = ctx_with(count_values=lambda _t, _c=None, n=rows: n)
        ctx.verifier = lambda _t, _c, o=other: [missing, *o]
        if rows == 0 and not other:
            assert step.run(ctx) == Verified(consistent=True)
        else:
            with pytest.raises(DriftDetected) as err:
                step.run(ctx)
            assert err.value.differences == ([*other] if rows == 0 else [missing])
