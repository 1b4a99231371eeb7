"""The console's session cookie, CSRF and origin checks, and the throttle on wrong admin tokens (sign-in and API), as
plain functions."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import fakeredis
import pytest
from fastapi import Request
from fastapi.responses import Response
from pydantic import SecretStr

from workers import crypto
from workers.settings import Settings
from workers.store import keys
from workers.web import deps, session
from workers.web.errors import ApiError

NOW = 1_800_000_000


def settings(**changes: object) -> Settings:
    return Settings(**{"admin_token": SecretStr("the-admin-token"), **changes})


def request(scheme: str = "http", host: str = "127.0.0.1:8084", **headers: str) -> Request:
    raw = [(b"host", host.encode())] + [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "headers": raw,
            "server": ("127.0.0.1", 8084),
        }
    )


def test_a_session_cookie_round_trips_and_any_change_voids_it():
    s = settings()
    r = fakeredis.FakeRedis()
    issued = session.issue(NOW)
    value = session.cookie_value(s, issued)
    assert session.load(s, r, value, NOW + 10) == issued
    body, signature = value.split(".")
    payload = base64.urlsafe_b64decode(body + "==")
    assert b"the-admin-token" not in payload and b'"signed_in":true' in payload
    forged = base64.urlsafe_b64encode(payload.replace(b'"iat":1800000000', b'"iat":1800009999')).rstrip(b"=")
    for bad in (forged.decode() + "." + signature, body + "." + signature[:-1] + "x", body, "", "x.y", None):
        assert session.load(s, r, bad, NOW + 10) is None, bad


def test_the_signing_key_changes_with_the_admin_token_and_the_secret_key(secret_key):
    s = settings()
    value = session.cookie_value(s, session.issue(NOW))
    r = fakeredis.FakeRedis()
    assert session.load(settings(admin_token=SecretStr("another-token")), r, value, NOW) is None
    assert session.load(settings(secret_key=SecretStr(crypto.generate_key())), r, value, NOW) is None
    # a second, older secret key behind the newest one does not change it
    assert session.load(settings(secret_key=SecretStr(f"{secret_key},{crypto.generate_key()}")), r, value, NOW)
    with pytest.raises(crypto.SecretKeyMissing):
        session.signing_key(Settings(admin_token=SecretStr("t"), secret_key=None))


def test_a_session_lasts_its_lifetime_and_ends_when_signed_out():
    s = settings(console_session_ttl_s=600)
    r = fakeredis.FakeRedis()
    issued = session.issue(NOW)
    value = session.cookie_value(s, issued)
    assert session.load(s, r, value, NOW + 599)
    assert session.load(s, r, value, NOW + 600) is None
    assert session.load(s, r, value, NOW - session.CLOCK_SKEW_S - 1) is None  # issued in the future
    session.revoke(r, s, issued, NOW + 100)
    assert session.load(s, r, value, NOW + 101) is None
    assert 0 < r.ttl(keys.revoked_session(issued.digest)) <= 500 + session.CLOCK_SKEW_S
    assert session.load(s, r, session.cookie_value(s, session.issue(NOW)), NOW + 101)  # only that session


def test_the_cookie_is_httponly_strict_and_secure_over_https():
    s = settings()
    for scheme, secure in (("http", False), ("https", True)):
        response = Response()
        session.set_session(response, request(scheme), s, session.issue(NOW))
        attributes = {a.strip().lower() for a in response.headers["set-cookie"].split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/", f"max-age={s.console_session_ttl_s}"} <= attributes
        assert ("secure" in attributes) is secure


def test_csrf_tokens_are_compared_exactly():
    issued = session.issue(NOW)
    assert session.csrf_matches(issued, issued.csrf)
    for given in ("", issued.csrf[:-1], issued.csrf + "x", "x" * len(issued.csrf)):
        assert not session.csrf_matches(issued, given)


def test_only_the_consoles_own_origin_may_post():
    assert session.same_origin(request())  # a client that says nothing (curl, tests)
    assert session.same_origin(request(origin="http://127.0.0.1:8084", sec_fetch_site="same-origin"))
    assert session.same_origin(request("https", "console.example.com", origin="https://console.example.com"))
    assert not session.same_origin(request(origin="http://127.0.0.1:9999"))
    assert not session.same_origin(request(origin="http://localhost:8084"))
    assert not session.same_origin(request(origin="null"))
    assert not session.same_origin(request("https", "console.example.com", origin="http://console.example.com"))
    assert not session.same_origin(request(sec_fetch_site="same-site"))
    assert not session.same_origin(request(sec_fetch_site="cross-site", origin="http://127.0.0.1:8084"))


def test_failed_sign_ins_lock_a_client_out_for_the_rest_of_the_window():
    s = settings(console_signin_max_failures=3, console_signin_window_s=120)
    r = fakeredis.FakeRedis()
    for _ in range(2):
        session.record_failure(r, s, "203.0.113.7")
    assert session.locked_out_s(r, s, "203.0.113.7") == 0
    session.record_failure(r, s, "203.0.113.7")
    assert 0 < session.locked_out_s(r, s, "203.0.113.7") <= 120
    assert session.locked_out_s(r, s, "198.51.100.1") == 0  # another client
    session.record_failure(r, s, "203.0.113.7")
    assert r.ttl(keys.signin_failures("203.0.113.7")) <= 120  # more failures never extend the window
    session.clear_failures(r, "203.0.113.7")
    assert session.locked_out_s(r, s, "203.0.113.7") == 0


def api_request(peer: str, token: str | None, r: fakeredis.FakeRedis, s: Settings, **headers: str) -> Request:
    """A request to an admin route from ``peer``, with ``token`` as its Bearer token, on an app with ``s`` and ``r``."""
    app = SimpleNamespace(state=SimpleNamespace(signal=SimpleNamespace(settings=s, r=r)))
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "scheme": "http",
            "method": "GET",
            "path": "/v1/admin/sources",
            "query_string": b"",
            "headers": raw,
            "client": (peer, 40000),
            "server": ("127.0.0.1", 8084),
            "app": app,
        }
    )


def refusal(request_: Request, token: str | None) -> ApiError | None:
    try:
        deps.check_admin_token(request_, token)
    except ApiError as exc:
        return exc
    return None


def test_wrong_bearer_tokens_and_failed_sign_ins_share_one_lock_that_refuses_even_the_right_token():
    s = settings(console_signin_max_failures=3, console_signin_window_s=120)
    r = fakeredis.FakeRedis()
    guesser = api_request("203.0.113.7", None, r, s)
    assert refusal(guesser, None).status == 401  # no token: refused, not counted
    for _ in range(2):
        wrong = refusal(guesser, "guess")
        assert wrong.status == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert refusal(guesser, "the-admin-token") is None  # not locked yet
    session.record_failure(r, s, deps.client_address(guesser))  # a failed console sign-in: the same count
    locked = refusal(guesser, "the-admin-token")
    assert locked.status == 429 and locked.body["error"] == "too_many_failures"
    assert 0 < int(locked.headers["Retry-After"]) <= 120 and locked.headers["Retry-After"] in locked.body["message"]
    assert set(locked.body) == {"error", "message"}
    assert refusal(api_request("198.51.100.1", None, r, s), "the-admin-token") is None  # another address


def test_the_throttled_address_is_the_client_behind_trusted_proxies_only():
    s = settings(console_signin_max_failures=1, trusted_proxies="10.0.0.0/8")
    r = fakeredis.FakeRedis()
    proxied = api_request("10.0.0.5", None, r, s, x_forwarded_for="203.0.113.7, 10.0.0.9")
    assert deps.client_address(proxied) == "203.0.113.7"
    assert refusal(proxied, "guess").status == 401
    assert r.exists(keys.signin_failures("203.0.113.7"))
    assert refusal(api_request("10.0.0.5", None, r, s, x_forwarded_for="198.51.100.1"), "the-admin-token") is None
    # an untrusted peer cannot pick its address with the header
    spoofing = api_request("192.0.2.1", None, r, s, x_forwarded_for="198.51.100.1")
    assert deps.client_address(spoofing) == "192.0.2.1"


def test_a_flash_is_signed_like_the_session():
    s = settings()
    response = Response()
    session.set_flash(response, request(), s, {"kind": "ok", "text": "Saved."})
    value = response.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert session.decode(session.signing_key(s), value) == {"kind": "ok", "text": "Saved."}
    assert session.decode(session.signing_key(settings(admin_token=SecretStr("x"))), value) is None
