"""Small NIH data folders built in tmp_path from the real sample (never from copies in the repository).

The sample is read from ``DISPREDO_NIH_SAMPLE`` or ``../shared/data/nih-sample`` beside the
repository; tests that need it skip, saying so, when it is absent.
"""

import pytest

from mltrain.preprocess import preprocess
from mltrain.tests.nih_layout import LABEL_FILE, SAMPLE, NihSample, build_small

@pytest.fixture(scope="session")
def nih_sample():
    if not (SAMPLE / LABEL_FILE).is_file():
        pytest.skip(f"NIH sample not found at {SAMPLE}; set DISPREDO_NIH_SAMPLE to its folder to run this test.")
    return NihSample(SAMPLE)


@pytest.fixture
def small_nih(tmp_path, nih_sample):
    """The small mixed data folder (see ``build_small``), for tests that change it."""
    return build_small(tmp_path / "nih", nih_sample)


@pytest.fixture(scope="session")
def small_preprocessed(tmp_path_factory, nih_sample):
    """``(data folder, output folder)``: the small mixed data folder preprocessed once at 16 px
    (grouped split, seed 42), for tests that only read them."""
    root = tmp_path_factory.mktemp("small")
    data_dir = build_small(root / "nih", nih_sample)
    preprocess(data_dir, root / "out", size=16, workers=1, seed=42, progress=False)
    return data_dir, root / "out"


@pytest.fixture
def preprocessed(tmp_path, nih_sample):
    """Preprocessed data (16 px) of 200 sample images of 64 px, for balancing."""
    data_dir = nih_sample.build(tmp_path / "nih", nih_sample.pick(64, 200))
    out = tmp_path / "preprocessed"
    preprocess(data_dir, out, size=16, workers=1, seed=42, progress=False)
    return out


@pytest.fixture
def data_dir(tmp_path, settings):
    """A tiny unbalanced preprocessed folder, with models and mltrain data under ``tmp_path``
    (``test_train`` overrides it with balanced sets for per-finding training)."""
    from mltrain.tests.helpers import make_preprocessed

    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    settings.DISPREDO_MLTRAIN_DIR = tmp_path / "mltrain"
    return make_preprocessed(tmp_path / "data", balanced=False)
