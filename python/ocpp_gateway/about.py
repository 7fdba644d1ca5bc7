"""Versions of the gateway's parts: the Python package, its Rust core and the `ocpp` schemas."""

from __future__ import annotations

from importlib import metadata

__all__ = ["versions"]


def versions() -> dict[str, str]:
    """The versions `ocpp-gateway --version` prints and `ocpp_gateway_build_info` exports.

    Returns:
        {"ocpp-gateway": the installed package's version, "core": the Rust extension's version
        (`ocpp_gateway._core.__version__`), "ocpp": the version of the `ocpp` package whose
        schemas are loaded}; "unknown" where a distribution's metadata is missing (a source
        tree on `sys.path` without an install).
    """
    from ocpp_gateway import _core

    found: dict[str, str] = {}
    for key, distribution in (("ocpp-gateway", "ocpp-gateway"), ("ocpp", "ocpp")):
        try:
            found[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[key] = "unknown"
    return {"ocpp-gateway": found["ocpp-gateway"], "core": _core.__version__, "ocpp": found["ocpp"]}
