"""What the command-line tools share, one module per concern; the scripts in ``tools/`` are
thin ``main()``\\ s over them and never import each other.

* :mod:`mmkd.apis.demo`: the digits teacher / student / distillation pipeline of
  ``tools/demo.py``, whose ``run`` the accuracy benchmark trains every row with;
* :mod:`mmkd.apis.accuracy_tasks`, :mod:`mmkd.apis.accuracy_benchmark`,
  :mod:`mmkd.apis.accuracy_report`: the accuracy benchmark of ``tools/benchmark_accuracy.py``
  (what is trained, how it runs and resumes, the RESULTS.md report);
* :mod:`mmkd.apis.method_configs`: the shipped teacher / student pairs and their method
  configs (``tools/benchmark_overhead.py``, ``tools/benchmark_accuracy.py``);
* :mod:`mmkd.apis.significance`: each training image's significance measured with the
  teacher (``tools/significance.py``; the accuracy benchmark writes it for ``selfreg``);
* :mod:`mmkd.apis.maskd_tokens`: MasKD's first phase, the receptive tokens learned on the
  frozen teacher (``tools/maskd_tokens.py``; the accuracy benchmark writes them for ``maskd``);
* :mod:`mmkd.apis.analysis`: a distillation config's Distiller and its layers' features for
  the scripts in ``tools/analysis/``;
* :mod:`mmkd.apis.distill`: the distillation config ``tools/distill.py`` writes from a
  student and a teacher config;
* :mod:`mmkd.apis.run_ledger`: the accuracy benchmark's committed record of finished runs
  and float16 copies of the weights they start from (a fresh checkout loses no run);
* :mod:`mmkd.apis.loss_benchmark`: the loss-cost measurements of
  ``tools/benchmark_losses.py``, importable by the processes it spawns.

The modules import mmengine / mmdet / mmseg on use, so nothing here is imported with
``mmkd``. Paths such as :data:`CONFIGS` point into the repository the package is installed
from (``tools/install.sh`` installs it editable).
"""
import os.path as osp

#: The repository's ``configs/`` folder.
CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
