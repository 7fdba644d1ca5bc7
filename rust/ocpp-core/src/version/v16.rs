//! OCPP 1.6 (JSON): the actions of all feature profiles plus the 1.6 security extension.

use super::Sender::{ChargePoint, Csms, Either};

/// Every action with the side that sends its CALL, sorted by name (byte order).
///
/// The trailing comment names the feature profile or functional block of each action:
/// the feature profiles of OCPP 1.6 edition 2 (§3), and the messages added by the security
/// whitepaper ("Improved security for OCPP 1.6-J"). DataTransfer may be sent by either side.
pub const ACTIONS: &[(&str, super::Sender)] = &[
    ("Authorize", ChargePoint),                        // Core
    ("BootNotification", ChargePoint),                 // Core
    ("CancelReservation", Csms),                       // Reservation
    ("CertificateSigned", Csms),                       // Security extension
    ("ChangeAvailability", Csms),                      // Core
    ("ChangeConfiguration", Csms),                     // Core
    ("ClearCache", Csms),                              // Core
    ("ClearChargingProfile", Csms),                    // Smart Charging
    ("DataTransfer", Either),                          // Core
    ("DeleteCertificate", Csms),                       // Security extension
    ("DiagnosticsStatusNotification", ChargePoint),    // Firmware Management
    ("ExtendedTriggerMessage", Csms),                  // Security extension
    ("FirmwareStatusNotification", ChargePoint),       // Firmware Management
    ("GetCompositeSchedule", Csms),                    // Smart Charging
    ("GetConfiguration", Csms),                        // Core
    ("GetDiagnostics", Csms),                          // Firmware Management
    ("GetInstalledCertificateIds", Csms),              // Security extension
    ("GetLocalListVersion", Csms),                     // Local Auth List Management
    ("GetLog", Csms),                                  // Security extension
    ("Heartbeat", ChargePoint),                        // Core
    ("InstallCertificate", Csms),                      // Security extension
    ("LogStatusNotification", ChargePoint),            // Security extension
    ("MeterValues", ChargePoint),                      // Core
    ("RemoteStartTransaction", Csms),                  // Core
    ("RemoteStopTransaction", Csms),                   // Core
    ("ReserveNow", Csms),                              // Reservation
    ("Reset", Csms),                                   // Core
    ("SecurityEventNotification", ChargePoint),        // Security extension
    ("SendLocalList", Csms),                           // Local Auth List Management
    ("SetChargingProfile", Csms),                      // Smart Charging
    ("SignCertificate", ChargePoint),                  // Security extension
    ("SignedFirmwareStatusNotification", ChargePoint), // Security extension
    ("SignedUpdateFirmware", Csms),                    // Security extension
    ("StartTransaction", ChargePoint),                 // Core
    ("StatusNotification", ChargePoint),               // Core
    ("StopTransaction", ChargePoint),                  // Core
    ("TriggerMessage", Csms),                          // Remote Trigger
    ("UnlockConnector", Csms),                         // Core
    ("UpdateFirmware", Csms),                          // Firmware Management
];
