"""Build of the compiled cores (Cython): the order books and the per-frame pipeline. Metadata lives in pyproject.toml.

The Rust Avro encoder is a separate distribution (native/avro, built by maturin); see the
README's development section for why the two compiled parts are packaged apart.
"""
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "atomfast._book",
        sources=["native/book/_book.pyx"],
        extra_compile_args=["-O3"],
    ),
    # the per-frame core: Pipeline and the frame driver's hot path (atomfast.pipeline, atomfast.driver)
    Extension(
        "atomfast._frame",
        sources=["native/frame/_frame.pyx"],
        extra_compile_args=["-O3"],
    ),
    # the capture line reader (atomfast.capture): a recorded line split in place, a Frame per frame
    Extension("atomfast._capture", sources=["native/capture/_capture.pyx"], extra_compile_args=["-O3"]),
    Extension("atomfast._dispatch", sources=["native/dispatch/_dispatch.pyx"], extra_compile_args=["-O3"]),  # the kit's route table, executed (atomfast.kit.dispatch)
    # the book sync's live path: market state, rule check, L2 diff apply (atomfast.kit.booksync)
    Extension("atomfast._booksync", sources=["native/booksync/_booksync.pyx"], extra_compile_args=["-O3"]),
    # a book whose levels the exchange names by id: a message's rows in the common case (atomfast.kit.idlevels)
    Extension("atomfast._idlevels", sources=["native/idlevels/_idlevels.pyx"], extra_compile_args=["-O3"]),
    # picows' listener, compiled against picows' own .pxd (atomfast.feed falls back to Python)
    Extension(
        "atomfast._listener",
        sources=["native/listener/_listener.pyx"],
        extra_compile_args=["-O3"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        # atomfast/_book.pxd: the book module's C interface, cimported by the frame core
        include_path=["."],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
        },
    ),
)
