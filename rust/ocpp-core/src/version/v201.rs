//! OCPP 2.0.1: the actions of functional blocks A to P (OCPP 2.0.1 Part 2).

use super::Direction::{Both, CpToCsms, CsmsToCp};

/// Every action with the side that sends its CALL, sorted by name (byte order).
///
/// The trailing comment names the feature profile or functional block of each action:
/// the letter is the functional block of OCPP 2.0.1 Part 2. DataTransfer may be sent by
/// either side.
pub const ACTIONS: &[(&str, super::Direction)] = &[
    ("Authorize", CpToCsms),                         // C Authorization
    ("BootNotification", CpToCsms),                  // B Provisioning
    ("CancelReservation", CsmsToCp),                 // H Reservation
    ("CertificateSigned", CsmsToCp),                 // A Security
    ("ChangeAvailability", CsmsToCp),                // G Availability
    ("ClearCache", CsmsToCp),                        // C Authorization
    ("ClearChargingProfile", CsmsToCp),              // K Smart Charging
    ("ClearDisplayMessage", CsmsToCp),               // O Display Message
    ("ClearVariableMonitoring", CsmsToCp),           // N Diagnostics
    ("ClearedChargingLimit", CpToCsms),              // K Smart Charging
    ("CostUpdated", CsmsToCp),                       // I Tariff and Cost
    ("CustomerInformation", CsmsToCp),               // N Diagnostics
    ("DataTransfer", Both),                          // P Data Transfer
    ("DeleteCertificate", CsmsToCp),                 // M ISO 15118 Certificate Management
    ("FirmwareStatusNotification", CpToCsms),        // L Firmware Management
    ("Get15118EVCertificate", CpToCsms),             // M ISO 15118 Certificate Management
    ("GetBaseReport", CsmsToCp),                     // B Provisioning
    ("GetCertificateStatus", CpToCsms),              // M ISO 15118 Certificate Management
    ("GetChargingProfiles", CsmsToCp),               // K Smart Charging
    ("GetCompositeSchedule", CsmsToCp),              // K Smart Charging
    ("GetDisplayMessages", CsmsToCp),                // O Display Message
    ("GetInstalledCertificateIds", CsmsToCp),        // M ISO 15118 Certificate Management
    ("GetLocalListVersion", CsmsToCp),               // D Local Authorization List Management
    ("GetLog", CsmsToCp),                            // N Diagnostics
    ("GetMonitoringReport", CsmsToCp),               // N Diagnostics
    ("GetReport", CsmsToCp),                         // B Provisioning
    ("GetTransactionStatus", CsmsToCp),              // E Transactions
    ("GetVariables", CsmsToCp),                      // B Provisioning
    ("Heartbeat", CpToCsms),                         // G Availability
    ("InstallCertificate", CsmsToCp),                // M ISO 15118 Certificate Management
    ("LogStatusNotification", CpToCsms),             // N Diagnostics
    ("MeterValues", CpToCsms),                       // J Meter Values
    ("NotifyChargingLimit", CpToCsms),               // K Smart Charging
    ("NotifyCustomerInformation", CpToCsms),         // N Diagnostics
    ("NotifyDisplayMessages", CpToCsms),             // O Display Message
    ("NotifyEVChargingNeeds", CpToCsms),             // K Smart Charging
    ("NotifyEVChargingSchedule", CpToCsms),          // K Smart Charging
    ("NotifyEvent", CpToCsms),                       // N Diagnostics
    ("NotifyMonitoringReport", CpToCsms),            // N Diagnostics
    ("NotifyReport", CpToCsms),                      // B Provisioning
    ("PublishFirmware", CsmsToCp),                   // L Firmware Management
    ("PublishFirmwareStatusNotification", CpToCsms), // L Firmware Management
    ("ReportChargingProfiles", CpToCsms),            // K Smart Charging
    ("RequestStartTransaction", CsmsToCp),           // F Remote Control
    ("RequestStopTransaction", CsmsToCp),            // F Remote Control
    ("ReservationStatusUpdate", CpToCsms),           // H Reservation
    ("ReserveNow", CsmsToCp),                        // H Reservation
    ("Reset", CsmsToCp),                             // B Provisioning
    ("SecurityEventNotification", CpToCsms),         // A Security
    ("SendLocalList", CsmsToCp),                     // D Local Authorization List Management
    ("SetChargingProfile", CsmsToCp),                // K Smart Charging
    ("SetDisplayMessage", CsmsToCp),                 // O Display Message
    ("SetMonitoringBase", CsmsToCp),                 // N Diagnostics
    ("SetMonitoringLevel", CsmsToCp),                // N Diagnostics
    ("SetNetworkProfile", CsmsToCp),                 // B Provisioning
    ("SetVariableMonitoring", CsmsToCp),             // N Diagnostics
    ("SetVariables", CsmsToCp),                      // B Provisioning
    ("SignCertificate", CpToCsms),                   // A Security
    ("StatusNotification", CpToCsms),                // G Availability
    ("TransactionEvent", CpToCsms),                  // E Transactions
    ("TriggerMessage", CsmsToCp),                    // F Remote Control
    ("UnlockConnector", CsmsToCp),                   // F Remote Control
    ("UnpublishFirmware", CsmsToCp),                 // L Firmware Management
    ("UpdateFirmware", CsmsToCp),                    // L Firmware Management
];
