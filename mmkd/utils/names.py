"""Resolve module names given in configs, failing early with the closest valid names."""
import difflib
from typing import List

from torch import nn


def closest_names(name: str, candidates, n: int = 5) -> List[str]:
    """The ``n`` candidates closest to ``name``; falls back to names sharing its last part."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not matches:
        tail = name.rsplit('.', 1)[-1]
        matches = [c for c in candidates if c.endswith('.' + tail) or c == tail][:n]
    return matches


def get_submodule_or_raise(model: nn.Module, name: str, owner: str = 'model') -> nn.Module:
    """``model.get_submodule(name)`` with an error that lists the closest valid names.

    Args:
        model (nn.Module): The model to search.
        name (str): Dotted module name, e.g. ``'neck.fpn_convs.0'``. ``''`` is the model itself.
        owner (str): How to call ``model`` in the error, e.g. ``'student'``.
    """
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = closest_names(name, names)
        hint = (f'Closest valid names: {close}.' if close else
                f'Top-level modules: {[n for n, _ in model.named_children()]}.')
        raise KeyError(f'{owner} ({type(model).__name__}) has no module named {name!r}. {hint} '
                       f'Print `{owner}.named_modules()` for the full list.') from None
