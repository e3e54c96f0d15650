"""A stand-in for the parts of a Bluesky PDS (AT Protocol XRPC) newsbot uses.

It answers the way the PDS does: XRPC error bodies {"error": NAME, "message": TEXT}, 400 for
invalid requests and expired tokens (ExpiredToken), 401 for a bad login or token, 429 with
ratelimit-limit/-remaining/-reset/-policy headers. It enforces what the PDS enforces:

- sessions: createSession with identifier + app password (limited per account, 30 per 5
  minutes and 300 per day by default); access tokens that expire (ExpiredToken);
  refreshSession with the refresh token, which rotates it (the old one stops working).
- app.bsky.feed.post records: text at most 300 graphemes and 3,000 UTF-8 bytes; facets whose
  byte ranges lie inside the text and on grapheme boundaries, with link (uri) or tag
  features; `langs` at most 3 valid tags; an external embed whose thumb is an uploaded blob
  of an image type under 1,000,000 bytes; a record key (rkey) that is a TID, and not one
  already used: a second record with the same key gets the PDS's 500.
- uploadBlob: raw bytes, a CID for them, a size cap.

Faults (BlueskyFault) make the next matching calls fail, hang or lose the connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import regex
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
THUMB_MAX_BYTES = 1_000_000
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_GRAPHEME = regex.compile(r"\X")
SESSION_WINDOWS = ((5 * 60, "w=300"), (24 * 60 * 60, "w=86400"))


def graphemes(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def grapheme_boundaries(text: str) -> set[int]:
    """UTF-8 byte offsets at which a grapheme cluster starts or the text ends."""
    offsets, at = {0}, 0
    for cluster in _GRAPHEME.findall(text):
        at += len(cluster.encode("utf-8"))
        offsets.add(at)
    return offsets


def blob_cid(data: bytes) -> str:
    """The CIDv1 (raw codec, sha2-256) of `data` in base32, as the PDS names blobs."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


@dataclass
class Account:
    identifier: str
    app_password: str
    did: str
    handle: str


@dataclass
class BlueskyFault:
    """What the next call to one of `nsids` gets.

    status: answer with this status and `error`/`message` (a 429 carries ratelimit headers
    announcing `retry_after` seconds). 0: no error, use with hang or drop.
    hang: sit on the call this many seconds first; with status 0 it then goes through.
    drop: carry the call out, then cut the connection before answering.
    """

    status: int = 503
    error: str = "InternalServerError"
    message: str = "Service Unavailable"
    hang: float = 0.0
    drop: bool = False
    retry_after: int = 120
    #: Matching calls let through before this fault fires.
    skip: int = 0
    nsids: tuple[str, ...] = ("com.atproto.repo.createRecord",)


@dataclass
class State:
    accounts: list[Account] = field(default_factory=list)
    #: Every post made: uri, rkey, did, record, deleted.
    posts: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[BlueskyFault] = field(default_factory=list)
    #: The NSID of every call, in order.
    calls: list[str] = field(default_factory=list)
    #: (start, end) wall-clock times of every createRecord request, for the crash experiment
    #: (end 0.0 while it is still in progress).
    publishing: list[list[float]] = field(default_factory=list)
    access_lifetime: float = 2 * 60 * 60
    session_caps: tuple[int, int] = (30, 300)  # per 5 minutes, per day, per account
    max_blob_bytes: int = 5 * 1024 * 1024
    _access: dict[str, tuple[str, float]] = field(default_factory=dict)
    _refresh: dict[str, str] = field(default_factory=dict)
    _logins: dict[str, list[float]] = field(default_factory=dict)
    _dids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_account(self, identifier: str, app_password: str) -> Account:
        n = next(self._dids)
        account = Account(identifier, app_password, f"did:plc:standin{n:018d}", identifier)
        self.accounts.append(account)
        return account

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired (refresh tokens still work)."""
        self._access = {token: (did, 0.0) for token, (did, _) in self._access.items()}

    def revoke_sessions(self) -> None:
        """App password revoked: every token of every session stops working."""
        self._access.clear()
        self._refresh.clear()

    def inject(self, *faults: BlueskyFault, times: int = 1) -> None:
        for _ in range(times):
            self.faults.extend(faults)

    def live_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if not p["deleted"]]

    def sessions_created(self, identifier: str) -> int:
        return len(self._logins.get(identifier, []))


def xrpc_error(status: int, error: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def invalid(message: str) -> JSONResponse:
    return xrpc_error(400, "InvalidRequest", message)


def _bad_record(message: str) -> JSONResponse:
    return invalid(f"Invalid {POST} record: {message}")


class _Hangup(Response):
    """Returns without answering: uvicorn closes the connection (a lost answer)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


# Validation --------------------------------------------------------------------------------


