"""tools/maskd_tokens.py (MasKD stage 1, mmkd/apis/maskd_tokens.py): the tokens learned on a
frozen digits teacher, the file's contents, and MasKDLoss reading it."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from tool_runs import SEG_TEACHER, run_tool

from mmkd.apis.maskd_tokens import (default_tokens_file, learn_maskd_tokens, segmentor_head,
                                    train_tokens)
from mmkd.models.losses.maskd import MasKDLoss


@pytest.fixture(scope='module')
def random_seg_teacher(tmp_path_factory):
    """configs/digits/semfpn_r18_digits.py with its initial weights, saved as a state dict
    (the tool's plumbing does not need a trained teacher)."""
    from mmengine.registry import MODELS, init_default_scope

    from mmkd.engine.runtime import load_config
    cfg = load_config(SEG_TEACHER)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('maskd_teacher') / 'teacher.pth'
    torch.save(MODELS.build(cfg.model).state_dict(), path)
    return str(path)


def _synthetic_batches(seed=0):
    """Endless (logits, labels) of a teacher that favours the label, with noise."""
    g = torch.Generator().manual_seed(seed)
    while True:
        labels = torch.randint(0, 5, (2, 8, 8), generator=g)
        logits = 2 * F.one_hot(labels, 5).permute(0, 3, 1, 2).float()
        yield logits + torch.randn(2, 5, 8, 8, generator=g), labels


def test_train_tokens_learns_deterministically_with_poly_lr():
    lines = []
    tokens, history = train_tokens(_synthetic_batches(), iters=60, num_tokens=4, lr=1.0,
                                   seed=3, log=lines.append)
    assert tokens.shape == (4, 5) and not tokens.requires_grad
    assert len(history['loss']) == 60 and len(history['coverage']) == 4
    assert all(0 < c < 1 for c in history['coverage'])
    first, last = sum(history['loss'][:5]) / 5, sum(history['loss'][-5:]) / 5
    assert last < first - 0.2
    assert history['dice'][0] > 0.99 and history['dice'][-1] < 0.8
    assert lines[0].startswith('iter 1/60:') and 'lr 1' in lines[0]
    # poly decay: the last iteration's lr is lr * (1 / 60) ** 0.9
    assert re.search(r'^iter 60/60: .* lr 0\.0251', lines[-1]), lines[-1]
    again, _ = train_tokens(_synthetic_batches(), iters=60, num_tokens=4, lr=1.0, seed=3)
    assert torch.equal(tokens, again)
    other, _ = train_tokens(_synthetic_batches(), iters=60, num_tokens=4, lr=1.0, seed=4)
    assert not torch.equal(tokens, other)
    with pytest.raises(ValueError, match='iters >= 1'):
        train_tokens(_synthetic_batches(), iters=0)


def test_default_file_and_teacher_checks(tmp_path):
    assert default_tokens_file('work/iter_600.pth', 'wd') == 'work/iter_600.maskd_tokens.pth'
    assert default_tokens_file('https://x.org/m/teacher.pth', 'wd') == \
        'wd/teacher.maskd_tokens.pth'
    with pytest.raises(TypeError, match='EncoderDecoder'):
        segmentor_head(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match='CHECKPOINT.*random weights'):
        learn_maskd_tokens(SEG_TEACHER)


def test_tool_writes_tokens_that_maskd_loss_reads(digits_root, random_seg_teacher, tmp_path):
    out = tmp_path / 'tokens.pth'
    data_root = f'train_dataloader.dataset.data_root={digits_root}/'
    result = run_tool('maskd_tokens.py', SEG_TEACHER, random_seg_teacher, '--out', out,
                      '--iters', 3, '--batch-size', 4, '--num-tokens', 6, '--device', 'cpu',
                      '--cfg-options', data_root)
    content = torch.load(out, weights_only=True)
    assert set(content) == {'tokens', 'num_classes', 'meta'}
    tokens = content['tokens']
    assert tokens.shape == (6, 11) and tokens.dtype == torch.float32
    assert content['num_classes'] == 11
    meta = content['meta']
    assert meta['config'] == SEG_TEACHER and meta['checkpoint'] == random_seg_teacher
    assert meta['iters'] == 3 and meta['batch_size'] == 4 and meta['num_tokens'] == 6
    assert meta['lr'] == 0.1 and meta['weight_decay'] == 1e-3 and meta['seed'] == 0
    assert math.isfinite(meta['final_loss']) and len(meta['coverage']) == 6
    assert meta['tool'] == 'tools/maskd_tokens.py' and meta['mmkd_version']
    assert re.search(r'MasKD tokens: 6 x 11 learned in 3 iterations \(batch 4, SGD lr 0.1 '
                     r'poly, weight decay 0.001, seed 0\)', result.stdout)
    assert re.search(r'loss: first [\d.]+ \(ce [\d.]+, dice [\d.]+\), last', result.stdout)
    coverage = re.search(r'mean mask coverage per token \(last batch\): ([\d. ]+)$',
                         result.stdout, re.M)
    assert coverage and len(coverage.group(1).split()) == 6
    assert f'wrote {out}' in result.stdout

    loss = MasKDLoss(tokens=str(out))
    assert torch.equal(loss.tokens, tokens)
    logits = torch.randn(2, 11, 4, 4)
    assert float(loss(logits, logits)) == 0.0

    # in-process, same settings and seed, default place (next to the checkpoint): same tokens
    lines = []
    path = learn_maskd_tokens(SEG_TEACHER, random_seg_teacher, iters=3, batch_size=4,
                              num_tokens=6, device='cpu', cfg_options={
                                  'train_dataloader.dataset.data_root': f'{digits_root}/'},
                              log=lines.append)
    assert path == random_seg_teacher[:-len('.pth')] + '.maskd_tokens.pth'
    # (allclose: the two processes may run torch with different thread counts)
    assert torch.allclose(torch.load(path, weights_only=True)['tokens'], tokens, atol=1e-6)
    assert lines[0].startswith('iter 1/3: loss ') and lines[-1].endswith(f'wrote {path}')
