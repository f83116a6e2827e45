"""The HTTP service (``storycore-tasks serve``): the task API over HTTP with bearer
tokens, live event streams, signed webhooks, Prometheus metrics and a dashboard.

Needs the ``server`` extra: ``pip install "storycore-tasks[server]"``.
"""

from storycore_tasks.service.app import create_app
from storycore_tasks.service.auth import Principal, TokenStore
from storycore_tasks.service.deps import ServiceConfig

__all__ = ["Principal", "ServiceConfig", "TokenStore", "create_app"]
