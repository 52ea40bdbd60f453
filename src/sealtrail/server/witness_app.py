"""``sealtrail witness serve``: the C2SP tlog-witness HTTP interface over a witness directory.

One route, ``POST /add-checkpoint`` at the root of the address (c2sp.org/tlog-witness): the
body (at most 1 MiB, never read whole past that) goes to
:meth:`sealtrail.log.witness.WitnessState.add_checkpoint`, whose answer is sent as is (its
status, ``text/x.tlog.size`` for a 409, the cosignature lines on a 200). There is no
authentication, as the spec says: a checkpoint is accepted only when a trusted log key signed
it, and nothing but the latest checkpoint per origin is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sealtrail.core.witness_protocol import MAX_BODY
from sealtrail.log.witness import WitnessState
from sealtrail.server.deps import in_thread, read_body


def create_witness_app(state: WitnessState,
                       clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Starlette:
    """The witness's ASGI app."""
    state.cosigner()  # no key: refuse to start (ConfigError says to run witness init)

    async def add_checkpoint(request: Request) -> Response:
        body = await read_body(request, MAX_BODY)
        if body is None:
            return PlainTextResponse("the request body is too large\n", status_code=413)
        answer = await in_thread(state.add_checkpoint, body, clock())
        # The type exactly as given (text/x.tlog.size takes no charset parameter).
        return Response(answer.body.encode(), status_code=answer.status,
                        headers={"Content-Type": answer.content_type})

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
