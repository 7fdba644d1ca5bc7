//! OCPP 1.6 (JSON): the actions of all feature profiles plus the 1.6 security extension.

use super::Direction::{Both, CpToCsms, CsmsToCp};

/// Every action with the side that sends its CALL, sorted by name (byte order).
///
/// The trailing comment names the feature profile or functional block of each action:
/// the feature profiles of OCPP 1.6 edition 2 (§3), and the messages added by the security
/// whitepaper ("Improved security for OCPP 1.6-J"). DataTransfer may be sent by either side.
pub const ACTIONS: &[(&str, super::Direction)] = &[
    ("Authorize", CpToCsms),                        // Core
    ("BootNotification", CpToCsms),                 // Core
    ("CancelReservation", CsmsToCp),                // Reservation
    ("CertificateSigned", CsmsToCp),                // Security extension
    ("ChangeAvailability", CsmsToCp),               // Core
    ("ChangeConfiguration", CsmsToCp),              // Core
    ("ClearCache", CsmsToCp),                       // Core
    ("ClearChargingProfile", CsmsToCp),             // Smart Charging
    ("DataTransfer", Both),                         // Core
    ("DeleteCertificate", CsmsToCp),                // Security extension
    ("DiagnosticsStatusNotification", CpToCsms),    // Firmware Management
    ("ExtendedTriggerMessage", CsmsToCp),           // Security extension
    ("FirmwareStatusNotification", CpToCsms),       // Firmware Management
    ("GetCompositeSchedule", CsmsToCp),             // Smart Charging
    ("GetConfiguration", CsmsToCp),                 // Core
    ("GetDiagnostics", CsmsToCp),                   // Firmware Management
    ("GetInstalledCertificateIds", CsmsToCp),       // Security extension
    ("GetLocalListVersion", CsmsToCp),              // Local Auth List Management
    ("GetLog", CsmsToCp),                           // Security extension
    ("Heartbeat", CpToCsms),                        // Core
    ("InstallCertificate", CsmsToCp),               // Security extension
    ("LogStatusNotification", CpToCsms),            // Security extension
    ("MeterValues", CpToCsms),                      // Core
    ("RemoteStartTransaction", CsmsToCp),           // Core
    ("RemoteStopTransaction", CsmsToCp),            // Core
    ("ReserveNow", CsmsToCp),                       // Reservation
    ("Reset", CsmsToCp),                            // Core
    ("SecurityEventNotification", CpToCsms),        // Security extension
    ("SendLocalList", CsmsToCp),                    // Local Auth List Management
    ("SetChargingProfile", CsmsToCp),               // Smart Charging
    ("SignCertificate", CpToCsms),                  // Security extension
    ("SignedFirmwareStatusNotification", CpToCsms), // Security extension
    ("SignedUpdateFirmware", CsmsToCp),             // Security extension
    ("StartTransaction", CpToCsms),                 // Core
    ("StatusNotification", CpToCsms),               // Core
    ("StopTransaction", CpToCsms),                  // Core
    ("TriggerMessage", CsmsToCp),                   // Remote Trigger
    ("UnlockConnector", CsmsToCp),                  // Core
    ("UpdateFirmware", CsmsToCp),                   // Firmware Management
];
