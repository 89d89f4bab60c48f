"""The serving image on this machine: its lock files, its Debian base, the container engine that
builds and runs it, and the build itself (``make image``, ``make lock``, ``mme image ...``).

- :mod:`mme.serving_image.layout`: where the image's files are and the names every part uses;
- :mod:`mme.serving_image.lockfile`: the requirement and lock files, checked before a build;
- :mod:`mme.serving_image.engine`: podman or docker, found, installed or configured;
- :mod:`mme.serving_image.base_image`: the Dockerfile's Debian base, made with mmdebstrap where
  its registry cannot be reached;
- :mod:`mme.serving_image.build`: the build, with a one-line reason when it fails.
"""
