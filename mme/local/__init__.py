"""The endpoint, locally: ``mme local up|down|status`` and the pieces the tests and benches use.

One job per module, imported in this order (none imports a later one, and none imports
:mod:`mme.client`, which builds on this package):

- :mod:`~mme.local.protocol`: the header names the endpoint, its clients and the container share;
- :mod:`~mme.local.processes`: free ports, process groups, stopping a group until none of it is left;
- :mod:`~mme.local.state`: the state directory, ``local.json``, its lock, attaching to what it records;
- :mod:`~mme.local.torchserve`: a TorchServe process tree on 127.0.0.1 (start, keys, calls, stop);
- :mod:`~mme.local.container_config`: the serving image's TorchServe settings, composed as the toolkit composes them;
- :mod:`~mme.local.container_api`: the multi-model container API SageMaker's agent calls;
- :mod:`~mme.local.sagemaker_container`: the virtual environment's TorchServe started as the image starts it;
- :mod:`~mme.local.image_container`: the serving image run by podman or docker as SageMaker runs it;
- :mod:`~mme.local.emulator`: what SageMaker does in front of the container (load on first use,
  unload under memory pressure, counters);
- :mod:`~mme.local.endpoint`: ``InvokeEndpoint`` over HTTP on 127.0.0.1 in front of the emulator;
- :mod:`~mme.local.packaging`: the enabled models, their weights and their archives;
- :mod:`~mme.local.mode`: ``up``, ``down``, ``status``.
"""