def check_post(state: State, did: str, record: Any) -> str | None:
    """Why the PDS would refuse `record` as an app.bsky.feed.post, or None."""
    if not isinstance(record, dict):
        return "Record must be an object"
    if record.get("$type") != POST:
        return f"Record/$type must be {POST}"
    text = record.get("text")
    if not isinstance(text, str):
        return 'Record must have the property "text"'
    if graphemes(text) > MAX_GRAPHEMES:
        return f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
    if len(text.encode("utf-8")) > MAX_BYTES:
        return f"Record/text must not be longer than {MAX_BYTES} characters"
    if not isinstance(record.get("createdAt"), str):
        return 'Record must have the property "createdAt"'
    langs = record.get("langs", [])
    if not isinstance(langs, list) or len(langs) > 3:
        return "Record/langs must not have more than 3 elements"
    for lang in langs:
        if not isinstance(lang, str) or not LANGUAGE.match(lang):
            return "Record/langs must be well-formed BCP 47 language tags"
    problem = _check_facets(text, record.get("facets", []))
    if problem:
        return problem
    embed = record.get("embed")
    if embed is not None:
        return _check_embed(state, did, embed)
    return None


def _check_facets(text: str, facets: Any) -> str | None:
    if not isinstance(facets, list):
        return "Record/facets must be an array"
    size = len(text.encode("utf-8"))
    boundaries = grapheme_boundaries(text)
    for n, facet in enumerate(facets):
        where = f"Record/facets/{n}"
        index = facet.get("index") if isinstance(facet, dict) else None
        if not isinstance(index, dict):
            return f'{where} must have the property "index"'
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not isinstance(start, int) or not isinstance(end, int):
            return f"{where}/index must have integer byteStart and byteEnd"
        if not 0 <= start < end <= size:
            return f"{where}/index is outside the text ({start}..{end} of {size} bytes)"
        if start not in boundaries or end not in boundaries:
            return f"{where}/index does not fall on grapheme boundaries"
        features = facet.get("features")
        if not isinstance(features, list) or not features:
            return f'{where} must have the property "features"'
        for feature in features:
            kind = feature.get("$type") if isinstance(feature, dict) else None
            if kind == "app.bsky.richtext.facet#link":
                uri = feature.get("uri")
                if not isinstance(uri, str) or not re.match(r"^[a-z][a-z0-9+.-]*:\S+$", uri):
                    return f"{where}/features/0/uri must be a valid uri"
            elif kind == "app.bsky.richtext.facet#tag":
                tag = feature.get("tag")
                if (
                    not isinstance(tag, str)
                    or not tag
                    or tag.startswith("#")
                    or graphemes(tag) > 64
                    or len(tag.encode()) > 640
                ):
                    return f"{where}/features/0/tag must be 1 to 64 graphemes, without #"
            elif kind != "app.bsky.richtext.facet#mention":
                return f"{where}/features/0 has an unknown $type {kind!r}"
    return None


def _check_embed(state: State, did: str, embed: Any) -> str | None:
    if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.external":
        return "Record/embed $type must be one of the known embeds"
    external = embed.get("external")
    if not isinstance(external, dict):
        return 'Record/embed must have the property "external"'
    for key in ("uri", "title", "description"):
        if not isinstance(external.get(key), str):
            return f'Record/embed/external must have the property "{key}"'
    thumb = external.get("thumb")
    if thumb is None:
        return None
    ref = thumb.get("ref") if isinstance(thumb, dict) else None
    cid = ref.get("$link") if isinstance(ref, dict) else None
    blob = state.blobs.get(cid) if isinstance(cid, str) else None
    if thumb.get("$type") != "blob" or blob is None or blob["did"] != did:  # type: ignore[union-attr]
        return "Record/embed/external/thumb should be a blob ref uploaded to this repo"
    if not str(blob["mimeType"]).startswith("image/"):
        return "Record/embed/external/thumb mime type must be image/*"
    if blob["size"] > THUMB_MAX_BYTES:
        return f"Record/embed/external/thumb file is too large (max {THUMB_MAX_BYTES} bytes)"
    return None


def _missing_blob(state: State, record: Any) -> str | None:
    """The CID of a thumbnail the record names that was never uploaded (or was dropped)."""
    embed = record.get("embed") if isinstance(record, dict) else None
    external = embed.get("external") if isinstance(embed, dict) else None
    thumb = external.get("thumb") if isinstance(external, dict) else None
    ref = thumb.get("ref") if isinstance(thumb, dict) else None
    cid = ref.get("$link") if isinstance(ref, dict) else None
    return cid if isinstance(cid, str) and cid not in state.blobs else None


# The app -----------------------------------------------------------------------------------


