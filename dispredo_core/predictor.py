"""A loaded serving model: an artefact's ONNX graph under ONNX Runtime, with its input guard.

Serving uses ONNX Runtime on the artefact's exported graph (``dispredo_core.serving``), so a web
process never imports TensorFlow.
"""

from dataclasses import dataclass

import numpy as np

from dispredo_core.artefact import ArtefactError, read_metadata, resolve
from dispredo_core.guard import InputGuard
from dispredo_core.imaging import to_model_pixels
from dispredo_core.serving import INPUT_NAME, ONNX_FILE, open_session, run_batch


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

    def probabilities(self, pixels, batch=64):
        """float64 [N, 14]: the probabilities for uint8 ``pixels`` [N, S, S], ``batch`` at a time."""
        scores = [s for start in range(0, len(pixels), batch) for s in self.predict_pixels(pixels[start : start + batch])]
        return np.array([s.probabilities for s in scores], dtype=np.float64).reshape(len(pixels), -1)

    def predict(self, image=None, pixels=None):
        """Scores of a PIL ``image``, or of its ``pixels`` when already computed."""
        pixels = self.pixels(image) if pixels is None else pixels
        return self.predict_pixels(pixels[np.newaxis])[0]
