"""The container health check: `python -m ocpp_gateway.healthcheck` asks the local `/healthz`.

It reads the configuration as `serve` does (`OCPP_GATEWAY_*` variables, and a TOML file given
with `--config`), and asks the admin listener when one is configured, else the charge point
port; https (without certificate verification: it is the process's own loopback) when that
listener serves TLS. Exit status 0 when the answer is 200, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import urllib.request
from collections.abc import Sequence

from ocpp_gateway.config import GatewayConfig, load_config
from ocpp_gateway.errors import ConfigError

__all__ = ["health_url", "main"]


def health_url(config: GatewayConfig) -> str:
    """Args:
        config: the gateway's configuration.

    Returns:
        The URL of `/healthz` on the admin listener if configured, else on the charge point
        port, on 127.0.0.1.
    """
    admin = config.admin
    if admin.port is not None:
        scheme = "https" if admin.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{admin.port}/healthz"
    scheme = "https" if config.security.tls_cert else "http"
    return f"{scheme}://127.0.0.1:{config.port}/healthz"


def main(argv: Sequence[str] | None = None) -> int:
    """Probe the local gateway once.

    Args:
        argv: `[--config FILE]`; `sys.argv[1:]` when None.

    Returns:
        0 when `/healthz` answers 200, else 1.
    """
    parser = argparse.ArgumentParser(prog="python -m ocpp_gateway.healthcheck")
    parser.add_argument("--config", help="the TOML file serve runs with")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        url = health_url(load_config(args.config, os.environ))
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            return 0 if answer.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
