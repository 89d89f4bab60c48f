"""The library's version: one place, read by ``pyproject.toml`` (``[tool.setuptools.dynamic]``) and
exported as ``mme_constructs.__version__``."""

__version__ = "0.2.0"
