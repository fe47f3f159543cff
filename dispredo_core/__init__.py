"""The ML contract of Dispredo, with no Django in it: the 14 findings, the serving contract and the
model artefact, the pixel rules (imaging, DICOM), the input guard, reliability and operating points,
the paired comparison and the ONNX predictor. The web app and ``mltrain`` both build on it."""
