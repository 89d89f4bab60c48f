"""Deployable stacks that compose the ``mme_constructs`` library."""
