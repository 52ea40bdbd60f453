"""Signing in to the console and out of it: the form, the session cookie, the audit events.

A session is a random token in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
unless the operator turned it off for plain-HTTP development), stored server-side only as its
hash (:class:`sealtrail.log.users.Users`), with a 15-minute idle and a 12-hour absolute
timeout (PCI DSS 8.2.8). Every sign-in, failure, lockout and sign-out is an event in the
service's audit log, written before the answer; the typed name of an unknown user goes into
the sealed ``actor.name`` (a password typed into the name field must stay erasable), never
into ``actor.id``.

The sign-in form itself is protected against login CSRF (a site making the browser sign in
as the attacker) with a double-submit token: a random value in a short-lived cookie and in the
form, compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from typing import Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sealtrail.core.errors import SealtrailError
from sealtrail.log.users import SessionInfo, UserInfo
from sealtrail.server.deps import SESSION_COOKIE, in_thread, read_body, service, service_event
from sealtrail.server.ratelimit import RateLimiter
from sealtrail.server.web.pages import render
from sealtrail.server.web.security import harden

SIGNIN_COOKIE: Final = "sealtrail_signin"
MAX_FORM: Final = 16 * 1024
MAX_PASSWORD: Final = 1024
MAX_NAME: Final = 128
CONSOLE_TARGET: Final = {"type": "console", "id": "sealtrail"}

# The console's routes that need no session (their own checks are above); listed beside the
# pages' role table in server/app.py and checked by the route test.
OPEN_ROUTES: Final = frozenset({("POST", "/ui/sign-in"), ("POST", "/ui/sign-out"),
                                ("GET", "/ui/oidc/login"), ("GET", "/ui/oidc/callback")})

router = APIRouter(include_in_schema=False)


def signin_form(request: Request, *, status: int = 401, error: str | None = None,
                name: str = "", otp: bool = False, next_path: str = "/ui/") -> HTMLResponse:
    """The sign-in page with a fresh login-CSRF token (cookie and hidden field)."""
    token = secrets.token_urlsafe(32)
    response = render(request, "signin.html", status=status, title="Sign in", error=error,
                      name=name, otp=otp, next_path=_safe_next(next_path), signin_token=token,
                      sso_error=_sso_error(request.query_params.get("error")))
    response.set_cookie(SIGNIN_COOKIE, token, max_age=1800, path="/ui/", httponly=True,
                        samesite="strict", secure=_secure(request))
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


@router.post("/ui/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the form; on success start a session and go where the user was heading."""
    state = service(request)
    form = await _form(request)
    name = form.get("username", "")[:MAX_NAME]
    next_path = _safe_next(form.get("next", "/ui/"))
    sent = form.get("signin_token", "")
    kept = request.cookies.get(SIGNIN_COOKIE, "")
    if not sent or not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        return signin_form(request, status=400, name=name, next_path=next_path,
                           error="The sign-in form expired. Please try again.")
    # Only a post from the form (its token checked above) spends the address's allowance:
    # junk posts from a shared address (a proxy) cannot lock everyone out.
    wait = state.signin_limiter.take(f"ip:{_ip(request).get('ip', '?')}")
    if wait:
        page = signin_form(request, status=429, name=name, next_path=next_path,
                           error="Too many sign-in attempts from this address: wait a "
                           "moment and try again.")
        page.headers["Retry-After"] = RateLimiter.retry_after(wait)
        return page
    password = form.get("password", "")
    otp = form.get("otp", "").strip() or None
    if not name or not password or len(password) > MAX_PASSWORD:
        return signin_form(request, status=400, name=name, next_path=next_path,
                           error="Enter your user name and password.")
    now = state.config.clock()
    result = await in_thread(lambda: state.users.sign_in(
        name, password, otp, now, require_mfa_roles=state.config.ui_require_mfa))
    known = await in_thread(state.users.get, name)
    actor = _actor(request, name, known)
    if result.outcome == "ok" and result.user is not None:
        return await start_session(request, result.user, via="password", next_path=next_path)
    messages = {
        "bad": "Wrong user name, password or code.",
        "locked": ("Too many failed attempts: sign-in is locked for "
                   f"{max(1, round(result.retry_after))} s."),
        "mfa_required": "Enter the one-time code from your authenticator app.",
        "mfa_enroll_required": ("This role must sign in with a second factor: ask an "
                                "administrator to enrol you (sealtrail users mfa NAME)."),
        "disabled": "Wrong user name, password or code.",
    }
    try:
        await service_event(state, actor, action=("sealtrail.console.lockout"
                                                  if result.outcome == "locked"
                                                  else "sealtrail.console.sign_in"),
                            target=CONSOLE_TARGET, category="authentication",
                            outcome="denied" if result.outcome == "locked" else "failure",
                            reason=_REASONS.get(result.outcome, result.outcome),
                            metadata={"via": "password", "result": result.outcome})
    except SealtrailError as exc:
        return _unrecorded(request, exc, name, next_path)
    status = 429 if result.outcome == "locked" else 401
    page = signin_form(request, status=status, error=messages.get(result.outcome, "Refused."),
                       name=name, otp=result.outcome == "mfa_required" or otp is not None,
                       next_path=next_path)
    if result.outcome == "locked":
        page.headers["Retry-After"] = str(max(1, round(result.retry_after)))
    return page


_REASONS: Final = {
    "bad": "wrong password or one-time code, or no such user",
    "locked": "sign-in locked after repeated failures",
    "mfa_required": "one-time code required",
    "mfa_enroll_required": "second factor required for this role and not enrolled",
    "disabled": "the user is disabled",
}


