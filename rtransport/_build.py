"""cffi build script for the rtransport C core (out-of-line API mode).

Used by setup.py (``cffi_modules=["rtransport/_build.py:ffibuilder"]``);
it can also be run directly to build ``rtransport/_rt*.so`` in place::

    python3 rtransport/_build.py

Environment:
    RT_SANITIZE=1   build with -fsanitize=address,undefined (-O1 -g)
    RT_DEBUG=1      build with -O0 -g
    RT_EXTRA_CFLAGS extra compiler flags (whitespace separated)
"""

import glob
import os
import shlex

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)


def _rel(path, absolute=False):
    """Path relative to the current directory when it lies below it.

    setuptools prefers relative source paths (they end up in SOURCES.txt);
    when this script is run from elsewhere the absolute path is kept.
    """
    if absolute:
        return path
    rel = os.path.relpath(path, os.getcwd())
    return path if rel.startswith("..") else rel


def _flags():
    compile_args = [
        "-std=gnu11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-fvisibility=hidden",
        "-D_GNU_SOURCE",
    ]
    link_args = []
    if os.environ.get("RT_DEBUG") == "1":
        compile_args = [a for a in compile_args if not a.startswith("-O")]
        compile_args += ["-O0", "-g"]
    if os.environ.get("RT_SANITIZE") == "1":
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        compile_args = [a for a in compile_args if not a.startswith("-O")]
        compile_args += san + ["-O1", "-g"]
        link_args += san + ["-O1", "-g"]
    extra = os.environ.get("RT_EXTRA_CFLAGS")
    if extra:
        compile_args += shlex.split(extra)
    return compile_args, link_args


def _make_builder(absolute=False):
    ffi = FFI()
    with open(os.path.join(_HERE, "_cdef.h"), encoding="utf-8") as f:
        ffi.cdef(f.read())
    sources = sorted(glob.glob(os.path.join(_ROOT, "csrc", "*.c")))
    compile_args, link_args = _flags()
    ffi.set_source(
        "rtransport._rt",
        '#include "rtransport/rt.h"\n',
        sources=[_rel(s, absolute) for s in sources],
        include_dirs=[_rel(os.path.join(_ROOT, "csrc", "include"), absolute),
                      _rel(os.path.join(_ROOT, "csrc"), absolute)],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        libraries=["pthread", "m"],
    )
    return ffi


ffibuilder = _make_builder()

if __name__ == "__main__":
    # Build in place: the extension lands next to this file.
    # (ffi.compile() changes directory, hence absolute paths.)
    ffibuilder = _make_builder(absolute=True)
    ffibuilder.compile(tmpdir=os.path.join(_ROOT, "build", "cffi"),
                       verbose=True)
    import shutil
    built = glob.glob(os.path.join(_ROOT, "build", "cffi", "rtransport", "_rt*.so"))
    if built:
        # A stale extension with another suffix (e.g. _rt.abi3.so from
        # `pip install -e .`) could shadow the new one: remove them all.
        for old in glob.glob(os.path.join(_HERE, "_rt*.so")):
            os.remove(old)
    for so in built:
        shutil.copy2(so, _HERE)
        print("copied", os.path.basename(so), "->", _HERE)
