"""Secrets kept out of the service's logs.

A browser's event stream can only pass its token in the URL (``?access_token=``), and
uvicorn's access log prints every request's path with its query string. A filter on
the ``uvicorn.access`` logger (and on ``uvicorn.error``, whose messages can quote a
request line) replaces the value of every token-like query parameter, and the password
of any ``user:password@`` in a URL, with ``REDACTED`` before a handler formats the
record. :func:`redact` is the same for any text the service logs (a webhook's error).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

__all__ = ["REDACTED", "RedactSecrets", "install_log_redaction", "redact"]

REDACTED = "REDACTED"

# A query parameter whose name says it carries a secret: access_token, token, api_key,
# apikey, secret, password, signature, auth... (any case, in any part of the name), and
# the bare sig and key of signed URLs.
_SECRET_NAME = re.compile(
    r"token|secret|passw|pwd|api[-_]?key|auth|credential|signature|session|^sig$|^key$",
    re.IGNORECASE,
)
# name=value in a query string: after "?" or "&", up to the next separator.
_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s\"'?]+)=(?P<value>[^&;#\s\"']*)")
_USERINFO = re.compile(r"(?P<lead>//[^/@\s:\"']+:)[^/@\s\"']+@")

_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """``text`` with the value of every token-like query parameter and every URL's
    password replaced by ``REDACTED`` (everything else kept as it was)."""
    if "=" not in text and "@" not in text:
        return text  # the common case: nothing that could be a secret

    def parameter(match: re.Match[str]) -> str:
        if not _SECRET_NAME.search(unquote_plus(match["name"])):
            return match[0]
        return f"{match['lead']}{match['name']}={REDACTED}"

    return _USERINFO.sub(rf"\g<lead>{REDACTED}@", _PARAMETER.sub(parameter, text))


class RedactSecrets(logging.Filter):
    """Redacts a record's message and its string arguments (uvicorn's access log passes
    the path as an argument) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Put :class:`RedactSecrets` on uvicorn's loggers (once; uvicorn's own logging
    configuration replaces their handlers, not their filters)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
