# The training image for Vertex AI custom jobs (and AI Platform's
# --master-image-uri): TensorFlow 2.15 with CUDA from the official image, plus
# this package. Build and push it with scripts/build_image.py.
# tests/test_image.py rehearses these steps in a venv on every test run.
FROM tensorflow/tensorflow:2.15.0-gpu

WORKDIR /opt/mnist-trainer
COPY requirements.txt setup.py ./
COPY trainer ./trainer
# Every package at the version the lock (requirements.txt) holds, the ones we
# test with: TensorFlow 2.15.1 replaces the base image's 2.15.0 (the same
# pip wheel, built for the CUDA 12.2 and cuDNN 8.9 this image provides),
# because 2.15.0 pins an ml-dtypes the lock's TensorFlow cannot use. Then
# pip check, so an inconsistent image fails here and not on the first run.
RUN pip install --no-cache-dir -r requirements.txt . && pip check

# Vertex AI appends the job's args (and a tuning trial's --name=value flags).
ENTRYPOINT ["python", "-m", "trainer.task"]
