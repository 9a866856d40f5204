"""Reference reproduction of "Exploring Representation Learning Through Alternate Lenses" (2021).

Install (Chainer's sdist imports pkg_resources while building, so build without isolation):
    python -m pip install "setuptools<70" wheel && python -m pip install --no-build-isolation -e ".[test]"
"""
from setuptools import setup

setup(
    name="representation-lenses",
    version="0.1.0",
    description="Reproduction of a 2021 thesis: shape counting with saliency, and MNIST adversarial defences",
    packages=["counting", "friendly", "runkit"],
    package_data={"friendly": ["*.cu", "*.h"]},
    python_requires=">=3.9",
    install_requires=[
        "chainer==7.8.1",
        "numpy<2",
        "pillow",
        "shapely>=2",
        "matplotlib",
        "scipy",
    ],
    extras_require={
        "gpu": ["cupy-cuda12x<14"],
        "test": ["pytest"],
    },
)
