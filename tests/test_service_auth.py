"""Bearer-token authentication of the HTTP service, and the TokenStore behind it.

Every route needs a valid token except an explicit allow-list of public ones; the routes
are enumerated from the running app, so a route added later cannot be forgotten.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route

from actors import TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service import auth
from storycore_tasks.service.auth import (
    TOKENS_ENV_VAR,
    Principal,
    TokenFileError,
    TokenStore,
    hash_token,
)
from storycore_tasks.service.deps import LOCAL_ADMIN, ServiceConfig
from tests import service_harness
from tests.service_harness import running_service

WAIT = 15.0
ALICE_TOKEN = "alice-secret-token"
ADMIN_TOKEN = "ops-secret-token"

PUBLIC_ROUTES = frozenset(
    {
        "/healthz",  # liveness probes carry no token
        "/",  # the dashboard page: it asks for a token itself
        "/static/{name}",  # the dashboard's script and style sheet
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }
)
"""The only routes that answer without a token. Anything else must say 401."""

PUBLIC_MOUNTS: frozenset[str] = frozenset()

BAD_AUTHORIZATIONS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Bearer {ALICE_TOKEN}x"},
    {"Authorization": f"Bearer {ALICE_TOKEN[:-1]}"},
    {"Authorization": "Basic x"},
    {"Authorization": f"Basic {ALICE_TOKEN}"},
    {"Authorization": "Bearer"},
    {"Authorization": 'Bearer ""'},
    {"Authorization": "Bearer ,"},
    {"Authorization": "Bearer\tnope"},
    {"Authorization": ""},
    {"Authorization": ALICE_TOKEN},  # no scheme
    {"Authorization": f"Token {ALICE_TOKEN}"},
    {"X-Api-Key": ALICE_TOKEN},
]


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return dict(params)


def store() -> TokenStore:
    return TokenStore(
        [
            (hash_token(ALICE_TOKEN), Principal("alice", "user")),
            (hash_token(ADMIN_TOKEN), Principal("ops", "admin")),
        ]
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Live:
    url: str
    manager: TaskManager
    app: FastAPI
    client: httpx.Client  # no token


@pytest.fixture
def make_live(
    make_manager: Callable[..., TaskManager], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[TokenStore | None], Live]]:
    """A running service; ``app`` is the very app it serves (captured from the harness)."""
    apps: list[FastAPI] = []
    real_create_app = service_harness.create_app

    def capturing(manager: TaskManager, config: ServiceConfig) -> FastAPI:
        app = real_create_app(manager, config)
        apps.append(app)
        return app

    monkeypatch.setattr(service_harness, "create_app", capturing)
    with ExitStack() as stack:

        def make(tokens: TokenStore | None) -> Live:
            manager = make_manager(num_workers=2)
            manager.register_operation("echo", echo)
            service = stack.enter_context(running_service(manager, ServiceConfig(tokens=tokens)))
            client = stack.enter_context(httpx.Client(base_url=service.url, timeout=WAIT))
            return Live(service.url, manager, apps[-1], client)

        yield make


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    streams: bool

    def path(self, task_id: str) -> str:
        values = {"task_id": task_id, "endpoint": "storycore.task.stats", "name": "x"}
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), self.template)


def served_routes(app: FastAPI) -> list[Any]:
    """``app.routes`` with included routers flattened (FastAPI >= 0.16x includes routers
    lazily: their routes sit behind one entry of ``app.routes``)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(iterate(app.routes)) if iterate is not None else list(app.routes)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app serves; unknown kinds of route (mounts, websockets)
    fail the test so that someone decides whether they are public."""
    found = []
    for route in served_routes(app):
        original = getattr(route, "original_route", route)
        if isinstance(original, Mount):
            assert route.path in PUBLIC_MOUNTS, f"decide whether the mount {route.path} is public"
            continue
        assert isinstance(original, APIRoute | Route), f"unexpected route {original!r}"
        assert route.methods, f"a route without methods: {route.path}"
        for method in sorted(route.methods):
            if method == "HEAD":
                continue
            found.append(Endpoint(method, route.path, route.path.endswith("/events")))
    assert len({(e.method, e.template) for e in found}) == len(found)
    return found


def request(
    client: httpx.Client, endpoint: Endpoint, task_id: str, headers: dict[str, str]
) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": headers}
    if endpoint.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {"operation": "echo"} if endpoint.template == "/v1/tasks" else {}
    return client.request(endpoint.method, endpoint.path(task_id), **kwargs)


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Traceback" not in response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "AUTHENTICATION_REQUIRED"
    assert body["metadata"]["request_id"]


# -- every route --------------------------------------------------------------------------


def test_the_route_enumeration_sees_the_task_api(make_live: Callable[..., Live]) -> None:
    live = make_live(store())
    served = {(e.method, e.template) for e in endpoints(live.app)}
    assert {
        ("GET", "/healthz"),
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/{task_id}"),
        ("POST", "/v1/tasks/{task_id}/cancel"),
        ("GET", "/v1/stats"),
        ("POST", "/v1/rpc/{endpoint}"),
        ("GET", "/openapi.json"),
    } <= served
    documented = live.client.get("/openapi.json").json()["paths"]
    for path, operations in documented.items():
        for method in operations:
            assert (method.upper(), path) in served


def test_every_route_but_the_public_ones_needs_a_token(make_live: Callable[..., Live]) -> None:
    live = make_live(store())
    task_id = live.manager.create_task("echo", {}, user="alice")
    protected = [e for e in endpoints(live.app) if e.template not in PUBLIC_ROUTES]
    assert len(protected) >= 6
    for endpoint in protected:
        for headers in BAD_AUTHORIZATIONS:
            assert_401(request(live.client, endpoint, task_id, headers))
        if endpoint.streams:  # an EventSource may pass the token in the query instead
            response = live.client.get(endpoint.path(task_id), params={"access_token": "nope"})
            assert_401(response)
        else:  # the right token gets past authentication (a stream would never end)
            response = request(live.client, endpoint, task_id, bearer(ALICE_TOKEN))
            assert response.status_code not in (401, 500), (endpoint, response.text)


def test_the_public_routes_answer_without_a_token(make_live: Callable[..., Live]) -> None:
    live = make_live(store())
    public = [e for e in endpoints(live.app) if e.template in PUBLIC_ROUTES]
    assert {e.template for e in public} >= {"/healthz", "/openapi.json", "/docs", "/redoc"}
    for endpoint in public:
        response = request(live.client, endpoint, str(uuid.uuid4()), {})
        assert response.status_code not in (401, 403), (endpoint, response.text)
        assert response.status_code < 500, (endpoint, response.text)
    assert live.client.get("/healthz").json()["data"] == {"status": "ok"}


def test_a_401_says_why(make_live: Callable[..., Live]) -> None:
    live = make_live(store())
    missing = live.client.get("/v1/stats")
    assert_401(missing)
    assert "required" in missing.json()["error"]["message"]
    wrong = live.client.get("/v1/stats", headers=bearer("nope"))
    assert_401(wrong)
    assert "not valid" in wrong.json()["error"]["message"]
    assert "nope" not in wrong.text  # the presented token is never echoed
    assert live.manager.get_stats()["lifetime_stats"]["total_created"] == 0


def test_an_unauthenticated_create_creates_nothing(make_live: Callable[..., Live]) -> None:
    live = make_live(store())
    for headers in BAD_AUTHORIZATIONS:
        assert_401(live.client.post("/v1/tasks", json={"operation": "echo"}, headers=headers))
        assert_401(live.client.post("/v1/tasks", json={"operation": "no.such.op"}, headers=headers))
    assert live.manager.get_stats()["lifetime_stats"]["total_created"] == 0


def test_the_scheme_is_case_insensitive_and_the_token_is_not(
    make_live: Callable[..., Live],
) -> None:
    live = make_live(store())
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = live.client.get(
            "/v1/stats", headers={"Authorization": f"{scheme} {ALICE_TOKEN}"}
        )
        assert response.status_code == 200, response.text
    assert_401(live.client.get("/v1/stats", headers=bearer(ALICE_TOKEN.upper())))


def test_roles_over_http(make_live: Callable[..., Live]) -> None:
    live = make_live(store())
    mine = live.manager.create_task("echo", {}, user="alice")
    theirs = live.manager.create_task("echo", {}, user="bob")
    live.manager.wait(theirs, timeout=WAIT)
    alice = live.client.get("/v1/tasks", headers=bearer(ALICE_TOKEN)).json()["data"]["tasks"]
    admin = live.client.get("/v1/tasks", headers=bearer(ADMIN_TOKEN)).json()["data"]["tasks"]
    assert [t["task_id"] for t in alice] == [mine]
    assert {t["task_id"] for t in admin} == {mine, theirs}
    created = live.client.post(
        "/v1/tasks", json={"operation": "echo"}, headers=bearer(ADMIN_TOKEN)
    ).json()["data"]["task_id"]
    assert live.manager.wait(created, timeout=WAIT)["user"] == "ops"


def test_without_tokens_every_route_answers_as_the_local_admin(
    make_live: Callable[..., Live],
) -> None:
    live = make_live(None)
    bobs = live.manager.create_task("echo", {"x": 1}, user="bob")
    live.manager.wait(bobs, timeout=WAIT)
    for endpoint in endpoints(live.app):
        if endpoint.streams:
            continue  # an event stream answers by never ending
        for headers in ({}, {"Authorization": "Bearer anything"}, {"Authorization": "Basic x"}):
            response = request(live.client, endpoint, bobs, headers)
            assert response.status_code not in (401, 500), (endpoint, response.text)
    created = live.client.post("/v1/tasks", json={"operation": "echo"}).json()["data"]
    assert live.manager.wait(created["task_id"], timeout=WAIT)["user"] == LOCAL_ADMIN.user
    listed = {t["task_id"] for t in live.client.get("/v1/tasks").json()["data"]["tasks"]}
    assert {bobs, created["task_id"]} <= listed
    assert listed == {t["task_id"] for t in live.manager.list_tasks()}
    assert live.client.get(f"/v1/tasks/{bobs}").json()["data"]["user"] == "bob"
    rpc = live.client.post("/v1/rpc/storycore.task.status", json={"task_id": bobs})
    assert rpc.json()["data"]["task_id"] == bobs
    assert Principal("local", "admin") == LOCAL_ADMIN


# -- the tokens file ----------------------------------------------------------------------


def test_add_to_file_stores_only_a_hash_and_the_token_authenticates(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    alice = TokenStore.add_to_file(path, "alice", "user")
    ops = TokenStore.add_to_file(path, "ops", "admin")
    assert alice != ops
    assert len(alice) >= 40
    text = path.read_text(encoding="utf-8")
    assert alice not in text
    assert ops not in text
    document = json.loads(text)
    assert document == {
        "tokens": [
            {"user": "alice", "role": "user", "sha256": hash_token(alice)},
            {"user": "ops", "role": "admin", "sha256": hash_token(ops)},
        ]
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not (tmp_path / "tokens.json.tmp").exists()
    tokens = TokenStore.load(path, environ={})
    assert len(tokens) == 2
    assert tokens.authenticate(alice) == Principal("alice", "user")
    assert tokens.authenticate(ops) == Principal("ops", "admin")
    assert tokens.authenticate(ops).is_admin  # type: ignore[union-attr]
    assert tokens.authenticate(hash_token(alice)) is None  # the hash is not a token


def test_a_token_from_the_file_works_over_http(
    tmp_path: Path, make_live: Callable[..., Live]
) -> None:
    path = tmp_path / "tokens.json"
    alice = TokenStore.add_to_file(path, "alice", "user")
    ops = TokenStore.add_to_file(path, "ops", "admin")
    live = make_live(TokenStore.load(path, environ={}))
    created = live.client.post("/v1/tasks", json={"operation": "echo"}, headers=bearer(alice))
    assert created.status_code == 202, created.text
    task_id = created.json()["data"]["task_id"]
    assert live.manager.wait(task_id, timeout=WAIT)["user"] == "alice"
    bobs = live.manager.create_task("echo", {}, user="bob")
    assert live.client.get(f"/v1/tasks/{bobs}", headers=bearer(alice)).status_code == 404
    assert live.client.get(f"/v1/tasks/{bobs}", headers=bearer(ops)).status_code == 200
    assert_401(live.client.get("/v1/stats", headers=bearer(hash_token(alice))))


def test_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKENS_ENV_VAR, "alice:user:tok1, ops:admin:tok2,,")
    tokens = TokenStore.load()
    assert len(tokens) == 2
    assert tokens.authenticate("tok1") == Principal("alice", "user")
    assert tokens.authenticate("tok2") == Principal("ops", "admin")
    assert tokens.authenticate("tok3") is None
    explicit = TokenStore.load(environ={TOKENS_ENV_VAR: "bob:user:a:b:c"})
    assert explicit.authenticate("a:b:c") == Principal("bob", "user")  # colons in a token
    assert len(TokenStore.load(environ={})) == 0
    assert len(TokenStore.load(environ={TOKENS_ENV_VAR: ""})) == 0


def test_file_and_environment_together(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    from_file = TokenStore.add_to_file(path, "alice", "user")
    tokens = TokenStore.load(path, environ={TOKENS_ENV_VAR: "ops:admin:tok2"})
    assert tokens.authenticate(from_file) == Principal("alice", "user")
    assert tokens.authenticate("tok2") == Principal("ops", "admin")


def test_a_token_from_the_environment_works_over_http(make_live: Callable[..., Live]) -> None:
    live = make_live(TokenStore.load(environ={TOKENS_ENV_VAR: "alice:user:tok1,ops:admin:tok2"}))
    assert live.client.get("/v1/stats", headers=bearer("tok1")).status_code == 200
    assert live.client.get("/v1/stats", headers=bearer("tok2")).status_code == 200
    assert_401(live.client.get("/v1/stats", headers=bearer("tok3")))


def write(path: Path, document: Any) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


GOOD_HASH = hash_token("x")

BAD_FILES: list[tuple[str, Any, str]] = [
    ("not json", "{tokens: ", "not JSON"),
    ("empty", "", "not JSON"),
    ("a list", [], "must hold"),
    ("no tokens key", {"users": []}, "must hold"),
    ("tokens not a list", {"tokens": {}}, "must hold"),
    ("an entry not an object", {"tokens": ["x"]}, "must hold"),
    ("no sha256", {"tokens": [{"user": "a", "role": "user"}]}, "entry 0 .*sha256"),
    ("short sha256", {"tokens": [{"user": "a", "role": "user", "sha256": "ab"}]}, "sha256"),
    ("sha256 a number", {"tokens": [{"user": "a", "role": "user", "sha256": 5}]}, "sha256"),
    (
        "sha256 not hex",
        {"tokens": [{"user": "a", "role": "user", "sha256": "z" * 64}]},
        "sha256 must be hex",
    ),
    ("no user", {"tokens": [{"role": "user", "sha256": GOOD_HASH}]}, "entry 0 .*user"),
    ("blank user", {"tokens": [{"user": "  ", "role": "user", "sha256": GOOD_HASH}]}, "user"),
    ("user a number", {"tokens": [{"user": 7, "role": "user", "sha256": GOOD_HASH}]}, "user"),
    (
        "bad role",
        {"tokens": [{"user": "a", "role": "root", "sha256": GOOD_HASH}]},
        "role must be 'user' or 'admin'.*root",
    ),
    ("no role", {"tokens": [{"user": "a", "sha256": GOOD_HASH}]}, "role"),
    (
        "second entry bad",
        {
            "tokens": [
                {"user": "a", "role": "user", "sha256": GOOD_HASH},
                {"user": "b", "role": "owner", "sha256": GOOD_HASH},
            ]
        },
        "entry 1 .*role",
    ),
]


@pytest.mark.parametrize(
    ("document", "problem"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_a_malformed_tokens_file_is_a_token_file_error(
    tmp_path: Path, document: Any, problem: str
) -> None:
    path = write(tmp_path / "tokens.json", document)
    with pytest.raises(TokenFileError, match=problem) as raised:
        TokenStore.load(path, environ={})
    assert str(path) in str(raised.value)
    assert path.read_text() == (document if isinstance(document, str) else json.dumps(document))


@pytest.mark.parametrize("document", ["{tokens: ", [], {"users": []}, {"tokens": ["x"]}])
def test_add_to_file_refuses_to_rewrite_a_malformed_file(tmp_path: Path, document: Any) -> None:
    path = write(tmp_path / "tokens.json", document)
    before = path.read_text()
    with pytest.raises(TokenFileError):
        TokenStore.add_to_file(path, "alice", "user")
    assert path.read_text() == before


def test_a_missing_tokens_file_is_a_token_file_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenStore.load(tmp_path / "nope.json", environ={})


def test_a_good_file_with_upper_case_hashes_loads(tmp_path: Path) -> None:
    document = {"tokens": [{"user": " alice ", "role": "admin", "sha256": GOOD_HASH.upper()}]}
    tokens = TokenStore.load(write(tmp_path / "t.json", document), environ={})
    assert tokens.authenticate("x") == Principal("alice", "admin")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("alice:user", "item 0 .*user:role:token.*2 field"),
        ("alice", "item 0 .*user:role:token"),
        ("alice:user:", "user:role:token"),
        ("ok:user:t, bob:user", "item 1 "),
        ("alice:root:tok", "role must be 'user' or 'admin'.*root"),
        (":user:tok", "user must be a non-empty name"),
        ("  :admin:tok", "user must be a non-empty name"),
    ],
)
def test_a_malformed_environment_variable_is_a_token_file_error(value: str, problem: str) -> None:
    with pytest.raises(TokenFileError, match=problem) as raised:
        TokenStore.load(environ={TOKENS_ENV_VAR: value})
    assert TOKENS_ENV_VAR in str(raised.value)


def test_an_undecodable_token_in_the_environment_is_a_token_file_error() -> None:
    undecodable = os.fsdecode(b"alice:user:tok\xff")
    with pytest.raises(TokenFileError, match="item 0"):
        TokenStore.load(environ={TOKENS_ENV_VAR: undecodable})


@pytest.mark.parametrize(("user", "role"), [("", "user"), ("alice", "root"), ("alice", None)])
def test_add_to_file_refuses_a_bad_user_or_role(tmp_path: Path, user: str, role: Any) -> None:
    path = tmp_path / "tokens.json"
    with pytest.raises(TokenFileError):
        TokenStore.add_to_file(path, user, role)
    assert not path.exists()


# -- constant-time comparison -------------------------------------------------------------


def many(count: int) -> tuple[TokenStore, list[str]]:
    tokens = [f"token-{i}-{uuid.uuid4()}" for i in range(count)]
    entries = [(hash_token(t), Principal(f"user{i}", "user")) for i, t in enumerate(tokens)]
    return TokenStore(entries), tokens


def test_authenticate_finds_the_first_the_last_and_no_one() -> None:
    tokens, plain = many(300)
    assert tokens.authenticate(plain[-1]) == Principal("user299", "user")
    assert tokens.authenticate(plain[0]) == Principal("user0", "user")
    assert tokens.authenticate(plain[150]) == Principal("user150", "user")
    assert tokens.authenticate("wrong") is None
    assert tokens.authenticate("") is None
    assert tokens.authenticate(None) is None


def test_authenticate_compares_against_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: a token that matches the first entry, one that matches the last and
    one that matches none all cost exactly one constant-time comparison per entry."""
    tokens, plain = many(200)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for token, expected in ((plain[0], "user0"), (plain[-1], "user199"), ("wrong", None)):
        compared.clear()
        found = tokens.authenticate(token)
        assert (found.user if found else None) == expected
        assert len(compared) == 200
        assert {b for _, b in compared} == {bytes.fromhex(hash_token(t)) for t in plain}
        assert all(isinstance(a, bytes) and len(a) == 32 for a, _ in compared)


principals = st.builds(
    Principal,
    st.text(min_size=1, max_size=8),
    st.sampled_from(["user", "admin"]),
)
tokens_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)


@given(
    entries=st.lists(
        st.tuples(tokens_text, principals), min_size=1, max_size=25, unique_by=lambda e: e[0]
    ),
    stranger=tokens_text,
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_authenticate_returns_exactly_the_principal_whose_token_it_is(
    entries: list[tuple[str, Principal]], stranger: str
) -> None:
    tokens = TokenStore([(hash_token(token), principal) for token, principal in entries])
    assert len(tokens) == len(entries)
    for token, principal in entries:
        assert tokens.authenticate(token) == principal
    by_token = dict(entries)
    assert tokens.authenticate(stranger) == by_token.get(stranger)
