"""The book chapter's experiments: rerun them (or a grid) and chart them.

`python -m trainer.sweep` (command.py) and `python -m trainer.sweep.plots`.

  chapter.py  the chapter's experiments, settings and reported accuracy
  plan.py     experiments -> runs, one job dir per distinct setting
  execute.py  training the runs (in processes with --jobs), with an ETA
  tables.py   results.csv, results.md and the machine they ran on
  plots.py    charts from results.csv and the runs' event files (matplotlib)
  command.py  the command line

Importing the package imports no TensorFlow.
"""
