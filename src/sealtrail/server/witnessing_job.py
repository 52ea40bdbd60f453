"""The service's witnessing rounds: each new checkpoint submitted to the log's witnesses.

A daemon thread of the leader (one per deployment, like retention) runs a round for every log
at most once a second (``interval``): the checkpoint of that moment goes to each witness with
a consistency proof, the cosignature lines come back verified and are kept with it, and the
forward-secure seal of the current epoch is added when the log has a sealing key
(:mod:`sealtrail.log.sealing`). Rounds are batched by time, not per commit: a thousand commits
in a second make one round. Ingest never waits for a witness.

Alerts, through the monitor (recorded in the log as ``alert.open`` and sent to the sinks):

- ``builtin.witness_refused`` (high): a witness holds another history of the log (a fork, a
  rollback, a proof it rejects); one alert per witness and size;
- ``builtin.witness_unmet`` (medium): a checkpoint has waited longer than ``alert_after``
  seconds for the quorum (witnesses down, misconfigured, or refusing); one alert per episode;
- ``builtin.witness_config_tampered`` (high): the stored witness configuration is not the
  one the log's latest configuration entry set (edited, rolled back, deleted);
- ``builtin.seal_failing`` (high): the forward-secure seal could not be made (the key's
  epochs are over, its stored state was edited, the keyring is locked); once per problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import httpx

from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.errors import SealtrailError
from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.sealing import seal_line
from sealtrail.monitor.runner import Monitor, system_detection
from sealtrail.server.log_job import LogJob
from sealtrail.server.logs import Logs

log = logging.getLogger("sealtrail.server")

REFUSED_RULE = "builtin.witness_refused"
UNMET_RULE = "builtin.witness_unmet"
SEAL_RULE = "builtin.seal_failing"
CONFIG_RULE = "builtin.witness_config_tampered"
CLAUSES = ("SOC2 CC7.2", "ISO27001 A.8.15")


class WitnessingJob(LogJob):
    """Runs a witnessing round for every log on a schedule (see the module docstring)."""

    caught = (Exception,)  # one log's fault must not skip the others' rounds and seals

    def __init__(self, logs: Logs, monitor: Monitor, now: Callable[[], datetime], *,
                 delay: float, interval: float = 1.0, alert_after: float = 300.0,
                 post: witnesses.Post | None = None) -> None:
        super().__init__("sealtrail-witnessing", logs, now, delay=delay, interval=interval)
        self._monitor = monitor
        self.alert_after = alert_after
        self._client = httpx.Client(timeout=witnesses.TIMEOUT_S, follow_redirects=False)
        self._post = post or witnesses.httpx_post(self._client)
        self.results: dict[str, witnesses.Round] = {}
        self.problems: dict[str, str] = {}

    def close(self) -> None:
        """Release the HTTP client."""
        self._client.close()

    def step(self, name: str) -> None:
        """One round for one log (:meth:`run_one`)."""
        self.run_one(name)
        self.problems.pop(name, None)

    def failed(self, name: str, exc: BaseException) -> None:
        # Logged once per distinct problem: a failing log is visited every second.
        if self.problems.get(name) != str(exc):
            log.warning("sealtrail: witnessing round of log %s failed: %s", name, exc,
                        exc_info=not isinstance(exc, SealtrailError))
        self.problems[name] = str(exc)

    def run_one(self, name: str) -> witnesses.Round | None:
        """One round for one log (None when it has neither witnesses nor a seal)."""
        alog = self._logs.get(name)
        now = self._now()
        signed = alog.checkpoint()
        # First and every round, whatever the witnesses' state: a quiet log still evolves its
        # sealing key when the epoch ends, and a witness configuration that fails to load
        # must not keep old seeds on the host. The line returned seals the checkpoint given,
        # even when the closing seal of an epoch was appended meanwhile.
        seal = self._seal(name, alog, signed, now)
        try:
            policy = witnesses.load(alog)
        except SealtrailError as exc:
            # Tampering with the witness configuration: an alert, not only a log line.
            self._monitor.raise_alert(name, system_detection(
                CONFIG_RULE, "The witness configuration does not verify", "high",
                str(exc)[:200], f"log {name}: {exc}", CLAUSES), alog=alog)
            raise
        if policy is None and seal is None:
            return None
        result = witnesses.run_round(alog, policy, now, self._post, signed=signed,
                                     extra=[seal] if seal else [])
        self.results[name] = result
        for refusal in result.refusals:
            self._monitor.raise_alert(name, system_detection(
                REFUSED_RULE, "A witness holds another history of the log", "high",
                f"{refusal.witness}/{refusal.size}",
                f"witness {refusal.witness} of log {name}: {refusal.problem}", CLAUSES),
                alog=alog)
        if policy is not None and result.unmet_for >= self.alert_after:
            self._monitor.raise_alert(name, system_detection(
                UNMET_RULE, "Checkpoints are not being witnessed", "medium",
                result.pending_since,
                f"log {name}: no checkpoint since {result.pending_since} has the cosignatures "
                f"of {policy.quorum} witness(es) ({int(result.unmet_for)} s); "
                + "; ".join(f"{w}: {p}" for w, p in sorted(result.problems.items())),
                CLAUSES), alog=alog)
        return result

    def _seal(self, name: str, alog: AuditLog, signed: SignedCheckpoint, now: datetime
              ) -> str | None:
        """The seal line of ``signed`` (log/sealing.py), or None. A sealing failure (the key's
        epochs are over, its stored state edited, the keyring locked) does not stop the
        witnesses: it is an alert, once per distinct problem, and the round goes on unsealed."""
        try:
            line = seal_line(alog, signed, now)
            self.problems.pop(f"{name}/seal", None)  # a failure that comes back alerts again
            return line
        except SealtrailError as exc:
            problem = str(exc)
            if self.problems.get(f"{name}/seal") != problem:
                log.warning("sealtrail: sealing log %s failed: %s", name, problem)
                self._monitor.raise_alert(name, system_detection(
                    SEAL_RULE, "Checkpoints are not being sealed", "high", problem[:200],
                    f"log {name}: forward-secure sealing failed: {problem}", CLAUSES),
                    alog=alog)
            self.problems[f"{name}/seal"] = problem
            return None
