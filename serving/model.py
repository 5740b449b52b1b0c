"""The SavedModel the server answers with: loaded once, run per request.

Loading reads AIP_STORAGE_URI through tf.io.gfile, so a gs:// path works
as a local one (TensorFlow's own Cloud Storage filesystem, with the
credentials of the container's service account).
"""

import tensorflow as tf


class ModelError(ValueError):
  """The model cannot be served; the message says which and why."""


class Model:
  """The export's signatures, called with numpy inputs.

  Concrete functions may be called from several threads at once: the
  server runs requests in a thread pool while TensorFlow runs the ops.
  """

  def __init__(self, uri):
    if not uri:
      raise ModelError('AIP_STORAGE_URI is not set; Vertex AI sets it to the '
                       "model's copy: upload the model with --artifact-uri, "
                       'or set it to a SavedModel folder')
    try:
      if not tf.io.gfile.exists(uri.rstrip('/') + '/saved_model.pb'):
        raise ModelError(f'AIP_STORAGE_URI={uri} holds no saved_model.pb; '
                         'upload the SavedModel folder itself (the job\'s '
                         'model/ or export/best/<timestamp>/)')
      self._loaded = tf.saved_model.load(uri)
    except tf.errors.OpError as e:
      raise ModelError(f'could not read the SavedModel at AIP_STORAGE_URI='
                       f'{uri}: {e.message.splitlines()[0]}') from None
    self.uri = uri
    self.signatures = dict(self._loaded.signatures)
    self._inputs = {name: next(iter(fn.structured_input_signature[1]))
                    for name, fn in self.signatures.items()}

  def predict(self, signature, values):
    """{output: numpy array with a row per instance}.

    Raises tf.errors.InvalidArgumentError for an input the graph refuses
    (an image it cannot decode, a shape its check rejects).
    """
    fn = self.signatures[signature]
    outputs = fn(**{self._inputs[signature]: tf.constant(values)})
    return {key: value.numpy() for key, value in outputs.items()}
