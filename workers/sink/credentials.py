"""Where an integration's AWS credentials come from, per its ``credentials`` mode:

- ``access_key``: the integration's key pair (and session token), as given;
- ``assume_role``: temporary credentials of the customer's role, from STS AssumeRole with its ExternalId, assumed by
  the integration's key pair when it has one, else by the fleet's own identity;
- ``fleet``: the fleet's own identity, the standard AWS chain (environment, shared config, web identity / IRSA, ECS
  and EC2 roles).

A role's credentials live in this process only (never in Redis, a log or a message), in a botocore session whose
credentials refresh themselves ``SIGNAL_STS_REFRESH_BEFORE_S`` before they expire: one AssumeRole per session
lifetime, not one per upload. STS is called in the integration's region; ``AWS_ENDPOINT_URL_STS`` /
``AWS_ENDPOINT_URL`` are read by botocore itself. A refused AssumeRole is remembered for ``SIGNAL_STS_REFUSAL_HOLD_S``
and raised again without asking STS, so a customer's CloudTrail never sees a storm of refused calls; its failure
names both causes to check and the trust policy to apply. Everything here uses botocore's public credential
provider interface (``CredentialProvider``, ``CredentialResolver``, ``RefreshableCredentials``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import botocore.exceptions as boto_exc
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from workers.classify import classify, hint_for
from workers.errors import Failure, PermanentError, TransientError
from workers.settings import Settings

if TYPE_CHECKING:
    from pydantic import SecretStr

ACCESS_KEY, ASSUME_ROLE, FLEET = "access_key", "assume_role", "fleet"
DEFAULT_SESSION_NAME = "signal-s3"
# STS answers these for a role the caller may not assume: a trust policy that does not name it, another ExternalId,
# or a role that does not exist. They cannot be told apart from the answer.
_REFUSED = frozenset({"AccessDenied", "AccessDeniedException"})


class CredentialsConfig(Protocol):
    """The fields of an integration's configuration this module reads."""

    region: str
    credentials: str
    access_key_id: SecretStr | None
    secret_access_key: SecretStr | None
    session_token: SecretStr | None
    role_arn: str | None
    external_id: str | None
    role_session_name: str | None


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def fingerprint(cfg: CredentialsConfig) -> str:
    """sha256 of where the credentials come from: names them in caches without holding them in a printable key."""
    parts = [cfg.credentials, _secret(cfg.access_key_id), _secret(cfg.secret_access_key), _secret(cfg.session_token)]
    if cfg.credentials == ASSUME_ROLE:
        parts += [cfg.role_arn or "", cfg.external_id or "", session_name(cfg), cfg.region]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def session_name(cfg: CredentialsConfig) -> str:
    return cfg.role_session_name or DEFAULT_SESSION_NAME


def sts_config(settings: Settings) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.s3_max_attempts},
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
    )


# -- the fleet's own identity --------------------------------------------------------------------------------------

_lock = threading.Lock()
_fleet_session: botocore.session.Session | None = None
_role_sessions: dict[str, botocore.session.Session] = {}
_refusals: dict[str, tuple[float, Exception]] = {}  # fingerprint -> (monotonic time it is asked again, the error)
_principal: dict[str, str | None] = {}


def _reset_after_fork() -> None:
    global _lock, _fleet_session
    _lock = threading.Lock()  # sessions and their refresh locks never cross a fork: the child builds its own
    _fleet_session = None
    _role_sessions.clear()
    _refusals.clear()
    _principal.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def fleet_session() -> botocore.session.Session:
    """The fleet's own identity: a botocore session on the default credential chain (one per process)."""
    global _fleet_session
    with _lock:
        if _fleet_session is None:
            _fleet_session = botocore.session.get_session()
        return _fleet_session


def fleet_principal(settings: Settings) -> str | None:
    """The ARN a customer's trust policy names for the fleet: ``SIGNAL_FLEET_PRINCIPAL_ARN`` when set, else what STS
    GetCallerIdentity says of the fleet's own identity (an assumed role's session named by its role). None when the
    fleet has no AWS identity here."""
    if settings.fleet_principal_arn:
        return settings.fleet_principal_arn
    if "arn" not in _principal:
        try:
            sts = fleet_session().create_client("sts", region_name="us-east-1", config=sts_config(settings))
            arn = sts.get_caller_identity()["Arn"]
        except (boto_exc.BotoCoreError, boto_exc.ClientError):
            return None  # not remembered: the identity may appear (a pod's token mounted later)
        _principal["arn"] = role_of_session(arn)
    return _principal["arn"]


def role_of_session(arn: str) -> str:
    """``arn:aws:sts::A:assumed-role/R/S`` (GetCallerIdentity of a role's session) as the role a trust policy names,
    ``arn:aws:iam::A:role/R``; any other ARN as it is."""
    head, _, resource = arn.partition(":assumed-role/")
    if not resource or not head.startswith("arn:") or ":sts:" not in head:
        return arn
    return head.replace(":sts:", ":iam:", 1) + ":role/" + resource.split("/", 1)[0]


KEY_PAIR_PRINCIPAL = "<the ARN of the IAM user whose key pair the integration holds>"
FLEET_PRINCIPAL = "<the fleet's role or user ARN>"


