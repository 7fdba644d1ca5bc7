"""Keeps `ocpp_gateway.__all__` honest: the facade exports exactly its public names."""

import types

import ocpp_gateway


def test_all_names_exist() -> None:
    for name in ocpp_gateway.__all__:
        assert hasattr(ocpp_gateway, name), name


def test_all_is_unique() -> None:
    assert len(set(ocpp_gateway.__all__)) == len(ocpp_gateway.__all__)


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, value in vars(ocpp_gateway).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(ocpp_gateway.__all__) - {"__version__"}


def test_star_import_gives_all() -> None:
    namespace: dict[str, object] = {}
    exec("from ocpp_gateway import *", namespace)
    exported = {k for k in namespace if k != "__builtins__"}
    assert exported == set(ocpp_gateway.__all__)


def test_version_matches_package_metadata() -> None:
    from importlib.metadata import version

    assert ocpp_gateway.__version__ == version("ocpp-gateway")
