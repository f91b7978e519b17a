"""Data-set specs: which scenes to draw, and the distribution of every randomised quantity.

A spec is a strict pydantic model read from YAML or JSON. Each randomiser field holds a
*distribution*, written as a constant or a one-key mapping::

    0.5                                   a constant (number, string, bool, or [r, g, b])
    {uniform: [lo, hi]}                   real, lo <= x <= hi
    {loguniform: [lo, hi]}                real, log x uniform; 0 < lo <= hi
    {randint: [lo, hi]}                   integer, both ends included
    {choice: [a, b, c], weights: [...]}   one of the listed values (weights optional, >= 0)
    {normal: {mean: m, std: s, min: a, max: b}}   normal truncated to [min, max]

Every field states its type and bounds (friction >= 0, restitution in [0, 1], ...); a
distribution whose support leaves them is an error naming the spec file and the field, like
scene-file errors: ``spec.yaml: materials.friction.uniform[0]: must be >= 0.0 (got -0.2)``.
A normal given no ``min``/``max`` is truncated to the field's bounds (written into the spec).

:mod:`rendiff.dataset.sample` turns a spec and a clip index into a :class:`~rendiff.Scene`.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from rendiff import defaults
from rendiff.io.atomic import write_text
from rendiff.scenes.io import (
    SceneError,
    data_file_kind,
    describe_validation_error,
    load_scene,
    read_data_file,
)
from rendiff.scenes.randomize import KINDS as DEFAULT_KINDS

#: scene families a spec's ``generator`` can name; the default mixes ``DEFAULT_KINDS``
KINDS = (*DEFAULT_KINDS, "robot_arm")

__all__ = [
    "DIST_KEYS",
    "KINDS",
    "RANDOMIZABLE",
    "CameraSpec",
    "Choice",
    "ColorsSpec",
    "Const",
    "DatasetSpec",
    "DatasetSpecError",
    "Dist",
    "GaussiansSpec",
    "GroundSpec",
    "HumanSpec",
    "LightsSpec",
    "LogUniform",
    "MaterialsSpec",
    "Normal",
    "ObjectsSpec",
    "PhysicsSpec",
    "RandInt",
    "Uniform",
    "dataset_spec_from_dict",
    "load_dataset_spec",
    "save_dataset_spec",
]

DIST_KEYS = ("uniform", "loguniform", "randint", "choice", "normal")
SHAPES = ("sphere", "box", "capsule", "cylinder")
MOTIONS = ("walk", "wave", "jump", "turn", "idle")
CAMERA_PATHS = ("static", "orbit", "dolly", "follow")
Randomizable = Literal["colors", "materials", "ground", "lights", "camera", "physics"]
RANDOMIZABLE: tuple[str, ...] = get_args(Randomizable)
"""Sections that can be applied to a ``base`` scene (see :attr:`DatasetSpec.randomize`)."""



class DatasetSpecError(SceneError):
    """A data-set spec that is not valid. ``str(err)`` is one line naming the file and field:
    ``spec.yaml: materials.friction.uniform: lo (0.9) must be <= hi (0.3)``."""


# --------------------------------------------------------------------------------------------
# Distributions


class Dist:
    """A distribution of one value. :meth:`sample` draws it from a ``random.Random``;
    :meth:`to_data` gives the spec-file form back."""

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def to_data(self) -> Any:
        raise NotImplementedError

    def values(self) -> tuple[Any, ...]:
        """The finite set of values it can take (all for a constant or choice; else empty)."""
        return ()

    def span(self) -> tuple[float, float]:
        """Smallest and largest value it can take (numeric distributions)."""
        raise NotImplementedError


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@dataclass(frozen=True)
class Const(Dist):
    """Always ``value``; draws nothing."""

    value: Any

    def sample(self, rng: random.Random) -> Any:
        return self.value

    def to_data(self) -> Any:
        return _plain(self.value)

    def values(self) -> tuple[Any, ...]:
        return (self.value,)

    def span(self) -> tuple[float, float]:
        return (self.value, self.value)


@dataclass(frozen=True)
class Uniform(Dist):
    """Real uniform on ``[lo, hi]``."""

    lo: float
    hi: float

    def sample(self, rng: random.Random) -> float:
        return min(max(rng.uniform(self.lo, self.hi), self.lo), self.hi)

    def to_data(self) -> Any:
        return {"uniform": [self.lo, self.hi]}

    def span(self) -> tuple[float, float]:
        return (self.lo, self.hi)


@dataclass(frozen=True)
class LogUniform(Dist):
    """Real with ``log x`` uniform on ``[log lo, log hi]`` (scales, densities)."""

    lo: float
    hi: float

    def sample(self, rng: random.Random) -> float:
        x = math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        return min(max(x, self.lo), self.hi)

    def to_data(self) -> Any:
        return {"loguniform": [self.lo, self.hi]}

    def span(self) -> tuple[float, float]:
        return (self.lo, self.hi)


@dataclass(frozen=True)
class RandInt(Dist):
    """Integer uniform on ``lo .. hi``, both ends included."""

    lo: int
    hi: int

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.lo, self.hi)

    def to_data(self) -> Any:
        return {"randint": [self.lo, self.hi]}

    def values(self) -> tuple[Any, ...]:
        return tuple(range(self.lo, self.hi + 1)) if self.hi - self.lo < 1024 else ()

    def span(self) -> tuple[float, float]:
        return (self.lo, self.hi)


@dataclass(frozen=True)
class Choice(Dist):
    """One of ``options``, equally likely or in proportion to ``weights``."""

    options: tuple[Any, ...]
    weights: tuple[float, ...] | None = None

    def sample(self, rng: random.Random) -> Any:
        if self.weights is None:
            return self.options[rng.randrange(len(self.options))]
        return rng.choices(self.options, weights=self.weights)[0]

    def to_data(self) -> Any:
        data: dict[str, Any] = {"choice": [_plain(o) for o in self.options]}
        if self.weights is not None:
            data["weights"] = list(self.weights)
        return data

    def values(self) -> tuple[Any, ...]:
        return self.options

    def span(self) -> tuple[float, float]:
        return (min(self.options), max(self.options))


@dataclass(frozen=True)
class Normal(Dist):
    """Normal of ``mean`` and ``std`` truncated to ``[min, max]`` (drawn by inverting the CDF
    over the kept interval, so the ends carry no extra mass)."""

    mean: float
    std: float
    min: float | None = None
    max: float | None = None

    def sample(self, rng: random.Random) -> float:
        lo = -math.inf if self.min is None else self.min
        hi = math.inf if self.max is None else self.max
        if self.std == 0.0:
            x = self.mean
        else:
            nd = statistics.NormalDist(self.mean, self.std)
            a = 0.0 if lo == -math.inf else nd.cdf(lo)
            b = 1.0 if hi == math.inf else nd.cdf(hi)
            u = rng.uniform(a, b)
            eps = 1e-15
            x = nd.inv_cdf(min(max(u, eps), 1.0 - eps)) if b > a else self.mean
        # strictly inside finite ends: the ends may be exclusive bounds of the field
        if x <= lo:
            x = math.nextafter(lo, math.inf)
        if x >= hi:
            x = math.nextafter(hi, -math.inf)
        return x

    def to_data(self) -> Any:
        p: dict[str, float] = {"mean": self.mean, "std": self.std}
        if self.min is not None:
            p["min"] = self.min
        if self.max is not None:
            p["max"] = self.max
        return {"normal": p}

    def span(self) -> tuple[float, float]:
        return (-math.inf if self.min is None else self.min,
                math.inf if self.max is None else self.max)


# --------------------------------------------------------------------------------------------
# Parsing a field's distribution


_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true/false",
               "rgb": "an [r, g, b] colour"}
_ALLOWED = {"float": {"uniform", "loguniform", "choice", "normal"},
            "int": {"randint", "choice"}, "str": {"choice"}, "bool": {"choice"},
            "rgb": {"choice"}}


#: The largest magnitude of any number a spec draws (sizes, distances, densities, speeds, in
#: SI units): beyond it a drawn scene cannot be meaningful, and its coordinates would leave the
#: scene spec's own bounds (1e6 m).
MAX_VALUE = 1e6


@dataclass(frozen=True)
class _Rule:
    """What a randomiser field holds: value kind, bounds, allowed strings; used as pydantic
    metadata (``Annotated[Dist, _Rule(...)]``) so the field parses into a :class:`Dist`."""

    kind: Literal["float", "int", "str", "bool", "rgb"]
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    options: tuple[str, ...] | None = None
    optional: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            lambda v: _parse_dist(v, self),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda d: None if d is None else d.to_data()),
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        scalar: dict[str, Any] = {
            "float": {"type": "number"}, "int": {"type": "integer"}, "bool": {"type": "boolean"},
            "str": {"type": "string", **({"enum": list(self.options)} if self.options else {})},
            "rgb": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        }[self.kind]
        forms = sorted(_ALLOWED[self.kind])
        dist = {"type": "object", "minProperties": 1,
                "description": f"a distribution: a mapping with one of {', '.join(forms)}"}
        options = [scalar, dist, *([{"type": "null"}] if self.optional else [])]
        return {"anyOf": options}

    def bound_error(self, x: float) -> str | None:
        """Why ``x`` breaks the field's bounds (or :data:`MAX_VALUE`), or None."""
        if abs(x) > MAX_VALUE:
            return (f"must be within +-{MAX_VALUE:g} (got {x!r}): no quantity of a clip is "
                    "meaningful beyond (scene coordinates stop at 1e6 m)")
        checks = ((">=", self.ge, lambda b: x >= b), (">", self.gt, lambda b: x > b),
                  ("<=", self.le, lambda b: x <= b), ("<", self.lt, lambda b: x < b))
        for op, b, ok in checks:
            if b is not None and not ok(b):
                return f"must be {op} {b} (got {x!r})"
        return None

    def scalar(self, v: Any) -> Any:
        """One value of this field's kind, checked; raises ValueError with a message."""
        k = self.kind
        if k in ("float", "int"):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"expected {_TYPE_WORDS[k]}, got {v!r}")
            if k == "int" and not isinstance(v, int):
                raise ValueError(f"expected an integer, got {v!r}")
            if k == "float":
                v = float(v)
                if not math.isfinite(v):
                    raise ValueError(f"must be finite (got {v!r})")
            err = self.bound_error(v)
            if err:
                raise ValueError(err)
            return v
        if k == "str":
            if not isinstance(v, str):
                raise ValueError(f"expected a string, got {v!r}")
            if self.options is not None and v not in self.options:
                hint = difflib.get_close_matches(v, self.options, n=1)
                more = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ValueError(f"must be one of {list(self.options)} (got {v!r}){more}")
            return v
        if k == "bool":
            if not isinstance(v, bool):
                raise ValueError(f"expected true or false, got {v!r}")
            return v
        if not isinstance(v, list | tuple) or len(v) != 3:
            raise ValueError(f"expected an [r, g, b] colour, got {v!r}")
        out = []
        for c in v:
            if isinstance(c, bool) or not isinstance(c, int | float) or not 0.0 <= c <= 1.0:
                raise ValueError(f"colour components must be numbers in [0, 1] (got {v!r})")
            out.append(float(c))
        return tuple(out)


