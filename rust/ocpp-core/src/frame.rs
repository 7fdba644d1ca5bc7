//! OCPP-J frames: the RPC envelope around a payload (OCPP-J 1.6 §4, 2.0.1/2.1 Part 4 §4).
//!
//! - CALL `[2, "<UniqueId>", "<Action>", {payload}]`
//! - CALLRESULT `[3, "<UniqueId>", {payload}]`
//! - CALLERROR `[4, "<UniqueId>", "<errorCode>", "<errorDescription>", {errorDetails}]`
//! - CALLRESULTERROR `[5, ...]` like CALLERROR, and SEND `[6, ...]` like CALL: OCPP 2.1 only.
//!
//! A UniqueId is a string of at most 36 characters.

use std::borrow::Cow;

use crate::json::{self, Value};
use crate::version::OcppVersion;

pub const CALL: u8 = 2;
pub const CALLRESULT: u8 = 3;
pub const CALLERROR: u8 = 4;
pub const CALLRESULTERROR: u8 = 5;
pub const SEND: u8 = 6;

/// Longest UniqueId allowed, in characters.
pub const MAX_UNIQUE_ID: usize = 36;

/// One well-formed frame, borrowing from the received bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<'a> {
    Call {
        unique_id: Cow<'a, str>,
        action: Cow<'a, str>,
        payload: Value<'a>,
    },
    CallResult {
        unique_id: Cow<'a, str>,
        payload: Value<'a>,
    },
    CallError {
        unique_id: Cow<'a, str>,
        code: Cow<'a, str>,
        description: Cow<'a, str>,
        details: Value<'a>,
    },
    CallResultError {
        unique_id: Cow<'a, str>,
        code: Cow<'a, str>,
        description: Cow<'a, str>,
        details: Value<'a>,
    },
    Send {
        unique_id: Cow<'a, str>,
        action: Cow<'a, str>,
        payload: Value<'a>,
    },
}

impl Frame<'_> {
    /// The MessageTypeId.
    pub fn message_type(&self) -> u8 {
        match self {
            Frame::Call { .. } => CALL,
            Frame::CallResult { .. } => CALLRESULT,
            Frame::CallError { .. } => CALLERROR,
            Frame::CallResultError { .. } => CALLRESULTERROR,
            Frame::Send { .. } => SEND,
        }
    }

    /// The UniqueId.
    pub fn unique_id(&self) -> &str {
        match self {
            Frame::Call { unique_id, .. }
            | Frame::CallResult { unique_id, .. }
            | Frame::CallError { unique_id, .. }
            | Frame::CallResultError { unique_id, .. }
            | Frame::Send { unique_id, .. } => unique_id,
        }
    }
}

/// Why bytes are not a frame of the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameErrorKind {
    /// Not JSON, not an array, wrong element count or element types, bad UniqueId.
    Framework,
    /// A MessageTypeId the version does not define.
    UnknownMessageType,
}

/// A frame that could not be read, with what could be read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError<'a> {
    pub kind: FrameErrorKind,
    /// The MessageTypeId when it is one the version defines, else 0.
    pub message_type: u8,
    /// The UniqueId when it is a string of at most 36 characters.
    pub unique_id: Option<Cow<'a, str>>,
    /// Short cause, safe to log (no payload values).
    pub detail: String,
}

fn readable_id<'a>(v: Option<&Value<'a>>) -> Option<Cow<'a, str>> {
    match v {
        Some(Value::String(s)) if id_ok(s) => Some(s.clone()),
        _ => None,
    }
}

fn id_ok(s: &str) -> bool {
    s.len() <= MAX_UNIQUE_ID || s.chars().count() <= MAX_UNIQUE_ID
}

