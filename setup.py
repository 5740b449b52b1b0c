"""The `trainer` package, as `gcloud ai-platform jobs submit training` builds it.

TensorFlow is deliberately not in install_requires: cloud runtimes and the
TensorFlow containers ship their own build (GPU included), and pip must not
replace it. Local installs take exact pins from requirements.txt, or use the
`tf` extra: pip install '.[tf]'.
"""

from setuptools import find_packages
from setuptools import setup

setup(
    name='mnist-estimator-trainer',
    version='0.1.0',
    description='MNIST classifiers with TensorFlow Estimators, locally and '
                'on Google Cloud.',
    packages=find_packages(include=['trainer', 'trainer.*']),
    python_requires='>=3.9,<3.12',
    install_requires=[
        'absl-py',
        'cloudml-hypertune',
        'google-cloud-storage',
    ],
    extras_require={
        'tf': [
            'tensorflow==2.15.1',
            'tensorflow-estimator==2.15.0',
            'numpy<2',
        ],
    },
)
