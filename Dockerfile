# The training image for Vertex AI custom jobs (and AI Platform's
# --master-image-uri): TensorFlow 2.15 with CUDA from the official image, plus
# this package. Build and push it with scripts/build_image.py.
FROM tensorflow/tensorflow:2.15.0-gpu

WORKDIR /opt/mnist-trainer
COPY requirements.txt setup.py ./
COPY trainer ./trainer
# The image's own TensorFlow stays (a pip TensorFlow would replace its GPU
# build); everything else at the versions requirements.txt pins.
RUN grep -v '^tensorflow' requirements.txt > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt . \
    && rm /tmp/requirements.txt

# Vertex AI appends the job's args (and a tuning trial's --name=value flags).
ENTRYPOINT ["python", "-m", "trainer.task"]