def create_app(state: State) -> Starlette:
    def fault_for(nsid: str) -> BlueskyFault | None:
        fault = next((f for f in state.faults if nsid in f.nsids), None)
        if fault is not None and fault.skip > 0:
            fault.skip -= 1
            return None
        if fault is not None:
            state.faults.remove(fault)
        return fault

    def session_headers(identifier: str, now: float) -> dict[str, str]:
        """ratelimit-* for the tighter of the two createSession windows."""
        logins = state._logins.get(identifier, [])
        best: dict[str, str] = {}
        least = None
        for (window, policy), cap in zip(SESSION_WINDOWS, state.session_caps, strict=True):
            used = [t for t in logins if now - t < window]
            remaining = max(0, cap - len(used))
            if least is None or remaining < least:
                least = remaining
                best = {
                    "ratelimit-limit": str(cap),
                    "ratelimit-remaining": str(remaining),
                    "ratelimit-reset": str(int((min(used) if used else now) + window)),
                    "ratelimit-policy": f"{cap};{policy}",
                }
        return best

    def bearer(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        return header[7:] if header.startswith("Bearer ") else None

    def access_did(request: Request) -> tuple[str | None, Response | None]:
        token = bearer(request)
        if token is None:
            return None, xrpc_error(401, "AuthenticationRequired", "Authentication Required")
        if token in state._refresh:
            return None, invalid("Token could not be verified")
        entry = state._access.get(token)
        if entry is None:
            return None, xrpc_error(401, "InvalidToken", "Token could not be verified")
        did, expires = entry
        if time.time() >= expires:
            return None, xrpc_error(400, "ExpiredToken", "Token has expired")
        return did, None

    def issue(account: Account) -> dict[str, Any]:
        access, refresh = f"acc-{secrets.token_hex(16)}", f"ref-{secrets.token_hex(16)}"
        state._access[access] = (account.did, time.time() + state.access_lifetime)
        state._refresh[refresh] = account.did
        return {
            "did": account.did,
            "handle": account.handle,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": True,
        }

    async def handle(request: Request) -> Response:
        if request.path_params["nsid"] != "com.atproto.repo.createRecord":
            return await answer(request)
        span = [time.time(), 0.0]
        state.publishing.append(span)
        try:
            return await answer(request)
        finally:
            span[1] = time.time()

    async def answer(request: Request) -> Response:
        nsid = request.path_params["nsid"]
        state.calls.append(nsid)
        body = await request.body()
        fault = fault_for(nsid)
        if fault is not None:
            if fault.hang:
                await asyncio.sleep(fault.hang)
            if fault.status:
                headers = {}
                if fault.status == 429:
                    reset = int(time.time()) + fault.retry_after
                    headers = {
                        "ratelimit-limit": "5000",
                        "ratelimit-remaining": "0",
                        "ratelimit-reset": str(reset),
                        "ratelimit-policy": "5000;w=3600",
                    }
                return xrpc_error(fault.status, fault.error, fault.message, **headers)
        route = ROUTES.get((request.method, nsid))
        if route is None:
            return xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")
        answer = await route(request, body)
        if fault is not None and fault.drop:
            return _Hangup()
        return answer

    def json_body(body: bytes) -> dict[str, Any] | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def create_session(_: Request, body: bytes) -> Response:
        data = json_body(body)
        if data is None or not isinstance(data.get("identifier"), str):
            return invalid('Input must have the property "identifier"')
        identifier, now = data["identifier"], time.time()
        headers = session_headers(identifier, now)
        if headers["ratelimit-remaining"] == "0":
            return xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", **headers)
        state._logins.setdefault(identifier, []).append(now)
        headers = session_headers(identifier, now)
        account = next(
            (a for a in state.accounts if identifier in (a.identifier, a.did)),
            None,
        )
        if account is None or account.app_password != data.get("password"):
            return xrpc_error(
                401, "AuthenticationRequired", "Invalid identifier or password", **headers
            )
        return JSONResponse(issue(account), headers=headers)

    async def refresh_session(request: Request, _: bytes) -> Response:
        token = bearer(request)
        did = state._refresh.pop(token, None) if token else None
        if did is None:
            if token in state._access:
                return invalid("Token could not be verified")
            return xrpc_error(400, "ExpiredToken", "Token has been revoked")
        account = next(a for a in state.accounts if a.did == did)
        return JSONResponse(issue(account))

    async def get_session(request: Request, _: bytes) -> Response:
        did, refused = access_did(request)
        if did is None:
            return refused or invalid("no session")
        account = next(a for a in state.accounts if a.did == did)
        return JSONResponse({"did": did, "handle": account.handle, "active": True})

    async def upload_blob(request: Request, body: bytes) -> Response:
        did, refused = access_did(request)
        if did is None:
            return refused or invalid("no session")
        if len(body) > state.max_blob_bytes:
            return invalid(f"request entity too large (max {state.max_blob_bytes} bytes)")
        mime = request.headers.get("content-type", "application/octet-stream").split(";")[0]
        if mime.startswith("image/"):
            try:
                with Image.open(io.BytesIO(body)) as image:
                    image.verify()
            except Exception:
                return invalid("Blob is not a valid image of the declared type")
        cid = blob_cid(body)
        state.blobs[cid] = {"did": did, "mimeType": mime, "size": len(body), "data": body}
        return JSONResponse(
            {
                "blob": {
                    "$type": "blob",
                    "ref": {"$link": cid},
                    "mimeType": mime,
                    "size": len(body),
                }
            }
        )

    def repo_of(did: str, repo: Any) -> bool:
        account = next(a for a in state.accounts if a.did == did)
        return repo in (account.did, account.handle)

    async def create_record(request: Request, body: bytes) -> Response:
        did, refused = access_did(request)
        if did is None:
            return refused or invalid("no session")
        data = json_body(body)
        if data is None:
            return invalid("Input must be a JSON object")
        if not repo_of(did, data.get("repo")):
            return xrpc_error(400, "InvalidRequest", "Can not write to repo of other user")
        if data.get("collection") != POST:
            return invalid(f"Invalid collection: {data.get('collection')!r}")
        rkey = data.get("rkey")
        if rkey is None:
            rkey = _now_tid()
        elif not isinstance(rkey, str) or not TID.match(rkey):
            return invalid(f"Invalid record key: {rkey!r} is not a TID")
        missing = _missing_blob(state, data.get("record"))
        if missing:
            # The PDS's answer for a blob it does not (or no longer) have.
            return xrpc_error(400, "BlobNotFound", f"Could not find blob: {missing}")
        problem = check_post(state, did, data.get("record"))
        if problem:
            return _bad_record(problem)
        uri = f"at://{did}/{POST}/{rkey}"
        if any(p["uri"] == uri for p in state.posts):
            # What the PDS does today when the key is taken (bluesky-social/atproto#3718).
            return xrpc_error(500, "InternalServerError", "Internal Server Error")
        cid = blob_cid(json.dumps(data["record"], sort_keys=True).encode())
        state.posts.append(
            {"uri": uri, "cid": cid, "rkey": rkey, "did": did, "record": data["record"]}
            | {"deleted": False}
        )
        return JSONResponse({"uri": uri, "cid": cid, "validationStatus": "valid"})

    async def get_record(request: Request, _: bytes) -> Response:
        did, refused = access_did(request)  # the real one is public; we ask a token anyway
        if did is None:
            return refused or invalid("no session")
        q = request.query_params
        uri = f"at://{q.get('repo')}/{q.get('collection')}/{q.get('rkey')}"
        post = next((p for p in state.live_posts() if p["uri"] == uri), None)
        if post is None:
            return xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return JSONResponse({"uri": uri, "cid": post["cid"], "value": post["record"]})

    async def delete_record(request: Request, body: bytes) -> Response:
        did, refused = access_did(request)
        if did is None:
            return refused or invalid("no session")
        data = json_body(body) or {}
        if not repo_of(did, data.get("repo")):
            return xrpc_error(400, "InvalidRequest", "Can not write to repo of other user")
        uri = f"at://{did}/{data.get('collection')}/{data.get('rkey')}"
        for post in state.posts:
            if post["uri"] == uri and not post["deleted"]:
                post["deleted"] = True
        return JSONResponse({})  # deleting a record that is not there is not an error

    ROUTES = {
        ("POST", "com.atproto.server.createSession"): create_session,
        ("POST", "com.atproto.server.refreshSession"): refresh_session,
        ("GET", "com.atproto.server.getSession"): get_session,
        ("POST", "com.atproto.repo.uploadBlob"): upload_blob,
        ("POST", "com.atproto.repo.createRecord"): create_record,
        ("GET", "com.atproto.repo.getRecord"): get_record,
        ("POST", "com.atproto.repo.deleteRecord"): delete_record,
    }

    async def recorded(_: Request) -> Response:
        return JSONResponse([{k: v for k, v in p.items()} for p in state.posts])

    return Starlette(
        routes=[
            Route("/xrpc/{nsid}", handle, methods=["GET", "POST"]),
            Route("/_standin/posts", recorded),
        ]
    )


_tid_clock = itertools.count()


def _now_tid() -> str:
    value = (int(time.time() * 1_000_000) << 10) | (next(_tid_clock) & 0x3FF)
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in range(12, -1, -1))


def HARNESS() -> Any:  # the name standins/contract.py looks for
    """The contract-test harness (kept apart: it needs standins/contract.py)."""
    from standins.bluesky_harness import BlueskyHarness

    return BlueskyHarness()