/// True for the text of a JSON number without fraction or exponent (`2`, `-2`, `300`).
///
/// `2.0` and `2e0` are not integers here: the MessageTypeId is an integer in every OCPP-J
/// version, and a frame that writes it otherwise is a framework error (our choice; JSON Schema
/// draft-06 would call `2.0` an integer, but the envelope is not a schema-validated payload).
fn is_integer_text(t: &str) -> bool {
    let digits = t.strip_prefix('-').unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Read a frame of `version` from received bytes.
pub fn parse(bytes: &[u8], version: OcppVersion) -> Result<Frame<'_>, FrameError<'_>> {
    let value = json::parse(bytes).map_err(|e| FrameError {
        kind: FrameErrorKind::Framework,
        message_type: 0,
        unique_id: None,
        detail: format!("not JSON: {e}"),
    })?;
    from_value(value, version)
}

/// Read a frame from an already parsed JSON value.
#[allow(clippy::too_many_lines)]
pub fn from_value(value: Value<'_>, version: OcppVersion) -> Result<Frame<'_>, FrameError<'_>> {
    let Value::Array(items) = value else {
        return Err(FrameError {
            kind: FrameErrorKind::Framework,
            message_type: 0,
            unique_id: None,
            detail: "not a JSON array".into(),
        });
    };
    let framework = |mt: u8, items: &[Value<'_>], detail: &str| -> FrameError<'static> {
        let _ = items;
        FrameError {
            kind: FrameErrorKind::Framework,
            message_type: mt,
            unique_id: None,
            detail: detail.to_owned(),
        }
    };
    let mt = match items.first() {
        Some(Value::Number(t)) if is_integer_text(t) => {
            // A negative or huge integer is an integer all the same: an unknown MessageTypeId.
            match t.parse::<u8>() {
                Ok(m @ (CALL | CALLRESULT | CALLERROR)) => m,
                Ok(m @ (CALLRESULTERROR | SEND)) if version.has_send() => m,
                _ => {
                    return Err(FrameError {
                        kind: FrameErrorKind::UnknownMessageType,
                        message_type: 0,
                        unique_id: readable_id(items.get(1)),
                        detail: "unknown MessageTypeId".into(),
                    })
                }
            }
        }
        Some(_) => {
            let mut e = framework(0, &items, "MessageTypeId is not an integer");
            e.unique_id = readable_id(items.get(1));
            return Err(e);
        }
        None => return Err(framework(0, &items, "empty array")),
    };
    let expected = match mt {
        CALL | SEND => 4,
        CALLRESULT => 3,
        _ => 5,
    };
    let unique_id = readable_id(items.get(1));
    let err = |detail: String| FrameError {
        kind: FrameErrorKind::Framework,
        message_type: mt,
        unique_id: unique_id.clone(),
        detail,
    };
    if items.len() != expected {
        return Err(err(format!(
            "{} elements, expected {expected}",
            items.len()
        )));
    }
    if unique_id.is_none() {
        return Err(err(match &items[1] {
            Value::String(_) => format!("UniqueId longer than {MAX_UNIQUE_ID} characters"),
            _ => "UniqueId is not a string".into(),
        }));
    }
    let mut it = items.into_iter().skip(1);
    let Some(Value::String(uid)) = it.next() else {
        unreachable!("checked above")
    };
    let mut next_string = |what: &str| match it.next() {
        Some(Value::String(s)) => Ok(s),
        _ => Err(what.to_owned()),
    };
    let frame = match mt {
        CALL | SEND => {
            let action = next_string("Action is not a string").map_err(&err)?;
            match it.next() {
                Some(payload @ Value::Object(_)) => {
                    if mt == CALL {
                        Frame::Call {
                            unique_id: uid,
                            action,
                            payload,
                        }
                    } else {
                        Frame::Send {
                            unique_id: uid,
                            action,
                            payload,
                        }
                    }
                }
                _ => return Err(err("payload is not an object".into())),
            }
        }
        CALLRESULT => match it.next() {
            Some(payload @ Value::Object(_)) => Frame::CallResult {
                unique_id: uid,
                payload,
            },
            _ => return Err(err("payload is not an object".into())),
        },
        _ => {
            let code = next_string("errorCode is not a string").map_err(&err)?;
            let description = next_string("errorDescription is not a string").map_err(&err)?;
            let Some(details @ Value::Object(_)) = it.next() else {
                return Err(err("errorDetails is not an object".into()));
            };
            if mt == CALLERROR {
                Frame::CallError {
                    unique_id: uid,
                    code,
                    description,
                    details,
                }
            } else {
                Frame::CallResultError {
                    unique_id: uid,
                    code,
                    description,
                    details,
                }
            }
        }
    };
    Ok(frame)
}

/// Build `[<message_type>, "<unique_id>", "<code>", "<description>", {}]`.
pub fn error_frame(message_type: u8, unique_id: &str, code: &str, description: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + unique_id.len() + code.len() + description.len());
    out.push(b'[');
    out.push(b'0' + message_type);
    out.push(b',');
    json::write_string(&mut out, unique_id);
    out.push(b',');
    json::write_string(&mut out, code);
    out.push(b',');
    json::write_string(&mut out, description);
    out.extend_from_slice(b",{}]");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use OcppVersion::{V16, V201, V21};

    fn kind(s: &str, v: OcppVersion) -> Result<u8, (FrameErrorKind, Option<String>)> {
        parse(s.as_bytes(), v)
            .map(|f| f.message_type())
            .map_err(|e| (e.kind, e.unique_id.map(Cow::into_owned)))
    }

    #[test]
    fn reads_every_message_type() {
        assert_eq!(kind(r#"[2,"a","Heartbeat",{}]"#, V16), Ok(CALL));
        assert_eq!(kind(r#"[3,"a",{}]"#, V16), Ok(CALLRESULT));
        assert_eq!(kind(r#"[4,"a","GenericError","",{}]"#, V201), Ok(CALLERROR));
        assert_eq!(
            kind(r#"[5,"a","GenericError","",{}]"#, V21),
            Ok(CALLRESULTERROR)
        );
        assert_eq!(
            kind(r#"[6,"a","NotifyPeriodicEventStream",{}]"#, V21),
            Ok(SEND)
        );
    }

    #[test]
    fn rpc_framework_rules() {
        use FrameErrorKind::{Framework, UnknownMessageType};
        let id37 = "x".repeat(37);
        let long = format!(r#"[2,"{id37}","Heartbeat",{{}}]"#);
        let cases: Vec<(&str, OcppVersion, FrameErrorKind, Option<&str>)> = vec![
            ("not json", V16, Framework, None),
            ("{}", V16, Framework, None),
            ("[]", V16, Framework, None),
            (r#"["2","a","Heartbeat",{}]"#, V16, Framework, Some("a")),
            (r#"[2.0,"a","Heartbeat",{}]"#, V16, Framework, Some("a")),
            (r#"[2,"a","Heartbeat"]"#, V16, Framework, Some("a")),
            (r#"[2,"a","Heartbeat",{},1]"#, V16, Framework, Some("a")),
            (r#"[2,1,"Heartbeat",{}]"#, V16, Framework, None),
            (&long, V16, Framework, None),
            (r#"[2,"a",7,{}]"#, V16, Framework, Some("a")),
            (r#"[2,"a","Heartbeat",[]]"#, V16, Framework, Some("a")),
            (r#"[3,"a",null]"#, V16, Framework, Some("a")),
            (r#"[4,"a","GenericError","",[]]"#, V16, Framework, Some("a")),
            (r#"[4,"a",1,"",{}]"#, V16, Framework, Some("a")),
            (r#"[7,"a",{}]"#, V201, UnknownMessageType, Some("a")),
            (
                r#"[5,"a","GenericError","",{}]"#,
                V201,
                UnknownMessageType,
                Some("a"),
            ),
            (r#"[6,"a","X",{}]"#, V16, UnknownMessageType, Some("a")),
            (r#"[300,"a",{}]"#, V21, UnknownMessageType, Some("a")),
            (
                r#"[-2,"a","Heartbeat",{}]"#,
                V16,
                UnknownMessageType,
                Some("a"),
            ),
            (
                r#"[-2,"a","Heartbeat",{}]"#,
                V201,
                UnknownMessageType,
                Some("a"),
            ),
            (r#"[-0,"a",{}]"#, V21, UnknownMessageType, Some("a")),
            (
                r#"[-99999999999999999999,"a",{}]"#,
                V21,
                UnknownMessageType,
                Some("a"),
            ),
            (r#"[2e0,"a","Heartbeat",{}]"#, V201, Framework, Some("a")),
            (r#"[-2.0,"a","Heartbeat",{}]"#, V21, Framework, Some("a")),
        ];
        for (input, v, k, id) in cases {
            assert_eq!(
                kind(input, v),
                Err((k, id.map(str::to_owned))),
                "{input} in {v:?}"
            );
        }
    }

    #[test]
    fn unique_id_counts_characters_not_bytes() {
        let id = "é".repeat(36);
        let f = format!(r#"[2,"{id}","Heartbeat",{{}}]"#);
        assert_eq!(kind(&f, V16), Ok(CALL));
    }

    #[test]
    fn error_frame_is_valid_json() {
        let f = error_frame(CALLERROR, "a\"b", "FormationViolation", "bad");
        assert_eq!(f, br#"[4,"a\"b","FormationViolation","bad",{}]"#);
        assert!(parse(&f, V16).is_ok());
    }
}
