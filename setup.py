"""The `trainer` package, as `gcloud ai-platform jobs submit training` builds it.

TensorFlow is deliberately not in install_requires: cloud runtimes and the
TensorFlow containers ship their own build (GPU included), and pip must not
replace it. What is here are ranges that keep TensorFlow 2.15 working
whatever else pip resolves: without `protobuf<5`, google-cloud-storage pulls
a protobuf that breaks TensorFlow 2.15 at its first checkpoint. Exact
versions for every install path come from the lock, requirements.txt
(scripts/lock.sh makes it); `pip install '.[tf]'` adds TensorFlow itself.
"""

from setuptools import find_packages
from setuptools import setup

# What TensorFlow 2.15 itself requires of the packages we share with it.
TF_2_15_COMPATIBLE = [
    'numpy>=1.23.5,<2',
    'protobuf>=3.20.3,<5,!=4.21.0,!=4.21.1,!=4.21.2,!=4.21.3,!=4.21.4,'
    '!=4.21.5',
    'absl-py>=1.0.0',
]

setup(
    name='mnist-estimator-trainer',
    version='0.1.0',
    description='MNIST classifiers with TensorFlow Estimators, locally and '
                'on Google Cloud.',
    packages=find_packages(include=['trainer', 'trainer.*']),
    python_requires='>=3.9,<3.12',
    install_requires=TF_2_15_COMPATIBLE + [
        'cloudml-hypertune',
        'google-cloud-storage>=2.7',
    ],
    extras_require={
        'tf': [
            'tensorflow>=2.15,<2.16',
            'tensorflow-estimator>=2.15,<2.16',
        ],
        # Charts of a sweep (trainer.plots) and the predict report.
        'plots': ['matplotlib'],
    },
)
