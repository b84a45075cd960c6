"""The model registry: which ``model_name`` (the webhook's query parameter) means which
config, weights and SAM checkpoint.

A registry file (YAML or JSON; relative paths are relative to the file)::

    models:
      pth-mmseg-coralscopsegformer:
        config: configs/dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py
        weights: work_dirs/finegrained/best_mIoU_epoch_140.pth
        sam_checkpoint: checkpoints/vit_b_coralscop.pth   # optional: semantic regions only
        version: "2026-05"      # optional; default: a fingerprint of the three files
        min_threshold: 0.05     # optional instance-stage settings (coralseg infer's flags)
        unsure_threshold: 0.2
        min_area: 500           # model pixels (see RefineSettings); also min_thickness,
                                # neck_ratio
        score_threshold: 0.0    # shapes below this score are not uploaded
        stages: [annotation]    # optional: job stages to pre-annotate (annotation,
                                # validation, acceptance); default annotation only

Predictors are loaded on first use and kept per process (:meth:`ModelRegistry.predictor`).
The *version* is part of a run's key: a job annotated by one version is annotated again only
by another version.

A library error about settings (:attr:`coral_core.errors.CoralsegError.settings`) is told to
the bridge's user as the keys of the model's entry that change it (:func:`entry_hint`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coral_core.errors import CoralsegError, setting_hint
from coral_core.inference.instances import RefineSettings
from cvat_bridge.triggers import DEFAULT_STAGES

JOB_STAGES = ("annotation", "validation", "acceptance")
# the instance-stage settings an entry may give, with the type each is read as
REFINE_KEYS: dict[str, type] = {
    "min_threshold": float,
    "unsure_threshold": float,
    "min_area": int,
    "min_thickness": float,
    "neck_ratio": float,
}
ENTRY_KEYS = frozenset(
    {"config", "weights", "sam_checkpoint", "version", "score_threshold", "stages", *REFINE_KEYS}
)


def entry_hint(error: BaseException, model_name: str) -> str:
    """``" (in the registry entry of model 'm', change min_area)"``: the entry's keys that
    change the settings ``error`` is about; ``""`` when none does."""
    return setting_hint(
        error,
        lambda setting: setting if setting in ENTRY_KEYS else None,
        f"in the registry entry of model {model_name!r}, change",
    )


class UnknownModelError(CoralsegError):
    """A ``model_name`` that the registry does not have."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model; paths are absolute."""

    name: str
    config: Path
    weights: Path
    sam_checkpoint: Path | None = None
    explicit_version: str | None = None
    settings: RefineSettings = field(default_factory=RefineSettings)
    score_threshold: float | None = None
    stages: tuple[str, ...] = DEFAULT_STAGES

    @property
    def version(self) -> str:
        """``explicit_version``, else a fingerprint of the files' paths, sizes and dates."""
        if self.explicit_version:
            return self.explicit_version
        digest = hashlib.sha256()
        for path in (self.config, self.weights, self.sam_checkpoint):
            if path is None:
                continue
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:16]

    def check_files(self) -> None:
        for what, path in (
            ("config", self.config),
            ("weights", self.weights),
            ("sam_checkpoint", self.sam_checkpoint),
        ):
            if path is not None and not path.is_file():
                raise CoralsegError(f"model {self.name!r}: its {what} {path} does not exist")


class ModelRegistry:
    """The registered models, with their predictors loaded lazily and cached."""

    def __init__(self, specs: dict[str, ModelSpec], device: str = "cpu") -> None:
        self.specs = dict(specs)
        self.device = device
        self._predictors: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path, device: str = "cpu") -> ModelRegistry:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise CoralsegError(f"cannot read the model registry {path}: {err.strerror}") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as err:
            raise CoralsegError(
                f"the model registry {path} is not valid YAML/JSON: {err}"
            ) from None
        models = (data or {}).get("models") if isinstance(data, dict) else None
        if not isinstance(models, dict) or not models:
            raise CoralsegError(
                f"the model registry {path} needs a 'models:' mapping of model names to "
                "config/weights entries"
            )
        return cls(
            {name: _spec(name, entry, path.parent) for name, entry in models.items()}, device
        )

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.names) or "none"
            raise UnknownModelError(
                f"unknown model_name {name!r}: this bridge serves {known}; fix the webhook URL's "
                "model_name or add the model to the registry file"
            ) from None

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._predictors)

    def predictor(self, name: str):
        """The :class:`~coral_core.inference.pipeline.TwoStagePredictor` of ``name``."""
        spec = self.spec(name)
        with self._lock:
            cached = self._predictors.get(name)
            if cached is not None and cached[0] == spec.version:
                return cached[1]
            from coral_core.inference.pipeline import TwoStagePredictor

            spec.check_files()
            predictor = TwoStagePredictor.from_files(
                spec.config,
                spec.weights,
                sam_checkpoint=spec.sam_checkpoint,
                device=self.device,
                settings=spec.settings,
            )
            self._predictors[name] = (spec.version, predictor)
            return predictor


def _spec(name: str, entry: Any, base: Path) -> ModelSpec:
    if not isinstance(entry, dict) or "config" not in entry or "weights" not in entry:
        raise CoralsegError(f"model {name!r} in the registry needs 'config' and 'weights' paths")

    def path(key: str) -> Path | None:
        value = entry.get(key)
        if not value:
            return None
        resolved = Path(str(value)).expanduser()
        return resolved if resolved.is_absolute() else (base / resolved).resolve()

    settings = _refine_settings(name, entry)
    threshold = entry.get("score_threshold")
    if threshold is not None and not 0 <= float(threshold) <= 1:
        raise CoralsegError(f"model {name!r}: score_threshold must be in [0, 1], got {threshold}")
    stages = entry.get("stages", list(DEFAULT_STAGES))
    if isinstance(stages, str):
        stages = [stages]
    if not stages or not set(stages) <= set(JOB_STAGES):
        raise CoralsegError(
            f"model {name!r}: stages must be a list of {', '.join(JOB_STAGES)}, got {stages!r}"
        )
    version = entry.get("version")
    return ModelSpec(
        name=name,
        config=path("config"),
        weights=path("weights"),
        sam_checkpoint=path("sam_checkpoint"),
        explicit_version=str(version) if version not in (None, "") else None,
        settings=settings,
        score_threshold=None if threshold is None else float(threshold),
        stages=tuple(dict.fromkeys(stages)),
    )


def _refine_settings(name: str, entry: dict) -> RefineSettings:
    """The instance-stage settings of an entry, checked by ``RefineSettings`` itself."""
    values: dict[str, float] = {}
    for key, kind in REFINE_KEYS.items():
        if key in entry:
            try:
                values[key] = kind(entry[key])
            except (TypeError, ValueError):
                raise CoralsegError(f"model {name!r}: {key} must be a number") from None
    try:
        return RefineSettings(**values)
    except CoralsegError as err:
        # the sentence names the entry's keys; the settings stay behind so that the command
        # line that started the bridge adds no options of its own
        raise CoralsegError(
            f"model {name!r} in the registry: {err}{entry_hint(err, name)}"
        ) from None
