"""The configuration's sections: one frozen dataclass per TOML table, `GatewayConfig` the root.

A field added to a section is read from TOML, the environment and flags without a loader change
(`convert`), appears in the README's settings table from its `Attributes:` line (`reference`),
and is range-checked with the other numbers of its section (`checks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ocpp_gateway.config.convert import freeze_fields
from ocpp_gateway.config.options import transport_options, typed_options
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.transports import DEFAULT_TRANSPORT
from ocpp_gateway.transports.local import LocalOptions
from ocpp_gateway.transports.websocket import WebSocketOptions

__all__ = [
    "AdminConfig",
    "BackendConfig",
    "CaptureConfig",
    "GatewayConfig",
    "LocalConfig",
    "PluginsConfig",
    "SecurityConfig",
    "UpstreamConfig",
    "ValidationConfig",
]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The `[upstream]` table: the default backend every charge point is relayed to.

    Attributes:
        type: "websocket" (a CSMS), "nats" (NATS JetStream) or "redis_streams" (Redis).
        url: for "websocket" the CSMS URL (ws:// or wss://): the gateway opens
            `url/{charge_point_id}`, or, where the URL contains the placeholder
            `{charge_point_id}`, the URL with the id in its place
            (`ws://csms/ocpp/{charge_point_id}/`); for "nats" `nats://host:4222`; for
            "redis_streams" `redis://host:6379/0`. None means no upstream: the embedded local
            responder answers the charge points.
        username, password: credentials sent to the CSMS (HTTP Basic) or the broker (never
            logged). For a CSMS with an empty `username`, the charge point id is the user name.
        connect_timeout: seconds allowed to open the upstream link (or reach the broker).
        compress: offer permessage-deflate to the CSMS ("websocket" only; the link then uses
            aiohttp's client).
        client: the WebSocket client of the upstream links ("websocket" only): "picows"
            (leaner per frame) or "aiohttp".
        options: the broker transport's own settings (`[upstream.options]`), see
            `NatsOptions`, `RedisStreamsOptions` and docs/brokers.md.
    """

    type: Literal["websocket", "nats", "redis_streams"] = "websocket"
    url: str | None = None
    username: str | None = None
    password: str | None = None
    connect_timeout: float = 10.0
    compress: bool = False
    client: Literal["picows", "aiohttp"] = "picows"
    options: Mapping[str, object] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        freeze_fields(self)


