//! OCPP 2.0.1: the actions of functional blocks A to P (OCPP 2.0.1 Part 2).

use super::Sender::{ChargePoint, Csms, Either};

/// Every action with the side that sends its CALL, sorted by name (byte order).
///
/// The trailing comment names the feature profile or functional block of each action:
/// the letter is the functional block of OCPP 2.0.1 Part 2. DataTransfer may be sent by
/// either side.
pub const ACTIONS: &[(&str, super::Sender)] = &[
    ("Authorize", ChargePoint),                         // C Authorization
    ("BootNotification", ChargePoint),                  // B Provisioning
    ("CancelReservation", Csms),                        // H Reservation
    ("CertificateSigned", Csms),                        // A Security
    ("ChangeAvailability", Csms),                       // G Availability
    ("ClearCache", Csms),                               // C Authorization
    ("ClearChargingProfile", Csms),                     // K Smart Charging
    ("ClearDisplayMessage", Csms),                      // O Display Message
    ("ClearVariableMonitoring", Csms),                  // N Diagnostics
    ("ClearedChargingLimit", ChargePoint),              // K Smart Charging
    ("CostUpdated", Csms),                              // I Tariff and Cost
    ("CustomerInformation", Csms),                      // N Diagnostics
    ("DataTransfer", Either),                           // P Data Transfer
    ("DeleteCertificate", Csms),                        // M ISO 15118 Certificate Management
    ("FirmwareStatusNotification", ChargePoint),        // L Firmware Management
    ("Get15118EVCertificate", ChargePoint),             // M ISO 15118 Certificate Management
    ("GetBaseReport", Csms),                            // B Provisioning
    ("GetCertificateStatus", ChargePoint),              // M ISO 15118 Certificate Management
    ("GetChargingProfiles", Csms),                      // K Smart Charging
    ("GetCompositeSchedule", Csms),                     // K Smart Charging
    ("GetDisplayMessages", Csms),                       // O Display Message
    ("GetInstalledCertificateIds", Csms),               // M ISO 15118 Certificate Management
    ("GetLocalListVersion", Csms),                      // D Local Authorization List Management
    ("GetLog", Csms),                                   // N Diagnostics
    ("GetMonitoringReport", Csms),                      // N Diagnostics
    ("GetReport", Csms),                                // B Provisioning
    ("GetTransactionStatus", Csms),                     // E Transactions
    ("GetVariables", Csms),                             // B Provisioning
    ("Heartbeat", ChargePoint),                         // G Availability
    ("InstallCertificate", Csms),                       // M ISO 15118 Certificate Management
    ("LogStatusNotification", ChargePoint),             // N Diagnostics
    ("MeterValues", ChargePoint),                       // J Meter Values
    ("NotifyChargingLimit", ChargePoint),               // K Smart Charging
    ("NotifyCustomerInformation", ChargePoint),         // N Diagnostics
    ("NotifyDisplayMessages", ChargePoint),             // O Display Message
    ("NotifyEVChargingNeeds", ChargePoint),             // K Smart Charging
    ("NotifyEVChargingSchedule", ChargePoint),          // K Smart Charging
    ("NotifyEvent", ChargePoint),                       // N Diagnostics
    ("NotifyMonitoringReport", ChargePoint),            // N Diagnostics
    ("NotifyReport", ChargePoint),                      // B Provisioning
    ("PublishFirmware", Csms),                          // L Firmware Management
    ("PublishFirmwareStatusNotification", ChargePoint), // L Firmware Management
    ("ReportChargingProfiles", ChargePoint),            // K Smart Charging
    ("RequestStartTransaction", Csms),                  // F Remote Control
    ("RequestStopTransaction", Csms),                   // F Remote Control
    ("ReservationStatusUpdate", ChargePoint),           // H Reservation
    ("ReserveNow", Csms),                               // H Reservation
    ("Reset", Csms),                                    // B Provisioning
    ("SecurityEventNotification", ChargePoint),         // A Security
    ("SendLocalList", Csms),                            // D Local Authorization List Management
    ("SetChargingProfile", Csms),                       // K Smart Charging
    ("SetDisplayMessage", Csms),                        // O Display Message
    ("SetMonitoringBase", Csms),                        // N Diagnostics
    ("SetMonitoringLevel", Csms),                       // N Diagnostics
    ("SetNetworkProfile", Csms),                        // B Provisioning
    ("SetVariableMonitoring", Csms),                    // N Diagnostics
    ("SetVariables", Csms),                             // B Provisioning
    ("SignCertificate", ChargePoint),                   // A Security
    ("StatusNotification", ChargePoint),                // G Availability
    ("TransactionEvent", ChargePoint),                  // E Transactions
    ("TriggerMessage", Csms),                           // F Remote Control
    ("UnlockConnector", Csms),                          // F Remote Control
    ("UnpublishFirmware", Csms),                        // L Firmware Management
    ("UpdateFirmware", Csms),                           // L Firmware Management
];
