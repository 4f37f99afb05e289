"""The motion model on the command line: ``--pipeline.model.motion hexplane --pipeline.model.motion.grid-lr X``.

tyro parses the ``motion`` field of the model configs through :data:`MotionChoice`: one flat set of flags, the union of
every motion model's fields (each shown once, its help prefixed with the model it belongs to), plus the selector
``--pipeline.model.motion {None,som,hexplane,marbles,static}`` (None: the method's own model). Flags of the method's
model take the method's defaults; the others take their model's defaults. tyro fills a :class:`MotionFlags` value; the
model config turns it into the chosen model's ordinary config (``ShapeOfMotionConfig``, ...) when it is constructed
(:func:`resolve_motion` in its ``__post_init__``), so config.yml, ns-eval/ns-render/ns-viewer and Python use see no
difference. The help of each flag is the docstring under the model's field, as tyro reads it for any config.

Why not a tyro union (subcommands such as ``motion:som``)? In tyro 1.0.17 a union branch's flags exist only after its
subcommand is named, so today's ``ns-train dynsplat-som --pipeline.model.motion.bases-lr 1e-3 dynsplat-dnerf ...``
would fail; tyro's fix for that (``CascadeSubcommandArgs`` with implicit subcommand selection) only acts when set on
the whole method, where it crashes on the clash between ns-train's ``--data`` and the dataparsers' ``--data``.
With flat flags there is no order to learn: the selector and the flags go anywhere before the dataparser subcommand.

Motion models of other packages are selectable too: the model of every registered method (see :func:`motion_configs`).
Nothing is built at import (nerfstudio imports every plugin for every ns-* command): tyro calls
:func:`motion_flags_type` when it builds a parser.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from typing import Annotated, Any, Literal, Optional, get_type_hints

import tyro

from dynsplat_ns.errors import DynsplatConfigError
from dynsplat_ns.motion.base import MotionModelConfig

#: Flag of the selector (the flat fields' prefix).
SELECTOR_FLAG = "--pipeline.model.motion"


def motion_configs() -> dict[str, type[MotionModelConfig]]:
    """The selectable motion models: selector value → config class.

    Every imported :class:`MotionModelConfig` subclass that names itself (``choice_name``; the built-in ones, which
    :mod:`dynsplat_ns.motion` imports), sorted by name, then the model of every other registered nerfstudio method (a
    plugin's own model, e.g. examples/custom_motion.py), named by its ``choice_name`` or after its class
    (``VelocityMotionConfig`` → ``velocity``). Methods are read from nerfstudio's method list only where ns-train
    already loaded it (never imported here)."""
    import dynsplat_ns.motion  # noqa: F401  (the built-in models)

    named = {cls.choice_name: cls for cls in _subclasses(MotionModelConfig) if cls.__dict__.get("choice_name")}
    configs: dict[str, type[MotionModelConfig]] = dict(sorted(named.items()))
    methods = getattr(sys.modules.get("nerfstudio.configs.method_configs"), "all_methods", {})
    for config in methods.values():
        motion = getattr(getattr(getattr(config, "pipeline", None), "model", None), "motion", None)
        cls = type(motion)
        if not isinstance(motion, MotionModelConfig) or not dataclasses.is_dataclass(cls) or cls in configs.values():
            continue
        stem = re.sub(r"(Motion)?(Model)?Config$", "", cls.__name__) or cls.__name__
        name = cls.choice_name or re.sub(r"(?<!^)(?=[A-Z])", "-", stem).lower()
        configs[name if name not in configs else f"{cls.__module__}.{cls.__name__}"] = cls
    return configs


def _subclasses(cls: type) -> list[type]:
    """Every subclass of ``cls`` defined so far, depth first."""
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def _field_docs(cls: type) -> dict[str, str]:
    """The help text of each field of a config class (the docstring under it), as tyro reads it for any config."""
    spec = tyro.constructors.ConstructorRegistry.get_struct_spec(
        tyro.constructors.StructTypeInfo.make(cls, tyro.constructors.MISSING_NONPROP, False)
    )
    docs: dict[str, str] = {}
    for item in getattr(spec, "fields", ()):
        text = item.helptext() if callable(item.helptext) else item.helptext
        if text:
            docs[item.name] = " ".join(str(text).split())
    return docs


def _default(cls: type, name: str) -> Any:
    """A config class's default value of a field (dataclasses.MISSING if it has none)."""
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def build_motion_config(values: dict[str, Any]) -> MotionModelConfig:
    """The chosen model's config from the parsed flat flags.

    A flag counts as set when its value differs from its default: the method's default for its own model's fields
    (tyro reads them from the method's config; compared here with that model's class defaults), else the default of
    the first model that has the field (the flag class's default). Switching models, a field both models have (e.g.
    ``static_warmup_steps``) takes the chosen model's default unless set.

    Args:
        values: every flat field (``_target`` of the method's model, ``model`` the selector, the models' fields).

    Raises:
        DynsplatConfigError: a flag of a model other than the chosen one was set, or there is no model to build.
    """
    configs = motion_configs()
    values = dict(values)
    target, name = values.pop("_target", None), values.pop("model", None)
    default_cls = next((c for c in configs.values() if _default(c, "_target") is target), None)
    chosen = configs[name] if name is not None else default_cls
    if chosen is None:
        raise DynsplatConfigError(f"{SELECTOR_FLAG}: this method's motion model ({target}) is not a dataclass "
                                  f"subclass of MotionModelConfig; choose one of {sorted(configs)}")  # fmt: skip
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        owners = [c for c in configs.values() if key in _init_fields(c)]
        reference = default_cls if default_cls in owners else owners[0]
        unset = value == _default(reference, key)
        if chosen in owners:
            if not (unset and chosen is not default_cls):
                kwargs[key] = value
        elif not unset:
            flag, owner_names = f"{SELECTOR_FLAG}.{key.replace('_', '-')}", "/".join(map(_name_of, owners))
            raise DynsplatConfigError(
                f"{flag} is a flag of the {owner_names} motion model, but the motion model is {_name_of(chosen)} "
                f"(choose with {SELECTOR_FLAG} NAME)"
            )
    return chosen(**kwargs)


def _init_fields(cls: type) -> set[str]:
    """The command-line fields of a motion config class."""
    return {f.name for f in dataclasses.fields(cls) if f.init and f.name != "_target"}


def _name_of(cls: type) -> str:
    return next(k for k, v in motion_configs().items() if v is cls)


def motion_flags_type() -> type:
    """The flat flag class tyro parses ``motion`` with (rebuilt only when the set of motion models changes)."""
    return _flags_type(tuple(motion_configs().items()))


@functools.cache
def _flags_type(configs: tuple[tuple[str, type], ...]) -> type:
    names = tuple(name for name, _ in configs)
    fields: list[tuple[str, Any, Any]] = [
        ("_target", type, dataclasses.field(default=type(None), metadata={"help": "Motion model class."})),
        ("model", Annotated[Optional[Literal[names]], tyro.conf.arg(name="")],  # noqa: UP045 - Literal[] built here
         dataclasses.field(default=None, metadata={"help": "Motion model: " + ", ".join(names) + ". None: the "
                           "method's own. The flags below belong to the models named in brackets; set only the "
                           "chosen model's (the others' are an error)."})),
    ]  # fmt: skip
    owners: dict[str, list[str]] = {}
    for name, cls in configs:
        for key in sorted(_init_fields(cls), key=[f.name for f in dataclasses.fields(cls)].index):
            owners.setdefault(key, []).append(name)
    for key, names_of_key in owners.items():
        cls = dict(configs)[names_of_key[0]]
        # a field of every model (static_warmup_steps): typed and documented as the base class has it
        typed = MotionModelConfig if key in _init_fields(MotionModelConfig) else cls
        doc = _field_docs(typed).get(key, "")
        prefix = "" if typed is MotionModelConfig else f"[{', '.join(names_of_key)}] "
        spec = dataclasses.field(default_factory=functools.partial(_default, cls, key), metadata={"help": prefix + doc})
        fields.append((key, get_type_hints(typed)[key], spec))
    return dataclasses.make_dataclass("MotionFlags", fields, bases=(MotionFlags,))


class MotionFlags:
    """Base of the flat flag class tyro fills from the command line; :meth:`build` makes the chosen model's config
    (the model configs' ``motion`` field is turned into it when the model config is constructed, see
    :func:`resolve_motion`)."""

    def build(self) -> MotionModelConfig:
        """The chosen model's config (:func:`build_motion_config` of the parsed flags)."""
        return build_motion_config({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


def resolve_motion(motion: MotionModelConfig | MotionFlags) -> MotionModelConfig:
    """``motion`` as a model config: parsed flat flags are built into the chosen model's config."""
    return motion.build() if isinstance(motion, MotionFlags) else motion


#: Annotation of a model config's ``motion`` field: a MotionModelConfig, parsed from flat flags (see module docstring).
MotionChoice = Annotated[MotionModelConfig, tyro.conf.arg(constructor_factory=motion_flags_type)]
