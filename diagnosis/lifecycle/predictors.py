"""The process's loaded model versions.

A version's model is loaded on first use, once per process and per version (never at import time
or in ``AppConfig.ready()``). Activating another version takes effect on the next upload, without
a restart: callers look the active version up per X-ray.
"""

import logging
import threading

from dispredo_core.predictor import Predictor

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded = {}  # (ModelVersion pk, artefact path) -> Predictor; a process keeps the few versions it has served.


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
