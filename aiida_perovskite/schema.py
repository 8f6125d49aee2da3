"""The base of every settings model: pydantic v2, strict types, unknown and missing keys named with the fix.

A settings model is the one definition of a concept (a stage, trust levels, a perturbation, a campaign file):
the campaign-file check, the WorkChain port validators and the calcfunctions all validate through it, and its
JSON Schema is what editors complete campaign files with. ``first_problem`` turns pydantic's error into the
project's form: the key path (``systems.BTO.stages[0].steps``) and a message saying what to give instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

__all__ = (
    "SettingError",
    "Settings",
    "bounded",
    "choice",
    "first_problem",
    "port_validator",
    "problem",
    "raise_first_problem",
    "validation_problem",
    "value_validator",
)


class SettingError(ValueError):
    """A settings problem outside a file: ``key`` is where (``training.num_models``), the message what to do."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}" if key else message)


def raise_first_problem(model: type[BaseModel], value: Any, prefix: str = "", context: Any = None) -> BaseModel:
    """``value`` validated as ``model``, or a SettingError with the first problem's key path."""
    try:
        return model.model_validate(value, context=context)
    except ValidationError as error:
        raise SettingError(*first_problem(error, prefix)) from None


def problem(message: str, key: str = "") -> PydanticCustomError:
    """An error raised inside a validator; ``key`` continues the path below the validated value."""
    return PydanticCustomError("perovskite", "{message}", {"message": message, "key": key})


class Settings(BaseModel):
    """Strict (no silent coercion of '5' to 5 or 2.0 to 2), closed (unknown keys refused), immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_and_given(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        allowed = list(cls.model_fields)
        for name in data:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
                raise problem(f"unknown key; {hint}", str(name))
        for name, field in cls.model_fields.items():
            if field.is_required() and name not in data:
                raise problem(f"missing; {field.description}" if field.description else "missing", name)
        return data


def bounded(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    description: str | None = None,
) -> Any:
    """A number in an interval, with the interval in the message and in the JSON Schema."""
    if lo is not None and hi is not None:
        text = f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo == 0 and lo_open:
        text = "must be positive"
    elif lo == 0:
        text = "must not be negative"
    elif lo is not None:
        text = f"must be {'above' if lo_open else 'at least'} {lo:g}"
    else:
        text = f"must be {'below' if hi_open else 'at most'} {hi:g}"

    def check(value: float) -> float:
        low = lo is None or (value > lo if lo_open else value >= lo)
        high = hi is None or (value < hi if hi_open else value <= hi)
        if not (low and high):
            raise problem(f"{text}, got {value}")
        return value

    schema: dict[str, float] = {}
    if lo is not None:
        schema["exclusiveMinimum" if lo_open else "minimum"] = lo
    if hi is not None:
        schema["exclusiveMaximum" if hi_open else "maximum"] = hi
    return Annotated[
        int if integer else float, AfterValidator(check), Field(description=description, json_schema_extra=schema)
    ]


def choice(values: Iterable[str] | Callable[[], Iterable[str]], what: str, description: str | None = None) -> Any:
    """One of named values (a callable is asked at validation time: protocols and plugins can be added)."""

    def names() -> list[str]:
        return list(values() if callable(values) else values)

    def check(value: str) -> str:
        if value not in names():
            raise problem(f"unknown {what} {value!r}; choose one of {', '.join(names())}")
        return value

    return Annotated[str, AfterValidator(check), Field(description=description, json_schema_extra={"enum": names()})]


MESSAGES = {
    "int_type": "expected an integer, got {input!r}",
    "float_type": "expected a number, got {input!r}",
    "finite_number": "expected a finite number, got {input!r}",
    "string_type": "expected a string, got {input!r}",
    "bool_type": "give true or false, got {input!r}",
    "list_type": "expected a list, got {input!r}",
    "too_short": "give a non-empty list, got {input!r}",
    "too_long": "give at most {max_length} values, got {input!r}",
    "string_too_short": "expected a non-empty string, got {input!r}",
    "string_too_long": "{length} characters; at most {max_length} (the database column), shorten it",
    "dict_type": "expected a mapping, got {kind} {input!r}; give a mapping of keys",
    "model_type": "expected a mapping, got {kind} {input!r}; give a mapping of keys",
}


def _path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def first_problem(error: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(key path, message) of the first error, the path continued below ``prefix``."""
    details = error.errors()[0]
    context = details.get("ctx") or {}
    loc = [part for part in details["loc"] if part != "[key]" and not str(part).startswith("function-")]
    if prefix:
        loc.insert(0, prefix)
    if context.get("key"):
        loc.append(context["key"])
    value = details.get("input")
    template = MESSAGES.get(details["type"])
    if details["type"] == "perovskite" or template is None:
        message = context.get("message", details["msg"])
    else:
        length = len(value) if isinstance(value, str) else None
        message = template.format(input=value, kind=type(value).__name__, length=length, **context)
    return _path(loc), message


def validation_problem(model: type[BaseModel], value: Any, prefix: str = "", context: Any = None) -> str | None:
    """For a port validator: why ``value`` is not a valid ``model`` ('key: message'), or None."""
    try:
        raise_first_problem(model, value, prefix, context)
    except SettingError as error:
        return str(error)
    return None


def port_validator(model: type[BaseModel], prefix: str = "") -> Callable[[Any, Any], str | None]:
    """A WorkChain port validator checking a Dict node's contents with ``model``."""

    def validate(node: Any, _: Any) -> str | None:
        return validation_problem(model, node.get_dict(), prefix)

    return validate


def value_validator(annotation: Any, name: str) -> Callable[[Any, Any], str | None]:
    """A WorkChain port validator checking an Int/Float node's value as the setting ``name`` (``annotation``)."""
    adapter = TypeAdapter(annotation)

    def validate(node: Any, _: Any) -> str | None:
        try:
            adapter.validate_python(node.value, strict=False)
        except ValidationError as error:
            return f"{name}: {first_problem(error)[1]}"
        return None

    return validate