def trust_policy(principal: str | None, external_id: str, *, key_pair: bool = False) -> dict[str, Any]:
    """The trust policy of a customer's role that lets the fleet (or, with ``key_pair``, the integration's key pair)
    assume it with this ExternalId; a placeholder where the principal is not known here."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principal or (KEY_PAIR_PRINCIPAL if key_pair else FLEET_PRINCIPAL)},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


# -- a customer's role -----------------------------------------------------------------------------------------------


class _RoleProvider(CredentialProvider):
    """The only credential provider of a role's session: no fallback to the fleet's own identity, ever."""

    METHOD = CANONICAL_NAME = "custom-signal-assume-role"

    def __init__(self, refresh: Any, settings: Settings) -> None:
        super().__init__()
        self._refresh = refresh
        self._settings = settings

    def load(self) -> RefreshableCredentials:
        before_s = self._settings.sts_refresh_before_s
        return RefreshableCredentials.create_from_metadata(
            metadata=self._refresh(),
            refresh_using=self._refresh,
            method=self.METHOD,
            advisory_timeout=before_s,
            mandatory_timeout=before_s * 2 // 3,
        )


def role_session(cfg: CredentialsConfig, settings: Settings) -> botocore.session.Session:
    """A botocore session whose credentials are the role's, refreshed before they expire (one per role, external id
    and assuming identity in this process). Raises what the first AssumeRole raised."""
    key = fingerprint(cfg)
    with _lock:
        session = _role_sessions.get(key)
    if session is not None:
        return session
    session = botocore.session.Session()
    session.register_component(
        "credential_provider", CredentialResolver([_RoleProvider(_assume_role(cfg, settings, key), settings)])
    )
    session.get_credentials()  # the first AssumeRole, now: a refusal is raised here, not at the first request
    with _lock:
        return _role_sessions.setdefault(key, session)


def forget(cfg: CredentialsConfig) -> None:
    """Ask STS again at the next use (a replay after the customer fixed the trust policy), and drop the session."""
    key = fingerprint(cfg)
    with _lock:
        _refusals.pop(key, None)
        _role_sessions.pop(key, None)


def _assume_role(cfg: CredentialsConfig, settings: Settings, key: str) -> Any:
    """The refresh function of a role's credentials: AssumeRole, or the refusal remembered for this role."""

    def refresh() -> dict[str, str]:
        with _lock:
            held = _refusals.get(key)
        if held is not None and time.monotonic() < held[0]:
            raise held[1]
        try:
            answer = _sts(cfg, settings).assume_role(
                RoleArn=cfg.role_arn,
                RoleSessionName=session_name(cfg),
                ExternalId=cfg.external_id,
                DurationSeconds=settings.sts_session_duration_s,
            )
        except Exception as exc:
            error = _translated(cfg, settings, exc)
            if isinstance(error, PermanentError):
                with _lock:
                    _refusals[key] = (time.monotonic() + settings.sts_refusal_hold_s, error)
            raise error from None
        creds = answer["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    return refresh


def _sts(cfg: CredentialsConfig, settings: Settings) -> Any:
    """An STS client in the integration's region, as the identity that assumes the role."""
    if cfg.access_key_id is not None and cfg.secret_access_key is not None:
        return botocore.session.get_session().create_client(
            "sts",
            region_name=cfg.region,
            aws_access_key_id=_secret(cfg.access_key_id),
            aws_secret_access_key=_secret(cfg.secret_access_key),
            aws_session_token=_secret(cfg.session_token) or None,
            config=sts_config(settings),
        )
    return fleet_session().create_client("sts", region_name=cfg.region, config=sts_config(settings))


def _translated(cfg: CredentialsConfig, settings: Settings, exc: Exception) -> TransientError | PermanentError:
    """An AssumeRole failure as the pipeline holds or retries it: a refused role, a base identity that is missing or
    wrong (permanent, with what to check), or STS or the network failing (transient)."""
    if isinstance(exc, boto_exc.ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
        if code in _REFUSED:
            return PermanentError(refused(cfg, settings))
        failure = classify(exc)
        if failure.permanent:
            base = "the integration's key pair" if cfg.access_key_id is not None else "the fleet's own identity"
            return PermanentError(
                Failure(
                    failure.code,
                    f"AssumeRole of {cfg.role_arn}: {failure.message}",
                    True,
                    f"STS refused {base}, which assumes the role: {hint_for(failure.code)}",
                    failure.http_status,
                )
            )
        return TransientError(failure)
    if isinstance(exc, boto_exc.NoCredentialsError | boto_exc.PartialCredentialsError):
        return PermanentError(
            Failure(
                "NoFleetIdentity",
                "the fleet has no AWS identity to assume the role with",
                True,
                hint_for("NoFleetIdentity"),
                None,
            )
        )
    failure = classify(exc)
    return TransientError(failure) if not failure.permanent else PermanentError(failure)


def refused(cfg: CredentialsConfig, settings: Settings) -> Failure:
    """The failure of a role STS would not let the fleet assume, with both causes to check and the trust policy."""
    principal = fleet_principal(settings) if cfg.access_key_id is None else None
    key_pair = cfg.access_key_id is not None
    policy = json.dumps(trust_policy(principal, cfg.external_id or "", key_pair=key_pair), separators=(",", ":"))
    who = principal or ("the integration's key pair" if cfg.access_key_id is not None else "the fleet")
    return Failure(
        code="AssumeRoleDenied",
        message=f"STS refused to let {who} assume {cfg.role_arn} with this integration's external ID",
        permanent=True,
        hint=(
            f"Check both: the trust policy of {cfg.role_arn} must allow sts:AssumeRole for {who}, and its "
            "sts:ExternalId condition must equal this integration's external_id (and the role must exist). "
            f"Trust policy to apply: {policy}. Then replay the held batches."
        ),
        http_status=403,
    )
