"""``mme ui``: a click-to-edit web page for the editing flow (select -> erase | replace).

One small page served on 127.0.0.1 by the standard library's HTTP server; the models are reached
only through the client library (:mod:`mme.client`), so the page works the same against the local
TorchServe (``--local``) and a deployed endpoint (``--endpoint`` / ``--stack-name``).

Modules: :mod:`.command` (the CLI subcommand), :mod:`.server` (HTTP routes, security checks,
request limits), :mod:`.editor` (the operations the page asks for, on the client),
:mod:`.jobs` (background jobs with progress the page polls), :mod:`.store` (the session's images,
masks and history, in memory, bounded), :mod:`.masks` (mask overlay and shrinking);
``static/`` holds the page (HTML, CSS, JavaScript; no external fonts, scripts or CDNs).
"""
