"""Model packager: builds a TorchServe model archive (``<name>-<digest>.tar.gz``) in one streaming pass.

Runs unchanged in the AWS Lambda Python runtime (standard library + boto3 only): the
``ModelArtifact`` custom resource calls :mod:`.lambda_handler`, the ``mme package`` CLI calls
:func:`.core.package`. Modules by concern:

* :mod:`.specs`    weights spec model and validation (huggingface, url, s3, local, none)
* :mod:`.sources`  model source files (dirs or zips), merged and digested
* :mod:`.weights`  the weight files of a spec, planned before any download, from:
  :mod:`.hub` (Hugging Face Hub URLs and pattern selection), :mod:`.http_source`,
  :mod:`.bucket_source` (S3), :mod:`.local_source`; :mod:`.hub_token` reads a Hub token secret
* :mod:`.weight_stream`  one weight file read with digests verified and dropped streams resumed
* :mod:`.time_budget`  the deadline every step checks; :mod:`.download_retry` the backoff policy
* :mod:`.archive`  deterministic streaming tar + gzip writer, the TorchServe ``MANIFEST.json``
* :mod:`.upload`   S3 multipart upload sink (bounded memory, abort + verify on failure)
* :mod:`.core`     the one code path: plan -> digest -> skip or build -> result
* :mod:`.lambda_handler`  the ``custom_resources.Provider`` onEvent handler

Nothing here imports the CDK: importing this package is cheap.
"""

PACKAGER_FORMAT = "mme-packager/1"
"""Version of the archive format; part of every input digest (bump it when bytes would change)."""
