"""The model server of the serving image (Dockerfile.serving).

It runs on current TensorFlow, apart from the trainer and its TF 2.15 lock:
serving needs only the SavedModel, not tf.estimator. Nothing here imports
the `trainer` package, whose ranges (numpy<2, protobuf<5) current
TensorFlow cannot meet. See docs/serving.md.
"""
