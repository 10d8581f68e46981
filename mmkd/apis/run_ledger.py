"""A committed record of finished benchmark runs and of the weights they start from, so that
a fresh checkout loses none of them.

A benchmark run leaves its ``result.json`` in its work folder, which is not committed: a new
checkout (or another machine) would train every run again. :class:`RunLedger` keeps each
finished run's result (metric, learning curve, seconds, seed, threads) in one JSON file under
``benchmarks/``, keyed by the run's folder relative to the benchmark's work root, and with the
identity of the weights it started from: the teacher's and the pretrained backbone's
:func:`weights_sha`. A run read back from the ledger counts only when those identities equal
the current ones; a checkout that had to train its teacher again and got other weights (another
CPU, another thread count) trains its students again rather than mixing two teachers in one
table.

Several worker processes may record at once: each write holds an exclusive ``fcntl`` lock on a
side file, rereads the ledger, adds its entry and replaces the file atomically.
"""
import fcntl
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional


def weights_sha(path: str) -> str:
    """A 16-hex-digit hash of the tensors a checkpoint holds (its ``state_dict`` if it has
    one), by name: the same weights give the same hash whatever else the file records
    (timestamps, optimiser state, ``meta``)."""
    import torch
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    return state_sha(ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt)


def state_sha(state: dict) -> str:
    """:func:`weights_sha` of a state dict in memory."""
    import torch
    h = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            h.update(str(value.dtype).encode() + str(tuple(value.shape)).encode())
            h.update(value.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class RunLedger:
    """``{key: result}`` in the JSON file ``path`` (created on the first record).

    Args:
        path: The ledger file, e.g. ``benchmarks/accuracy_runs.json``.
    """

    def __init__(self, path: str):
        self.path = osp.abspath(path)

    def entries(self) -> Dict[str, dict]:
        if not osp.exists(self.path):
            return {}
        with open(self.path) as f:
            return json.load(f)

    def get(self, key: str, expect: Optional[dict] = None) -> Optional[dict]:
        """The entry of ``key`` when every ``expect`` item (e.g. ``teacher_sha``) equals the
        entry's, else None."""
        entry = self.entries().get(key)
        if entry is None or any(entry.get(k) != v for k, v in (expect or {}).items()):
            return None
        return entry

    def record(self, key: str, result: dict) -> None:
        """Add or replace the entry of ``key`` (sorted keys, one entry a block, so that a
        commit of the file shows the runs it adds)."""
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        with open(self.path + '.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.entries()
            entries[key] = result
            tmp = f'{self.path}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                json.dump(entries, f, indent=1, sort_keys=True)
                f.write('\n')
            os.replace(tmp, self.path)


class WeightStore:
    """Committed half-precision copies of the weights every benchmark row starts from (the
    teachers, the students' pretrained backbone), so that a fresh checkout trains neither again
    and its rows keep comparing with the ledger's.

    A copy holds ``state_dict`` (floating tensors in float16, the rest as they were) and
    ``meta``; mmengine's checkpoint loading casts it back to each parameter's dtype, so it is
    used wherever the original was (``teacher_ckpt``, ``init_cfg=dict(type='Pretrained')``).
    Float16 keeps about 3 significant digits: the copy is a slightly different network, which is
    why the benchmark evaluates the teacher again from its copy and every row uses the copy.

    Args:
        root: The folder, e.g. ``benchmarks/weights``.
    """

    def __init__(self, root: str):
        self.root = osp.abspath(root)

    def path(self, name: str) -> str:
        return osp.join(self.root, name)

    def has(self, name: str) -> bool:
        return osp.exists(self.path(name))

    def publish(self, src: str, name: str) -> str:
        """Write the float16 copy of checkpoint ``src`` as ``name`` (atomically); its path.

        A copy that already holds the same tensors is left byte for byte as it is: a call
        without the ledger republishes its teachers, and ``torch.save`` does not write the
        same bytes twice, so the committed copy would otherwise show as modified with
        unchanged weights."""
        import torch
        ckpt = torch.load(src, map_location='cpu', weights_only=False)
        state = ckpt.get('state_dict', ckpt)
        half = {k: v.half() if torch.is_tensor(v) and v.is_floating_point() else v
                for k, v in state.items()}
        if self.has(name) and weights_sha(self.path(name)) == state_sha(half):
            return self.path(name)
        os.makedirs(self.root, exist_ok=True)
        tmp = f'{self.path(name)}.{os.getpid()}.tmp'
        torch.save(dict(state_dict=half, meta=dict(source=osp.basename(src), dtype='float16')),
                   tmp)
        os.replace(tmp, self.path(name))
        return self.path(name)
