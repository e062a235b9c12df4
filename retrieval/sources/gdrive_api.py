"""The Google Drive connector's client: the service-account key, the Drive v3 client built from the
discovery document google-api-python-client ships (nothing downloaded at run time), every request counted,
and Drive's and the token endpoint's refusals turned into one-line SourceErrors.

Messages name the environment variable holding the key and the service account's email (what an admin
shares the folder with), never the key, an access token or an Authorization header.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httplib2
from google.auth import exceptions as auth_errors
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from retrieval.errors import (
    SourceAuthError,
    SourceError,
    SourceNotFoundError,
    SourceRateLimitedError,
    SourceUnreachableError,
)
from retrieval.sources.spec import SourceSpec

SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
DEFAULT_API_URL = "https://www.googleapis.com/"
TIMEOUT_S = 60.0  # connect and read, per request (httplib2 has one timeout for both)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SERVER_RETRIES = 3  # 5xx answers retried this many times before the host counts as failing
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class ServiceKey:
    """The parts of the key the connector shows or uses: never the private key itself."""

    variable: str  # the environment variable that names or holds the key
    email: str  # the service account's email: folders are shared with it
    token_uri: str  # where the key is exchanged for access tokens
    credentials: service_account.Credentials


def load_key(spec: SourceSpec) -> ServiceKey:
    """The service-account key from `credentials_file_env` (a path to the JSON key file) or
    `credentials_json_env` (the JSON itself); checked here, so a bad key fails before any request."""
    keys = [k for k in ("credentials_file_env", "credentials_json_env") if spec.settings.get(k) is not None]
    if len(keys) != 1:
        raise spec.error(
            "set exactly one of 'credentials_file_env' (the variable naming the service account's JSON key "
            "file) or 'credentials_json_env' (the variable holding the JSON key)"
        )
    setting = keys[0]
    variable = str(spec.settings[setting]).strip()
    value = spec.secret(setting) or ""
    if setting == "credentials_file_env":
        try:
            value = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
            raise spec.error(f"cannot read the key file named by {variable} ({setting}): {reason}") from None
    return _parse_key(spec, variable, value)


def _parse_key(spec: SourceSpec, variable: str, text: str) -> ServiceKey:
    fix = f"the key in {variable} is not a service account's JSON key"
    try:
        info = json.loads(text)
    except ValueError:
        raise spec.error(f"{fix}: it is not JSON (download a JSON key of the service account)") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise spec.error(f'{fix}: its "type" is not "service_account"')
    missing = [k for k in ("client_email", "private_key", "token_uri") if not isinstance(info.get(k), str)]
    if missing:
        raise spec.error(f"{fix}: it lacks {', '.join(missing)}")
    try:
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    except (ValueError, auth_errors.GoogleAuthError):
        # the exception may quote the key: only say which part is wrong
        raise spec.error(f"{fix}: its private_key cannot be read (download a new key)") from None
    return ServiceKey(variable, info["client_email"], info["token_uri"], credentials)


@dataclass(frozen=True)
class Refused:
    """A refusal the caller handles itself (see `DriveClient.call`'s `refusals`)."""

    status: int
    reason: str


class _CountingHttp(httplib2.Http):  # type: ignore[misc]  # httplib2 has no type hints
    """Counts every request: the token exchanges as well as the API calls (the bench compares them)."""

    def __init__(self) -> None:
        super().__init__(timeout=TIMEOUT_S)
        self.requests = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return super().request(*args, **kwargs)


class DriveClient:
    """Drive v3 through google-api-python-client; `call` runs one request with the retry policy."""

    def __init__(self, spec: SourceSpec, key: ServiceKey, api_url: str | None) -> None:
        self.spec, self.key = spec, key
        self.api_url = api_url or DEFAULT_API_URL
        self.rate_limit_budget_s = 60.0  # waiting on 429s, per sync; beyond it the sync fails and backs off
        self.sleep: Callable[[float], None] = time.sleep
        self._http = _CountingHttp()
        # an expired access token: AuthorizedHttp refreshes it at the key's token_uri and retries once
        authed = AuthorizedHttp(key.credentials, http=self._http)
        options = {"api_endpoint": self.api_url.rstrip("/") + "/drive/v3/"} if api_url else None
        drive = build("drive", "v3", http=authed, static_discovery=True, cache_discovery=False, client_options=options)
        # each resource call builds its methods from the discovery document (~10 ms): once, then reused
        self.files: Any = drive.files()
        self.changes: Any = drive.changes()
        self.about: Any = drive.about()
        self._rate_waited = 0.0

    @property
    def requests(self) -> int:
        return self._http.requests

    def start_sync(self) -> None:
        self._rate_waited = 0.0

    def call(self, request: Any, what: str, refusals: tuple[str, ...] = ()) -> Any:
        """`request.execute()`, with 429s waited out (Retry-After) within the budget and 5xx retried;
        every failure raised as a SourceError naming `what` (e.g. "folder 'abc'"), except those whose
        status or reason is in `refusals`: returned as a `Refused`."""
        failures = limited = 0
        while True:
            try:
                return request.execute(num_retries=0)
            except HttpError as exc:
                status, reason = exc.resp.status, _reason(exc)
                if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
                    limited += 1
                    self._wait_rate_limit(exc, limited)
                    continue
                if status >= 500 and failures < SERVER_RETRIES:
                    failures += 1
                    self.sleep(min(MAX_BACKOFF_S, 2**failures * (0.5 + random.random() / 2)))
                    continue
                if str(status) in refusals or reason in refusals:
                    return Refused(status, reason)
                raise self._http_error(status, reason, what) from None
            except auth_errors.RefreshError as exc:
                raise self._refused(exc) from None
            except (auth_errors.TransportError, httplib2.HttpLib2Error, OSError) as exc:
                raise self._unreachable(exc) from None

    def _wait_rate_limit(self, exc: HttpError, attempt: int) -> None:
        """Waits as Drive's Retry-After says (else exponentially), while this sync's budget lasts."""
        delay = min(MAX_BACKOFF_S, 2.0**attempt)
        try:
            delay = max(0.0, float(exc.resp["retry-after"]))
        except (KeyError, ValueError):  # none, or an HTTP date (Google sends seconds): the exponential wait
            pass
        if self._rate_waited + delay > self.rate_limit_budget_s:
            raise SourceRateLimitedError(
                f"{self._prefix()}Drive keeps answering 'rate limit exceeded' (429); the sync retries later",
                retry_after=delay,
            )
        self._rate_waited += delay
        self.sleep(delay)

    def _http_error(self, status: int, reason: str, what: str) -> SourceError:
        said = f" (Drive said: {reason})" if reason else ""
        email = self.key.email
        grant = f"add {email} to it as a member" if what.startswith("shared drive") else f"share it with {email}"
        if status == 401:
            return SourceAuthError(
                f"{self._prefix()}Drive refused the service account's access token (401){said}: check the key "
                f"in {self.key.variable} is still active"
            )
        if status == 403 and reason in ("accessNotConfigured", "SERVICE_DISABLED"):
            return SourceAuthError(
                f"{self._prefix()}the Google Drive API is not enabled for the project of {email}: enable it "
                "in the Google Cloud console (APIs & Services)"
            )
        if status == 403:
            return SourceAuthError(
                f"{self._prefix()}the service account {email} may not read {what}{said}: {grant} (Viewer is enough)"
            )
        if status == 404:
            return SourceNotFoundError(
                f"{self._prefix()}{what} was not found: check the id, and {grant} (Drive answers 'not found' "
                "for what the service account may not see)"
            )
        if status >= 500:
            return SourceUnreachableError(
                f"{self._prefix()}Drive keeps failing ({status}) at {self._host(self.api_url)}; the sync retries later"
            )
        return SourceError(f"{self._prefix()}Drive answered {status}{said} for {what}")

    def _refused(self, exc: auth_errors.RefreshError) -> SourceError:
        # args: (message, the token endpoint's JSON answer): only its error code and description are shown
        answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        code = str(answer.get("error") or "refused")[:80]
        description = str(answer.get("error_description") or "")[:160]
        said = f"{code}: {description}" if description else code
        if exc.retryable and "error" not in answer:  # the token endpoint kept failing (5xx)
            return self._unreachable(exc)
        return SourceAuthError(
            f"{self._prefix()}the token endpoint {self._host(self.key.token_uri)} refused the "
            f"service account {self.key.email} ({said}): check the key in {self.key.variable} is current "
            "(not deleted or disabled) and the machine's clock"
        )

    def _unreachable(self, exc: Exception) -> SourceUnreachableError:
        kind = type(exc).__name__
        hosts = sorted({self._host(self.api_url), self._host(self.key.token_uri)})
        return SourceUnreachableError(
            f"{self._prefix()}cannot reach {' or '.join(hosts)} ({kind}); the sync retries later"
        )

    def _prefix(self) -> str:
        return f"source {self.spec.name!r} ({self.spec.kind}): "

    @staticmethod
    def _host(url: str) -> str:
        parts = urlsplit(url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "(no host)"


def _reason(exc: HttpError) -> str:
    """The first `errors[].reason` of Drive's error body (e.g. rateLimitExceeded), or its status."""
    try:
        body = json.loads(exc.content.decode("utf-8", "replace"))
        error = body.get("error", {})
        details = error.get("errors") or [{}]
        return str(details[0].get("reason") or error.get("status") or "")[:80]
    except (ValueError, AttributeError, IndexError):
        return ""
