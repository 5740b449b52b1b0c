"""Progress lines: losses keep their significant digits."""

import pytest

from trainer import progress


@pytest.mark.parametrize('loss, shown', [
    (2.302585, '2.303'), (0.147340, '0.1473'), (3.2e-05, '3.2e-05'),
    (1.23456e-07, '1.235e-07'), (0.0, '0'), (12.5, '12.5')])
def test_losses_show_four_significant_digits(loss, shown):
  assert progress.format_loss(loss) == shown
