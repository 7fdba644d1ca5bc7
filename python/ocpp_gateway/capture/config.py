"""Settings of frame capture: which charge points, where the trace files go, bounds, redaction."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CaptureConfig", "check_capture_config"]


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """The `[capture]` table: per charge point capture in the Open OCPP Trace format.

    Attributes:
        charge_points: ids or glob patterns ("CP-1", "site7-*") captured from the moment they
            connect, without a bound; the admin API switches capture on for others.
        directory: where the rotating JSONL trace files go, one folder per charge point; none
            means the in-memory ring only (what the admin API serves).
        default_frames: frames captured by `POST /charge-points/{id}/capture` with no body.
        default_seconds: seconds captured by `POST /charge-points/{id}/capture` with no body.
        ring_frames: frames each captured charge point keeps in memory for the API.
        ring_bytes: ... and at most this many bytes of frames (the oldest go first).
        max_streams: charge points whose ring is kept (the oldest stopped capture goes first).
        queue_frames: frames waiting for the file writer thread; beyond them frames are left
            out of the files (counted) rather than slowing the relay.
        file_max_bytes: a trace file is closed and a new one started beyond this size.
        file_max_seconds: ... or when it is this old.
        files_keep: trace files kept per charge point (the oldest are removed).
        redact: replace secrets with "***" in the records (configuration keys and variables
            named in `secret_names` or containing "password", the password members of
            SetNetworkProfile, ISO 15118 certificate answers holding a private key).
        secret_names: configuration keys and variable names whose values are secrets, besides
            any name containing "password" (compared without case).
        hash_id_tags: replace idTags and idTokens with "sha256:" and 16 hex digits of their hash.
        id_tag_salt: a secret mixed into those hashes, so that short ids cannot be guessed.
    """

    charge_points: tuple[str, ...] = ()
    directory: str | None = None
    default_frames: int = 10_000
    default_seconds: float = 900.0
    ring_frames: int = 2_000
    ring_bytes: int = 4 * 1024 * 1024
    max_streams: int = 256
    queue_frames: int = 20_000
    file_max_bytes: int = 16 * 1024 * 1024
    file_max_seconds: float = 3600.0
    files_keep: int = 8
    redact: bool = True
    secret_names: tuple[str, ...] = ("AuthorizationKey", "BasicAuthPassword")
    hash_id_tags: bool = False
    id_tag_salt: str = ""


def check_capture_config(cfg: CaptureConfig) -> list[str]:
    """Find the out-of-range settings of a `[capture]` table (without touching the disk).

    Args:
        cfg: the settings.

    Returns:
        Every problem, each starting with its key; empty when consistent.
    """
    errors: list[str] = []
    names = ("default_frames", "ring_frames", "ring_bytes", "max_streams", "queue_frames")
    for name in (*names, "files_keep"):
        if getattr(cfg, name) < 1:
            errors.append(f"capture.{name}: must be at least 1")
    for name in ("default_seconds", "file_max_seconds"):
        if getattr(cfg, name) <= 0:
            errors.append(f"capture.{name}: must be positive")
    if cfg.file_max_bytes < 4096:
        errors.append("capture.file_max_bytes: must be at least 4096")
    for pattern in cfg.charge_points:
        if not pattern:
            errors.append("capture.charge_points: an empty id or pattern")
    return errors
