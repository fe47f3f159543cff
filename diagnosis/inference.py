"""Scoring X-rays with the active model version.

The model is loaded on first use, once per process and per version, from the active
``ModelVersion`` (never at import time or in ``AppConfig.ready()``). Serving uses ONNX Runtime
on the artefact's exported graph (``diagnosis.serving``), so a web process never imports TensorFlow.
Activating another version takes effect on the next upload, without a restart.
"""

import logging
import threading
from dataclasses import dataclass

import numpy as np

from .artefact import ArtefactError, read_metadata, resolve
from .guard import InputGuard
from .imaging import to_model_pixels
from .serving import INPUT_NAME, ONNX_FILE, open_session, run_batch

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded = {}  # ModelVersion pk -> Predictor; a process keeps the few versions it has served.


@dataclass(frozen=True)
class Scores:
    """One X-ray's output: probabilities and class activation maps, in FINDINGS order."""

    probabilities: np.ndarray  # float32 [14]
    cams: np.ndarray  # float32 [h, w, 14]


class Predictor:
    """A loaded serving model: ``predict`` takes PIL images and returns ``Scores``."""

    def __init__(self, location, threads=None):
        self.metadata = read_metadata(location)
        self.input_size = int(self.metadata["input_size"])
        serving = self.metadata.get("serving", {})
        path = resolve(location) / serving.get("file", ONNX_FILE)
        try:
            self.session = open_session(path, threads)
        except Exception as exc:  # ONNX Runtime raises its own classes, not OSError/ValueError.
            raise ArtefactError(f"Cannot load the serving model {path}: {exc}") from exc
        self.input_name = serving.get("input", INPUT_NAME)
        self.guard = None
        if self.metadata.get("guard"):
            try:
                self.guard = InputGuard.load(resolve(location) / self.metadata["guard"]["file"])
            except ValueError as exc:
                raise ArtefactError(f"Cannot load the input guard of {path.parent}: {exc}") from exc

    def pixels(self, image):
        return to_model_pixels(image, self.input_size)

    def accepts(self, pixels):
        """Whether the input guard finds ``pixels`` [S, S] like the frontal chest X-rays the model
        learnt from (always, for a model without a guard)."""
        return self.guard is None or self.guard.accepts(pixels)

    def predict_pixels(self, batch):
        """Scores for a uint8 batch [N, S, S]."""
        batch = np.asarray(batch, dtype=np.float32)[..., np.newaxis]
        try:
            probabilities, cams = run_batch(self.session, batch, self.input_name)
        except Exception as exc:  # ONNX Runtime's own error classes
            raise RuntimeError(f"The model failed on this image: {exc}") from exc
        return [Scores(p, c) for p, c in zip(probabilities, cams)]

    def predict(self, image=None, pixels=None):
        """Scores of a PIL ``image``, or of its ``pixels`` when already computed."""
        pixels = self.pixels(image) if pixels is None else pixels
        return self.predict_pixels(pixels[np.newaxis])[0]


def predictor_for(version):
    """The process's predictor for ``version``, loading it on first use.

    Keyed by id and artefact location, so a row id reused for another artefact (a test database,
    a deleted and re-registered version) never gets the model loaded for the old one."""
    key = (version.pk, str(version.artefact_path))
    predictor = _loaded.get(key)
    if predictor is None:
        with _lock:
            predictor = _loaded.get(key)
            if predictor is None:
                logger.info("Loading model version %s from %s", version.name, version.artefact_path)
                predictor = Predictor(version.artefact_path)
                _loaded[key] = predictor
    return predictor


def clear_cache():
    """Forget loaded models (tests; an artefact replaced on disk)."""
    with _lock:
        _loaded.clear()
