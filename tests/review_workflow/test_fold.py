"""The pure fold of review records into state: first step wins, malformed ones change nothing."""

from __future__ import annotations

from sealtrail.compliance.review import ASSIGN, BENIGN, CLOSE, SIGN_OFF, Record, fold

P = "2026-11-02"


def rec(index: int, action: str, ttype: str, tid: str, actor: str = "user:ann",
        assignee: str = "") -> Record:
    """One review record as read back from the log."""
    return Record(index, action, ttype, tid, actor, f"2026-11-03T0{index % 10}:00:00Z",
                  f"note {index}", assignee)


def test_first_step_wins() -> None:
    """Two sign-offs, two dispositions, two closes (a race, a replay): the first counts."""
    state = fold([
        rec(1, ASSIGN, "review_exception", f"{P}/auth-aaaaaaaaaaaaaaaa/asg-000000000001",
            assignee="netops"),
        rec(2, BENIGN, "review_exception", f"{P}/auth-aaaaaaaaaaaaaaaa"),
        rec(3, CLOSE, "review_assignment", f"{P}/asg-000000000001"),
        rec(4, CLOSE, "review_assignment", f"{P}/asg-000000000001", actor="user:bob"),
        rec(5, SIGN_OFF, "review_period", P),
        rec(6, SIGN_OFF, "review_period", P, actor="user:bob"),
    ])[P]
    kind, step, asg = state.dispositions["auth-aaaaaaaaaaaaaaaa"]
    assert (kind, step.index, asg) == ("assigned", 1, "asg-000000000001")
    closed = state.assignments["asg-000000000001"].closed
    assert closed is not None
    assert closed.index == 3
    assert state.sign_off is not None
    assert state.sign_off.index == 5


def test_malformed_records_change_nothing() -> None:
    """A close of an unknown assignment, a sign-off with a sub-path or the wrong target
    type, an assignment without an id: no state."""
    state = fold([
        rec(1, CLOSE, "review_assignment", f"{P}/asg-000000000009"),
        rec(2, SIGN_OFF, "review_period", f"{P}/extra"),
        rec(3, SIGN_OFF, "review_exception", P),
        rec(4, ASSIGN, "review_exception", f"{P}/auth-aaaaaaaaaaaaaaaa"),
    ])[P]
    assert state.sign_off is None
    assert state.dispositions == {}
    assert state.assignments == {}
