"""Bearer tokens for the HTTP service: who is asking, and as what role.

Tokens are kept hashed (SHA-256) in a JSON file, ``{"tokens": [{"user": "alice",
"role": "user", "sha256": "<hex>"}]}``, written by ``storycore-tasks token create``,
or given in plain text in an environment variable for deployments that inject secrets
that way (``STORYCORE_TASKS_TOKENS="alice:user:<token>,ops:admin:<token>"``; hashed on
load). A presented token is hashed and compared with every known hash in constant time
(:func:`hmac.compare_digest`, with no early exit), so timing reveals neither a token
nor which user it belongs to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ROLES",
    "TOKENS_ENV_VAR",
    "Principal",
    "TokenEntry",
    "TokenFileError",
    "TokenStore",
    "hash_token",
    "new_token",
]

ROLES = ("user", "admin")
TOKENS_ENV_VAR = "STORYCORE_TASKS_TOKENS"

Role = Literal["user", "admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from. A ``user`` sees only the tasks they created; an
    ``admin`` sees every task."""

    user: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def owner_filter(self) -> str | None:
        """The user whose tasks this principal may see, or None for all of them."""
        return None if self.is_admin else self.user


class TokenFileError(ValueError):
    """A tokens file or variable that cannot be used; the message names the fix."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


class TokenStore:
    """The tokens a service accepts."""

    def __init__(self, entries: Iterable[tuple[str, Principal]] = ()) -> None:
        # (sha256 hex, principal) pairs.
        self._entries = tuple(_Entry(bytes.fromhex(h), p) for h, p in entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal this token belongs to, or None. Constant time in the token."""
        if not token:
            return None
        presented = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for entry in self._entries:  # every entry is compared: no early exit
            if hmac.compare_digest(presented, entry.digest):
                found = entry.principal
        return found

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> TokenStore:
        """Tokens from the file at ``path`` (if given) and from ``$STORYCORE_TASKS_TOKENS``."""
        entries: list[tuple[str, Principal]] = []
        if path is not None:
            entries.extend(_read_file(Path(path)))
        env = os.environ if environ is None else environ
        if env.get(TOKENS_ENV_VAR):
            entries.extend(_parse_env(env[TOKENS_ENV_VAR]))
        return cls(entries)

    @staticmethod
    def add_to_file(path: str | os.PathLike[str], user: str, role: str) -> str:
        """Create a token for ``user`` with ``role``, store its hash in the file
        (created if missing) and return the token: the only time it is ever shown."""
        principal = _principal(user, role, where="the new token")
        file = Path(path)
        document: dict[str, Any] = {"tokens": []}
        if file.exists():
            document = {"tokens": [dict(e) for e in _raw_entries(file)]}
        token = new_token()
        document["tokens"].append(
            {"user": principal.user, "role": principal.role, "sha256": hash_token(token)}
        )
        _write(file, document)
        return token

    @staticmethod
    def file_entries(path: str | os.PathLike[str]) -> list[TokenEntry]:
        """The tokens the file holds (user, role and the hash's first digits as an id
        to revoke by; never the token itself)."""
        return [
            TokenEntry(principal.user, principal.role, digest[:_ID_DIGITS])
            for digest, principal in _read_file(Path(path))
        ]

    @staticmethod
    def revoke_from_file(
        path: str | os.PathLike[str], *, user: str | None = None, token_id: str | None = None
    ) -> list[TokenEntry]:
        """Remove every token of ``user``, or the one whose id (``file_entries``) is
        ``token_id``, from the file; returns what was removed (TokenFileError when
        nothing matches, so a typo never passes for a revocation)."""
        if (user is None) == (token_id is None):
            raise TokenFileError("revoke needs a user or a token id (one of them)")
        file = Path(path)
        if not file.exists():
            raise TokenFileError(f"there is no tokens file {file}")
        _read_file(file)  # the whole file is valid before anything is removed
        kept: list[dict[str, Any]] = []
        removed: list[TokenEntry] = []
        for raw in _raw_entries(file):
            digest = str(raw.get("sha256", "")).lower()
            entry = TokenEntry(str(raw.get("user")), str(raw.get("role")), digest[:_ID_DIGITS])
            if (user is not None and entry.user == user) or (
                token_id is not None and digest.startswith(token_id.lower())
            ):
                removed.append(entry)
            else:
                kept.append(dict(raw))
        if not removed:
            what = f"user {user!r}" if user is not None else f"id {token_id!r}"
            raise TokenFileError(f"the tokens file {file} holds no token of {what}")
        if token_id is not None and len(removed) > 1:
            raise TokenFileError(
                f"the id {token_id!r} matches {len(removed)} tokens in {file}; give more "
                "of its digits (storycore-tasks token list shows them)"
            )
        _write(file, {"tokens": kept})
        return removed


_ID_DIGITS = 12  # of a token's sha256: its id in `token list` and `token revoke --id`


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A token as a tokens file lists it: whose, what role, and an id (not the token)."""

    user: str
    role: str
    token_id: str


def _write(file: Path, document: Mapping[str, Any]) -> None:
    """Replace the file at once (a reader never sees half of it), readable by its owner only."""
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(file)


def _raw_entries(path: Path) -> list[Mapping[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TokenFileError(f"cannot read the tokens file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TokenFileError(
            f"the tokens file {path} is not JSON ({exc}); it must look like "
            '{"tokens": [{"user": "alice", "role": "user", "sha256": "<hex>"}]}'
        ) from None
    tokens = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise TokenFileError(
            f'the tokens file {path} must hold {{"tokens": [...]}}, a list of objects with '
            "user, role and sha256"
        )
    return tokens


def _read_file(path: Path) -> list[tuple[str, Principal]]:
    entries = []
    for index, raw in enumerate(_raw_entries(path)):
        where = f"entry {index} of {path}"
        digest = raw.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            raise TokenFileError(f"{where}: sha256 must be 64 hex digits (hash_token(token))")
        try:
            bytes.fromhex(digest)
        except ValueError:
            raise TokenFileError(f"{where}: sha256 must be hex digits") from None
        entries.append((digest.lower(), _principal(raw.get("user"), raw.get("role"), where)))
    return entries


def _parse_env(value: str) -> list[tuple[str, Principal]]:
    entries = []
    for index, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        fields = item.split(":", 2)
        where = f"item {index} of ${TOKENS_ENV_VAR}"
        if len(fields) != 3 or not fields[2]:
            raise TokenFileError(
                f"{where} must be user:role:token (several separated by commas), got "
                f"{len(fields)} field(s)"
            )
        user, role, token = fields
        try:
            digest = hash_token(token)
        except UnicodeEncodeError:
            raise TokenFileError(f"{where}: the token is not valid UTF-8 text") from None
        entries.append((digest, _principal(user, role, where)))
    return entries


def _principal(user: Any, role: Any, where: str) -> Principal:
    if not isinstance(user, str) or not user.strip():
        raise TokenFileError(f"{where}: user must be a non-empty name")
    if role not in ROLES:
        raise TokenFileError(f"{where}: role must be 'user' or 'admin', got {role!r}")
    return Principal(user.strip(), role)
