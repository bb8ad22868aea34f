"""Fault injection per call: the plan drawn from the configured faults, and its counters."""

from __future__ import annotations

from onboarding.sandbox.faults import FaultRule, Faults
from onboarding.sandbox.injection import FaultInjector, FaultPlan


def test_no_faults_plan_nothing_and_count_nothing() -> None:
    """Without rules every call goes through untouched."""
    injector = FaultInjector(Faults())

    assert injector.plan("messages", "waba") == FaultPlan()
    assert all(count == 0 for kinds in injector.counts().values() for count in kinds.values())


def test_a_certain_5xx_replaces_every_call_and_is_counted() -> None:
    """error_5xx=1 makes each call a 500 or 503 Graph error, counted per endpoint."""
    injector = FaultInjector(Faults(rules={"oauth": FaultRule(error_5xx=1.0)}))

    plans = [injector.plan("oauth", "app") for _ in range(8)]

    assert all(plan.error is not None and plan.error.status in {500, 503} for plan in plans)
    assert injector.counts()["oauth"]["error_5xx"] == 8
    assert injector.plan("waba", "app") == FaultPlan()


def test_a_waba_throttle_names_the_usage_owner() -> None:
    """Code 80007's business use-case header is keyed by the WABA the call counts against."""
    injector = FaultInjector(Faults(seed=1, rules={"*": FaultRule(throttle=1.0)}))

    errors = [injector.plan("phone_numbers", "waba-7").error for _ in range(20)]
    waba_level = [error for error in errors if error is not None and error.code == 80007]

    assert waba_level
    assert all('"waba-7"' in error.headers["x-business-use-case-usage"] for error in waba_level)


def test_the_same_seed_draws_the_same_plans() -> None:
    """Two injectors with one seed plan the same faults, call after call."""
    faults = Faults(seed=9, rules={"*": FaultRule(error_5xx=0.3, drop_after_apply=0.3)})
    first, second = FaultInjector(faults), FaultInjector(faults)

    def draws(injector: FaultInjector) -> list[tuple[int | None, bool]]:
        plans = [injector.plan("messages", "w") for _ in range(30)]
        return [(plan.error.code if plan.error else None, plan.drop) for plan in plans]

    assert draws(first) == draws(second)
