"""Helpers for tests that run a model's training forward in the test process."""


def train_step_losses(model, batch: dict) -> dict:
    """The loss dict of one training forward (data preprocessor included), no update."""
    model.train()
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')
