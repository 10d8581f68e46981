"""mmkd's registries: children of mmengine's root registries.

Being children of mmengine's roots means an mmkd config can name mmkd modules with
``_scope_='mmkd'`` (or a ``mmkd.`` prefix) while inheriting ``mmdet::`` / ``mmseg::`` model-zoo
configs whose datasets, transforms and metrics keep resolving in their own scope.
``locations`` lets mmengine import the modules lazily, so ``custom_imports`` is optional.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

#: Distillers, recorders, connectors, losses and weighting schemes.
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmkd', locations=['mmkd.models'])
#: Training / validation loops (e.g. the loop that can also evaluate the teacher).
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmkd', locations=['mmkd.engine'])
#: Optimizer wrappers (mixed precision on CPU).
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmkd',
                          locations=['mmkd.engine'])
#: Optimizer wrapper constructors (the distiller's parameter groups).
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmkd',
                                      locations=['mmkd.engine'])
#: Hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmkd', locations=['mmkd.engine'])
#: Dataset wrappers (e.g. ``mmkd.SignificanceSubset``). The datasets they wrap are built by
#: mmengine's root registry in the current default scope, so ``CocoDataset`` keeps resolving
#: in mmdet and ``DigitsSegDataset`` in mmseg.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmkd',
                    locations=['mmkd.datasets'])


def build_component(cfg):
    """Build an mmkd component (recorder, connector, loss ...) whatever the current scope.

    Inside a Runner the default scope is the task's (``mmdet`` / ``mmseg``); mmkd's own parts
    are looked up in mmkd unless the config names another scope (``_scope_`` or ``'x.Type'``).
    """
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmkd')
    return MODELS.build(cfg)
