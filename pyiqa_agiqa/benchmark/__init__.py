"""``pyiqa-agiqa benchmark``: every option file x split as a training run, then the tables,
predictions, plots, report and publishable weights.

:mod:`.grid` (option files x splits, checked first), :mod:`.worker` (one run in its own
process: train, predict, export), :mod:`.engines` (local processes, one per GPU, or Ray
tasks), :mod:`.predictions`, :mod:`.tables`, :mod:`.report`, and :mod:`.runner`, which ties
them together. See docs/benchmark.md.
"""
