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


def _public_modules() -> list[str]:
    import pkgutil

    names = []
    for info in pkgutil.walk_packages(ocpp_gateway.__path__, "ocpp_gateway."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def test_the_facade_covers_the_extension_api() -> None:
    """Plugins, transports and running a gateway in-process are API (README, DESIGN)."""
    for name in (
        "Plugin",
        "Continue",
        "Forward",
        "Reply",
        "Reject",
        "ConnectionInfo",
        "MessageView",
        "Transport",
        "Link",
        "TransportUnavailable",
        "start_gateway",
        "RunningGateway",
        "load_config",
        "GatewayConfig",
    ):
        assert name in ocpp_gateway.__all__, name


def test_every_public_module_declares_what_it_exports() -> None:
    """Each public module has an `__all__` naming existing objects, and every public class or
    function defined in the module is in it (websockets' tests/test_exports.py idea)."""
    import importlib
    import inspect

    modules = _public_modules()
    assert "ocpp_gateway.relay" in modules and "ocpp_gateway.admission" in modules
    for module_name in modules:
        module = importlib.import_module(module_name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{module_name} has no __all__"
        for name in exported:
            assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"
        defined = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", None) == module_name
        }
        assert defined <= set(exported), f"{module_name}: not in __all__: {defined - set(exported)}"


def test_every_module_opens_with_its_role() -> None:
    import importlib

    for module_name in _public_modules():
        doc = importlib.import_module(module_name).__doc__
        assert doc and doc.strip().splitlines()[0].endswith((".", ":")), module_name
