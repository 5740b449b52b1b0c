"""The book chapter's experiments: the settings and the accuracy it reports.

Each `Experiment` is one number the chapter reports (its tables and text)
with the trainer settings that reproduce its setting, the chapter's training
budget included. The sweep (`python -m trainer.sweep`) runs them;
`results.md` sets our number beside the chapter's.

The chapter's Keras experiments start from one MLP and change one thing at a
time: 1,000 sigmoid hidden units, raw 0-255 pixels, softmax cross-entropy,
SGD at Keras' default rate 0.01, batch 1,024. Settings the chapter leaves
unstated are chosen here and said in the row's note.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Experiment:
  group: str  # one chart per group; also the name of the preset
  label: str  # what this row changes, for tables and legends
  settings: dict  # trainer.config.Config fields, budget included
  reported: Optional[float] = None  # the chapter's test accuracy, %
  note: str = ''


# The chapter's first MNIST model (Keras, no dropout).
KERAS_MLP = dict(model_type='keras', hidden_units=(1000,), dropout=(0.0,),
                 input_dropout=0.0, activation='sigmoid', scale_inputs=False,
                 optimizer='sgd', learning_rate=0.01, lr_schedule='constant',
                 batch_size=1024)
RELU_SCALED = dict(KERAS_MLP, activation='relu', scale_inputs=True)
TWO_LAYERS = dict(RELU_SCALED, hidden_units=(1000, 1000), dropout=(0.0, 0.0))
# The Estimator section: hidden units 512/256/128, 2,000 steps of batch 128;
# the custom model with a dropout rate of its own after each layer.
ESTIMATOR = dict(hidden_units=(512, 256, 128), train_steps=2000,
                 batch_size=128, activation='relu', scale_inputs=True)
PER_LAYER_DROPOUT = dict(ESTIMATOR, dropout=(0.2, 0.3, 0.4), input_dropout=0.0)


def _activation(name, scaled, epochs, reported, note=''):
  label = f'{name}, {"scaled" if scaled else "raw"} pixels'
  settings = dict(KERAS_MLP, activation=name.lower(), scale_inputs=scaled,
                  num_epochs=epochs)
  return Experiment('activation', label, settings, reported, note)


EXPERIMENTS = (
    _activation('sigmoid', False, 10, 91.0, '"~91%"'),
    _activation('sigmoid', False, 300, 94.9, 'train ~99%'),
    _activation('sigmoid', True, 10, None, 'not reported'),
    _activation('ReLU', False, 10, 29.75),
    _activation('ReLU', True, 10, 88.1),
    _activation('ReLU', True, 300, 95.76, 'train 96%'),
    _activation('tanh', False, 10, 92.89),
    _activation('tanh', False, 300, 94.6),
    _activation('tanh', True, 10, 88.0),
    _activation('tanh', True, 300, 93.0),
    Experiment('optimizer', 'SGD (0.01)', dict(RELU_SCALED, num_epochs=10),
               88.0),
    Experiment('optimizer', 'RMSprop (0.001)',
               dict(RELU_SCALED, optimizer='rmsprop', learning_rate=0.001,
                    num_epochs=10), 98.44),
    Experiment('optimizer', 'Adam (0.001)',
               dict(RELU_SCALED, optimizer='adam', learning_rate=0.001,
                    num_epochs=10), 98.4),
    Experiment('width', '1,000 hidden units',
               dict(RELU_SCALED, num_epochs=300), 95.76,
               'the ReLU, scaled run of the activation experiment'),
    Experiment('width', '2,000 hidden units',
               dict(RELU_SCALED, hidden_units=(2000,), num_epochs=300),
               95.76),
    Experiment('depth', '1 hidden layer (1,000)',
               dict(RELU_SCALED, num_epochs=300), 95.76),
    Experiment('depth', '2 hidden layers (1,000 + 1,000)',
               dict(TWO_LAYERS, num_epochs=300), 97.24,
               'width of the second layer not stated'),
    Experiment('batch-size', 'batch 30,000',
               dict(TWO_LAYERS, batch_size=30000, num_epochs=300), 89.91,
               'network of the depth experiment'),
    Experiment('batch-size', 'batch 1,024',
               dict(TWO_LAYERS, num_epochs=300), 97.24,
               'the 2-layer run of the depth experiment'),
    Experiment('batch-size', 'batch 32',
               dict(TWO_LAYERS, batch_size=32, num_epochs=10), 97.77,
               '"very small" in the chapter; 32 is our choice'),
    Experiment('estimators', 'premade, chapter recipe (Adagrad 0.05)',
               dict(ESTIMATOR, model_type='premade', optimizer='adagrad',
                    learning_rate=0.05, lr_schedule='constant'), 97.2,
               'the TF 1 default optimizer'),
    Experiment('estimators', 'premade, TF 2 default (Adagrad 0.001)',
               dict(ESTIMATOR, model_type='premade', optimizer='adagrad',
                    learning_rate=0.001, lr_schedule='constant'), None,
               'TF 2 builds the default "Adagrad" at Keras\' rate 0.001'),
    Experiment('estimators', 'premade (Adam 0.001, cosine)',
               dict(ESTIMATOR, model_type='premade'), None,
               'our default optimizer'),
    Experiment('estimators', 'custom, dropout 0.2/0.3/0.4',
               dict(PER_LAYER_DROPOUT, model_type='custom'), None,
               'not stated'),
    Experiment('estimators', 'keras, dropout 0.2/0.3/0.4',
               dict(PER_LAYER_DROPOUT, model_type='keras'), None,
               'the custom model as a Keras Sequential'),
)

GROUPS = tuple(dict.fromkeys(e.group for e in EXPERIMENTS))


def group(name):
  """The experiments of one group, in the chapter's order."""
  return tuple(e for e in EXPERIMENTS if e.group == name)
