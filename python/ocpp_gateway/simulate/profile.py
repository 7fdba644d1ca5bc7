"""Behaviour profiles of simulated charge points: timings, transaction shape and misbehaviour."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Profile"]


SimVersion = Literal["ocpp1.6", "ocpp2.0.1"]


@dataclass(frozen=True, slots=True)
class Profile:
    """How one simulated charge point behaves. Every interval is in seconds; 0 disables it.

    Attributes:
        version: the OCPP-J subprotocol offered and spoken, "ocpp1.6" or "ocpp2.0.1".
        heartbeat_interval: seconds between Heartbeat calls once booted. The interval the CSMS
            gives in the BootNotification answer is ignored so that runs are reproducible.
        status_interval: seconds between StatusNotification changes of one idle connector,
            picked at random (Available <-> Unavailable): 1/status_interval calls per second
            per charge point, whatever the number of connectors.
        transaction_interval: idle seconds between two transactions; 0: no transactions. A
            charge point runs one transaction at a time (on a random connector), so it starts
            1 / (transaction_interval + transaction_duration) transactions per second. Each
            one costs, in 1.6: Authorize, StartTransaction, StopTransaction and four
            StatusNotifications (Preparing, Charging, Finishing, Available); in 2.0.1:
            Authorize, TransactionEvent Started and Ended, two StatusNotifications (Occupied,
            Available).
        transaction_duration: seconds a transaction lasts from start to stop.
        meter_interval: seconds between periodic meter samples during a transaction
            (MeterValues in 1.6, TransactionEvent Updated in 2.0.1).
        meter_samples: sampled values per meter sample.
        connectors: connectors (1.6) or EVSEs with one connector each (2.0.1); each gets a
            StatusNotification Available after every accepted boot.
        boot_retry_interval: seconds before a new BootNotification when the CSMS answered
            Pending/Rejected with interval 0, or with a CALLERROR, or not at all.
        call_timeout: seconds to wait for the answer of a CALL before giving up on it.
        reconnect_min: first delay before reconnecting after the socket closed or failed.
        reconnect_max: cap of the exponential reconnect backoff (with full jitter).
        connect_timeout: seconds allowed for the TCP connect and WebSocket handshake.
        misbehave_fraction: fraction of the charge points that sometimes send invalid frames.
        misbehave_probability: for such a charge point, the chance that a BootNotification
            carries an over-long model name or a StatusNotification an unknown status.
        vendor: the vendor name sent at boot.
        model: the model name sent at boot.
        id_tag: the token presented to start transactions.
        jitter: spread the first occurrence of every timer at random over its interval, so
            that a fleet started at once does not act in lockstep.
    """

    version: SimVersion = "ocpp1.6"
    heartbeat_interval: float = 300.0
    status_interval: float = 0.0
    transaction_interval: float = 600.0
    transaction_duration: float = 1800.0
    meter_interval: float = 60.0
    meter_samples: int = 4
    connectors: int = 1
    boot_retry_interval: float = 10.0
    call_timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    connect_timeout: float = 10.0
    misbehave_fraction: float = 0.0
    misbehave_probability: float = 0.2
    vendor: str = "ocpp-gateway"
    model: str = "SimCharger"
    id_tag: str = "SIMTAG0001"
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.version not in ("ocpp1.6", "ocpp2.0.1"):
            raise ValueError(f"version: unsupported {self.version!r}")
        if self.connectors < 1:
            raise ValueError("connectors: must be at least 1")
        if self.meter_samples < 1:
            raise ValueError("meter_samples: must be at least 1")
        if not 0.0 <= self.misbehave_fraction <= 1.0:
            raise ValueError("misbehave_fraction: must be within [0, 1]")
        if not 0.0 <= self.misbehave_probability <= 1.0:
            raise ValueError("misbehave_probability: must be within [0, 1]")
        if self.call_timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("call_timeout, connect_timeout: must be positive")
        if self.reconnect_min <= 0 or self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_min/reconnect_max: need 0 < min <= max")

    def with_version(self, version: SimVersion) -> Profile:
        """The same profile speaking another OCPP version.

        Args:
            version: "ocpp1.6" or "ocpp2.0.1".

        Returns:
            A copy of this profile with `version` replaced.
        """
        return replace(self, version=version)


def _pair(name: str, profile: Profile) -> dict[str, Profile]:
    return {
        f"{name}-1.6": profile,
        f"{name}-2.0.1": profile.with_version("ocpp2.0.1"),
    }


PROFILES: dict[str, Profile] = {
    # Field-like timings: a heartbeat every 5 min, meter values every minute.
    **_pair("realistic", Profile()),
    # Accelerated for the live demo: something happens every second on a fleet of ~50.
    **_pair(
        "demo",
        Profile(
            heartbeat_interval=10.0,
            status_interval=6.0,
            transaction_interval=8.0,
            transaction_duration=20.0,
            meter_interval=2.0,
            meter_samples=4,
            connectors=2,
            boot_retry_interval=2.0,
            reconnect_min=0.5,
            reconnect_max=5.0,
            misbehave_fraction=0.1,
            misbehave_probability=0.5,
        ),
    ),
    # Connected and booted, then only heartbeats: for connection-count and memory runs.
    **_pair(
        "idle",
        Profile(heartbeat_interval=300.0, transaction_interval=0.0, meter_interval=0.0),
    ),
    # Charging all the time with frequent, large meter samples: for throughput runs.
    **_pair(
        "busy",
        Profile(
            heartbeat_interval=60.0,
            transaction_interval=1.0,
            transaction_duration=120.0,
            meter_interval=1.0,
            meter_samples=10,
            boot_retry_interval=1.0,
        ),
    ),
    # Drops and reconnects quickly: the backoff used by reconnect-storm runs.
    **_pair(
        "storm",
        Profile(
            heartbeat_interval=60.0,
            transaction_interval=0.0,
            meter_interval=0.0,
            reconnect_min=0.2,
            reconnect_max=5.0,
            boot_retry_interval=1.0,
        ),
    ),
}
