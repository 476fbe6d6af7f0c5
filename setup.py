"""Build of the compiled order-book core (Cython). Metadata lives in pyproject.toml.

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
]

setup(
    ext_modules=cythonize(
        extensions,
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
