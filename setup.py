# Metadata lives in pyproject.toml; this file only hooks the cffi build of
# the C core (rtransport/_build.py) into setuptools.
from setuptools import setup

setup(
    cffi_modules=["rtransport/_build.py:ffibuilder"],
)
