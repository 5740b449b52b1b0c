# The training image for Vertex AI custom jobs (and AI Platform's
# --master-image-uri): TensorFlow 2.15 with CUDA from the official image, plus
# this package. Build and push it with scripts/build_image.py.
# tests/test_image.py rehearses these steps in a venv on every test run.
FROM tensorflow/tensorflow:2.15.0-gpu

WORKDIR /opt/mnist-trainer
COPY requirements.txt setup.py ./
COPY trainer ./trainer
# The image's own TensorFlow stays (a pip TensorFlow would replace its GPU
# build); every other package at the version the lock (requirements.txt)
# holds, so nothing can pull a protobuf that TensorFlow 2.15 cannot use.
RUN grep -v '^tensorflow==' requirements.txt > requirements-image.txt \
    && pip install --no-cache-dir -r requirements-image.txt . \
    && pip check

# Vertex AI appends the job's args (and a tuning trial's --name=value flags).
ENTRYPOINT ["python", "-m", "trainer.task"]
