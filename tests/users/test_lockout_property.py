"""Lockout under any sequence of attempts (Hypothesis): what PCI DSS 8.3.4 asks, checked as
properties of the answers, not by restating the policy.

- At most 10 wrong passwords are ever checked for a name between two successes, until 30
  minutes after the tenth passed.
- A ``locked`` answer says how long to wait, and trying again at that moment is checked.
- With no failure since the last success, the right password always signs in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealtrail.log.users import Lockout, Users
from sealtrail.store.memory_users import MemoryUserRows

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
PASSWORD = "correct horse battery"

# An attempt: whether the password is right, and how long after the previous one it comes.
_attempts = st.lists(st.tuples(st.booleans(), st.sampled_from(
    [0.0, 0.5, 1.0, 2.0, 7.0, 60.0, 300.0, 1799.0, 1800.0, 4000.0])), min_size=1, max_size=40)


def _count(rows: MemoryUserRows) -> int:
    found = rows.get_failures("ann")
    return 0 if found is None else found.count


@settings(max_examples=60, deadline=None)
@given(_attempts)
@example([(False, 300.0)] * 12 + [(True, 0.0), (True, 1800.0), (False, 0.0)])
@example([(False, 0.0)] * 3 + [(False, 1.0)] * 3 + [(True, 0.5), (True, 2.0)])
def test_lockout_keeps_to_pci_dss(attempts: list[tuple[bool, float]]) -> None:
    rows = MemoryUserRows()
    users = Users(rows=rows, hasher=CHEAP)
    users.create("ann", "reader", PASSWORD, T0)
    now = T0
    checked: list[datetime] = []  # wrong passwords checked since the last success
    for right, gap in attempts:
        now += timedelta(seconds=gap)
        before = _count(rows)
        answer = users.sign_in("ann", PASSWORD if right else "wrong password", None, now)
        counted = _count(rows) == before + 1
        if answer.outcome == "ok":
            assert right
            assert _count(rows) == 0
            checked.clear()
        elif counted:
            assert not right
            assert answer.outcome in ("bad", "locked")
            checked.append(now)
        else:  # refused before any check: it says how long, and then a try is checked
            assert answer.outcome == "locked"
            assert answer.retry_after > 0
            later = now + timedelta(seconds=answer.retry_after)
            assert Lockout().wait(rows.get_failures("ann"), later) == 0
        if right and before == 0:
            assert answer.outcome == "ok"
        # PCI DSS 8.3.4: after the tenth checked failure, none for 30 minutes.
        for n in range(10, len(checked)):
            assert checked[n] - checked[n - 1] >= timedelta(minutes=30)
