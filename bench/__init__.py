"""Performance harness: the handlers measured as they serve, against the original sample.

Entry points: ``python -m bench.run`` (runner), ``python -m bench.report`` (docs sections),
``python -m bench.full_size`` (full-size random-weight builders), ``python -m bench.prepare_device``
(wheels for a GPU machine whose Python lacks the serving packages), ``python -m bench.cold_start``
and ``python -m bench.load`` (the local endpoint), ``bench/package_throughput.py`` (the packager).
"""
