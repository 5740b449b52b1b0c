"""matplotlib for the package's charts: an optional extra, loaded on demand.

A plain `pip install .` has no matplotlib (it is the `[plots]` extra), so no
module imports it at import time: a chart function calls `pyplot()`, which
raises one MissingExtraError naming the extra to install. Shared by the
prediction report and the sweep's charts, so neither depends on the other.
"""

import io

from trainer import errors


def pyplot(what='the charts'):
  """matplotlib.pyplot on the file-only Agg backend; `what` needs it."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise errors.missing_extra(what, 'plots', 'matplotlib') from None
  matplotlib.use('Agg')  # files only; no display needed
  # pylint: disable-next=import-outside-toplevel
  from matplotlib import pyplot as plt
  return plt


def png_bytes(fig):
  """The figure as PNG bytes (tight layout, 90 dpi); closes the figure."""
  buffer = io.BytesIO()
  fig.tight_layout()
  fig.savefig(buffer, format='png', dpi=90)
  pyplot().close(fig)
  return buffer.getvalue()
