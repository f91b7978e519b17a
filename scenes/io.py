"""Scene files: strict YAML/JSON in and out, with one-line errors that name the file and field.

``load_scene(save_scene(scene, p)) == scene`` holds exactly: floats are written with their full
repr and every field (defaults included) is written out.
"""

from __future__ import annotations

import codecs
import difflib
import json
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rendiff.io.atomic import write_text

from .spec import Scene

__all__ = [
    "SceneError",
    "describe_validation_error",
    "load_scene",
    "save_scene",
    "scene_from_dict",
    "scene_to_dict",
]

_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}

#: Bounds on a scene file, data-set spec or setup file (docs/design-notes.md, "Trust model"):
#: its size on disk, its nodes counted as if every YAML alias were copied out (an alias bomb
#: builds cheaply and explodes wherever it is walked), and its nesting depth.
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_DEPTH = 64
#: The longest error line, and the longest echo of a value inside one.
_MAX_ERROR_CHARS = 400
_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxdict, _ECHO.maxlist, _ECHO.maxtuple = 2, 4, 4, 4
_ECHO.maxstring = _ECHO.maxother = _ECHO.maxlong = 40


def _echo(value: Any) -> str:
    """A value as shown in an error: a few dozen characters at most, however large it is."""
    text = _ECHO.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SceneError(ValueError):
    """A scene file or scene dict that is not valid. ``str(err)`` is one line:
    ``scene.yaml: entities[2].material.friction: must be >= 0``."""

    def __init__(self, source: str, where: str, message: str, more: int = 0):
        self.source, self.where, self.message, self.more = source, where, message, more
        text = f"{source}: {where + ': ' if where else ''}{message}"
        if len(text) > _MAX_ERROR_CHARS:
            text = text[:_MAX_ERROR_CHARS - 3] + "..."
        text = " ".join(text.split())  # one line, whatever a value held
        if more:
            text += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(text)


def _format_loc(loc: tuple[Any, ...]) -> str:
    """Turns pydantic's error location into ``entities[2].material.friction``.

    Pydantic inserts the tag of a discriminated union (e.g. ``'sphere'``) into the location; it
    is dropped here because it is not a key the user wrote."""
    parts: list[str] = []
    tag_may_follow = True  # one tag after a union's field; the next item is the user's own key
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item).startswith("function-"):
            continue
        elif tag_may_follow and _is_union_tag(parts, str(item)):
            tag_may_follow = False
            continue
        else:
            parts.append(("." if parts else "") + str(item))
        tag_may_follow = True
    return "".join(parts)


_UNION_FIELDS = {"geometry", "animation", "path"}
_TAGS = {
    "sphere", "box", "capsule", "cylinder", "plane", "mesh", "gaussians", "human", "robot",
    "cloth",
    "keyframes", "motion", "amass", "dddm", "joint_targets",
    "ambient", "environment", "directional", "point", "spot",
    "static", "orbit", "dolly", "follow",
}


def _is_union_tag(parts: list[str], item: str) -> bool:
    if item not in _TAGS or not parts:
        return False
    last = parts[-1].lstrip(".")
    if last in _UNION_FIELDS:
        return True
    return len(parts) >= 2 and last.startswith("[") and parts[-2].lstrip(".") == "lights"


