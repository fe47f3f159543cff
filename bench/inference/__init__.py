"""Inference benchmark: the served ONNX model against the original design of 14 Keras MobileNets.

    .venv/bin/python -m bench.inference                 # the shipped model in models/default
    .venv/bin/python -m bench.inference --artefact DIR   # any artefact directory
    .venv/bin/python -m bench.inference --json out.json  # also write the figures

Served model (``diagnosis.lifecycle.predictors.Predictor``, ONNX Runtime, as a web worker runs it):

- model time for one image: ``predict_pixels`` on prepared pixels, all 14 findings (and CAMs);
- the input guard's time for one image, on the same pixels;
- end to end from PNG bytes for 64, 256 and 1024 px NIH images: ``open_xray`` + ``to_model_pixels``
  + predict;
- DICOM decode time per transfer syntax, next to PNG: ``open_xray`` (header checks, decode, display
  transforms) + ``to_model_pixels`` for each readable file of ``../shared/data/dicom-sample`` (or
  ``DISPREDO_DICOM_SAMPLE``), one row "DICOM <transfer syntax> (<width>x<height>)" per syntax and size;
- throughput at batch 32 (images/s);
- resident memory (VmRSS, peak VmHWM) of a fresh process that has only set up Django, loaded the
  model and scored one image; that process must not import TensorFlow (checked).

Original design, in a separate process so its memory is its own: 14 Keras MobileNet v1 networks
(alpha 1.0, grayscale 100x100, GAP -> Dropout -> Dense(1, sigmoid); untrained, since timing does not
depend on weights), or the artefact's own 14 per-finding .keras files when it has them, run one
after another for one image. The ratio of the two is printed.

Goals reported against: median model time <= 5 ms for all 14 findings, RSS <= 300 MB.
Everything runs on the CPU; other load on the machine makes every figure worse (the load
average is printed).

The parts: ``options`` (the command line, the goals), ``served`` (the served model timed in this
process), ``probes`` (the measuring subprocesses, each ``python -m bench.inference --probe KIND``),
``report`` (the tables) and ``__main__`` (the run, in order).
"""