#: The roles of a `[backends.<name>]` table (DESIGN: several backends per charge point).
BackendRole = Literal["primary", "controller", "observer", "candidate"]


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """A `[backends.<name>]` table: one backend of every (or some) charge point, by role.

    Attributes:
        role: "primary" (its answers, and only its, reach the charge point; exactly one; the
            `[upstream]` table and `--upstream` are its shorthand), "controller" (receives the
            charge point's calls, may send the `commands` listed), "observer" (receives the
            charge point's calls, commands nothing) or "candidate" (answers like a primary; its
            answers are compared with the primary's, then discarded).
        type: "websocket" (a CSMS), "local" (the embedded responder, primary only), "nats" or
            "redis_streams" (primary only, for now).
        url: as `upstream.url` for the type.
        username, password: as `upstream.username`/`upstream.password`.
        connect_timeout: seconds allowed to open one of its links.
        compress: as `upstream.compress`.
        client: as `upstream.client`.
        options: a broker type's own settings (as `upstream.options`).
        commands: the actions a controller may send to the charge points (others are refused
            with a CALLERROR SecurityError that never reaches the charge point).
        charge_points: ids or glob patterns ("CP-1", "site7-*") of the charge points this
            backend serves; empty means all (a non-primary backend only).
        queue_frames: frames kept for a non-primary backend, per charge point, while its link
            is slow or down; beyond it the oldest are dropped (counted).
        id_map: a candidate's SQLite file: the 1.6 transaction id map (primary's id ->
            candidate's id) and the comparison report, kept across restarts. Required for a
            candidate.
    """

    role: BackendRole = "observer"
    type: Literal["websocket", "local", "nats", "redis_streams"] = "websocket"
    url: str | None = None
    username: str | None = None
    password: str | None = None
    connect_timeout: float = 10.0
    compress: bool = False
    client: Literal["picows", "aiohttp"] = "picows"
    options: Mapping[str, object] = field(default_factory=_empty)
    commands: tuple[str, ...] = ()
    charge_points: tuple[str, ...] = ()
    queue_frames: int = 1000
    id_map: str | None = None

    def __post_init__(self) -> None:
        freeze_fields(self)

    def as_upstream(self) -> UpstreamConfig:
        """Returns: its transport settings as an `[upstream]` table (checked the same way)."""
        return UpstreamConfig(
            type="websocket" if self.type == "local" else self.type,
            url=self.url,
            username=self.username,
            password=self.password,
            connect_timeout=self.connect_timeout,
            compress=self.compress,
            client=self.client,
            options=self.options,
        )


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    """The `[validation]` table: how strictly payloads are checked (maps onto `_core.Policy`).

    Attributes:
        default: "enforce", "observe" or "off".
        overrides: keys are an action, a direction or "Action:direction"; values are modes.
        versions: per OCPP version ("ocpp1.6", ...), a table with an optional "default" and
            overrides; it replaces the global default and adds to the global overrides.
        models: per charge point model (BootNotification chargePointModel /
            chargingStation.model), a table with an optional "default", overrides, and an
            optional "relax" table, applied on top of the version policy from the first
            BootNotification that names the model (that BootNotification included, valid or
            not). `relax` maps "Action.member.member" (or "ActionResponse.member") to a table
            of relaxations: `max_length = N`, `extra_enum = [..]`, `min_items = N`,
            `allow_property = true`, `extra_types = [..]` (see `ocpp_gateway.model_rules`).
        schema_dirs: extra directories of schemas (vendor DataTransfer payloads, errata), one
            subdirectory per version: `<dir>/ocpp1.6/`, `<dir>/ocpp2.0.1/`, `<dir>/ocpp2.1/`.
        violation_log: a JSON file the gateway rewrites (about once a second, when it changed)
            with the bounded log of payload violations, for `ocpp-gateway violations`; None
            keeps no log.
        violation_log_entries: the most distinct (model, firmware, version, action, path,
            keyword) entries the log keeps; further ones are dropped and counted.
    """

    default: Literal["enforce", "observe", "off"] = "enforce"
    overrides: Mapping[str, str] = field(default_factory=_empty)
    versions: Mapping[str, Mapping[str, str]] = field(default_factory=_empty)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    schema_dirs: tuple[str, ...] = ()
    violation_log: str | None = None
    violation_log_entries: int = 1000

    def __post_init__(self) -> None:
        freeze_fields(self)


