"""The console and metrics benchmarks run end to end in a tiny mode, so they cannot rot: the
data they load, the pages and scrape they time and the JSON they print.

They reset the schema of the database they are given and take the stack's lock on it, so they
run on a database of their own next to the integration database (``<name>_bench``, created on
the same server), never on the one this session holds."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from benchmarks._harness import ROOT, StackConfig

pytestmark = pytest.mark.integration

TINY = ["--onboardings", "50", "--messages", "2000", "--peers", "40", "--iterations", "3"]


def run(script: str, config: StackConfig, *extra: str) -> dict[str, Any]:
    """``python -m benchmarks.<script>`` in tiny mode; the JSON object it printed."""
    url = make_url(config.database_url)
    own = url.set(database=f"{url.database}_bench").render_as_string(hide_password=False)
    done = subprocess.run(  # noqa: S603 - this interpreter and a script of this repository
        [
            sys.executable,
            "-m",
            f"benchmarks.{script}",
            *TINY,
            "--warmup",
            "1",
            "--database-url",
            own,
            "--broker-url",
            config.broker_url,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_console_benchmark_times_both_pages_against_their_sql(
    stack_config: StackConfig,
) -> None:
    """Every page is timed as often as asked, with its queries, and its bytes are counted."""
    result = run("console", stack_config)
    assert result["onboardings"] == 51
    assert result["messages"] == 2000
    for name in ("list_page", "list_page_state", "onboarding_page"):
        timing = result[name]
        assert timing["page"]["n"] == timing["sql"]["n"] == 3
        assert timing["queries"] >= 3
        assert timing["page_bytes"] > 1000
        assert timing["page_p50_over_sql_p50"] > 0


def test_the_metrics_benchmark_scrapes_the_loaded_backlog(stack_config: StackConfig) -> None:
    """The scrape it times reports the inbox backlog it loaded (one delivery in ten pending)."""
    result = run("metrics_scrape", stack_config, "--inbox", "500")
    assert result["inbox_pending"] == 50
    assert result["scrape"]["n"] == result["sql"]["n"] == 3
    assert result["queries"] >= 4
    assert result["scrape_bytes"] > 1000
