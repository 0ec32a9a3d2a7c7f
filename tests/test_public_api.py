"""Lock the public names so that changing them is a deliberate act."""

import doqu
import doqu.backend_base as backend_base
import doqu.validators as validators


def test_top_level_names() -> None:
    assert set(doqu.__all__) >= {
        "Document", "Field", "Many", "get_db", "get_storage", "DoquError", "ConfigurationError",
        "ValidationError", "LookupProcessorDoesNotExist", "DataProcessorDoesNotExist",
        "ConnectionError", "DocumentNotFound", "QueryError", "UnknownFieldError",
    }
    for name in doqu.__all__:
        assert hasattr(doqu, name), name


def test_backend_base_names() -> None:
    for name in ["BaseStorageAdapter", "BaseQueryAdapter", "LookupManager", "ConverterManager",
                 "ProcessorDoesNotExist", "LookupProcessorDoesNotExist", "DataProcessorDoesNotExist"]:
        assert name in backend_base.__all__ and hasattr(backend_base, name)


def test_validator_aliases() -> None:
    pairs = {"required": "Required", "optional": "Optional", "exists": "Exists", "equals": "Equals",
             "equal_to": "EqualTo", "any_of": "AnyOf", "length": "Length",
             "number_range": "NumberRange", "regexp": "Regexp", "email": "Email",
             "ip_address": "IPAddress", "url": "URL"}
    for alias, name in pairs.items():
        assert getattr(validators, alias) is getattr(validators, name)


def test_errors_subclass_builtins() -> None:
    assert issubclass(doqu.ConfigurationError, ValueError)
    assert issubclass(doqu.ValidationError, ValueError)
    assert issubclass(doqu.DataProcessorDoesNotExist, TypeError)
    assert issubclass(doqu.LookupProcessorDoesNotExist, ValueError)
    assert issubclass(doqu.DocumentNotFound, KeyError)
    assert issubclass(doqu.UnknownFieldError, KeyError)
    for name in doqu.errors.__all__:
        assert issubclass(getattr(doqu.errors, name), doqu.DoquError)


def test_lookup_manager() -> None:
    manager = backend_base.LookupManager()

    @manager.register("equals", default=True)
    def eq(name: str, value: object) -> dict:
        return {name: value}

    @manager.register("gt")
    def gt(name: str, value: object) -> dict:
        return {name: {"$gt": value}}

    assert manager.resolve("age", None, 3) == {"age": 3}
    assert manager.resolve("age", "gt", 3) == {"age": {"$gt": 3}}
    assert "gt" in manager and "lt" not in manager
    try:
        manager.resolve("age", "lt", 3)
    except doqu.LookupProcessorDoesNotExist as exc:
        assert "equals" in str(exc) and "gt" in str(exc)
    else:
        raise AssertionError("expected LookupProcessorDoesNotExist")
