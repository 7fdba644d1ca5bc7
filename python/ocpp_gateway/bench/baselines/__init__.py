"""Baseline relays of the capacity suite, each a program of its own (`python FILE.py --port ...`).

- `bare_relay`: aiohttp + uvloop, copies text frames both ways, validates nothing: the floor.
- `ocpp_lib_relay`: the same plus what the `ocpp` library does per frame.

They ship in the package so that `ocpp-gateway bench` runs from a plain install;
`benches/baselines/` of the repository links to these files.
"""

__all__: list[str] = []