def _allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` (for 'did you mean' hints), best effort."""
    cls: Any = model
    for item in loc[:-1]:
        if isinstance(item, int) or cls is None:
            continue
        fields = getattr(cls, "model_fields", None)
        if fields is None:
            return []
        if item in fields:
            cls = _model_of(fields[item].annotation)
        elif item in _TAGS:
            cls = _tagged(cls, item)
        else:
            return []
    return list(getattr(cls, "model_fields", {}).keys())


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation like ``list[Entity]`` or ``Pose | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    for arg in getattr(annotation, "__metadata__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        return _model_of(origin)
    return None


def _tagged(cls: Any, tag: str) -> Any:
    """Within a union-typed field's owner, the model whose ``type`` literal is ``tag``."""
    import typing

    from . import spec

    for name in getattr(spec, "__all__", []):
        m = getattr(spec, name)
        if isinstance(m, type) and issubclass(m, BaseModel) and "type" in m.model_fields:
            args = typing.get_args(m.model_fields["type"].annotation)
            if args and args[0] == tag:
                return m
    return None


def _message(err: dict[str, Any], model: type[BaseModel]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_fields(model, err["loc"])
        name = str(err["loc"][-1])
        hint = difflib.get_close_matches(name, allowed, n=1)
        if hint:
            return f"unknown field (did you mean {hint[0]!r}?)"
        return f"unknown field (allowed: {', '.join(allowed)})" if allowed else "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound} (got {_echo(err.get('input'))})"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r} (expected one of {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return "needs a 'type' field"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_echo(err.get('input'))})"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind in ("too_short", "too_long"):
        return err["msg"].lower()
    return f"{err['msg'][0].lower()}{err['msg'][1:]} (got {_echo(err.get('input'))})"


def scene_from_dict(
    data: Any, source: str = "<scene>", base_dir: str | Path | None = None,
    check_assets: bool = True,
) -> Scene:
    """Validates a plain dict into a :class:`Scene`, raising :class:`SceneError` on bad input."""
    if not isinstance(data, dict):
        raise SceneError(source, "", f"the top level must be a mapping, not {type(data).__name__}")
    try:
        # Validated as JSON in pydantic's strict mode: lists still make tuples and integers
        # floats, but "0.12", "yes" or true never become numbers or booleans, nor 2.0 an int.
        text = json.dumps(data, default=str)
        return Scene.model_validate_json(
            text, strict=True, context={"base_dir": base_dir, "check_assets": check_assets}
        )
    except ValidationError as e:
        raise SceneError(source, *describe_validation_error(e, Scene)) from None


_PATH_HEAD = re.compile(r"[A-Za-z_][\w.\[\]]*")


def describe_validation_error(e: ValidationError, model: type[BaseModel]) -> tuple[str, str, int]:
    """The first error of a pydantic validation of ``model`` as ``(where, message, more)``:
    the field path (``entities[2].material.friction``), a one-line message (with the allowed
    fields or a did-you-mean for unknown ones), and how many other errors there were. A
    sub-path at the head of a validator's message (``uniform[0]: ...``) moves onto the path."""
    errors = e.errors()
    first = errors[0]
    where = _format_loc(first["loc"])
    msg = _message(first, model)
    if where and msg.startswith(where + ": "):
        msg = msg[len(where) + 2:]
    head, sep, rest = msg.partition(": ")
    if first["type"] == "value_error" and sep and _PATH_HEAD.fullmatch(head):
        where, msg = (f"{where}.{head}" if where else head), rest
    return where, msg, len(errors) - 1


def scene_to_dict(scene: Scene) -> dict[str, Any]:
    """The scene as plain JSON-compatible data, every field written out."""
    return scene.model_dump(mode="json")


class _StrictYAMLLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (the last would win)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                merge = key_node.tag == "tag:yaml.org,2002:merge"
                if merge or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_echo(key)} (first written on line "
                        f"{seen[key] + 1}; the last would silently win)", key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {_echo(key)} (the last would silently win)")
        out[key] = value
    return out


def _decode(raw: bytes, src: str, error: type[SceneError]) -> str:
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if raw.startswith(bom):
            raise error(src, "", f"the file is {name} text; save it as UTF-8")
    if b"\x00" in raw:
        raise error(src, "", "not a text file (it holds NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise error(src, f"line {line}", f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                    f"{e.start}); save the file as UTF-8") from None


def _check_extent(data: Any, src: str, error: type[SceneError]) -> None:
    """Refuses data nested deeper than MAX_DEPTH or larger than MAX_NODES with every alias
    copied out; shared (aliased) parts are walked once, so the check itself stays cheap."""
    sizes: dict[int, int] = {}

    def count(obj: Any, depth: int) -> int:
        if not isinstance(obj, dict | list):
            return 1
        if depth > MAX_DEPTH:
            raise error(src, "", f"nested more than {MAX_DEPTH} levels deep")
        if id(obj) in sizes:
            return sizes[id(obj)]
        items = list(obj.values()) if isinstance(obj, dict) else obj
        n = 1 + len(obj) * isinstance(obj, dict)
        for item in items:
            n += count(item, depth + 1)
            if n > MAX_NODES:
                raise error(src, "", f"more than {MAX_NODES:,} values once its YAML aliases "
                            "are expanded (an alias bomb?)")
        sizes[id(obj)] = n
        return n

    count(data, 0)


def parse_data_text(raw: bytes, kind: str, src: str, error: type[SceneError] = SceneError,
                    ) -> object:
    """Parses the bytes of a YAML (``kind="yaml"``) or JSON file strictly and within bounds:
    UTF-8 only, no key written twice, at most MAX_DEPTH levels and MAX_NODES values with YAML
    aliases expanded. Every problem is one ``error`` naming ``src`` (and the line where known)."""
    text = _decode(raw, src, error)
    try:
        if kind == "json":
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        else:
            data = yaml.load(text, Loader=_StrictYAMLLoader)  # a SafeLoader subclass
    except json.JSONDecodeError as e:
        raise error(src, f"line {e.lineno}", f"invalid JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise error(src, where, f"invalid YAML: {getattr(e, 'problem', e)}") from None
    except ValueError as e:  # a duplicate JSON key
        raise error(src, "", f"invalid JSON: {e}") from None
    except RecursionError:
        raise error(src, "", f"nested more than {MAX_DEPTH} levels deep") from None
    _check_extent(data, src, error)
    return data


def read_data_file(path: str | Path, what: str = "scene files",
                   error: type[SceneError] = SceneError) -> tuple[object, str]:
    """Parses a ``.yaml``/``.yml``/``.json`` file with :func:`parse_data_text`; returns (data,
    file name). Every problem (suffix, missing file, size, encoding, syntax with its line,
    duplicate keys, nesting, alias bombs, empty file) is one ``error`` naming the file; ``what``
    names the kind of file in the messages."""
    path = Path(path)
    src = path.name
    if path.suffix.lower() not in _SUFFIXES:
        raise error(src, "", f"{what} must end in .yaml, .yml or .json")
    if not path.is_file():
        raise error(src, "", f"file not found ({path})")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise error(src, "", f"the file is {size / 2**20:.1f} MB; {what} are limited to "
                    f"{MAX_FILE_BYTES >> 20} MB")
    data = parse_data_text(path.read_bytes(), _SUFFIXES[path.suffix.lower()], src, error)
    if data is None:
        raise error(src, "", "the file is empty")
    return data, src


def load_scene(path: str | Path) -> Scene:
    """Reads a scene from a ``.yaml``/``.yml``/``.json`` file; relative asset paths are taken
    relative to the file's folder. Raises :class:`SceneError` naming the file and field."""
    data, src = read_data_file(path)
    return scene_from_dict(data, source=src, base_dir=Path(path).parent)


def data_file_kind(path: str | Path, what: str = "scene files") -> str:
    """``"yaml"`` or ``"json"`` by the file's suffix; a ``ValueError`` naming ``what`` else."""
    kind = _SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: {what} must end in .yaml, .yml or .json")
    return kind


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Writes the scene (every field) to YAML or JSON by the file's suffix, atomically."""
    kind = data_file_kind(path)
    data = scene_to_dict(scene)
    if kind == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return write_text(path, text)
