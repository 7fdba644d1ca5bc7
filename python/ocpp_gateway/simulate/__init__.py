"""A light fleet of simulated OCPP-J charge points (1.6J, 2.0.1) for the demo and benches."""

from ocpp_gateway.simulate.charge_point import SimChargePoint
from ocpp_gateway.simulate.fleet import CHARGE_POINT_CLASSES, run_fleet
from ocpp_gateway.simulate.profile import PROFILES, Profile
from ocpp_gateway.simulate.responses import answer_call, minimal_response
from ocpp_gateway.simulate.stats import FleetSnapshot, FleetStats, quantile

__all__ = [
    "CHARGE_POINT_CLASSES",
    "PROFILES",
    "FleetSnapshot",
    "FleetStats",
    "Profile",
    "SimChargePoint",
    "answer_call",
    "minimal_response",
    "quantile",
    "run_fleet",
]
