//! The OCPP-J state of one connection and the verdict on each frame.
//!
//! Decisions that are ours to make (the specification leaves them open):
//! - A CALL whose UniqueId and action equal those of a call from the same side still awaiting its
//!   answer is the sender's retransmission (a charge point that timed out waiting for a slow
//!   backend): it is validated and forwarded like any call, and the pending call's time is reset
//!   to now, so the backend's eventual answer still matches it. Rejecting it would spend one of
//!   the charger's retries on a transaction message because the backend is slow (DESIGN.md, rules
//!   that keep data safe).
//! - A CALL reusing the UniqueId of a pending call of another action is answered with a framework
//!   error (FormationViolation / RpcFrameworkError) and not forwarded: the answer would be
//!   ambiguous (OCPP-J requires ids to be unique per sender). Once the first call is answered or
//!   expired, the id may be used again.
//! - A CALLRESULT whose envelope is broken but whose UniqueId matches a pending call is treated
//!   like a result that fails its schema: the caller gets a CALLERROR (framework error) instead,
//!   and in 2.1 the sender gets a CALLRESULTERROR. With no matching call it is dropped.
//! - A CALLERROR or CALLRESULTERROR with a broken envelope is dropped ("invalid_call_error"): an
//!   error is never answered with an error. The call it may answer stays pending until it expires.
//! - A CALL of a SEND-only action, or a SEND of an action that is not SEND-only, gets
//!   NotSupported (CALL) or is dropped as "invalid_send" (SEND).
//! - The policy is looked up with the direction the frame travels: a CALLRESULT from the charge
//!   point is "cp_to_csms", even though it answers a call that went the other direction.
//! - With model rules ([`ModelRules`]), every BootNotification CALL from the charge point is read
//!   before it is validated (vendor, model and firmware, from the parsed tree, even when the
//!   payload breaks its schema), and the rules of its model are put in force at once: that
//!   BootNotification is already judged under them. A model without rules (or no model) puts the
//!   session's own policy back in force.

use std::borrow::Cow;
use std::sync::Arc;

use crate::correlation::{AddError, Correlation, PendingCall};
use crate::error::ErrorKind;
use crate::frame::{self, Frame, FrameErrorKind};
use crate::json::Value;
use crate::policy::{Mode, Policy};
use crate::rules::{ModelRule, ModelRules, Relaxed};
use crate::schema::{ActionId, SchemaSet, Violation};
use crate::version::{Direction, OcppVersion};

/// UniqueId used in a reply when the frame's own cannot be read.
pub const UNREADABLE_ID: &str = "-1";

/// Longest errorDescription the core writes (OCPP 2.x limits it to 255 characters).
const MAX_DESCRIPTION: usize = 255;

/// Longest vendor, model or firmware string kept from a BootNotification (in characters).
pub const MAX_BOOT_FIELD: usize = 100;

/// What a BootNotification says about the charge point; a field that is absent or not a string
/// is None. Strings longer than [`MAX_BOOT_FIELD`] characters are cut.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootInfo {
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

fn boot_field(v: Option<&Value<'_>>) -> Option<String> {
    let s = v?.as_str()?;
    Some(match s.char_indices().nth(MAX_BOOT_FIELD) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    })
}

impl BootInfo {
    /// Read a BootNotification request payload of `version`, valid or not: 1.6
    /// `chargePointVendor`, `chargePointModel`, `firmwareVersion`; 2.x `chargingStation`'s
    /// `vendorName`, `model`, `firmwareVersion`.
    pub fn read(version: OcppVersion, payload: &Value<'_>) -> Self {
        let (station, vendor, model) = match version {
            OcppVersion::V16 => (Some(payload), "chargePointVendor", "chargePointModel"),
            OcppVersion::V201 | OcppVersion::V21 => {
                (payload.get("chargingStation"), "vendorName", "model")
            }
        };
        let Some(station) = station else {
            return BootInfo::default();
        };
        BootInfo {
            vendor: boot_field(station.get(vendor)),
            model: boot_field(station.get(model)),
            firmware: boot_field(station.get("firmwareVersion")),
        }
    }
}

/// The model's rules in force judging one payload.
enum Checked {
    Valid,
    /// The official schema rejects it, a relaxation of the model's (named) accepts it.
    Relaxed(Arc<str>),
    /// A violation forwarded anyway (policy observe).
    Observed(Violation),
}

/// Why a frame was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    UnknownMessageType,
    UnmatchedResult,
    InvalidSend,
    InvalidCallError,
}

