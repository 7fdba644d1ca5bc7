"""A candidate's durable store (SQLite): the 1.6 transaction id map and the comparison report.

The id map (primary's transactionId -> the candidate's, per charge point) is committed as soon
as a pair is known, so it survives a restart of the gateway: a transaction started before the
restart still reaches the candidate with the candidate's own id. The report (answers counted per
action and outcome, and the latest disagreements with redacted samples, at most
`SAMPLES_PER_ACTION` per action) is committed by the process timer, about once a second.
`read_report` opens the file read-only for `ocpp-gateway candidate-report`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["SAMPLES_PER_ACTION", "CandidateStore", "read_report"]

#: Disagreement samples kept per action (the newest).
SAMPLES_PER_ACTION = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS id_map (
    primary_name TEXT NOT NULL,
    charge_point_id TEXT NOT NULL,
    primary_id TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (primary_name, charge_point_id, primary_id)
);
CREATE TABLE IF NOT EXISTS tallies (
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (action, outcome)
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    charge_point_id TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    primary_answer TEXT NOT NULL,
    candidate_answer TEXT NOT NULL
);
"""


class CandidateStore:
    """The store of one candidate backend.

    Args:
        path: the SQLite file (created with its tables when missing).

    Raises:
        sqlite3.Error: the file cannot be opened or is not a database.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._tallies: dict[tuple[str, str], int] = {}
        self._samples: list[tuple[float, str, str, str, str, str]] = []
        self._cache: dict[tuple[str, str, str], str] = {}

    def map_transaction(
        self, primary: str, charge_point_id: str, primary_id: str, candidate_id: str
    ) -> None:
        """Remember (durably, at once) the candidate's id of a transaction.

        Args:
            primary: the name of the backend that was primary (ids are its own).
            charge_point_id: the charge point.
            primary_id: the transactionId the primary gave.
            candidate_id: the transactionId the candidate gave.
        """
        self._cache[(primary, charge_point_id, primary_id)] = candidate_id
        self._db.execute(
            "INSERT OR REPLACE INTO id_map VALUES (?, ?, ?, ?, ?)",
            (primary, charge_point_id, primary_id, candidate_id, time.time()),
        )

    def candidate_id(self, primary: str, charge_point_id: str, primary_id: str) -> str | None:
        """Args:
            primary: the name of the backend that gave `primary_id`.
            charge_point_id: the charge point.
            primary_id: a transactionId the primary gave.

        Returns:
            The candidate's id for it, or None when unknown.
        """
        key = (primary, charge_point_id, primary_id)
        found = self._cache.get(key)
        if found is None:
            row = self._db.execute(
                "SELECT candidate_id FROM id_map WHERE primary_name = ? AND charge_point_id = ? "
                "AND primary_id = ?",
                key,
            ).fetchone()
            if row is not None:
                found = self._cache[key] = row[0]
        return found

    def count(self, action: str, outcome: str) -> None:
        """Count one compared answer (written by `flush`)."""
        key = (action, outcome)
        self._tallies[key] = self._tallies.get(key, 0) + 1

    def sample(
        self, charge_point_id: str, action: str, detail: str, primary: str, candidate: str
    ) -> None:
        """Keep a disagreement (already redacted; written by `flush`)."""
        self._samples.append((time.time(), charge_point_id, action, detail, primary, candidate))

    def flush(self) -> None:
        """Write the counts and samples gathered since the last flush, in one transaction."""
        if not self._tallies and not self._samples:
            return
        tallies, self._tallies = self._tallies, {}
        samples, self._samples = self._samples, []
        db = self._db
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO tallies VALUES (?, ?, ?) ON CONFLICT (action, outcome) "
            "DO UPDATE SET count = count + excluded.count",
            [(a, o, n) for (a, o), n in tallies.items()],
        )
        db.executemany(
            "INSERT INTO samples (at, charge_point_id, action, detail, primary_answer, "
            "candidate_answer) VALUES (?, ?, ?, ?, ?, ?)",
            samples,
        )
        for action in {s[2] for s in samples}:
            db.execute(
                "DELETE FROM samples WHERE action = ? AND id NOT IN (SELECT id FROM samples "
                "WHERE action = ? ORDER BY id DESC LIMIT ?)",
                (action, action, SAMPLES_PER_ACTION),
            )
        db.execute("COMMIT")

    def report(self) -> dict[str, Any]:
        """Returns: the report so far (`read_report`'s shape), what is not flushed included."""
        self.flush()
        return _report(self._db)

    def close(self) -> None:
        """Flush and close; idempotent."""
        try:
            self.flush()
            self._db.close()
        except sqlite3.ProgrammingError:
            pass


def _report(db: sqlite3.Connection) -> dict[str, Any]:
    actions: dict[str, dict[str, int]] = {}
    for action, outcome, count in db.execute(
        "SELECT action, outcome, count FROM tallies ORDER BY action, outcome"
    ):
        actions.setdefault(action, {})[outcome] = count
    samples = [
        {
            "at": at,
            "charge_point_id": cp,
            "action": action,
            "detail": detail,
            "primary": primary,
            "candidate": candidate,
        }
        for at, cp, action, detail, primary, candidate in db.execute(
            "SELECT at, charge_point_id, action, detail, primary_answer, candidate_answer "
            "FROM samples ORDER BY id"
        )
    ]
    mapped = db.execute("SELECT COUNT(*) FROM id_map").fetchone()[0]
    return {"actions": actions, "disagreements": samples, "mapped_transactions": mapped}


def read_report(path: str) -> dict[str, Any]:
    """Read a candidate's report from its store, read-only.

    Args:
        path: the candidate's `id_map` file.

    Returns:
        {"actions": {action: {outcome: count}}, "disagreements": [sample...],
        "mapped_transactions": n}.

    Raises:
        sqlite3.Error: the file is missing or not a candidate store.
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _report(db)
    finally:
        db.close()
