"""Reference reproduction of "Exploring Representation Learning Through Alternate Lenses" (2021).

Install (Chainer's sdist imports pkg_resources while building, so build without isolation):
    python -m pip install "setuptools<70" wheel && python -m pip install --no-build-isolation -e ".[test]"
"""
from setuptools import setup

setup(
    name="representation-lenses",
    version="0.1.0",
    description="Reproduction of a 2021 thesis: shape counting with saliency, and MNIST adversarial defences",
    packages=["counting", "friendly", "friendly.benchmarks", "friendly.functions", "runkit"],
    package_data={"friendly.functions": ["*.cu", "*.h"]},
    python_requires=">=3.10",
    install_requires=[
        "chainer==7.8.1",
        # NumPy 1.26 where it has wheels (Python < 3.13), NumPy 2 where it has none; Chainer
        # runs on NumPy 2 through runkit/chainer_compat.py
        'numpy<2; python_version<"3.13"',
        'numpy>=2; python_version>="3.13"',
        "pillow",
        "shapely>=2",
        "matplotlib",
        "scipy",
    ],
    extras_require={
        # CuPy 13 supports NumPy 1.26; CuPy 14 needs NumPy 2 (and has no cuDNN)
        "gpu": ['cupy-cuda12x<14; python_version<"3.13"',
                'cupy-cuda12x>=14; python_version>="3.13"'],
        "test": ["pytest"],
    },
)