impl DropReason {
    /// The name exposed to Python and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::UnknownMessageType => "unknown_message_type",
            DropReason::UnmatchedResult => "unmatched_result",
            DropReason::InvalidSend => "invalid_send",
            DropReason::InvalidCallError => "invalid_call_error",
        }
    }
}

/// Where a payload violation is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Member names from the payload root joined by dots, array indices left out.
    pub path: String,
    /// The JSON Schema keyword that failed.
    pub keyword: &'static str,
}

/// What to do with one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict<'a> {
    /// Pass the original bytes on to the other side.
    pub forward: bool,
    /// A frame to send back to the sender.
    pub reply: Option<Vec<u8>>,
    /// A frame to send to the other side instead of the original.
    pub substitute: Option<Vec<u8>>,
    /// The violation found, if any (also when observed and forwarded).
    pub error: Option<ErrorKind>,
    /// Wire spelling of `error` in the session's version.
    pub error_code: Option<&'static str>,
    /// JSON pointer and rule of the violation; never payload values.
    pub error_detail: Option<String>,
    /// Where a payload violation is; boxed, so verdicts of valid frames stay small.
    pub error_location: Option<Box<Location>>,
    /// The relaxation (its configuration key) of the model in force that made a payload pass
    /// the official schema rejects.
    pub relaxed: Option<Arc<str>>,
    /// A payload violation was found but the frame is forwarded (policy "observe").
    pub observed: bool,
    pub drop_reason: Option<DropReason>,
    /// MessageTypeId, or 0 when unreadable or unknown to the version.
    pub message_type: u8,
    pub unique_id: Option<Cow<'a, str>>,
    /// Table index of the action of a CALL/SEND, or of the call a result answers.
    pub action: Option<ActionId>,
    /// For a result matching a pending call: seconds since the call was seen.
    pub call_duration: Option<f64>,
}

impl<'a> Verdict<'a> {
    /// The dotted path of a payload violation.
    pub fn error_path(&self) -> Option<&str> {
        self.error_location.as_deref().map(|l| l.path.as_str())
    }

    /// The JSON Schema keyword of a payload violation.
    pub fn error_keyword(&self) -> Option<&'static str> {
        self.error_location.as_deref().map(|l| l.keyword)
    }

    fn new(message_type: u8, unique_id: Option<Cow<'a, str>>) -> Self {
        Verdict {
            forward: false,
            reply: None,
            substitute: None,
            error: None,
            error_code: None,
            error_detail: None,
            error_location: None,
            relaxed: None,
            observed: false,
            drop_reason: None,
            message_type,
            unique_id,
            action: None,
            call_duration: None,
        }
    }

    fn forwarded(mut self) -> Self {
        self.forward = true;
        self
    }

    /// Record where a payload violation is.
    fn located(mut self, path: String, keyword: &'static str) -> Self {
        self.error_location = Some(Box::new(Location { path, keyword }));
        self
    }
}

fn description(detail: &str) -> &str {
    match detail.char_indices().nth(MAX_DESCRIPTION) {
        Some((i, _)) => &detail[..i],
        None => detail,
    }
}

/// The state of one connection: pending calls in both directions.
#[derive(Debug, Clone)]
pub struct Session {
    version: OcppVersion,
    schemas: Arc<SchemaSet>,
    policy: Policy,
    /// Mode per action index and direction in force: from `policy`, or from the model's rules.
    modes: Vec<[Mode; 2]>,
    call_timeout: f64,
    pending: Correlation,
    /// Rules per model, shared by the sessions of the version.
    rules: Option<Arc<ModelRules>>,
    /// The rules in force, once a BootNotification named a model that has some.
    rule: Option<Arc<ModelRule>>,
    /// What the last BootNotification said.
    boot: Option<BootInfo>,
    boot_id: Option<ActionId>,
    /// Frames judged so far: [from the charge point, from the CSMS].
    frames: [u64; 2],
}

impl Session {
    /// A session validating with `schemas` (whose version is the session's).
    pub fn new(schemas: Arc<SchemaSet>, policy: Policy, call_timeout: f64) -> Self {
        let version = schemas.version();
        let modes = policy.table(version);
        let boot_id = schemas.action_id("BootNotification");
        Session {
            version,
            schemas,
            policy,
            modes,
            call_timeout,
            pending: Correlation::default(),
            rules: None,
            rule: None,
            boot: None,
            boot_id,
            frames: [0, 0],
        }
    }

    /// Judge under `rules` once a BootNotification names a model that has some. The rules must
    /// have been built over this session's schemas (the same shared set).
    pub fn with_model_rules(mut self, rules: Arc<ModelRules>) -> Result<Self, String> {
        if !Arc::ptr_eq(rules.schemas(), &self.schemas) {
            return Err("model rules were built over another SchemaSet".into());
        }
        self.rules = Some(rules);
        Ok(self)
    }

