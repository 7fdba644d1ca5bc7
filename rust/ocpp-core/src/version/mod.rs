//! OCPP versions and their actions: one module per version, registered here.

mod v16;
mod v201;
mod v21;

/// Which side may send a CALL of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// The charge point only (e.g. BootNotification).
    ChargePoint,
    /// The CSMS only (e.g. Reset).
    Csms,
    /// Either side (e.g. DataTransfer).
    Either,
}

impl Sender {
    /// "cp_to_csms", "csms_to_cp" or "both".
    pub fn name(self) -> &'static str {
        match self {
            Sender::ChargePoint => "cp_to_csms",
            Sender::Csms => "csms_to_cp",
            Sender::Either => "both",
        }
    }

    /// Inverse of [`Sender::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cp_to_csms" => Some(Sender::ChargePoint),
            "csms_to_cp" => Some(Sender::Csms),
            "both" => Some(Sender::Either),
            _ => None,
        }
    }

    /// True when a CALL of an action with this sender may travel in `direction`.
    pub fn allows(self, direction: Direction) -> bool {
        matches!(
            (self, direction),
            (Sender::Either, _)
                | (Sender::ChargePoint, Direction::CpToCsms)
                | (Sender::Csms, Direction::CsmsToCp)
        )
    }
}

/// The direction one frame travels: from the charge point or from the CSMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    CpToCsms = 0,
    CsmsToCp = 1,
}

impl Direction {
    /// "cp_to_csms" or "csms_to_cp".
    pub fn name(self) -> &'static str {
        match self {
            Direction::CpToCsms => "cp_to_csms",
            Direction::CsmsToCp => "csms_to_cp",
        }
    }

    /// Inverse of [`Direction::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cp_to_csms" => Some(Direction::CpToCsms),
            "csms_to_cp" => Some(Direction::CsmsToCp),
            _ => None,
        }
    }

    /// The other direction.
    #[must_use]
    pub fn reverse(self) -> Self {
        match self {
            Direction::CpToCsms => Direction::CsmsToCp,
            Direction::CsmsToCp => Direction::CpToCsms,
        }
    }
}

/// The negotiated OCPP-J subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcppVersion {
    V16,
    V201,
    V21,
}

impl OcppVersion {
    /// Every action of this version with the side that may send its CALL.
    pub fn actions(self) -> &'static [(&'static str, Sender)] {
        match self {
            OcppVersion::V16 => v16::ACTIONS,
            OcppVersion::V201 => v201::ACTIONS,
            OcppVersion::V21 => v21::ACTIONS,
        }
    }

    /// Actions only ever sent as a SEND (type 6): they have no response schema.
    pub fn send_only(self) -> &'static [&'static str] {
        match self {
            OcppVersion::V21 => &["NotifyPeriodicEventStream"],
            OcppVersion::V16 | OcppVersion::V201 => &[],
        }
    }

    /// True when the version has the 2.1 message types CALLRESULTERROR (5) and SEND (6).
    pub fn has_send(self) -> bool {
        self == OcppVersion::V21
    }

    /// The subprotocol name: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".
    pub fn name(self) -> &'static str {
        match self {
            OcppVersion::V16 => "ocpp1.6",
            OcppVersion::V201 => "ocpp2.0.1",
            OcppVersion::V21 => "ocpp2.1",
        }
    }

    /// Inverse of [`OcppVersion::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ocpp1.6" => Some(OcppVersion::V16),
            "ocpp2.0.1" => Some(OcppVersion::V201),
            "ocpp2.1" => Some(OcppVersion::V21),
            _ => None,
        }
    }

    /// JSON Schema draft of this version's official schemas (4 for 1.6, 6 for 2.x); a file's
    /// own `$schema` takes precedence.
    pub fn default_draft(self) -> u8 {
        match self {
            OcppVersion::V16 => 4,
            OcppVersion::V201 | OcppVersion::V21 => 6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for v in [OcppVersion::V16, OcppVersion::V201, OcppVersion::V21] {
            let names: Vec<&str> = v.actions().iter().map(|(n, _)| *n).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{v:?}");
            assert!(names.contains(&"BootNotification"));
            for s in v.send_only() {
                assert!(names.contains(s));
            }
            assert_eq!(OcppVersion::from_name(v.name()), Some(v));
        }
    }
}
