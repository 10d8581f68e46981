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


def fit_loss_values(loss, preds_S, preds_T, steps: int, lr: float = 2e-2) -> list:
    """The values of ``loss(preds_S, preds_T)`` over ``steps`` Adam steps on the loss's own
    parameters (its generator / projector learning toward a fixed teacher), each step with
    the same seeded random mask."""
    import torch
    optim = torch.optim.Adam(loss.parameters(), lr=lr)
    values = []
    for _ in range(steps):
        value = loss(preds_S, preds_T, generator=torch.Generator().manual_seed(0))
        optim.zero_grad()
        value.backward()
        optim.step()
        values.append(value.item())
    return values
