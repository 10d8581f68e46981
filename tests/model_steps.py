"""Helpers for tests that run a model's training forward in the test process."""


def train_step_losses(model, batch: dict) -> dict:
    """The loss dict of one training forward (data preprocessor included), no update."""
    model.train()
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')


def train_steps(model, batch: dict, steps: int = 2, lr: float = 1e-3) -> list:
    """The logs of ``steps`` optimizer steps on ``batch`` (``model.train_step``, plain SGD on
    the trainable parameters)."""
    import torch
    from mmengine.optim import OptimWrapper
    optim = OptimWrapper(torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                         lr=lr))
    return [model.train_step(batch, optim) for _ in range(steps)]
