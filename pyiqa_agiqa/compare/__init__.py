"""Comparing generators and checkpoints (``pyiqa-agiqa compare``): every model's images scored by
the scoring engine, paired by prompt, with bootstrap intervals, paired tests and a report.

- :mod:`.inputs`: the images of each model (``--models`` folders / CSVs, or one ``--table``);
- :mod:`.stats`: the statistics (pure numpy / scipy / pandas; formulas in docs/compare.md);
- :mod:`.run`: scoring (resumable, one file per model), tables, report;
- :mod:`.report`: ``report.html`` (self-contained) and ``report.md``;
- :mod:`.prompt_sets`: prompt sets to generate from (``pyiqa-agiqa prompts``).
"""
