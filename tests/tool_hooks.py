"""Test-only mmengine hooks for the tool tests (tests/test_tools/test_train.py).

A tool run started by a test loads this module through its config
(``custom_imports=dict(imports=['mmkd', 'tool_hooks'])``) with ``tests/`` on ``PYTHONPATH``
(:func:`tool_env`). Not part of mmkd.
"""
import json
import math
import os
import os.path as osp
import signal

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

TESTS = osp.dirname(osp.abspath(__file__))


def tool_env() -> dict:
    """The environment of a tool run that can import this module."""
    path = os.environ.get('PYTHONPATH')
    return dict(os.environ, PYTHONPATH=TESTS + (os.pathsep + path if path else ''))


def with_hooks(*hooks: dict) -> dict:
    """Config overrides (for ``tiny_config``) that load this module and add ``hooks``."""
    return {'custom_imports': dict(imports=['mmkd', 'tool_hooks'], allow_failed_imports=False),
            'custom_hooks': list(hooks)}


@HOOKS.register_module()
class CrashAfterCheckpointHook(Hook):
    """SIGKILLs its own process after training iteration ``iteration`` (1-based) once that
    iteration's checkpoint is written: a crash at a known point, no cleanup, no atexit.

    Priority LOWEST: it runs after ``CheckpointHook`` (VERY_LOW), which saves the checkpoint
    and ``last_checkpoint`` synchronously in its own ``after_train_iter``. A run resumed from
    that checkpoint starts past ``iteration`` and is not killed again.
    """
    priority = 'LOWEST'

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class TrainingProbeHook(Hook):
    """Writes ``<work_dir>/probe.json`` after training: the dtypes the student's convolutions
    returned in training forwards, the logged losses of every iteration, and how many of the
    student's trainable tensors differ from their values before the first iteration."""

    def before_train(self, runner):
        student = self._student(runner)
        self.dtypes, self.losses = set(), []
        self.init = {k: p.detach().clone() for k, p in student.named_parameters()
                     if p.requires_grad}
        for module in student.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(self._record)

    def _record(self, module, inputs, output):
        if module.training:
            self.dtypes.add(str(output.dtype))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v) for k, v in (outputs or {}).items() if 'loss' in k})

    def after_train(self, runner):
        params = dict(self._student(runner).named_parameters())
        changed = [k for k, p0 in self.init.items() if not torch.equal(params[k].detach(), p0)]
        finite = all(math.isfinite(v) for row in self.losses for v in row.values())
        with open(osp.join(runner.work_dir, 'probe.json'), 'w') as f:
            json.dump(dict(conv_output_dtypes=sorted(self.dtypes), losses=self.losses,
                           losses_finite=finite, changed=len(changed), trainable=len(self.init)),
                      f, indent=1)

    @staticmethod
    def _student(runner):
        model = runner.model
        return getattr(model, 'module', model).student
