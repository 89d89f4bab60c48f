"""The subcommands of the ``mme`` console script (:mod:`mme.cli`), one module per job.

:mod:`.errors`       exit statuses and how a failure becomes one stderr line (the only place)
:mod:`.arg_types`    argparse value types (points, boxes, seeds, ports, ...)
:mod:`.targets`      where requests go (``--endpoint``/``--stack-name``/``--local``) -> a backend
:mod:`.terminal`     what a slow command shows on a terminal (a spinner, a rewritten status line)
:mod:`.edit`         ``mme select``, ``mme erase``, ``mme replace``
:mod:`.local`        ``mme local up|down|status``
:mod:`.package`      ``mme package``
:mod:`.cost`         ``mme cost``
"""
