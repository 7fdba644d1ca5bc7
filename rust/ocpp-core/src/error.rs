//! Error kinds of OCPP-J and their wire spelling in each version.

use crate::version::OcppVersion;

/// What is wrong with a frame or payload, independent of how a version spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not JSON, not an array, wrong element count or types, bad UniqueId.
    Framework,
    /// Unknown MessageTypeId (only answered in 2.0.1).
    MessageType,
    /// Unknown action.
    NotImplemented,
    /// Known action, not valid in this direction or message type.
    NotSupported,
    /// Required property missing, or an array's item count out of minItems/maxItems
    /// (both are cardinality constraints, which is what "occurrence" means in OCPP-J).
    Occurrence,
    /// Wrong JSON type, or a string longer than maxLength (or shorter than minLength).
    Type,
    /// Value outside enum, minimum/maximum, multipleOf or pattern.
    Property,
    /// Property or array item not allowed by the schema (additionalProperties/additionalItems).
    Format,
    /// Internal error of the receiver.
    Internal,
    /// Anything else.
    Generic,
}

impl ErrorKind {
    /// Every kind, in a stable order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Framework,
        ErrorKind::MessageType,
        ErrorKind::NotImplemented,
        ErrorKind::NotSupported,
        ErrorKind::Occurrence,
        ErrorKind::Type,
        ErrorKind::Property,
        ErrorKind::Format,
        ErrorKind::Internal,
        ErrorKind::Generic,
    ];

    /// The short name used by the Python API ("framework", "occurrence", ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Framework => "framework",
            ErrorKind::MessageType => "message_type",
            ErrorKind::NotImplemented => "not_implemented",
            ErrorKind::NotSupported => "not_supported",
            ErrorKind::Occurrence => "occurrence",
            ErrorKind::Type => "type",
            ErrorKind::Property => "property",
            ErrorKind::Format => "format",
            ErrorKind::Internal => "internal",
            ErrorKind::Generic => "generic",
        }
    }

    /// Inverse of [`ErrorKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The error code as it travels on the wire in `version`.
    ///
    /// OCPP-J 1.6 keeps `OccurenceConstraintViolation` and `FormationViolation` misspelled on
    /// purpose (its errata say not to fix them); 2.0.1 and 2.1 spell them correctly. 1.6 has no
    /// RpcFrameworkError and no MessageTypeNotSupported: FormationViolation stands for both.
    pub fn code(self, version: OcppVersion) -> &'static str {
        let v16 = version == OcppVersion::V16;
        match self {
            ErrorKind::Framework | ErrorKind::MessageType if v16 => "FormationViolation",
            ErrorKind::Framework => "RpcFrameworkError",
            ErrorKind::MessageType => "MessageTypeNotSupported",
            ErrorKind::NotImplemented => "NotImplemented",
            ErrorKind::NotSupported => "NotSupported",
            ErrorKind::Occurrence if v16 => "OccurenceConstraintViolation",
            ErrorKind::Occurrence => "OccurrenceConstraintViolation",
            ErrorKind::Type => "TypeConstraintViolation",
            ErrorKind::Property => "PropertyConstraintViolation",
            ErrorKind::Format if v16 => "FormationViolation",
            ErrorKind::Format => "FormatViolation",
            ErrorKind::Internal => "InternalError",
            ErrorKind::Generic => "GenericError",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_per_version() {
        use OcppVersion::{V16, V201, V21};
        let table = [
            (
                ErrorKind::Framework,
                "FormationViolation",
                "RpcFrameworkError",
            ),
            (
                ErrorKind::Occurrence,
                "OccurenceConstraintViolation",
                "OccurrenceConstraintViolation",
            ),
            (ErrorKind::Format, "FormationViolation", "FormatViolation"),
            (
                ErrorKind::Type,
                "TypeConstraintViolation",
                "TypeConstraintViolation",
            ),
            (
                ErrorKind::MessageType,
                "FormationViolation",
                "MessageTypeNotSupported",
            ),
        ];
        for (kind, v16, v2) in table {
            assert_eq!(kind.code(V16), v16);
            assert_eq!(kind.code(V201), v2);
            assert_eq!(kind.code(V21), v2);
        }
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.name()), Some(kind));
        }
    }
}