LocalConfig = LocalOptions
"""The `[local]` table: the embedded responder used when no upstream is configured (the local
transport's own options class, `transports.local.LocalOptions`)."""


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    """The `[plugins]` table.

    Attributes:
        enabled: plugin names from the `ocpp_gateway.plugins` entry-point group, in chain order.
        options: per plugin name, the table of settings given to its constructor.
    """

    enabled: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, object]] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        freeze_fields(self)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The `[admin]` table: a second listener for operators (`/metrics`, `/healthz`, `/readyz`
    and the charge point API), apart from the charge point port.

    Attributes:
        host: the address it listens on; loopback by default (set "0.0.0.0" for probes and
            scrapes from other hosts, and see the README on exposing it).
        port: its port; none (the default) means no admin listener, 0 picks a free port.
        tls_cert, tls_key: PEM files; when both are set it serves https (plain http otherwise).
        token: bearer token of the API (`/charge-points`), at least 16 characters, no
            whitespace or control characters, at least 6 different characters; never logged
            (`OCPP_GATEWAY_ADMIN_TOKEN`); none means the API is off (404).
        idle_timeout: seconds a connection may wait for a complete request head, idle between
            requests or sending headers slowly; then it is closed.
        body_timeout: seconds a request may take to send its body (408 after).
        max_connections: TCP connections it holds at once; more get 503 and are closed.
        max_connections_per_ip: TCP connections it holds at once from one client address
            (so one client cannot take every place, the probes' included); 0: no such cap.
        token_failures_per_minute: wrong or missing tokens allowed per client address per
            minute (as a burst, refilled evenly); over it, every API request of that address
            gets 429 without the token being checked. 0 disables.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    token: str | None = None
    idle_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 64
    max_connections_per_ip: int = 16
    token_failures_per_minute: int = 10


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


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """The `[security]` table of the gateway configuration. Every field has a safe default.

    Attributes:
        credentials_file: TOML table mapping charge point id to a password hash; when set, HTTP
            Basic authentication (OCPP security profile 1/2) is required at the handshake.
        tls_cert, tls_key: PEM files; when both are set, the port serves wss (profile 2/3).
        client_ca: PEM bundle; when set, a client certificate chaining to it is required
            (profile 3) and its subject `client_identity_field` must equal the charge point id.
        client_identity_field: the certificate subject attribute holding the charge point id
            ("CN", or e.g. "serialNumber").
        pinned_profiles: charge point id -> the only security profile (1, 2 or 3) it may use.
        takeover: what a second connection with a live charge point's id does: "ping" (the live
            socket is pinged and replaced only if it fails to answer, by a newcomer that
            authenticated or, when no authentication is configured, by any newcomer), "replace"
            (authenticated newcomers replace at once, others as with "ping"), "refuse".
        takeover_ping_timeout: seconds the live socket has to answer the takeover ping.
        max_message_bytes: largest frame accepted, measured after permessage-deflate inflation
            (larger: close 1009).
        handshake_timeout: seconds from accept to a complete request head, and again for
            authentication.
        idle_timeout: seconds without any frame from a charge point before it is closed (1001).
        ping_interval: seconds between WebSocket pings to each charge point.
        max_connections, max_connections_per_ip: open charge point sockets allowed (0 = no
            limit); beyond them the handshake gets 503 (total) or 429 (per address).
        tls_handshake_rate_per_ip: new TLS connections per second from one address, with five
            seconds' worth of burst (0 = no limit); beyond it the connection is reset before its
            TLS handshake (wss without the PROXY protocol: see `ocpp_gateway.gate`).
        tls_handshakes_in_flight_per_ip, tls_handshakes_in_flight: TLS handshakes in progress
            from one address and in all (0 = no limit); beyond them, reset likewise.
        message_rate, message_burst: token bucket of frames per second from one charge point
            (0 = no limit; results are never limited).
        rate_excess: what a frame over the rate limit gets: "close" (1008) or "callerror" (a
            CALL is answered with a CALLERROR, an invalid frame with its validation answer,
            other frames are dropped; a transaction message closes the socket with 1008
            instead, as it must never get a CALLERROR).
        auth_failures_per_minute: failed authentications allowed per charge point id and per
            source address before further attempts get 429 (0 = no throttling).
        max_outbound_queue_bytes: bytes waiting to be written to one charge point before it is
            closed as a slow reader (1008; 0 = no limit).
        slow_reader_grace: seconds a slow reader gets to read its close frame before its socket
            is aborted.
        tls_allow_rsa_key_exchange: also offer the static-RSA TLS 1.2 suites of the 1.6 security
            whitepaper (no forward secrecy).
        tls_ticket_key_file: 80 bytes (raw, or 160 hex digits) of TLS session ticket keys shared
            by every process and node that should resume each other's sessions; rotate it by
            replacing the file and restarting. Unset: `--workers` share keys the supervisor
            draws at start, a single process keeps its own.
        auth_workers: threads verifying password hashes.
        auth_cache_seconds: how long a successful password verification is remembered (0 = off).
        max_pending_auth: password verifications allowed to wait at once; beyond it, 503.
    """

    credentials_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    client_identity_field: str = "CN"
    pinned_profiles: Mapping[str, int] = field(default_factory=_empty)
    takeover: Literal["ping", "replace", "refuse"] = "ping"
    takeover_ping_timeout: float = 5.0
    max_message_bytes: int = 1024 * 1024
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    ping_interval: float = 60.0
    max_connections: int = 0
    max_connections_per_ip: int = 0
    tls_handshake_rate_per_ip: float = 20.0
    tls_handshakes_in_flight_per_ip: int = 32
    tls_handshakes_in_flight: int = 0
    message_rate: float = 20.0
    message_burst: int = 100
    rate_excess: Literal["callerror", "close"] = "close"
    auth_failures_per_minute: int = 10
    max_outbound_queue_bytes: int = 4 * 1024 * 1024
    slow_reader_grace: float = 10.0
    tls_allow_rsa_key_exchange: bool = False
    tls_ticket_key_file: str | None = None
    auth_workers: int = 2
    auth_cache_seconds: float = 300.0
    max_pending_auth: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.pinned_profiles, MappingProxyType):
            object.__setattr__(
                self, "pinned_profiles", MappingProxyType(dict(self.pinned_profiles))
            )


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole gateway configuration. Immutable; built once by `load_config`.

    Attributes:
        host, port: where charge points connect (port 0 picks a free one).
        upstream: the CSMS link.
        validation: the validation policy.
        call_timeout: seconds a CALL may wait for its answer before it is forgotten and counted.
        plugins: routing plugins.
        transports: extra named transports a plugin may forward to: name -> the typed options
            of its transport type (a `[transports.<name>]` table with a "type", "websocket"
            or "local", and that type's settings, is converted by the loader).
        local: the embedded local responder.
        workers: processes sharing the port (SO_REUSEPORT).
        drain_timeout: seconds a SIGTERM waits for pending calls before closing sockets.
        log_level: "debug", "info", "warning" or "error".
        log_format: "json" (one object per line on stderr) or "text" (one readable line).
        security: authentication, TLS, takeover and limits.
        node_id: this gateway process's id on a broker (subjects, ownership entries); None
            means host name and process id, so each worker of `serve` is its own node.
        admin: the admin listener and its API.
        metrics_on_main_port: also serve `/metrics`, `/healthz` and `/readyz` on the charge
            point port (false is recommended once the admin listener is used).
        trusted_proxies: CIDR blocks of load balancers whose PROXY protocol header and
            X-Forwarded-For header are believed (empty: none is).
        proxy_protocol: connections from `trusted_proxies` must begin with a PROXY protocol
            header (v1 or v2) giving the charge point's address; others are served as they are.
        capture: per charge point capture in the Open OCPP Trace format (`[capture]`).
        backends: backends by name and role (`[backends.<name>]`, see `BackendConfig` and the
            README's "Several backends per charge point"); a primary here replaces `[upstream]`.
    """

    host: str = "0.0.0.0"
    port: int = 9000
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    call_timeout: float = 60.0
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    transports: Mapping[str, Any] = field(default_factory=_empty)
    local: LocalConfig = field(default_factory=LocalConfig)
    workers: int = 1
    drain_timeout: float = 10.0
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    security: SecurityConfig = field(default_factory=SecurityConfig)
    node_id: str | None = None
    admin: AdminConfig = field(default_factory=AdminConfig)
    metrics_on_main_port: bool = True
    trusted_proxies: tuple[str, ...] = ()
    proxy_protocol: bool = False
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    backends: Mapping[str, BackendConfig] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        freeze_fields(self)

    def primary(self) -> tuple[str, BackendConfig] | None:
        """Returns: the `[backends]` entry of role "primary" (the first, when several: the
        checks refuse that), or None when `[upstream]` (or the local responder) is the primary.
        """
        for name, backend in self.backends.items():
            if backend.role == "primary":
                return name, backend
        return None

    def secondary_backends(self) -> Mapping[str, BackendConfig]:
        """Returns: the `[backends]` entries that are not the primary, by name."""
        return MappingProxyType(
            {name: b for name, b in self.backends.items() if b.role != "primary"}
        )

    def transport_options(self) -> Mapping[str, Any]:
        """The typed options of every transport: "default" (the primary: a `[backends]` entry of
        role "primary", else the `[upstream]` backend when `upstream.url` is set, a CSMS or a
        broker by its type, else the `[local]` responder), then the named ones.

        Raises:
            ConfigError: a setting of a transport that does not convert or check.
        """
        errors: list[str] = []
        default = _default_backend(self, errors)
        named = {
            name: (
                transport_options(name, value, errors, self.node_id)
                if isinstance(value, Mapping)
                else value
            )
            for name, value in self.transports.items()
        }
        if errors:
            raise ConfigError(errors)
        return MappingProxyType({DEFAULT_TRANSPORT: default, **named})


def _default_backend(cfg: GatewayConfig, errors: list[str]) -> Any:
    """The options of the default backend (None, with errors, when they do not convert)."""
    up = cfg.upstream
    primary = cfg.primary()
    if primary is not None:
        if primary[1].type == "local":
            return cfg.local
        up = primary[1].as_upstream()
    if not up.url:
        return cfg.local
    if up.type == "websocket":
        return WebSocketOptions(
            up.url,
            username=up.username,
            password=up.password,
            connect_timeout=up.connect_timeout,
            compress=up.compress,
            client=up.client,
        )
    table: dict[str, Any] = {"url": up.url, "connect_timeout": up.connect_timeout}
    if up.username is not None:
        table["username"] = up.username
    if up.password is not None:
        table["password"] = up.password
    table.update(up.options)
    # The url is checked as `upstream.url` with the other [upstream] keys (checks).
    return typed_options(up.type, "upstream.options", table, errors, cfg.node_id, check=False)
