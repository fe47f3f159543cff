"""train --distribute: the strategy chosen for the devices there are, and a fit under
``tf.distribute.MirroredStrategy`` on two logical CPU devices."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from mltrain import distribution
from mltrain.distribution import DEVICES_VARIABLE, DistributionError

REPO = Path(__file__).resolve().parents[2]


def test_distribute_without_a_gpu_refuses_rather_than_train_on_the_cpu(monkeypatch):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("This machine has a GPU: --distribute would use it.")
    monkeypatch.delenv(DEVICES_VARIABLE, raising=False)
    with pytest.raises(DistributionError) as refused:
        distribution.strategy(True, 32)
    assert str(refused.value) == (
        "--distribute found no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty). "
        "Check the CUDA installation, name devices in DISPREDO_DISTRIBUTE_DEVICES, or train without --distribute."
    )


def test_the_global_batch_must_divide_among_the_replicas(monkeypatch):
    monkeypatch.setenv(DEVICES_VARIABLE, "/cpu:0, /cpu:1,/cpu:2")
    assert distribution.devices() == ["/cpu:0", "/cpu:1", "/cpu:2"]
    with pytest.raises(DistributionError) as refused:
        distribution.strategy(True, 32)
    assert str(refused.value) == "--batch-size 32 does not divide among 3 replicas; give a multiple of 3 (it is the global batch)."


def test_one_device_is_said_and_trained_on_without_replicas(monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv(DEVICES_VARIABLE, "/cpu:0")
    out = StringIO()
    chosen = distribution.strategy(True, 32, out)
    assert isinstance(chosen, tf.distribute.OneDeviceStrategy) and chosen.num_replicas_in_sync == 1
    assert out.getvalue() == "--distribute: one device (/cpu:0), so training runs there without replicas.\n"
    assert distribution.strategy(False, 32) is tf.distribute.get_strategy()


# Logical devices must be set before TensorFlow starts, so the two-device fit runs in its own process.
TWO_DEVICES = r"""
import io, json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import django
django.setup()
import dataclasses
import numpy as np
from pathlib import Path
from dispredo_core.findings import FINDINGS
from mltrain import dataset
from mltrain.checkpoints import Member
from mltrain.export import AGREEMENT_TOLERANCE, export_onnx, onnx_session, run_onnx
from mltrain.fit import fit_network
from mltrain.members import NetworkMember
from mltrain.networks import WeightedBinaryCrossentropy, predict
from mltrain.tests.helpers import SIZE, make_preprocessed, tiny_config

tmp = Path(sys.argv[1])
make_preprocessed(tmp / "data", balanced=False)
train, val = (dataset.load_split(tmp / "data", name) for name in ("train", "val"))
results = {}
for distribute in (False, True):
    config = dataclasses.replace(tiny_config(tmp), epochs=2, patience=2, distribute=distribute)
    out = io.StringIO()
    network, fit = fit_network(
        config, len(FINDINGS), WeightedBinaryCrossentropy([1.0] * len(FINDINGS)),
        train.pixels, train.labels, val.pixels, val.labels, FINDINGS, "tiny", out, 1,
        member=Member(tmp / f"member-{distribute}"),  # epoch checkpoints are written under the strategy too
    )
    probabilities = predict([network], val.pixels)
    served = probabilities
    if distribute:
        path = export_onnx([NetworkMember(network)], SIZE, tmp / "model.onnx")
        served, _ = run_onnx(onnx_session(path), val.pixels)
    results[str(distribute)] = {
        "said": [line for line in out.getvalue().splitlines() if line.startswith("--distribute")],
        "replicas": fit["replicas"], "optimizer_steps": fit["optimizer_steps"], "epochs_run": fit["epochs_run"],
        "kept": Member(tmp / f"member-{distribute}").finished(),
        "probabilities": probabilities.tolist(),
        "export_difference": float(np.abs(served - probabilities).max()), "tolerance": AGREEMENT_TOLERANCE,
    }
print(json.dumps(results))
"""


@pytest.mark.slow
def test_a_network_fits_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    env = {
        **os.environ, DEVICES_VARIABLE: "/cpu:0,/cpu:1", "TF_CPP_MIN_LOG_LEVEL": "3",
        "DJANGO_SETTINGS_MODULE": "dispredo_site.settings", "DISPREDO_DATA_DIR": str(tmp_path / "site"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES, str(tmp_path)], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    single, mirrored = results["False"], results["True"]

    assert single["said"] == [] and single["replicas"] == 1
    assert mirrored["said"] == ["--distribute: 2 replicas (/cpu:0, /cpu:1), 4 images each per step."]
    assert mirrored["replicas"] == 2
    # --batch-size is the global batch: two replicas take the steps one device takes (28 images // 8, twice).
    assert mirrored["optimizer_steps"] == single["optimizer_steps"] == 6
    assert mirrored["epochs_run"] == 2 and mirrored["kept"]
    # A valid model: 14 probabilities per validation image, served by its ONNX export as Keras computes them.
    import numpy as np

    probabilities = np.array(mirrored["probabilities"])
    assert probabilities.shape == (20, 14) and np.all((probabilities > 0) & (probabilities < 1))
    assert mirrored["export_difference"] <= mirrored["tolerance"]
    # Close to the single-device fit, not equal: each replica normalises its half batch with its own
    # batch statistics and draws its own augmentation.
    assert 0 < np.abs(probabilities - np.array(single["probabilities"])).max() < 0.01
