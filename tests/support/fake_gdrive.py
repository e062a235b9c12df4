"""A fake Google Drive v3 API and OAuth2 token endpoint over real HTTP, written from the documented
request and response shapes, for google-api-python-client and google-auth to talk to.

- `POST /token`: the JWT bearer grant (RFC 7523) a service account makes: the assertion must be an RS256
  JWT signed by the test's key, issued by its email, for this endpoint, with a Drive scope; otherwise
  400 `invalid_grant`. Access tokens are random; `expire_tokens()` makes Drive answer 401 to them.
- `GET /drive/v3/files` (q: `'<id>' in parents and trashed=false` or `trashed=false`; pageSize, pageToken
  -> nextPageToken; corpora=drive with driveId; supportsAllDrives / includeItemsFromAllDrives), `files/<id>`
  (metadata, or the bytes with alt=media), `files/<id>/export?mimeType=`, `about?fields=exportFormats`,
  `changes/startPageToken`, `changes` (pageToken -> nextPageToken / newStartPageToken, `removed` entries
  for files deleted or out of the service account's reach). `fields` partial responses are honoured, so
  a client that forgets to ask for a field does not get it.
- Errors in Drive's JSON shape: 404 notFound, 403 insufficientFilePermissions (`forbid`), 429
  rateLimitExceeded with Retry-After (`throttle`), 401 authError.

What the service account may see: files under a folder `share()`d with it, and shared drives it is a
member of (`add_drive`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from support.fake_gdrive_routes import DriveError, route
from support.http_fakes import FakeHandler, FakeServer

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
# Google's documented `aud` of a service account's grant, whatever URL the grant is posted to
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DRIVE_SCOPES = {"https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.readonly"}


@dataclass
class FakeFile:
    id: str
    name: str
    mime: str
    parents: list[str]
    content: bytes = b""
    drive: str | None = None  # the shared drive holding it
    trashed: bool = False
    modified: str = ""
    version: int = 1
    editor: str = "Ada Lovelace"

    def resource(self) -> dict[str, Any]:
        google = self.mime.startswith("application/vnd.google-apps.")
        link = f"https://docs.google.com/document/d/{self.id}/edit" if self.mime == DOC else None
        data: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "modifiedTime": self.modified,
            "version": str(self.version),
            "webViewLink": link or f"https://drive.google.com/file/d/{self.id}/view?usp=drivesdk",
            "lastModifyingUser": {"kind": "drive#user", "displayName": self.editor, "me": False},
        }
        if self.drive:
            data["driveId"] = self.drive
        if not google:  # int64 values are JSON strings in Google's APIs
            data |= {"size": str(len(self.content)), "md5Checksum": hashlib.md5(self.content).hexdigest()}
        return data


@dataclass
class _Change:
    file_id: str
    drives: set[str] = field(default_factory=set)  # the shared drives it was in, before and after


class FakeDrive(FakeServer):
    def __init__(self, email: str = "qwenbot-reader@docs-project.iam.gserviceaccount.com") -> None:
        self.email = email
        self.public_key: rsa.RSAPublicKey | None = None  # set by service_account_key()
        self.files: dict[str, FakeFile] = {}
        self.shared: set[str] = set()  # ids shared with the service account
        self.forbidden: set[str] = set()  # ids it may see but not read: 403
        self.drives: set[str] = set()  # shared drives it is a member of
        self.markdown_export = True  # about.exportFormats lists text/markdown for Docs
        self.refuse_grants = False  # the key was deleted: every grant is invalid_grant
        self.tokens: set[str] = set()
        self.issued: list[str] = []  # every access token handed out: tests check none is ever shown
        # Drive may return fewer items than pageSize ("partial pages are possible"): a lower limit here
        # makes the client page
        self.page_limit = 1000
        self.changes: list[_Change] = []
        self.calls: Counter[str] = Counter()  # by route: "token", "files.list", "changes.list", ...
        self.lock = threading.Lock()
        self._throttle: list[tuple[int, str]] = []  # (status, Retry-After) for the next API requests
        self._ids = 0
        self._clock = 1_767_225_600  # 2026-01-01T00:00:00Z, one second on per change
        super().__init__(_Handler, "fake-gdrive")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    def service_account_key(self) -> dict[str, str]:
        """A service account's JSON key, as the Cloud console downloads it, for this fake's token
        endpoint, with a freshly generated RSA key (never stored): grants are checked against its
        public half."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": "docs-project",
            "private_key_id": secrets.token_hex(20),
            "private_key": pem.decode(),
            "client_email": self.email,
            "client_id": str(10**20 + secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }

    # -- what tests change ---------------------------------------------------------------------

    def add_drive(self, drive_id: str) -> str:
        self.drives.add(drive_id)
        return drive_id

    def add_folder(self, name: str, parent: str | None = None, *, drive: str | None = None) -> str:
        return self.add_file(name, parent, b"", FOLDER, drive=drive)

    def add_file(
        self, name: str, parent: str | None, content: bytes, mime: str = DOC, *, drive: str | None = None
    ) -> str:
        with self.lock:
            self._ids += 1
            file_id = f"1{hashlib.sha256(str(self._ids).encode()).hexdigest()[:27]}"
            parents = [parent or drive or "root-of-someone-else"]
            self.files[file_id] = FakeFile(file_id, name, mime, parents, content, drive or self._drive_of(parent))
            self._changed(file_id)
        return file_id

    def update(
        self, file_id: str, *, content: bytes | None = None, name: str | None = None, parent: str | None = None
    ) -> None:
        with self.lock:
            file = self.files[file_id]
            before = file.drive
            if content is not None:
                file.content = content
            if name is not None:
                file.name = name
            if parent is not None:
                file.parents, file.drive = [parent], self._drive_of(parent)
            file.version += 1
            self._changed(file_id, before)

    def trash(self, file_id: str) -> None:
        with self.lock:
            self.files[file_id].trashed = True
            self.files[file_id].version += 1
            self._changed(file_id)

    def delete(self, file_id: str) -> None:
        """Deleted for good (emptied from the trash): the changes feed says `removed`."""
        with self.lock:
            file = self.files.pop(file_id)
            self.changes.append(_Change(file_id, {file.drive} if file.drive else set()))

    def share(self, file_id: str) -> None:
        self.shared.add(file_id)

    def forbid(self, file_id: str) -> None:
        self.forbidden.add(file_id)

    def expire_tokens(self) -> None:
        """Every access token handed out so far is now expired: Drive answers 401 until a new grant."""
        with self.lock:
            self.tokens.clear()

    def throttle(self, times: int, retry_after: str = "1", status: int = 429) -> None:
        """The next `times` API requests answer `status`: 429 rateLimitExceeded, 403 userRateLimitExceeded,
        5xx backendError."""
        with self.lock:
            self._throttle.extend([(status, retry_after)] * times)

    # -- the model ---------------------------------------------------------------------------------

    def _drive_of(self, parent: str | None) -> str | None:
        if parent in self.drives:
            return parent
        return self.files[parent].drive if parent in self.files else None

    def _changed(self, file_id: str, drive_before: str | None = None) -> None:
        self._clock += 1
        file = self.files[file_id]
        file.modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self._clock))
        self.changes.append(_Change(file_id, {d for d in (drive_before, file.drive) if d}))

    def visible(self, file: FakeFile) -> bool:
        if file.drive in self.drives:
            return True
        seen: set[str] = set()
        current: FakeFile | None = file
        while current is not None and current.id not in seen:
            if current.id in self.shared:
                return True
            seen.add(current.id)
            current = self.files.get(current.parents[0]) if current.parents else None
        return False

    def next_throttle(self) -> tuple[int, str] | None:
        with self.lock:
            return self._throttle.pop(0) if self._throttle else None

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != JWT_GRANT:
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        assertion, key = form.get("assertion", ""), self.public_key
        if self.refuse_grants or key is None:
            problem: str | None = "Invalid JWT Signature."
        else:
            problem = _check_assertion(assertion, key, self.email)
        if problem:
            return 400, {"error": "invalid_grant", "error_description": problem}
        token = "ya29." + secrets.token_urlsafe(32)
        with self.lock:
            self.tokens.add(token)
            self.issued.append(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _check_assertion(assertion: str, public_key: rsa.RSAPublicKey, email: str) -> str | None:
    """Why the JWT is refused, or None (RFC 7523, as Google's endpoint checks it)."""
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header, claims = json.loads(_b64(header_b64)), json.loads(_b64(claims_b64))
        public_key.verify(
            _b64(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (ValueError, InvalidSignature):
        return "Invalid JWT Signature."
    now = time.time()
    if header.get("alg") != "RS256" or claims.get("iss") != email:
        return "Invalid JWT: bad algorithm or issuer."
    if claims.get("aud") != TOKEN_AUDIENCE:
        return "Invalid JWT: bad audience."
    if not (claims.get("iat", now + 999) <= now + 60 < claims.get("exp", 0) + 60 <= now + 3660 + 60):
        return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
    if not DRIVE_SCOPES & set(str(claims.get("scope", "")).split()):
        return "Invalid JWT: no Drive scope."
    return None


class _Handler(FakeHandler[FakeDrive]):
    def do_POST(self) -> None:
        body = self.read_body().decode()
        if urlsplit(self.path).path != "/token":
            self.send(404, {"error": "not_found"})
            return
        self.fake.calls["token"] += 1
        form = {k: v[0] for k, v in parse_qs(body).items()}
        self.send(*self.fake.grant(form))

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        fake = self.fake
        try:
            throttled = fake.next_throttle()
            if throttled:
                status, retry_after = throttled
                fake.calls["throttled"] += 1
                reason = {429: "rateLimitExceeded", 403: "userRateLimitExceeded"}.get(status, "backendError")
                error = DriveError(status, reason, "Rate Limit Exceeded" if status < 500 else "Backend Error")
                self.send(status, error.body(), {"Retry-After": retry_after})
                return
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                fake.calls["unauthorized"] += 1
                error = DriveError(401, "authError", "Request had invalid authentication credentials.")
                self.send(401, error.body(), {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
                return
            name, result = route(fake, parts.path, query)
            fake.calls[name] += 1
        except DriveError as exc:
            fake.calls["error"] += 1
            self.send(exc.status, exc.body())
            return
        if isinstance(result, bytes):
            self.send_bytes(200, result, "application/octet-stream")
        else:
            self.send(200, result)

    def send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, payload, headers, "application/json; charset=UTF-8")