def _pair(v: Any, key: str, integer: bool) -> tuple[Any, Any]:
    word = "integers" if integer else "numbers"
    ok = isinstance(v, list | tuple) and len(v) == 2 and all(
        not isinstance(x, bool) and isinstance(x, int if integer else int | float) for x in v)
    if not ok:
        raise ValueError(f"{key}: expected [lo, hi], two {word} (got {v!r})")
    lo, hi = (int(x) if integer else float(x) for x in v)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{key}: lo and hi must be finite (got {v!r})")
    if lo > hi:
        raise ValueError(f"{key}: lo ({lo}) must be <= hi ({hi})")
    return lo, hi


def _check_ends(rule: _Rule, key: str, lo: float, hi: float) -> None:
    for i, x in enumerate((lo, hi)):
        err = rule.bound_error(x)
        if err:
            raise ValueError(f"{key}[{i}]: {err}")


def _parse_dist(value: Any, rule: _Rule) -> Dist | None:
    """Parses a spec value (constant or one-key distribution mapping) for a field with ``rule``;
    raises ``ValueError("<sub-path>: <message>")`` on bad input."""
    if value is None:
        if rule.optional:
            return None
        raise ValueError(f"expected {_TYPE_WORDS[rule.kind]} or a distribution, got null")
    if isinstance(value, Dist):
        value = value.to_data()
    if not isinstance(value, dict):
        if rule.kind != "rgb" and isinstance(value, list | tuple):
            raise ValueError(f"expected {_TYPE_WORDS[rule.kind]}, got the list {list(value)!r} "
                             "(for a random pick write {choice: [...]})")
        return Const(rule.scalar(value))
    keys = [k for k in value if k in DIST_KEYS]
    for k in value:
        if k not in DIST_KEYS and not (k == "weights" and "choice" in value):
            hint = difflib.get_close_matches(str(k), [*DIST_KEYS, "weights"], n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else (
                f" (a distribution is one of: {', '.join(DIST_KEYS)})")
            raise ValueError(f"{k}: unknown field{more}")
    if len(keys) != 1:
        raise ValueError(f"a distribution has exactly one of {', '.join(DIST_KEYS)} "
                         f"(got {', '.join(map(str, value)) or 'an empty mapping'})")
    key = keys[0]
    if key not in _ALLOWED[rule.kind]:
        allowed = ", ".join(sorted(_ALLOWED[rule.kind]))
        raise ValueError(f"{key}: not available for {_TYPE_WORDS[rule.kind]} field; "
                         f"use a constant or one of: {allowed}")
    arg = value[key]
    if key in ("uniform", "loguniform"):
        lo, hi = _pair(arg, key, integer=False)
        if key == "loguniform" and lo <= 0:
            raise ValueError(f"{key}[0]: must be > 0 (got {lo!r})")
        _check_ends(rule, key, lo, hi)
        return Uniform(lo, hi) if key == "uniform" else LogUniform(lo, hi)
    if key == "randint":
        lo, hi = _pair(arg, key, integer=True)
        _check_ends(rule, key, lo, hi)
        return RandInt(lo, hi)
    if key == "choice":
        if not isinstance(arg, list | tuple) or not arg:
            raise ValueError(f"choice: expected a non-empty list of values (got {arg!r})")
        options = []
        for i, o in enumerate(arg):
            try:
                options.append(rule.scalar(o))
            except ValueError as e:
                raise ValueError(f"choice[{i}]: {e}") from None
        weights = value.get("weights")
        if weights is not None:
            if not isinstance(weights, list | tuple) or any(
                    isinstance(w, bool) or not isinstance(w, int | float) for w in weights):
                raise ValueError(f"weights: expected a list of numbers (got {weights!r})")
            if len(weights) != len(options):
                raise ValueError(f"weights: {len(weights)} weights for {len(options)} choices")
            if any(not (math.isfinite(w) and w >= 0) for w in weights) or sum(weights) <= 0:
                raise ValueError(f"weights: must be >= 0 and not all zero (got {list(weights)})")
            weights = tuple(float(w) for w in weights)
        return Choice(tuple(options), weights)
    # normal
    if not isinstance(arg, dict):
        raise ValueError(f"normal: expected a mapping {{mean, std, min?, max?}} (got {arg!r})")
    fields = ("mean", "std", "min", "max")
    for k in arg:
        if k not in fields:
            hint = difflib.get_close_matches(str(k), fields, n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(fields)})"
            raise ValueError(f"normal.{k}: unknown field{more}")
    p: dict[str, float | None] = {}
    for k in fields:
        x = arg.get(k)
        if x is None:
            if k in ("mean", "std"):
                raise ValueError(f"normal.{k}: required field is missing")
            p[k] = None
            continue
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise ValueError(f"normal.{k}: expected a finite number (got {x!r})")
        p[k] = float(x)
        if abs(p[k]) > MAX_VALUE:
            raise ValueError(f"normal.{k}: must be within +-{MAX_VALUE:g} (got {x!r})")
    if p["std"] < 0:
        raise ValueError(f"normal.std: must be >= 0 (got {p['std']!r})")
    lo_field = rule.ge if rule.ge is not None else rule.gt
    hi_field = rule.le if rule.le is not None else rule.lt
    if p["min"] is None and lo_field is not None:
        p["min"] = float(lo_field)
    if p["max"] is None and hi_field is not None:
        p["max"] = float(hi_field)
    for k in ("min", "max"):
        if p[k] is not None and (err := rule.bound_error(p[k])):
            # an exclusive field bound may be the truncation end itself
            if not ((k == "min" and p[k] == rule.gt) or (k == "max" and p[k] == rule.lt)):
                raise ValueError(f"normal.{k}: {err}")
    if p["min"] is not None and p["max"] is not None and p["min"] > p["max"]:
        raise ValueError(f"normal: min ({p['min']}) must be <= max ({p['max']})")
    return Normal(p["mean"], p["std"], p["min"], p["max"])