    /// The model rules the session was given, if any.
    pub fn model_rules(&self) -> Option<&Arc<ModelRules>> {
        self.rules.as_ref()
    }

    /// What the last BootNotification from the charge point said (read even when invalid).
    pub fn boot_info(&self) -> Option<&BootInfo> {
        self.boot.as_ref()
    }

    /// The model whose rules are in force, if any.
    pub fn model(&self) -> Option<&str> {
        self.rule.as_deref().map(ModelRule::model)
    }

    /// Read a BootNotification and put its model's rules in force (or the session's policy).
    fn on_boot(&mut self, payload: &Value<'_>) {
        let info = BootInfo::read(self.version, payload);
        // Looked up with the full string: a cut one must not match a configured name.
        let full = match self.version {
            OcppVersion::V16 => payload.get("chargePointModel"),
            OcppVersion::V201 | OcppVersion::V21 => {
                payload.get("chargingStation").and_then(|s| s.get("model"))
            }
        };
        let rule = self
            .rules
            .as_ref()
            .zip(full.and_then(Value::as_str))
            .and_then(|(rules, model)| rules.get(model))
            .cloned();
        self.boot = Some(info);
        if self.rule.is_none() && rule.is_none() {
            return;
        }
        self.modes = match &rule {
            Some(r) => r.modes().to_vec(),
            None => self.policy.table(self.version),
        };
        self.rule = rule;
    }

    pub fn version(&self) -> OcppVersion {
        self.version
    }

