"""Typed stubs of the Rust extension `ocpp_gateway._core` (built from rust/ocpp-py).

The core is sans-I/O: it takes the bytes of one OCPP-J frame and the current time and returns a
`Verdict` saying what to do with the frame. It owns no sockets, tasks or clocks.
"""

from collections.abc import Mapping
from typing import Final, Literal, Self, final

__version__: Final[str]

OcppVersionName = Literal["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]
DirectionName = Literal["cp_to_csms", "csms_to_cp"]
ModeName = Literal["enforce", "observe", "off"]
RelaxErrorReason = Literal["unknown_action", "unknown_path", "invalid"]

CALL: Final[int]  # 2
CALLRESULT: Final[int]  # 3
CALLERROR: Final[int]  # 4
CALLRESULTERROR: Final[int]  # 5, OCPP 2.1 only
SEND: Final[int]  # 6, OCPP 2.1 only

class SchemaError(ValueError):
    """A schema file could not be read or uses a JSON Schema feature the core does not support."""

@final
class SchemaSet:
    """The compiled request and response schemas of one OCPP version. Immutable and shared.

    Compile it once at start-up and pass it to every `Session` of that version.
    """

    def __new__(
        cls, version: OcppVersionName, schema_dir: str, extra_dirs: list[str] | None = None
    ) -> Self:
        """Compile every schema of `version`.

        Args:
            version: the OCPP version the schemas belong to.
            schema_dir: a directory of official schemas in the `ocpp` package's layout
                (1.6: `<Action>.json` and `<Action>Response.json`; 2.x: `<Action>Request.json`
                and `<Action>Response.json`).
            extra_dirs: directories whose files add schemas or replace those of `schema_dir`,
                in the same layout, later directories winning.

        Raises:
            SchemaError: a file is not valid JSON, a schema uses an unsupported keyword, or an
                action of the version has no request schema.
        """

    @property
    def version(self) -> OcppVersionName: ...
    def actions(self) -> list[tuple[str, str]]:
        """Every known action with its direction: "cp_to_csms", "csms_to_cp" or "both"."""

    def has_schema(self, action: str, response: bool) -> bool: ...
    def check_relaxation(
        self, key: str, relax: Mapping[str, object]
    ) -> tuple[RelaxErrorReason, str] | None:
        """Check one relaxation of a model table against these schemas, keeping nothing.

        Args:
            key: "Action.member.member" (a request) or "ActionResponse.member" (a response),
                member names from the payload root, arrays stepped through.
            relax: the relaxations at that key: {"max_length": int} (larger than the schema's),
                {"extra_enum": [str, ...]}, {"min_items": int} (smaller than the schema's),
                {"allow_property": True} (the last member is not in the schema),
                {"extra_types": ["number", ...]}; several kinds may share one key.

        Returns:
            None when it compiles, else (reason, message): "unknown_action" or "unknown_path"
            (the version has no such action or member: it may exist in another version) or
            "invalid" (the relaxation does not fit the rule there); the message starts with
            the key.

        Raises:
            ValueError: `relax` is not a table, names an unknown kind, or a value of the wrong type.
        """

    def validate(self, action: str, response: bool, payload: bytes) -> tuple[str, str] | None:
        """Validate a bare JSON payload against the request or response schema of `action`.

        Returns:
            None when valid, else (error_code, detail) with the version's wire spelling; a
            payload that is not JSON gives the framework error code.

        Raises:
            ValueError: no such schema is loaded.
        """

@final
class Policy:
    """How strictly payloads are validated: "enforce", "observe" or "off". Immutable.

    `overrides` keys are an action name ("BootNotification"), a direction ("cp_to_csms"), or
    both joined by a colon ("BootNotification:cp_to_csms"); the most specific key wins
    (action:direction, then action, then direction, then `default`). "observe" forwards a frame
    whose payload fails its schema and still reports the error on the Verdict; "off" skips the
    payload schema (frame rules, action names and directions are always checked).
    """

    def __new__(
        cls, default: ModeName = "enforce", overrides: Mapping[str, str] | None = None
    ) -> Self:
        """Raises ValueError on an unknown mode or direction."""

    def mode(self, action: str, direction: DirectionName) -> ModeName: ...

@final
class ModelRules:
    """The rules of every configured charge point model of one version. Immutable and shared.

    Compile it once at start-up and pass it to every `Session` of that version: when a
    BootNotification from the charge point names one of these models (1.6 `chargePointModel`,
    2.x `chargingStation.model`, read even when the payload breaks its schema), the Session puts
    that model's policy and relaxed schemas in force itself, and already judges that
    BootNotification under them.
    """

    def __new__(
        cls,
        schemas: SchemaSet,
        models: Mapping[str, tuple[Policy, Mapping[str, Mapping[str, object]]]],
    ) -> Self:
        """Compile each model's policy and relaxations.

        Args:
            schemas: the schema set every Session using these rules is built with.
            models: model name -> (its full policy, its relaxations: key -> table, as in
                `SchemaSet.check_relaxation`). The key is also the rule's name in
                `Verdict.relaxed`.

        Raises:
            ValueError: a relaxation does not compile (the message names the model and key).
        """

    @property
    def version(self) -> OcppVersionName: ...
    def models(self) -> list[str]:
        """The configured model names, sorted."""

    def rules(self, model: str) -> list[str]:
        """The relaxation keys of `model`, sorted (empty for a model without rules)."""

@final
class Verdict:
    """What to do with one frame. Frozen.

    - forward: pass the original bytes, unchanged, to the other side.
    - reply: a frame (CALLERROR) built by the core to send back to the sender, or None.
    - substitute: a frame built by the core to send to the other side instead of the original
      (a CALLRESULT that failed its response schema is replaced by a CALLERROR to the caller), or
      None.
    - error_code: the OCPP error code (wire spelling of the session's version) of a violation,
      also set when the policy is "observe" and the frame is forwarded anyway.
    - drop_reason: why a frame was dropped without an answer: "unknown_message_type",
      "unmatched_result", "invalid_send", "invalid_call_error", or None.

    action, error_code and drop_reason are interned strings, built once per process: reading
    them allocates nothing, and equal values are the same object.
    """

    @property
    def forward(self) -> bool: ...
    @property
    def reply(self) -> bytes | None: ...
    @property
    def substitute(self) -> bytes | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_detail(self) -> str | None:
        """Human-readable cause of the violation (JSON path and rule), never payload values."""

    @property
    def error_path(self) -> str | None:
        """Of a payload violation: member names from the payload root joined by dots, array
        indices left out ("meterValue.sampledValue.context"; "" for the root); for a missing
        required property, that property. None for frame errors. Set only when there is a
        violation, like `error_keyword`. A member the schema does not know is cut to 40
        characters."""

    @property
    def error_keyword(self) -> str | None:
        """Of a payload violation: the JSON Schema keyword that failed ("maxLength", "enum",
        "type", "required", "minItems", "additionalProperties", "pattern", ...)."""

    @property
    def relaxed(self) -> str | None:
        """The relaxation key of the model in force (e.g.
        "BootNotification.chargePointSerialNumber") that made a payload pass which the official
        schema rejects; None otherwise. A bounded set: the configured keys."""

    @property
    def observed(self) -> bool:
        """True when a payload violation was found but forwarded because the policy is observe."""

    @property
    def drop_reason(self) -> str | None: ...
    @property
    def message_type(self) -> int:
        """MessageTypeId (2..6), or 0 when the frame could not be parsed that far."""

    @property
    def unique_id(self) -> str | None: ...
    @property
    def action(self) -> str | None:
        """The action of a CALL/SEND, or of the call a CALLRESULT/CALLERROR answers."""

    @property
    def call_duration(self) -> float | None:
        """For a result that matched a pending call: now minus the time the call was seen."""

@final
class Stats:
    """Frame counters of one OCPP version, shared by its Sessions (given as `stats=`).

    Each frame a Session judges adds its size to a histogram per direction; a forwarded frame
    counts one message per (direction, message type, action); a result that matched a pending
    call adds its duration to a histogram per (direction of the call, action). The relay thus
    counts nothing itself; the metrics drain the counters with `take` about once a second.
    """

    def __new__(
        cls, schemas: SchemaSet, duration_bounds: list[float], size_bounds: list[float]
    ) -> Self:
        """Args:
        schemas: the version's schemas (action names come from them).
        duration_bounds: upper bounds of the duration histogram buckets, in seconds,
            ascending, without +Inf (added).
        size_bounds: upper bounds of the frame size buckets, in bytes, likewise.
        """

    def take(
        self,
    ) -> tuple[
        list[tuple[DirectionName, int, str | None, int]],
        list[tuple[DirectionName, str | None, list[int], float]],
        list[tuple[DirectionName, list[int], float]],
    ]:
        """Drain the counters: everything since the last call, then zero.

        Returns:
            (messages, durations, sizes): (direction, message type, action, count) of
            forwarded frames; (direction of the call, action, count per bucket, sum of
            seconds); (direction, count per bucket, sum of bytes). Only non-zero rows; the
            last bucket is +Inf.
        """

@final
class Session:
    """The OCPP-J state of one charge point connection: pending calls in both directions.

    Not thread-safe; one per connection.
    """

    def __new__(
        cls,
        version: OcppVersionName,
        schemas: SchemaSet | None = None,
        policy: Policy | None = None,
        call_timeout: float = 60.0,
        model_rules: ModelRules | None = None,
        stats: Stats | None = None,
    ) -> Self:
        """Args:
        version: the negotiated subprotocol.
        schemas: compiled schemas of that version; None takes those of `model_rules`, or
            loads (once per process, then cached) the official ones from the `ocpp`
            package via `ocpp_gateway.schemas.default_schemas`.
        policy: validation policy; None means enforce everywhere.
        call_timeout: seconds after which a pending call is reported by `expire`.
        model_rules: per-model rules, put in force by the BootNotification naming a model;
            a model without rules (or no model) leaves `policy` in force.
        stats: counters that every judged frame is recorded in (see `Stats`).

        Raises:
            ValueError: unknown version, schemas or stats of another version, or model rules
                built over another schema set.
        """

    @property
    def version(self) -> OcppVersionName: ...
    @property
    def policy(self) -> Policy: ...
    @policy.setter
    def policy(self, policy: Policy) -> None:
        """Replace the session's own policy; while a model's rules are in force they decide."""

    @property
    def boot_info(self) -> tuple[str | None, str | None, str | None] | None:
        """(vendor, model, firmware) of the last BootNotification CALL from the charge point,
        read before validation (also from an invalid one); a field absent or not a string is
        None, strings are cut to 100 characters. None before any BootNotification."""

    @property
    def model(self) -> str | None:
        """The model whose rules are in force, or None."""

    @property
    def model_rules(self) -> ModelRules | None: ...
    def from_charge_point(self, frame: bytes, now: float) -> Verdict:
        """Judge a frame received from the charge point (to be sent to the CSMS)."""

    def from_csms(self, frame: bytes, now: float) -> Verdict:
        """Judge a frame received from the CSMS (to be sent to the charge point)."""

    def expire(self, now: float) -> list[tuple[DirectionName, str, str]]:
        """Forget pending calls older than call_timeout.

        Returns:
            (direction of the call, unique_id, action) for each call dropped.
        """

    def pending(self) -> int:
        """Number of calls awaiting an answer, both directions."""

    def frames(self) -> tuple[int, int]:
        """Frames judged so far: (from the charge point, from the CSMS)."""

def error_code_for(version: OcppVersionName, kind: str) -> str:
    """The wire spelling of an error kind in a version (e.g. "format" -> "FormationViolation"
    in 1.6, "FormatViolation" in 2.x). Kinds: "framework", "message_type", "not_implemented",
    "not_supported", "occurrence", "type", "property", "format", "internal", "generic"."""