def _d(kind: Literal["float", "int", "str", "bool", "rgb"], **kw: Any) -> _Rule:
    return _Rule(kind, **kw)


Real = Annotated[Dist, _d("float")]
NonNegReal = Annotated[Dist, _d("float", ge=0.0)]
PosReal = Annotated[Dist, _d("float", gt=0.0)]
UnitReal = Annotated[Dist, _d("float", ge=0.0, le=1.0)]
Flag = Annotated[Dist, _d("bool")]


# --------------------------------------------------------------------------------------------
# Sections


def _as_tuple(value: Any) -> Any:
    """A YAML/JSON list where a tuple is expected (strict validation takes tuples only)."""
    return tuple(value) if isinstance(value, list) else value


class _Section(BaseModel):
    # every number finite; strict: "24", "yes" or true never become numbers or booleans (the
    # distributions check their own values), a list still makes the size tuple (_as_tuple)
    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True,
                              allow_inf_nan=False, strict=True)


class ObjectsSpec(_Section):
    """Rigid objects dropped onto the ground (``falling_objects``). Per clip: ``count``,
    ``spread``; every other field is drawn once per object."""

    count: Annotated[Dist, _d("int", ge=0, le=64)] = {"randint": [2, 7]}
    type: Annotated[Dist, _d("str", options=SHAPES)] = {"choice": list(SHAPES)}
    scale: PosReal = {"uniform": [0.7, 1.4]}
    """Size factor on the base shapes (sphere radius 0.1 m, box 0.2 x 0.18 x 0.16 m, capsule
    radius 0.06 m length 0.18 m, cylinder radius 0.09 m height 0.2 m)."""
    spread: NonNegReal = 0.4
    """Half side of the square (m, centred on the origin) the objects start over."""
    height: NonNegReal = {"uniform": [0.05, 0.5]}
    """Gap (m) between an object's bounding sphere and the ground, or the object it is stacked
    on: objects never interpenetrate at the start."""
    tilt_deg: Real = {"uniform": [0.0, 180.0]}
    """Initial roll and pitch (each drawn); yaw is uniform over the full turn."""
    spin: NonNegReal = {"uniform": [0.0, 3.0]}
    """Initial angular speed (rad/s) about a uniformly random axis."""


