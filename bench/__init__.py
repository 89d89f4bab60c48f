"""Performance harness (issue 6): the handlers measured as they serve, against the original sample.

Entry points: ``python -m bench.run`` (runner), ``python -m bench.report`` (docs section),
``python -m bench.full_size`` (full-size random-weight builders), ``python -m bench.prepare_device``
(wheels for the lent GPU machine). ``bench/package_throughput.py`` is the packager's (issue 3).
"""
