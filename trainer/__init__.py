"""MNIST classifiers with TensorFlow Estimators, locally and on Google Cloud."""
