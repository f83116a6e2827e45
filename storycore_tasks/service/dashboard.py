"""The dashboard page at ``GET /`` (TO BE WRITTEN: interface only)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
