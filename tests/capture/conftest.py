"""Fixtures of the capture tests: the interop suite's `ocpp` library CSMS (real peers)."""

from __future__ import annotations

from interop.conftest import library_csms

__all__ = ["library_csms"]
