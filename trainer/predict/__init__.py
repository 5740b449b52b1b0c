"""Prediction: classify digits with an exported SavedModel, and report on it.

`python -m trainer.predict` (see command.py). One job per module:

  request.py     the JSON instances TF Serving, Vertex AI and gcloud take
  readers.py     input files (images, .npy, JSON) and the test set -> batches
  mnist_like.py  warnings for inputs that do not look like MNIST digits
  savedmodel.py  finding and loading the export, running its signatures
  rows.py        the answers as a table or JSON lines, and the accuracy
  report.py      --report: what the model gets wrong (charts need matplotlib)
  command.py     the command line

Importing the package imports no TensorFlow.
"""