async def start_session(request: Request, user: UserInfo, *, via: str,
                        next_path: str = "/ui/") -> Response:
    """Start a session for ``user`` (signed in by ``via``), record the sign-in, and answer
    with the cookie and a way on to ``next_path``.

    After single sign-on the browser arrives here from the provider's site, and a
    ``SameSite=Strict`` cookie is not sent on a redirect that a cross-site navigation started;
    so that answer is a small page that moves on by itself (a same-site navigation, which
    carries the cookie), not a redirect.
    """
    state = service(request)
    token, info = await in_thread(lambda: state.users.start_session(
        user, state.config.clock(), via=via))
    try:
        await service_event(state, _actor(request, user.name, user),
                            action="sealtrail.console.sign_in", target=CONSOLE_TARGET,
                            category="authentication", outcome="success",
                            metadata={"via": via, "session": info.id, "role": user.role})
    except SealtrailError as exc:  # a sign-in that is not on record does not happen
        await in_thread(state.users.end_session, token)
        return _unrecorded(request, exc, user.name, next_path)
    target = _safe_next(next_path)
    response: Response
    if via == "password":
        response = RedirectResponse(target, status_code=303)
    else:
        response = render(request, "moving.html", title="Signed in", target=target)
    _set_session_cookie(request, response, token)
    response.delete_cookie(SIGNIN_COOKIE, path="/ui/")
    return harden(response)


@router.post("/ui/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (the form carries its CSRF token) and record it."""
    state = service(request)
    form = await _form(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    info: SessionInfo | None = (await in_thread(state.users.session, token,
                                                state.config.clock())
                                if token and len(token) <= 128 else None)
    if info is not None:
        if not hmac.compare_digest(form.get("csrf", "").encode(), info.csrf.encode()):
            return render(request, "message.html", status=403, title="403",
                          message="The sign-out form expired: reload the page and try again.")
        await in_thread(state.users.end_session, token)
        # The session ends whether or not the record can be written (ending it is the safe
        # side); a failure to record is the trail failure the integrity watch reports.
        with contextlib.suppress(SealtrailError):
            await service_event(state, {"id": f"user:{info.user}", "type": "user",
                                        "name": info.user, **_ip(request)},
                                action="sealtrail.console.sign_out", target=CONSOLE_TARGET,
                                category="authentication", metadata={"session": info.id})
    response = RedirectResponse("/ui/", status_code=303)
    if info is not None:  # never on a request that proved nothing (a forged cross-site form)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=_secure(request),
                               httponly=True, samesite="strict")
    return harden(response)


@router.get("/ui/oidc/login")
async def oidc_login(request: Request) -> Response:
    """Single sign-on: to the OpenID Connect provider (404 when none is configured)."""
    from sealtrail.server.web import oidc  # noqa: PLC0415 - only when configured

    if getattr(service(request).config, "oidc", None) is None:
        return render(request, "message.html", status=404, title="404",
                      message="Single sign-on is not configured on this service.")
    return await oidc.oidc_login(request)


@router.get("/ui/oidc/callback")
async def oidc_callback(request: Request) -> Response:
    """Single sign-on: back from the provider with a code."""
    from sealtrail.server.web import oidc  # noqa: PLC0415 - only when configured

    if getattr(service(request).config, "oidc", None) is None:
        return render(request, "message.html", status=404, title="404",
                      message="Single sign-on is not configured on this service.")
    return await oidc.oidc_callback(request)


def _unrecorded(request: Request, exc: SealtrailError, name: str,
                next_path: str) -> HTMLResponse:
    """The form again, saying the sign-in could not be recorded (so it did not happen)."""
    return signin_form(request, status=503, name=name, next_path=next_path,
                       error="Sign-in cannot be recorded in the audit trail right now, so it "
                       f"is refused: {exc.public_message()}")


def _sso_error(code: str | None) -> str | None:
    """What a failed single sign-on's code means (only known codes: the query string is
    anyone's to write, so its text is never shown)."""
    if code is None:
        return None
    from sealtrail.server.web.oidc import ERRORS  # noqa: PLC0415 - authlib only when needed

    return ERRORS.get(code, "Single sign-on failed.")


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="strict",
                        secure=_secure(request))


def _secure(request: Request) -> bool:
    """Whether cookies carry ``Secure`` (always, unless the operator turned it off)."""
    return bool(service(request).config.ui_secure_cookies)


def _ip(request: Request) -> dict[str, str]:
    return {"ip": request.client.host} if request.client is not None else {}


def _actor(request: Request, name: str, known: UserInfo | None) -> dict[str, Any]:
    """The sign-in's actor: the user, or (unknown name) the typed text, sealed in ``name``."""
    if known is not None:
        return {"id": f"user:{known.name}", "type": "user", "name": known.name, **_ip(request)}
    return {"id": "user:(unknown)", "type": "user", "name": name or "(empty)", **_ip(request)}


def _safe_next(path: str) -> str:
    """Only a path inside the console (never another site: ``//host``, ``/\\host``)."""
    if (path.startswith("/ui/") and not path.startswith(("//", "/\\")) and "\\" not in path
            and len(path) <= 512 and all(32 < ord(c) < 127 for c in path)):
        return path
    return "/ui/"


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (length-limited), first value of each."""
    body = await read_body(request, MAX_FORM)
    if body is None:
        return {}
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {key: values[0] for key, values in parsed.items() if values}


__all__ = ["OPEN_ROUTES", "router", "sign_in", "sign_out", "start_session"]