class MaterialsSpec(_Section):
    """Physics material and surface finish, drawn per object (and per entity of a base scene)."""

    friction: NonNegReal = {"uniform": [0.3, 0.9]}
    restitution: UnitReal = {"uniform": [0.1, 0.6]}
    density: PosReal = {"uniform": [300.0, 1500.0]}
    roughness: UnitReal = {"uniform": [0.2, 0.9]}
    specular: UnitReal = {"uniform": [0.0, 0.6]}


class ColorsSpec(_Section):
    """Albedo colours in HSV, drawn per entity; ``background`` per RGB channel."""

    hue: UnitReal = {"uniform": [0.0, 1.0]}
    saturation: UnitReal = {"uniform": [0.35, 0.9]}
    value: UnitReal = {"uniform": [0.45, 0.95]}
    background: UnitReal = {"uniform": [0.02, 0.25]}


class GroundSpec(_Section):
    """The ground plane: a grey of brightness ``value`` mixed with a random hue by ``tint``."""

    value: UnitReal = {"uniform": [0.3, 0.7]}
    tint: UnitReal = 0.3
    friction: NonNegReal = {"uniform": [0.4, 0.9]}
    restitution: UnitReal = {"uniform": [0.1, 0.5]}
    roughness: UnitReal = 0.9
    size: PosReal = 16.0
    """Side length (m)."""