    pub fn schemas(&self) -> &Arc<SchemaSet> {
        &self.schemas
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replace the session's own policy; pending calls are kept. While a model's rules are in
    /// force they keep deciding; the new policy applies when they no longer are.
    pub fn set_policy(&mut self, policy: Policy) {
        if self.rule.is_none() {
            self.modes = policy.table(self.version);
        }
        self.policy = policy;
    }

    pub fn call_timeout(&self) -> f64 {
        self.call_timeout
    }

    /// Number of calls awaiting an answer, both directions.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Frames judged so far: (from the charge point, from the CSMS).
    pub fn frames(&self) -> (u64, u64) {
        (self.frames[0], self.frames[1])
    }

    /// Forget calls pending for `call_timeout` or longer: (direction, UniqueId, action).
    pub fn expire(&mut self, now: f64) -> Vec<(Direction, String, &'static str)> {
        self.pending
            .expire(now, self.call_timeout)
            .into_iter()
            .map(|(direction, id, call)| (direction, id, self.schemas.action(call.action).0))
            .collect()
    }

    /// Judge a frame from the charge point.
    pub fn from_charge_point<'a>(&mut self, bytes: &'a [u8], now: f64) -> Verdict<'a> {
        self.judge(Direction::CpToCsms, bytes, now)
    }

    /// Judge a frame from the CSMS.
    pub fn from_csms<'a>(&mut self, bytes: &'a [u8], now: f64) -> Verdict<'a> {
        self.judge(Direction::CsmsToCp, bytes, now)
    }

    /// Judge a frame travelling `direction`.
    pub fn judge<'a>(&mut self, direction: Direction, bytes: &'a [u8], now: f64) -> Verdict<'a> {
        self.frames[usize::from(direction == Direction::CsmsToCp)] += 1;
        match frame::parse(bytes, self.version) {
            Ok(f) => self.judge_frame(direction, f, now),
            Err(e) => self.judge_broken(direction, e, now),
        }
    }

    fn code(&self, kind: ErrorKind) -> &'static str {
        kind.code(self.version)
    }

    /// Set the error fields of a verdict.
    fn flag(&self, v: &mut Verdict<'_>, kind: ErrorKind, detail: String) {
        v.error = Some(kind);
        v.error_code = Some(self.code(kind));
        v.error_detail = Some(detail);
    }

    /// A verdict answering the sender with a CALLERROR and forwarding nothing.
    fn reject<'a>(&self, mut v: Verdict<'a>, kind: ErrorKind, detail: String) -> Verdict<'a> {
        let id = v.unique_id.as_deref().unwrap_or(UNREADABLE_ID);
        v.reply = Some(frame::error_frame(
            frame::CALLERROR,
            id,
            self.code(kind),
            description(&detail),
        ));
        self.flag(&mut v, kind, detail);
        v
    }

    fn judge_broken<'a>(
        &mut self,
        direction: Direction,
        e: frame::FrameError<'a>,
        now: f64,
    ) -> Verdict<'a> {
        let mut v = Verdict::new(e.message_type, e.unique_id);
        if e.kind == FrameErrorKind::UnknownMessageType {
            if self.version == OcppVersion::V201 {
                return self.reject(v, ErrorKind::MessageType, e.detail);
            }
            v.drop_reason = Some(DropReason::UnknownMessageType);
            return v;
        }
        match e.message_type {
            frame::SEND => {
                v.drop_reason = Some(DropReason::InvalidSend);
                self.flag(&mut v, ErrorKind::Framework, e.detail);
                v
            }
            frame::CALLERROR | frame::CALLRESULTERROR => {
                v.drop_reason = Some(DropReason::InvalidCallError);
                self.flag(&mut v, ErrorKind::Framework, e.detail);
                v
            }
            frame::CALLRESULT => {
                let call = v
                    .unique_id
                    .as_deref()
                    .and_then(|id| self.pending.take(direction.reverse(), id));
                if let Some(call) = call {
                    self.bad_result(v, call, now, ErrorKind::Framework, e.detail)
                } else {
                    v.drop_reason = Some(DropReason::UnmatchedResult);
                    self.flag(&mut v, ErrorKind::Framework, e.detail);
                    v
                }
            }
            _ => self.reject(v, ErrorKind::Framework, e.detail),
        }
    }

    /// A result that answers `call` but may not be forwarded: the caller gets a CALLERROR
    /// instead, and in 2.1 the sender a CALLRESULTERROR.
    fn bad_result<'a>(
        &self,
        mut v: Verdict<'a>,
        call: PendingCall,
        now: f64,
        kind: ErrorKind,
        detail: String,
    ) -> Verdict<'a> {
        v.action = Some(call.action);
        v.call_duration = Some(now - call.seen);
        let id = v.unique_id.as_deref().unwrap_or(UNREADABLE_ID);
        let code = self.code(kind);
        let text = description(&detail);
        v.substitute = Some(frame::error_frame(frame::CALLERROR, id, code, text));
        if self.version.has_send() {
            v.reply = Some(frame::error_frame(frame::CALLRESULTERROR, id, code, text));
        }
        self.flag(&mut v, kind, detail);
        v
    }

    /// Validate a payload under the mode and model rules in force; Err when it must be refused.
    /// The official schema comes first: only a payload it rejects meets the model's overlay.
    // Measured (callgrind): left to itself the compiler keeps this out of line since the
    // overlay code joined it, which cost every valid frame about 60 instructions.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn check_payload(
        &self,
        id: ActionId,
        direction: Direction,
        response: bool,
        payload: &Value<'_>,
    ) -> Result<Checked, Violation> {
        let mode = self.modes[id as usize][direction as usize];
        if mode == Mode::Off {
            return Ok(Checked::Valid);
        }
        match self.schemas.validate_id(id, response, payload) {
            Ok(()) => Ok(Checked::Valid),
            Err(violation) => self.violated(id, response, payload, mode, violation),
        }
    }

    /// A payload the official schema rejects: its model's overlay, then the mode, decide.
    /// Out of line, so that the check of valid payloads stays small.
    #[cold]
    #[inline(never)]
    fn violated(
        &self,
        id: ActionId,
        response: bool,
        payload: &Value<'_>,
        mode: Mode,
        mut violation: Violation,
    ) -> Result<Checked, Violation> {
        if let Some(rule) = &self.rule {
            match rule.revalidate(id, response, payload, &violation) {
                Some(Relaxed::Passed(name)) => return Ok(Checked::Relaxed(name)),
                Some(Relaxed::Failed(v)) => violation = v,
                None => {}
            }
        }
        if mode == Mode::Observe {
            Ok(Checked::Observed(violation))
        } else {
            Err(violation)
        }
    }

    /// Mark a forwarded verdict with the outcome of its payload check.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn note(&self, v: &mut Verdict<'_>, checked: Checked) {
        if !matches!(checked, Checked::Valid) {
            self.note_exception(v, checked);
        }
    }

    #[cold]
    #[inline(never)]
    fn note_exception(&self, v: &mut Verdict<'_>, checked: Checked) {
        match checked {
            Checked::Valid => {}
            Checked::Relaxed(rule) => v.relaxed = Some(rule),
            Checked::Observed(violation) => {
                v.observed = true;
                self.flag(v, violation.kind, violation.detail);
                v.error_location = Some(Box::new(Location {
                    path: violation.path,
                    keyword: violation.keyword,
                }));
            }
        }
    }

    #[allow(clippy::too_many_lines)]
    fn judge_frame<'a>(&mut self, direction: Direction, f: Frame<'a>, now: f64) -> Verdict<'a> {
        match f {
            Frame::Call {
                unique_id,
                action,
                payload,
            } => {
                let mut v = Verdict::new(frame::CALL, Some(unique_id));
                let Some(id) = self.schemas.action_id(&action) else {
                    return self.reject(v, ErrorKind::NotImplemented, "unknown action".into());
                };
                v.action = Some(id);
                let (name, dir) = self.schemas.action(id);
                if !dir.allows(direction) || self.version.send_only().contains(&name) {
                    let detail = format!("{name} is not sent {}", direction.name());
                    return self.reject(v, ErrorKind::NotSupported, detail);
                }
                let uid = v.unique_id.as_deref().unwrap_or_default();
                let mut retransmission = false;
                match self.pending.check(direction, uid) {
                    Ok(()) => {}
                    Err(AddError::Duplicate)
                        if self
                            .pending
                            .get(direction, uid)
                            .is_some_and(|c| c.action == id) =>
                    {
                        retransmission = true;
                    }
                    Err(AddError::Duplicate) => {
                        let detail = "UniqueId of a pending call of another action".to_owned();
                        return self.reject(v, ErrorKind::Framework, detail);
                    }
                    Err(AddError::Full) => {
                        let detail = "too many calls pending".to_owned();
                        return self.reject(v, ErrorKind::Framework, detail);
                    }
                }
                if Some(id) == self.boot_id && direction == Direction::CpToCsms {
                    self.on_boot(&payload);
                }
                match self.check_payload(id, direction, false, &payload) {
                    Ok(checked) => self.note(&mut v, checked),
                    Err(violation) => {
                        return self
                            .reject(v, violation.kind, violation.detail)
                            .located(violation.path, violation.keyword)
                    }
                }
                let uid = v.unique_id.as_deref().unwrap_or_default();
                if retransmission {
                    self.pending.refresh(direction, uid, now);
                    return v.forwarded();
                }
                // Cannot fail: checked above.
                let _ = self.pending.add(
                    direction,
                    uid,
                    PendingCall {
                        action: id,
                        seen: now,
                    },
                );
                v.forwarded()
            }
            Frame::CallResult { unique_id, payload } => {
                let mut v = Verdict::new(frame::CALLRESULT, Some(unique_id));
                let uid = v.unique_id.as_deref().unwrap_or_default();
                let Some(call) = self.pending.take(direction.reverse(), uid) else {
                    v.drop_reason = Some(DropReason::UnmatchedResult);
                    return v;
                };
                match self.check_payload(call.action, direction, true, &payload) {
                    Ok(checked) => self.note(&mut v, checked),
                    Err(violation) => {
                        return self
                            .bad_result(v, call, now, violation.kind, violation.detail)
                            .located(violation.path, violation.keyword)
                    }
                }
                v.action = Some(call.action);
                v.call_duration = Some(now - call.seen);
                v.forwarded()
            }
            Frame::CallError { unique_id, .. } => {
                let mut v = Verdict::new(frame::CALLERROR, Some(unique_id));
                let uid = v.unique_id.as_deref().unwrap_or_default();
                let Some(call) = self.pending.take(direction.reverse(), uid) else {
                    v.drop_reason = Some(DropReason::UnmatchedResult);
                    return v;
                };
                v.action = Some(call.action);
                v.call_duration = Some(now - call.seen);
                v.forwarded()
            }
            Frame::CallResultError { unique_id, .. } => {
                Verdict::new(frame::CALLRESULTERROR, Some(unique_id)).forwarded()
            }
            Frame::Send {
                unique_id,
                action,
                payload,
            } => {
                let mut v = Verdict::new(frame::SEND, Some(unique_id));
                v.drop_reason = Some(DropReason::InvalidSend);
                let Some(id) = self.schemas.action_id(&action) else {
                    self.flag(&mut v, ErrorKind::NotImplemented, "unknown action".into());
                    return v;
                };
                v.action = Some(id);
                let (name, dir) = self.schemas.action(id);
                if !dir.allows(direction) || !self.version.send_only().contains(&name) {
                    let detail = format!("{name} is not sent as SEND {}", direction.name());
                    self.flag(&mut v, ErrorKind::NotSupported, detail);
                    return v;
                }
                match self.check_payload(id, direction, false, &payload) {
                    Ok(checked) => self.note(&mut v, checked),
                    Err(violation) => {
                        self.flag(&mut v, violation.kind, violation.detail);
                        return v.located(violation.path, violation.keyword);
                    }
                }
                v.drop_reason = None;
                v.forwarded()
            }
        }
    }
}

#[cfg(test)]
mod tests;
