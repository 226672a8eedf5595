"""The one formatter: a pydantic ValidationError as today's one line, `block.key: message`.

Only the first error is reported (the user fixes one thing at a time, as with a stage that
stops at the first bad value). Messages raised by the rules and coercions (`fields.fail`)
are used as they are; pydantic's own errors (a bound, an unknown value, an unknown key) are
worded here, with what the field's declaration says (its bounds, its allowed values).
The same errors can name a command's options instead of fields (`names`), for commands
that validate their options through a model (see `vaeinpaint.options`).
"""

from __future__ import annotations

from inspect import isclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from vaeinpaint.errors import ParamError
from vaeinpaint.params.fields import Says, to_integer, to_number

BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
NOT_A_MAPPING = ("model_type", "dict_type", "model_attributes_type")


def param_error(exc: ValidationError, root: type[BaseModel], names: dict[str, str] | None = None, *, shown: bool = True) -> ParamError:
    """The first error of `exc` (from validating `root`) as a one-line ParamError.

    `names` maps field names to what the user typed instead (`{"ratio": "--random"}`): the
    message then names that, in the words a command's errors use, with the value typed after
    the name where it helps (`--shape blobs: ...`) unless `shown` is False."""
    return ParamError(first_error(exc, root, names, shown=shown))


def first_error(exc: ValidationError, root: type[BaseModel], names: dict[str, str] | None = None, *, shown: bool = True) -> str:
    error = exc.errors(include_url=False)[0]
    ctx = error.get("ctx") or {}
    loc = [part for part in error["loc"] if isinstance(part, str)]  # list indices: the list param is named
    if ctx.get("at"):
        loc.append(ctx["at"])  # a model-level rule about one of its fields
    message = _message(error, root, loc, names is not None)
    if names is None:
        where = ctx.get("label") or ".".join(loc)
    else:
        option = names.get(loc[-1], loc[-1]) if loc else ""
        where = " ".join(str(part) for part in (option, _shown(error, ctx) if shown else "") if part != "")
    return f"{where}: {message}" if where else message


def _shown(error: dict[str, Any], ctx: dict[str, Any]) -> Any:
    """What an option's message shows after its name (`--count 2: ...`), as the commands do."""
    if "shown" in ctx:
        return ctx["shown"]
    return error["input"] if error["type"] == "literal_error" else ""


def _message(error: dict[str, Any], root: type[BaseModel], loc: list[str], options: bool) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if "message" in ctx:
        return ctx["message"]
    field = _field(root, loc)
    if kind == "literal_error":
        allowed = ", ".join(str(v) for v in _literals(field.annotation if field else None))
        return f"must be one of {allowed}" if options else f"unknown value {value!r} (expected one of: {allowed})"
    if kind in BOUNDS and field is not None:
        return _bound_message(field, value, options)
    if kind == "extra_forbidden":
        parent = _model(root, loc[:-1])
        known = ", ".join(parent.model_fields) if parent else ""
        return f"unknown {'block' if len(loc) == 1 and parent is root else 'param'} (known: {known})"
    if kind == "missing":
        return "required"
    if kind in NOT_A_MAPPING:
        return f"expected a mapping, got {value!r}"
    return str(error["msg"])


def _bound_message(field: FieldInfo, value: Any, options: bool) -> str:
    """`must be > 0`, `must be in (0, 1]`, `must be between 32 and 512`, from the field's bounds."""
    bounds = {name: getattr(m, name) for m in field.metadata for name in ("gt", "ge", "lt", "le") if getattr(m, name, None) is not None}
    says = next((m for m in field.metadata if isinstance(m, Says)), Says())
    low, high = bounds.get("gt", bounds.get("ge")), bounds.get("lt", bounds.get("le"))
    if low is not None and high is not None:
        if "ge" in bounds and "le" in bounds:
            text = f"from {low} to {high}" if options else f"between {low} and {high}"
        else:
            text = f"in {'(' if 'gt' in bounds else '['}{low}, {high}{')' if 'lt' in bounds else ']'}"
    elif low is not None:
        text = f"at least {low}" if options and "ge" in bounds else f"{'>' if 'gt' in bounds else '>='} {low}"
    else:
        text = f"{'<' if 'lt' in bounds else '<='} {high}"
    words = [says.lead, "must be", text, says.note]
    return f"{' '.join(w for w in words if w)}, got {_as_field(field, value)}"


def _as_field(field: FieldInfo, value: Any) -> Any:
    # pydantic reports a bound's input as written ('1.5'); the message shows it as the number read.
    try:
        if field.annotation is int:
            return to_integer(value)
        if field.annotation is float:
            return to_number(value)
    except Exception:  # noqa: BLE001 - shown as written, then
        pass
    return value


def _model(root: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The model class at `loc` (a block), or None where loc leads to no model."""
    model: type[BaseModel] | None = root
    for part in loc:
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        candidates = (annotation, *get_args(annotation))  # a block, or an optional one (`X | None`)
        model = next((c for c in candidates if isclass(c) and issubclass(c, BaseModel)), None)
    return model


def _field(root: type[BaseModel], loc: list[str]) -> FieldInfo | None:
    parent = _model(root, loc[:-1]) if loc else None
    return parent.model_fields.get(loc[-1]) if parent else None


def _literals(annotation: Any) -> tuple[Any, ...]:
    """The values of the Literal in `annotation` (itself, or inside tuple[...] and the like)."""
    if annotation is None:
        return ()
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        found = _literals(arg)
        if found:
            return found
    return ()