class LightsSpec(_Section):
    """One ambient light and ``count`` directional lights; per-light fields are drawn per light.
    The colour is ``color`` when given, else that of a black body at ``temperature_k``."""

    count: Annotated[Dist, _d("int", ge=0, le=8)] = 1
    azimuth_deg: Real = {"uniform": [0.0, 360.0]}
    elevation_deg: Annotated[Dist, _d("float", ge=0.0, le=90.0)] = {"uniform": [35.0, 75.0]}
    intensity: NonNegReal = {"uniform": [0.5, 0.85]}
    temperature_k: Annotated[Dist, _d("float", ge=1000.0, le=40000.0)] = {
        "uniform": [5000.0, 8000.0]}
    color: Annotated[Dist | None, _d("rgb", optional=True)] = None
    shadows: Flag = True
    ambient: NonNegReal = {"uniform": [0.2, 0.4]}


class CameraSpec(_Section):
    """Camera placement: ``distance`` from the look-at point, eye ``height`` above the ground,
    ``azimuth_deg`` around it. ``distance``, ``height`` and ``path`` left out use the scene
    family's own defaults (e.g. a walking human is followed)."""

    distance: Annotated[Dist | None, _d("float", gt=0.0, optional=True)] = None
    height: Annotated[Dist | None, _d("float", gt=0.0, optional=True)] = None
    azimuth_deg: Real = {"uniform": [0.0, 360.0]}
    fov_deg: Annotated[Dist, _d("float", gt=1.0, lt=179.0)] = {"uniform": [38.0, 55.0]}
    path: Annotated[Dist | None, _d("str", options=CAMERA_PATHS, optional=True)] = None
    orbit_deg: Real = {"uniform": [-60.0, 60.0]}
    """Degrees an orbiting camera sweeps over the clip."""
    dolly: PosReal = {"uniform": [0.7, 0.9]}
    """A dolly ends at this fraction of its starting distance to the look-at point."""
    smoothing: UnitReal = 0.5
    """A follow camera's smoothing."""


