"""Ablation studies: a base recipe plus a grid of model switches and seeds.

Bethge et al. 2019 ("Back to Simplicity", arXiv:1906.08637) is mostly ablations:
scaling factors, gradient estimator, full-precision downsampling, growth rate vs
blocks, BinaryDenseNet vs ResNetE at equal size (the authors log the runs behind
its tables in hpi-xnor/BMXNet-v2-wiki, ``Binary-Network-Results.md``). This
package reruns such studies through train.py, one work directory per cell and
seed, and turns the finished runs into a results CSV, a summary table and plots.
``ablate.py`` is the command-line front end.

Modules, one job each:

* :mod:`~bidense.ablation.study`: the study definition, level labels, loading
  study files.
* :mod:`~bidense.ablation.grid`: grid expansion, cell names, train.py overrides.
* :mod:`~bidense.ablation.runner`: running cells (skip, resume, parallel).
* :mod:`~bidense.ablation.results`: results.csv and the mean/std summary.
* :mod:`~bidense.ablation.plots`: accuracy-vs-size and per-switch bar charts.
"""

from bidense.ablation.study import (
    PAPER_IMAGENET_ABLATION,
    Study,
    StudyError,
    load_study,
)

__all__ = ["PAPER_IMAGENET_ABLATION", "Study", "StudyError", "load_study"]
