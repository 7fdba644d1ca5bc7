//! OCPP versions and their actions: one module per version, registered here.

mod v16;
mod v201;
mod v21;

/// Which side may send a CALL of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Charge point to CSMS only (e.g. BootNotification).
    CpToCsms,
    /// CSMS to charge point only (e.g. Reset).
    CsmsToCp,
    /// Either side (e.g. DataTransfer).
    Both,
}

impl Direction {
    /// "cp_to_csms", "csms_to_cp" or "both".
    pub fn name(self) -> &'static str {
        match self {
            Direction::CpToCsms => "cp_to_csms",
            Direction::CsmsToCp => "csms_to_cp",
            Direction::Both => "both",
        }
    }

    /// Inverse of [`Direction::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cp_to_csms" => Some(Direction::CpToCsms),
            "csms_to_cp" => Some(Direction::CsmsToCp),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }

    /// True when a CALL of an action with this direction may travel `way`.
    pub fn allows(self, way: Way) -> bool {
        matches!(
            (self, way),
            (Direction::Both, _)
                | (Direction::CpToCsms, Way::CpToCsms)
                | (Direction::CsmsToCp, Way::CsmsToCp)
        )
    }
}

/// The way one frame travels: from the charge point or from the CSMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Way {
    CpToCsms = 0,
    CsmsToCp = 1,
}

impl Way {
    /// "cp_to_csms" or "csms_to_cp".
    pub fn name(self) -> &'static str {
        match self {
            Way::CpToCsms => "cp_to_csms",
            Way::CsmsToCp => "csms_to_cp",
        }
    }

    /// Inverse of [`Way::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cp_to_csms" => Some(Way::CpToCsms),
            "csms_to_cp" => Some(Way::CsmsToCp),
            _ => None,
        }
    }

    /// The other way.
    #[must_use]
    pub fn reverse(self) -> Self {
        match self {
            Way::CpToCsms => Way::CsmsToCp,
            Way::CsmsToCp => Way::CpToCsms,
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
    pub fn actions(self) -> &'static [(&'static str, Direction)] {
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