class HumanSpec(_Section):
    """An SMPL body (``walking_human``): its motion, shape, walking path, clothing colour, and a
    few static boxes placed clear of its path."""

    motion: Annotated[Dist, _d("str", options=MOTIONS)] = {
        "choice": ["walk", "wave", "jump", "turn"], "weights": [2, 1, 1, 1]}
    speed: PosReal = {"uniform": [0.8, 1.4]}
    num_betas: Annotated[Dist, _d("int", ge=0, le=10)] = 3
    betas: Real = {"uniform": [-1.5, 1.5]}
    """Drawn per shape coefficient."""
    bend: Real = {"uniform": [-0.8, 0.8]}
    """Sideways offset (m) of a walk's middle waypoint."""
    heading_deg: Real = {"uniform": [0.0, 360.0]}
    path_length: PosReal = 3.0
    color: Annotated[Dist | None, _d("rgb", optional=True)] = None
    """Clothing colour; left out, drawn from ``colors``."""
    props: Annotated[Dist, _d("int", ge=0, le=16)] = {"randint": [0, 2]}
    prop_size: PosReal = {"uniform": [0.2, 0.5]}


class GaussiansSpec(_Section):
    """A Gaussian cloud on a primitive's surface, deformed by a procedural DDDM motion
    (``dynamic_gaussians``)."""

    shape: Annotated[Dist, _d("str", options=("sphere", "box", "torus"))] = {
        "choice": ["sphere", "box", "torus"]}
    count: Annotated[Dist, _d("int", ge=1, le=5_000_000)] = {"choice": [3000, 5000, 8000]}
    radius: PosReal = {"uniform": [0.3, 0.5]}
    procedural: Annotated[Dist, _d("str", options=("wobble", "twist", "breathe"))] = {
        "choice": ["wobble", "twist", "breathe"]}
    amplitude: NonNegReal = {"uniform": [0.05, 0.15]}
    frequency: PosReal = {"uniform": [0.5, 1.5]}
    height: NonNegReal = {"uniform": [0.05, 0.4]}
    """Gap (m) between the cloud's (deformed) bounding sphere and the ground."""
    tilt_deg: Real = {"uniform": [0.0, 90.0]}

    @model_validator(mode="after")
    def _torus(self) -> GaussiansSpec:
        if "torus" in self.shape.values() and self.radius.span()[0] <= 0.15:
            raise ValueError("radius: a torus needs radius > 0.15 (its tube radius); "
                             f"got a lowest value of {self.radius.span()[0]}")
        return self


