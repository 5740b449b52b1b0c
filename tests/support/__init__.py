"""What tests share: MNIST files, processes, the GCS emulator, rehearsals."""
