"""The pure delivery rules: how answers are classified, how long to back off, Retry-After."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from sealtrail.client.delivery import (
    Ack,
    Reject,
    Retry,
    Split,
    Stall,
    classify,
)
from sealtrail.core.retry import MAX_RETRY_AFTER, backoff, parse_retry_after
from sealtrail.integrations.http import action_for_method, outcome_for_status, trace_id

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
IDS = ["0190a000-0000-7000-8000-000000000001", "0190a000-0000-7000-8000-000000000002"]


def _receipts(ids: list[str]) -> bytes:
    leaf = base64.b64encode(b"\x01" * 32).decode()
    return json.dumps({"receipts": [
        {"id": i, "index": k, "leaf_hash": leaf, "checkpoint_size": len(ids),
         "duplicate": False} for k, i in enumerate(ids)]}).encode()


def test_created_with_matching_receipts_is_an_ack() -> None:
    """A 201 with one receipt per id, in order, acknowledges the batch."""
    outcome = classify(201, {}, _receipts(IDS), IDS, now=NOW)
    assert isinstance(outcome, Ack)
    assert [r.id for r in outcome.receipts] == IDS
    assert outcome.receipts[1].leaf_hash == b"\x01" * 32


def test_receipts_for_other_ids_are_not_an_ack() -> None:
    """Receipts naming other ids (or too few) make the batch be resent, not forgotten."""
    assert isinstance(classify(201, {}, _receipts(IDS[::-1]), IDS, now=NOW), Retry)
    assert isinstance(classify(201, {}, _receipts(IDS[:1]), IDS, now=NOW), Retry)
    assert isinstance(classify(201, {}, b"not json", IDS, now=NOW), Retry)


def test_transient_statuses_are_retried_with_retry_after() -> None:
    """429, 503 and friends are retried; Retry-After is carried in seconds."""
    outcome = classify(429, {"retry-after": "3"}, b'{"error": "slow down"}', IDS, now=NOW)
    assert isinstance(outcome, Retry)
    assert outcome.retry_after == 3.0
    assert outcome.status == 429
    for status in (408, 500, 502, 503, 504):
        assert isinstance(classify(status, {}, b"", IDS, now=NOW), Retry)


def test_configuration_refusals_stall_instead_of_dropping() -> None:
    """401, 403, 404 are the client's configuration, not the events': keep them."""
    for status in (400, 401, 403, 404, 405):
        assert isinstance(classify(status, {}, b'{"error": "no"}', IDS, now=NOW), Stall)


def test_too_large_splits_then_rejects_a_single_event() -> None:
    """413 halves the batch; for a single event it is a rejection."""
    assert classify(413, {}, b"", IDS, now=NOW) == Split(1, "HTTP 413: ")
    outcome = classify(413, {}, b"", IDS[:1], now=NOW)
    assert isinstance(outcome, Reject)
    assert outcome.rejected[0].position == 0


def test_unprocessable_names_the_rejected_events() -> None:
    """A 422 listing events by index rejects exactly those (the engine's append-time refusal,
    one event named in ``field``, carries its index too)."""
    body = json.dumps({"error": "1 invalid", "errors": [
        {"index": 1, "field": "events[1].actor.id", "message": "missing"}]}).encode()
    outcome = classify(422, {}, body, IDS, now=NOW)
    assert isinstance(outcome, Reject)
    assert [(r.position, r.field) for r in outcome.rejected] == [(1, "actor.id")]
    body = json.dumps({"error": "events[0].id: too far ahead", "field": "events[0].id",
                       "errors": [{"index": 0, "field": "events[0].id",
                                   "message": "too far ahead"}]}).encode()
    outcome = classify(422, {}, body, IDS, now=NOW)
    assert isinstance(outcome, Reject)
    assert [(r.position, r.field) for r in outcome.rejected] == [(0, "id")]


def test_unprocessable_naming_no_event_isolates_them() -> None:
    """A 422 that names no event splits a batch into single events to find the bad one."""
    body = b'{"error": "body: malformed JSON", "field": "body"}'
    assert isinstance(classify(422, {}, body, IDS, now=NOW), Split)
    assert isinstance(classify(422, {}, body, IDS[:1], now=NOW), Reject)


def test_retry_after_accepts_seconds_and_dates_and_is_capped() -> None:
    """Retry-After as delta-seconds or an HTTP date; absurd values are capped."""
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=30), usegmt=True),
                             NOW) == 30.0
    assert parse_retry_after("999999", NOW) == MAX_RETRY_AFTER
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_backoff_doubles_is_capped_and_jittered() -> None:
    """Pauses double per attempt up to the cap; jitter takes off at most half."""
    assert backoff(0, base=0.1, cap=30, jitter=0.0) == 0.05
    assert backoff(0, base=0.1, cap=30, jitter=0.999) < 0.1
    assert backoff(3, base=0.1, cap=30, jitter=1.0) == 0.8
    assert backoff(100, base=0.1, cap=30, jitter=1.0) == 30
    assert 15 <= backoff(100, base=0.1, cap=30, jitter=0.5) <= 30


def test_http_outcomes_and_actions() -> None:
    """Status classes map to outcomes; methods to ``http.<method>``; traceparent to trace id."""
    assert [outcome_for_status(s) for s in (200, 302, 401, 403, 404, 422, 500, 503)] == [
        "success", "success", "denied", "denied", "failure", "failure", "error", "error"]
    assert action_for_method("GET") == "http.get"
    assert action_for_method("M SEARCH") == "http.m_search"
    assert trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == \
        "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id("garbage") is None