class PhysicsSpec(_Section):
    """Physics options (gravity along -Z with magnitude ``gravity``)."""

    gravity: NonNegReal = 9.81
    rate_hz: Annotated[Dist, _d("float", ge=30.0, le=20000.0)] = defaults.PHYSICS_RATE_HZ
    solver: Annotated[Dist, _d("str", options=("xpbd", "steel"))] = defaults.PHYSICS_SOLVER


_UNUSED_WITH_BASE = ("objects", "human", "gaussians")


class DatasetSpec(_Section):
    """A data set: clip format, master seed, and how each clip's scene is drawn.

    ``generator`` picks the scene family per clip (default: any of :data:`DEFAULT_KINDS`, equally
    likely); ``base`` instead starts every clip from one scene file (resolved relative to the
    spec file) and applies the sections listed in ``randomize`` (default: all of
    :data:`RANDOMIZABLE`) to it; ``objects``, ``human`` and ``gaussians`` then have no use.
    Every clip has the spec's ``frames``, ``fps`` and ``size`` (width, height).
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")] = "dataset"
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    frames: Annotated[int, Field(ge=1, le=100_000)] = 24
    fps: Annotated[float, Field(gt=0.0, le=1000.0)] = 24.0
    size: Annotated[tuple[Annotated[int, Field(ge=8, le=8192)],
                          Annotated[int, Field(ge=8, le=8192)]], BeforeValidator(_as_tuple)] = (
        256, 256)
    generator: Annotated[Dist | None, _d("str", options=KINDS, optional=True)] = None
    base: str | None = None
    randomize: list[Randomizable] | None = None
    objects: ObjectsSpec = Field(default_factory=ObjectsSpec)
    materials: MaterialsSpec = Field(default_factory=MaterialsSpec)
    colors: ColorsSpec = Field(default_factory=ColorsSpec)
    ground: GroundSpec = Field(default_factory=GroundSpec)
    lights: LightsSpec = Field(default_factory=LightsSpec)
    camera: CameraSpec = Field(default_factory=CameraSpec)
    human: HumanSpec = Field(default_factory=HumanSpec)
    gaussians: GaussiansSpec = Field(default_factory=GaussiansSpec)
    physics: PhysicsSpec = Field(default_factory=PhysicsSpec)

    @model_validator(mode="before")
    @classmethod
    def _default_generator(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("base") is None and data.get(
                "generator") is None:
            data = {**data, "generator": {"choice": list(DEFAULT_KINDS)}}
        return data

    @field_validator("base")
    @classmethod
    def _base_scene(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        ctx = info.context or {}
        p = Path(value).expanduser()
        if not p.is_absolute():
            p = Path(ctx.get("base_dir") or Path.cwd()) / p
        p = p.resolve()
        try:
            data_file_kind(p)
        except ValueError:
            raise ValueError(f"must be a scene file ending in .yaml, .yml or .json (got "
                             f"{value!r})") from None
        if not p.is_file():
            raise ValueError(f"file not found: {value!r} (looked for {p})")
        try:
            load_scene(p)
        except SceneError as e:
            raise ValueError(f"not a valid scene ({e})") from None
        return str(p)

    @model_validator(mode="after")
    def _budget(self) -> DatasetSpec:
        """The scene file's bounds on work (``rendiff.scenes.spec.MAX_*``) for every clip, checked
        once here rather than failing clip by clip (a drawn ``rate_hz`` is checked per clip)."""
        from rendiff.scenes.spec import check_clip_budget

        rate = self.physics.rate_hz
        rate = rate.value if isinstance(rate, Const) else rate
        check_clip_budget(self.frames, self.size, self.fps,
                          rate if isinstance(rate, int | float) else None)
        return self

    @model_validator(mode="after")
    def _modes(self) -> DatasetSpec:
        if self.base is not None:
            if self.generator is not None:
                raise ValueError("generator: give either 'generator' or 'base', not both")
            for name in _UNUSED_WITH_BASE:
                if name in self.model_fields_set:
                    raise ValueError(f"{name}: not used with 'base' (a base scene keeps its own "
                                     f"entities; randomisable: {', '.join(RANDOMIZABLE)})")
        elif self.randomize is not None:
            raise ValueError("randomize: only used with 'base'")
        return self

    @property
    def kinds(self) -> tuple[str, ...]:
        """The scene families clips can come from (``("base",)`` for a base scene)."""
        if self.generator is None:
            return ("base",)
        return tuple(self.generator.values())

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (the file form): every field written out, except unset
        optional ones and, with ``base``, the sections a base scene does not use."""
        exclude = set(_UNUSED_WITH_BASE) if self.base is not None else set()
        return self.model_dump(mode="json", exclude_none=True, exclude=exclude)

    def to_yaml(self) -> str:
        """The spec as YAML; :func:`load_dataset_spec` reads it back to an equal spec."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100,
                              default_flow_style=None)


# --------------------------------------------------------------------------------------------
# Files


def dataset_spec_from_dict(data: Any, source: str = "<dataset spec>",
                           base_dir: str | Path | None = None) -> DatasetSpec:
    """Validates plain data into a :class:`DatasetSpec`; a relative ``base`` is taken relative to
    ``base_dir`` (default: the working folder). Raises :class:`DatasetSpecError`."""
    if not isinstance(data, dict):
        raise DatasetSpecError(source, "",
                               f"the top level must be a mapping, not {type(data).__name__}")
    try:
        return DatasetSpec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        raise DatasetSpecError(source, *describe_validation_error(e, DatasetSpec)) from None


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    """Reads a data-set spec from ``.yaml``/``.yml``/``.json``; ``base`` is resolved relative to
    the file's folder. Raises :class:`DatasetSpecError` naming the file and field."""
    data, src = read_data_file(path, "data-set specs", DatasetSpecError)
    return dataset_spec_from_dict(data, source=src, base_dir=Path(path).parent)


def save_dataset_spec(spec: DatasetSpec, path: str | Path) -> Path:
    """Writes the spec to YAML or JSON by the file's suffix, atomically."""
    kind = data_file_kind(path, "data-set specs")
    text = json.dumps(spec.to_dict(), indent=2) + "\n" if kind == "json" else spec.to_yaml()
    return write_text(path, text)
