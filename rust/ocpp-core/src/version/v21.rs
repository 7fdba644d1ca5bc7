//! OCPP 2.1: every action of 2.0.1 plus those added by 2.1 (schemas in `ocpp/v21/schemas`).

use super::Direction::{Both, CpToCsms, CsmsToCp};

/// Every action with the side that sends its CALL, sorted by name (byte order).
///
/// The trailing comment names the feature profile or functional block of each action:
/// the 2.0.1 functional block letter, or the 2.1 feature that added the action. DataTransfer
/// may be sent by either side. NotifyPeriodicEventStream is only ever sent as a SEND (type 6).
pub const ACTIONS: &[(&str, super::Direction)] = &[
    ("AFRRSignal", CsmsToCp),                 // Bidirectional power (new in 2.1)
    ("AdjustPeriodicEventStream", CsmsToCp),  // Event streams (new in 2.1)
    ("Authorize", CpToCsms),                  // C Authorization
    ("BatterySwap", CpToCsms),                // Battery swapping (new in 2.1)
    ("BootNotification", CpToCsms),           // B Provisioning
    ("CancelReservation", CsmsToCp),          // H Reservation
    ("CertificateSigned", CsmsToCp),          // A Security
    ("ChangeAvailability", CsmsToCp),         // G Availability
    ("ChangeTransactionTariff", CsmsToCp),    // Tariffs (new in 2.1)
    ("ClearCache", CsmsToCp),                 // C Authorization
    ("ClearChargingProfile", CsmsToCp),       // K Smart Charging
    ("ClearDERControl", CsmsToCp),            // DER control (new in 2.1)
    ("ClearDisplayMessage", CsmsToCp),        // O Display Message
    ("ClearTariffs", CsmsToCp),               // Tariffs (new in 2.1)
    ("ClearVariableMonitoring", CsmsToCp),    // N Diagnostics
    ("ClearedChargingLimit", CpToCsms),       // K Smart Charging
    ("ClosePeriodicEventStream", CpToCsms),   // Event streams (new in 2.1)
    ("CostUpdated", CsmsToCp),                // I Tariff and Cost
    ("CustomerInformation", CsmsToCp),        // N Diagnostics
    ("DataTransfer", Both),                   // P Data Transfer
    ("DeleteCertificate", CsmsToCp),          // M ISO 15118 Certificate Management
    ("FirmwareStatusNotification", CpToCsms), // L Firmware Management
    ("Get15118EVCertificate", CpToCsms),      // M ISO 15118 Certificate Management
    ("GetBaseReport", CsmsToCp),              // B Provisioning
    ("GetCertificateChainStatus", CpToCsms),  // Certificates (new in 2.1)
    ("GetCertificateStatus", CpToCsms),       // M ISO 15118 Certificate Management
    ("GetChargingProfiles", CsmsToCp),        // K Smart Charging
    ("GetCompositeSchedule", CsmsToCp),       // K Smart Charging
    ("GetDERControl", CsmsToCp),              // DER control (new in 2.1)
    ("GetDisplayMessages", CsmsToCp),         // O Display Message
    ("GetInstalledCertificateIds", CsmsToCp), // M ISO 15118 Certificate Management
    ("GetLocalListVersion", CsmsToCp),        // D Local Authorization List Management
    ("GetLog", CsmsToCp),                     // N Diagnostics
    ("GetMonitoringReport", CsmsToCp),        // N Diagnostics
    ("GetPeriodicEventStream", CsmsToCp),     // Event streams (new in 2.1)
    ("GetReport", CsmsToCp),                  // B Provisioning
    ("GetTariffs", CsmsToCp),                 // Tariffs (new in 2.1)
    ("GetTransactionStatus", CsmsToCp),       // E Transactions
    ("GetVariables", CsmsToCp),               // B Provisioning
    ("Heartbeat", CpToCsms),                  // G Availability
    ("InstallCertificate", CsmsToCp),         // M ISO 15118 Certificate Management
    ("LogStatusNotification", CpToCsms),      // N Diagnostics
    ("MeterValues", CpToCsms),                // J Meter Values
    ("NotifyAllowedEnergyTransfer", CsmsToCp), // Bidirectional power (new in 2.1)
    ("NotifyChargingLimit", CpToCsms),        // K Smart Charging
    ("NotifyCustomerInformation", CpToCsms),  // N Diagnostics
    ("NotifyDERAlarm", CpToCsms),             // DER control (new in 2.1)
    ("NotifyDERStartStop", CpToCsms),         // DER control (new in 2.1)
    ("NotifyDisplayMessages", CpToCsms),      // O Display Message
    ("NotifyEVChargingNeeds", CpToCsms),      // K Smart Charging
    ("NotifyEVChargingSchedule", CpToCsms),   // K Smart Charging
    ("NotifyEvent", CpToCsms),                // N Diagnostics
    ("NotifyMonitoringReport", CpToCsms),     // N Diagnostics
    ("NotifyPeriodicEventStream", CpToCsms),  // Event streams (new in 2.1)
    ("NotifyPriorityCharging", CpToCsms),     // Smart charging (new in 2.1)
    ("NotifyReport", CpToCsms),               // B Provisioning
    ("NotifySettlement", CpToCsms),           // Payment (new in 2.1)
    ("NotifyWebPaymentStarted", CsmsToCp),    // Payment (new in 2.1)
    ("OpenPeriodicEventStream", CpToCsms),    // Event streams (new in 2.1)
    ("PublishFirmware", CsmsToCp),            // L Firmware Management
    ("PublishFirmwareStatusNotification", CpToCsms), // L Firmware Management
    ("PullDynamicScheduleUpdate", CpToCsms),  // Smart charging (new in 2.1)
    ("ReportChargingProfiles", CpToCsms),     // K Smart Charging
    ("ReportDERControl", CpToCsms),           // DER control (new in 2.1)
    ("RequestBatterySwap", CsmsToCp),         // Battery swapping (new in 2.1)
    ("RequestStartTransaction", CsmsToCp),    // F Remote Control
    ("RequestStopTransaction", CsmsToCp),     // F Remote Control
    ("ReservationStatusUpdate", CpToCsms),    // H Reservation
    ("ReserveNow", CsmsToCp),                 // H Reservation
    ("Reset", CsmsToCp),                      // B Provisioning
    ("SecurityEventNotification", CpToCsms),  // A Security
    ("SendLocalList", CsmsToCp),              // D Local Authorization List Management
    ("SetChargingProfile", CsmsToCp),         // K Smart Charging
    ("SetDERControl", CsmsToCp),              // DER control (new in 2.1)
    ("SetDefaultTariff", CsmsToCp),           // Tariffs (new in 2.1)
    ("SetDisplayMessage", CsmsToCp),          // O Display Message
    ("SetMonitoringBase", CsmsToCp),          // N Diagnostics
    ("SetMonitoringLevel", CsmsToCp),         // N Diagnostics
    ("SetNetworkProfile", CsmsToCp),          // B Provisioning
    ("SetVariableMonitoring", CsmsToCp),      // N Diagnostics
    ("SetVariables", CsmsToCp),               // B Provisioning
    ("SignCertificate", CpToCsms),            // A Security
    ("StatusNotification", CpToCsms),         // G Availability
    ("TransactionEvent", CpToCsms),           // E Transactions
    ("TriggerMessage", CsmsToCp),             // F Remote Control
    ("UnlockConnector", CsmsToCp),            // F Remote Control
    ("UnpublishFirmware", CsmsToCp),          // L Firmware Management
    ("UpdateDynamicSchedule", CsmsToCp),      // Smart charging (new in 2.1)
    ("UpdateFirmware", CsmsToCp),             // L Firmware Management
    ("UsePriorityCharging", CsmsToCp),        // Smart charging (new in 2.1)
    ("VatNumberValidation", CpToCsms),        // VAT number (new in 2.1)
];
