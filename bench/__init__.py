"""Benchmarks to run by hand from the repository root, each as a module: ``python -m bench.load``,
``python -m bench.inference``, ... (bench/README.md says what each measures).

They import the project as packages (``dispredo_core``, ``dispredo_site.testing``...) and their own
helpers from ``bench._common``; nothing here is imported by the application or its tests' fixtures.
"""
