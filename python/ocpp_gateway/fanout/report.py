"""`ocpp-gateway candidate-report`: how a candidate backend's answers compared with the primary's.

Reads the candidate's store (its `id_map` file) read-only, so it runs beside a serving gateway:
per action the answers that agreed, disagreed and were missing, then the latest disagreements
with their redacted answers. The admin API serves the same report (`GET /candidates`).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from ocpp_gateway.config import load_config
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.fanout.store import read_report

__all__ = ["format_report", "main"]

_OUTCOMES = ("agree", "disagree", "missing")


def format_report(name: str, report: dict[str, Any]) -> str:
    """A candidate's report as text.

    Args:
        name: the candidate's name.
        report: its report (`store.read_report`).

    Returns:
        A table of outcomes per action, then the disagreements, one block each.
    """
    lines = [f"candidate {name}: {report['mapped_transactions']} mapped transaction id(s)"]
    lines.append(f"{'action':<32} {'agree':>8} {'disagree':>9} {'missing':>8}")
    for action, counts in sorted(report["actions"].items()):
        agree, disagree, missing = (counts.get(outcome, 0) for outcome in _OUTCOMES)
        lines.append(f"{action:<32} {agree:>8} {disagree:>9} {missing:>8}")
    if report["disagreements"]:
        lines.append("")
        lines.append("latest disagreements:")
    for sample in report["disagreements"]:
        lines.append(f"- {sample['charge_point_id']} {sample['action']}: {sample['detail']}")
        lines.append(f"    primary:   {sample['primary']}")
        lines.append(f"    candidate: {sample['candidate']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`ocpp-gateway candidate-report`.

    Args:
        argv: the arguments after `candidate-report`.

    Returns:
        0, or 2 when no report can be read.
    """
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway candidate-report",
        description="Compare a candidate backend's answers with the primary's, per action.",
    )
    parser.add_argument("stores", nargs="*", help="candidate stores (their id_map files)")
    parser.add_argument("--config", help="the gateway configuration: every candidate's store")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    stores = [(path, path) for path in args.stores]
    if args.config:
        try:
            cfg = load_config(args.config, {})
        except ConfigError as exc:
            print(f"{args.config}: {exc}", file=sys.stderr)
            return 2
        stores.extend(
            (name, backend.id_map)
            for name, backend in cfg.backends.items()
            if backend.role == "candidate" and backend.id_map
        )
    if not stores:
        parser.error("name a store, or --config with a candidate backend")
    reports: dict[str, Any] = {}
    for name, path in stores:
        try:
            reports[name] = read_report(path)
        except sqlite3.Error as exc:
            print(f"{path}: cannot read the candidate store: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n\n".join(format_report(name, report) for name, report in reports.items()))
    return 0
