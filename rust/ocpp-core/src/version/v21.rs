//! OCPP 2.1: every action of 2.0.1 plus those added by 2.1 (schemas in `ocpp/v21/schemas`).

use super::Sender::{ChargePoint, Csms, Either};

/// Every action with the side that sends its CALL, sorted by name (byte order).
///
/// The trailing comment names the feature profile or functional block of each action:
/// the 2.0.1 functional block letter, or the 2.1 feature that added the action. DataTransfer
/// may be sent by either side. NotifyPeriodicEventStream is only ever sent as a SEND (type 6).
pub const ACTIONS: &[(&str, super::Sender)] = &[
    ("AFRRSignal", Csms),                        // Bidirectional power (new in 2.1)
    ("AdjustPeriodicEventStream", Csms),         // Event streams (new in 2.1)
    ("Authorize", ChargePoint),                  // C Authorization
    ("BatterySwap", ChargePoint),                // Battery swapping (new in 2.1)
    ("BootNotification", ChargePoint),           // B Provisioning
    ("CancelReservation", Csms),                 // H Reservation
    ("CertificateSigned", Csms),                 // A Security
    ("ChangeAvailability", Csms),                // G Availability
    ("ChangeTransactionTariff", Csms),           // Tariffs (new in 2.1)
    ("ClearCache", Csms),                        // C Authorization
    ("ClearChargingProfile", Csms),              // K Smart Charging
    ("ClearDERControl", Csms),                   // DER control (new in 2.1)
    ("ClearDisplayMessage", Csms),               // O Display Message
    ("ClearTariffs", Csms),                      // Tariffs (new in 2.1)
    ("ClearVariableMonitoring", Csms),           // N Diagnostics
    ("ClearedChargingLimit", ChargePoint),       // K Smart Charging
    ("ClosePeriodicEventStream", ChargePoint),   // Event streams (new in 2.1)
    ("CostUpdated", Csms),                       // I Tariff and Cost
    ("CustomerInformation", Csms),               // N Diagnostics
    ("DataTransfer", Either),                    // P Data Transfer
    ("DeleteCertificate", Csms),                 // M ISO 15118 Certificate Management
    ("FirmwareStatusNotification", ChargePoint), // L Firmware Management
    ("Get15118EVCertificate", ChargePoint),      // M ISO 15118 Certificate Management
    ("GetBaseReport", Csms),                     // B Provisioning
    ("GetCertificateChainStatus", ChargePoint),  // Certificates (new in 2.1)
    ("GetCertificateStatus", ChargePoint),       // M ISO 15118 Certificate Management
    ("GetChargingProfiles", Csms),               // K Smart Charging
    ("GetCompositeSchedule", Csms),              // K Smart Charging
    ("GetDERControl", Csms),                     // DER control (new in 2.1)
    ("GetDisplayMessages", Csms),                // O Display Message
    ("GetInstalledCertificateIds", Csms),        // M ISO 15118 Certificate Management
    ("GetLocalListVersion", Csms),               // D Local Authorization List Management
    ("GetLog", Csms),                            // N Diagnostics
    ("GetMonitoringReport", Csms),               // N Diagnostics
    ("GetPeriodicEventStream", Csms),            // Event streams (new in 2.1)
    ("GetReport", Csms),                         // B Provisioning
    ("GetTariffs", Csms),                        // Tariffs (new in 2.1)
    ("GetTransactionStatus", Csms),              // E Transactions
    ("GetVariables", Csms),                      // B Provisioning
    ("Heartbeat", ChargePoint),                  // G Availability
    ("InstallCertificate", Csms),                // M ISO 15118 Certificate Management
    ("LogStatusNotification", ChargePoint),      // N Diagnostics
    ("MeterValues", ChargePoint),                // J Meter Values
    ("NotifyAllowedEnergyTransfer", Csms),       // Bidirectional power (new in 2.1)
    ("NotifyChargingLimit", ChargePoint),        // K Smart Charging
    ("NotifyCustomerInformation", ChargePoint),  // N Diagnostics
    ("NotifyDERAlarm", ChargePoint),             // DER control (new in 2.1)
    ("NotifyDERStartStop", ChargePoint),         // DER control (new in 2.1)
    ("NotifyDisplayMessages", ChargePoint),      // O Display Message
    ("NotifyEVChargingNeeds", ChargePoint),      // K Smart Charging
    ("NotifyEVChargingSchedule", ChargePoint),   // K Smart Charging
    ("NotifyEvent", ChargePoint),                // N Diagnostics
    ("NotifyMonitoringReport", ChargePoint),     // N Diagnostics
    ("NotifyPeriodicEventStream", ChargePoint),  // Event streams (new in 2.1)
    ("NotifyPriorityCharging", ChargePoint),     // Smart charging (new in 2.1)
    ("NotifyReport", ChargePoint),               // B Provisioning
    ("NotifySettlement", ChargePoint),           // Payment (new in 2.1)
    ("NotifyWebPaymentStarted", Csms),           // Payment (new in 2.1)
    ("OpenPeriodicEventStream", ChargePoint),    // Event streams (new in 2.1)
    ("PublishFirmware", Csms),                   // L Firmware Management
    ("PublishFirmwareStatusNotification", ChargePoint), // L Firmware Management
    ("PullDynamicScheduleUpdate", ChargePoint),  // Smart charging (new in 2.1)
    ("ReportChargingProfiles", ChargePoint),     // K Smart Charging
    ("ReportDERControl", ChargePoint),           // DER control (new in 2.1)
    ("RequestBatterySwap", Csms),                // Battery swapping (new in 2.1)
    ("RequestStartTransaction", Csms),           // F Remote Control
    ("RequestStopTransaction", Csms),            // F Remote Control
    ("ReservationStatusUpdate", ChargePoint),    // H Reservation
    ("ReserveNow", Csms),                        // H Reservation
    ("Reset", Csms),                             // B Provisioning
    ("SecurityEventNotification", ChargePoint),  // A Security
    ("SendLocalList", Csms),                     // D Local Authorization List Management
    ("SetChargingProfile", Csms),                // K Smart Charging
    ("SetDERControl", Csms),                     // DER control (new in 2.1)
    ("SetDefaultTariff", Csms),                  // Tariffs (new in 2.1)
    ("SetDisplayMessage", Csms),                 // O Display Message
    ("SetMonitoringBase", Csms),                 // N Diagnostics
    ("SetMonitoringLevel", Csms),                // N Diagnostics
    ("SetNetworkProfile", Csms),                 // B Provisioning
    ("SetVariableMonitoring", Csms),             // N Diagnostics
    ("SetVariables", Csms),                      // B Provisioning
    ("SignCertificate", ChargePoint),            // A Security
    ("StatusNotification", ChargePoint),         // G Availability
    ("TransactionEvent", ChargePoint),           // E Transactions
    ("TriggerMessage", Csms),                    // F Remote Control
    ("UnlockConnector", Csms),                   // F Remote Control
    ("UnpublishFirmware", Csms),                 // L Firmware Management
    ("UpdateDynamicSchedule", Csms),             // Smart charging (new in 2.1)
    ("UpdateFirmware", Csms),                    // L Firmware Management
    ("UsePriorityCharging", Csms),               // Smart charging (new in 2.1)
    ("VatNumberValidation", ChargePoint),        // VAT number (new in 2.1)
];
