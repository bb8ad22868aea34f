"""Log redaction: signup codes, tokens and the app secret never reach a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from config.logging import REDACTED, RedactSecrets, configure_logging, register_secret, scrub_text


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("production", "DEBUG", static_secrets=["the-app-secret-value"], stream=buffer)
    yield buffer
    configure_logging("development", "WARNING")


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_secret_keys_are_redacted_whole() -> None:
    """Values under secret-looking keys are replaced, whatever they are."""
    with capture_logs(processors=[RedactSecrets()]) as logs:
        structlog.get_logger().info(
            "x",
            code="AQabc123456",
            access_token="EAAGxyz",
            client_secret="s3cr3t-value",
            onboarding_id=7,
        )
    assert logs[0]["code"] == REDACTED
    assert logs[0]["access_token"] == REDACTED
    assert logs[0]["client_secret"] == REDACTED
    assert logs[0]["onboarding_id"] == 7


def test_tokens_and_query_secrets_are_masked_inside_strings() -> None:
    """Meta tokens, bearer headers and code=/client_secret= parameters are masked in text."""
    text = (
        "GET /oauth/access_token?client_id=1&client_secret=abcdef123&code=AQzzz999 "
        "Authorization: Bearer EAAGabcdefghijkl and EAAJ0123456789abcdef"
    )
    scrubbed = scrub_text(text)
    for secret in ("abcdef123", "AQzzz999", "EAAGabcdefghijkl", "EAAJ0123456789abcdef"):
        assert secret not in scrubbed
    assert "client_id=1" in scrubbed


def test_the_hosted_pages_link_signature_and_watch_token_are_masked() -> None:
    """An access line of ``/connect/events`` keeps the ref and expiry, not ``sig`` or ``watch``."""
    sig = "5f0c" * 16
    watch = f"17.1765633200.{'ab' * 32}"
    text = (
        f'"GET /connect/events?ref=customer-4711&exp=1765633200&sig={sig}&watch={watch} HTTP/1.1"'
    )

    scrubbed = scrub_text(text)

    assert sig not in scrubbed
    assert watch not in scrubbed
    assert "ref=customer-4711&exp=1765633200" in scrubbed


def test_registered_runtime_secrets_are_masked_anywhere() -> None:
    """A code registered at run time is masked even under an innocent key, nested."""
    register_secret("AQ-runtime-code-42")
    with capture_logs(processors=[RedactSecrets()]) as logs:
        structlog.get_logger().info("x", detail={"note": ["the code was AQ-runtime-code-42"]})
    assert "AQ-runtime-code-42" not in repr(logs)


def test_configured_pipeline_redacts_structlog_and_stdlib_lines(stream: io.StringIO) -> None:
    """The production JSON pipeline redacts both structlog events and foreign (Celery) lines."""
    structlog.get_logger("coexist").info(
        "token_exchanged", token="EAAGsupersecret1", note="secret is the-app-secret-value"
    )
    logging.getLogger("celery.worker").warning("Task failed with code=AQsecretcode1")
    text = stream.getvalue()
    for secret in ("EAAGsupersecret1", "the-app-secret-value", "AQsecretcode1"):
        assert secret not in text
    events = [line["event"] for line in lines(stream)]
    assert "token_exchanged" in events


def test_exception_tracebacks_are_scrubbed(stream: io.StringIO) -> None:
    """A traceback that carries a token is masked before it is written."""
    try:
        raise RuntimeError("boom with EAAGleakedtoken99")
    except RuntimeError:
        structlog.get_logger().exception("failed")
    assert "EAAGleakedtoken99" not in stream.getvalue()


def test_graph_error_codes_stay_readable() -> None:
    """Meta's numeric error codes (code=133010) are not mistaken for secrets."""
    assert scrub_text("(#133010) Account not registered code=133010") == (
        "(#133010) Account not registered code=133010"
    )


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = {lg.name: (list(lg.handlers), lg.propagate) for lg in loggers}
    yield
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate


@pytest.mark.usefixtures("uvicorn_loggers")
def test_uvicorn_lines_go_through_the_redacting_pipeline(stream: io.StringIO) -> None:
    """uvicorn's own handlers are replaced by propagation to the root (redacting) handler."""
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(io.StringIO()))
    access.propagate = False
    configure_logging("production", "INFO", stream=stream)
    assert access.handlers == []
    assert access.propagate
    access.info('%s - "%s %s"', "127.0.0.1", "GET", "/x?code=AQsecret777")
    assert "AQsecret777" not in stream.getvalue()
    assert "uvicorn.access" in stream.getvalue()


@pytest.mark.usefixtures("uvicorn_loggers")
def test_uvicorn_no_access_log_stays_off(stream: io.StringIO) -> None:
    """``uvicorn --no-access-log`` (no handler, no propagation) is not turned back on."""
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    configure_logging("production", "INFO", stream=stream)
    assert not access.hasHandlers()
    assert logging.getLogger("uvicorn.error").propagate
