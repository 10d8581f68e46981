r"""Per-image significance measured with the teacher, and the training subset it selects.

Data-efficient distillation with self-regulation (Mishra & Sundaram, 2021),
https://arxiv.org/abs/2102.07125

In the paper the teacher trains with self-regulation: a sample takes part in a backward pass
only while the teacher misclassifies it or predicts it with low confidence, and the number of
times it took part is its significance. For detection and segmentation mmkd measures the same
idea once, with the trained teacher over the training set (``tools/significance.py``):

.. math::

    s_i^{det} = \frac{|\{g \in G_i : \nexists\, p \in P_i,\ c_p = c_g,\ \mathrm{IoU}(p, g)
    \ge \theta_{IoU},\ \mathrm{score}_p \ge \theta_s\}|}{|G_i|}, \qquad
    s_i^{seg} = \frac{|\{x \in \Omega_i : \hat y_x \ne y_x \ \vee\ \max_k p_{x,k} < \theta_s\}|}
    {|\Omega_i|}

with :math:`G_i` the ground-truth objects of image :math:`i` (crowd / ignored ones left out),
:math:`P_i` the teacher's predictions, :math:`\Omega_i` its labelled (non-ignore) pixels and
:math:`p_{x,k}` the teacher's softmax. :math:`s_i \in [0, 1]`; an image without objects or
labelled pixels has :math:`s_i = 0` (the teacher cannot miss anything there).
:class:`SignificanceSubset` then trains on the most significant fraction of the images (the
data budget) and stamps :math:`s_i` into each sample, where
``mmkd.models.losses.SignificanceWeightedLoss`` reads it. The thresholds and the budget are
this project's choices (the paper's are not public): all are arguments.

The file (JSON, written atomically) holds ``{"meta": {...}, "images": {key: s_i}}``; ``key``
is the image path relative to the dataset's ``data_root`` (``images/train/000000.png``), so the
file stays valid when the dataset moves. Its default place is :func:`default_significance_file`.
"""
import copy
import json
import math
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Union

import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from torch import Tensor

from mmkd.registry import DATASETS

#: What a file's numbers mean, written into its ``meta``.
DEFINITIONS = {
    'detection': 'fraction of the image\'s ground-truth objects (ignored / crowd ones left out) '
                 'for which the teacher has no prediction of the same class with IoU >= iou_thr '
                 'and score >= score_thr; 0 for an image without objects',
    'segmentation': 'fraction of the image\'s labelled (non-ignore) pixels that the teacher '
                    'misclassifies or predicts with a max softmax probability < score_thr; 0 for '
                    'an image without labelled pixels',
}
WRITER = 'tools/significance.py'


def detection_significance(gt_bboxes: Tensor, gt_labels: Tensor, pred_bboxes: Tensor,
                           pred_labels: Tensor, pred_scores: Tensor, score_thr: float = 0.3,
                           iou_thr: float = 0.5) -> float:
    """Fraction of an image's objects the teacher misses or finds with low confidence.

    An object counts as found when some prediction of its class with ``score >= score_thr``
    overlaps it with ``IoU >= iou_thr`` (mmdet's ``bbox_overlaps``). There is no one-to-one
    matching: this asks whether the teacher sees each object, it is not an AP.

    Args:
        gt_bboxes (Tensor): (G, 4) ground-truth boxes, x1 y1 x2 y2.
        gt_labels (Tensor): (G,) their classes.
        pred_bboxes (Tensor): (P, 4) the teacher's boxes, same coordinates.
        pred_labels (Tensor): (P,) their classes.
        pred_scores (Tensor): (P,) their scores.
        score_thr (float): Defaults to 0.3.
        iou_thr (float): Defaults to 0.5.

    Returns:
        float: In [0, 1]; 0 when G = 0.

    Example:
        >>> gt = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]])
        >>> pred = torch.tensor([[0., 0., 10., 9.], [20., 20., 30., 30.]])
        >>> detection_significance(gt, torch.tensor([1, 2]), pred, torch.tensor([1, 2]),
        ...                        torch.tensor([0.9, 0.1]))    # the second is found at 0.1
        0.5
    """
    from mmdet.structures.bbox import bbox_overlaps
    num_objects = len(gt_bboxes)
    if num_objects == 0:
        return 0.0
    confident = pred_scores >= score_thr
    pred_bboxes, pred_labels = pred_bboxes[confident], pred_labels[confident]
    if len(pred_bboxes) == 0:
        return 1.0
    ious = bbox_overlaps(gt_bboxes.float(), pred_bboxes.float())  # (G, P)
    same_class = gt_labels[:, None] == pred_labels[None, :]
    found = ((ious >= iou_thr) & same_class).any(dim=1)
    return float(num_objects - int(found.sum())) / num_objects


def segmentation_significance(seg_logits: Tensor, gt_sem_seg: Tensor, score_thr: float = 0.3,
                              ignore_index: int = 255) -> float:
    """Fraction of an image's labelled pixels the teacher gets wrong or is unsure about.

    Args:
        seg_logits (Tensor): (K, H, W) the teacher's logits at the label map's size (mmseg's
            ``SegDataSample.seg_logits``); K = 1 means one sigmoid (binary segmentation).
        gt_sem_seg (Tensor): (H, W) or (1, H, W) labels.
        score_thr (float): A pixel whose highest class probability is below this counts as
            unsure. Defaults to 0.3.
        ignore_index (int): Label of unlabelled pixels. Defaults to 255.

    Returns:
        float: In [0, 1]; 0 when no pixel is labelled.

    Example:
        >>> logits = torch.zeros(2, 1, 4)
        >>> logits[0, 0, :2] = 5.0                  # confident class 0 on pixels 0, 1
        >>> logits[1, 0, 2:] = 5.0                  # confident class 1 on pixels 2, 3
        >>> labels = torch.tensor([[0, 1, 1, 255]]) # pixel 1 is wrong, pixel 3 unlabelled
        >>> round(segmentation_significance(logits, labels), 4)
        0.3333
    """
    labels = gt_sem_seg.reshape(seg_logits.shape[-2:]).to(seg_logits.device)
    logits = seg_logits.float()
    if logits.shape[0] == 1:  # one sigmoid: P(class 1) = sigmoid(z), P(class 0) = 1 - that
        foreground = torch.sigmoid(logits)
        probs = torch.cat([1 - foreground, foreground])
    else:
        probs = logits.softmax(dim=0)
    confidence, prediction = probs.max(dim=0)
    labelled = labels != ignore_index
    num_labelled = int(labelled.sum())
    if num_labelled == 0:
        return 0.0
    hard = (prediction != labels) | (confidence < score_thr)
    return int((hard & labelled).sum()) / num_labelled


def image_key(img_path: str, data_root: Optional[str]) -> str:
    """The file's key of an image: its path relative to ``data_root``, with ``/``.

    Example:
        >>> image_key('data/digits/images/train/000000.png', 'data/digits/')
        'images/train/000000.png'
    """
    if data_root:
        relative = osp.relpath(osp.abspath(img_path), osp.abspath(data_root))
        if not relative.startswith('..'):
            img_path = relative
    return img_path.replace(os.sep, '/')


def default_significance_file(dataset: BaseDataset) -> str:
    """Where ``tools/significance.py`` writes a dataset's significance by default.

    Next to the annotations: ``<ann_file without extension>.significance.json`` (COCO:
    ``annotations/instances_train.significance.json``); for datasets without an annotation
    file (mmseg's folder datasets) next to the image folder: ``<img dir>.significance.json``
    (``images/train.significance.json``, Cityscapes ``leftImg8bit/train.significance.json``),
    beside the folder and not inside it, so mmseg's folder listing never sees it.
    """
    ann_file = getattr(dataset, 'ann_file', '')
    if ann_file:
        return osp.splitext(ann_file)[0] + '.significance.json'
    prefix = getattr(dataset, 'data_prefix', {}) or {}
    img_dir = prefix.get('img_path', prefix.get('img'))
    if not img_dir:
        raise ValueError(f'{type(dataset).__name__} has neither ann_file nor an image folder '
                         "(data_prefix 'img' / 'img_path'): give the significance file's path "
                         f'(significance_file=..., or --out for {WRITER}).')
    return img_dir.rstrip('/\\') + '.significance.json'


def write_significance_file(path: str, images: Dict[str, float], meta: dict) -> None:
    """Write ``{"meta": meta, "images": images}`` atomically (temp file + ``os.replace``).

    Keys are sorted and values rounded to 6 decimals, so equal inputs give equal bytes.
    """
    content = dict(meta=meta, images={k: round(float(v), 6) for k, v in images.items()})
    text = json.dumps(content, indent=1, sort_keys=True) + '\n'
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.significance-', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def read_significance_file(path: str) -> Dict[str, float]:
    """The ``images`` map of a significance file, with errors that name the file and its writer."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Significance file {path} does not exist: write it with '
                                f'`python {WRITER} CONFIG TEACHER_CKPT` (its default output is '
                                'this path) or set significance_file.')
    try:
        with open(path) as f:
            images = json.load(f)['images']
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f'Significance file {path} is not a file written by {WRITER} '
                         f'({type(err).__name__}: {err}); write it again.') from err
    return {key: float(value) for key, value in images.items()}


def select_by_significance(significance: List[float], budget: float = 1.0,
                           min_significance: Optional[float] = None) -> List[int]:
    """Indices of the ``ceil(budget * N)`` most significant images, ascending.

    Ties go to the lower index. With ``min_significance``, images below it are dropped first
    (fewer may then remain than the budget allows). ``budget * N`` is rounded to 6 decimals
    before the ceiling, so 0.3 of 10 images is 3, not 4.

    Example:
        >>> select_by_significance([0.1, 0.9, 0.5, 0.9, 0.0], budget=0.5)
        [1, 2, 3]
        >>> select_by_significance([0.1, 0.9, 0.5, 0.9, 0.0], min_significance=0.5)
        [1, 2, 3]
    """
    if not 0.0 < budget <= 1.0:
        raise ValueError(f'budget is the fraction of images kept, in (0, 1], got {budget}.')
    num_kept = math.ceil(round(budget * len(significance), 6))
    ranked = sorted(range(len(significance)), key=lambda i: (-significance[i], i))
    if min_significance is not None:
        ranked = [i for i in ranked if significance[i] >= min_significance]
    return sorted(ranked[:num_kept])


@DATASETS.register_module()
class SignificanceSubset:
    """The most significant images of a dataset, each stamped with its significance.

    Keeps exactly ``ceil(budget * N)`` of the wrapped dataset's N images: those with the highest
    significance (see the module docstring), ties to the lower dataset index, in dataset order.
    Every item's data sample gets ``significance`` in its metainfo
    (``data['data_samples'].metainfo['significance']``), which
    ``mmkd.models.losses.SignificanceWeightedLoss`` reads.

    Args:
        dataset (dict | BaseDataset): The dataset to subsample; a config is built with
            mmengine's ``DATASETS`` (as mmengine's ``ConcatDataset`` does), i.e. in the current
            default scope (``CocoDataset`` from mmdet, mmseg datasets from mmseg).
        significance_file (str, optional): JSON written by ``tools/significance.py``. Defaults
            to None: :func:`default_significance_file` of the wrapped dataset, where the tool
            writes by default.
        budget (float): Fraction of the images kept, in (0, 1]. Defaults to 1.0 (all, but
            still stamped).
        min_significance (float, optional): Also drop images below this significance.
            Defaults to None.
        data_root (str, optional): Replaces the wrapped dataset config's ``data_root``, so
            tools that point a config's ``train_dataloader.dataset.data_root`` at another
            folder (``mmkd.engine.runtime.set_data_root``) move the wrapped dataset too.
            Defaults to None (the wrapped config's own).

    Raises:
        KeyError: an image of the dataset has no entry in the file (the error names the file
            and ``tools/significance.py``).

    Example (config)::

        train_dataloader = dict(dataset=dict(
            _delete_=True, type='mmkd.SignificanceSubset', budget=0.3,
            dataset={{_base_.train_dataloader.dataset}}))
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 significance_file: Optional[str] = None,
                 budget: float = 1.0,
                 min_significance: Optional[float] = None,
                 data_root: Optional[str] = None):
        if isinstance(dataset, dict):
            dataset = copy.deepcopy(dataset)
            if data_root is not None:
                dataset['data_root'] = data_root
            dataset = MMENGINE_DATASETS.build(dataset)
        elif data_root is not None:
            raise ValueError('SignificanceSubset: data_root applies to a dataset config, but '
                             'the dataset is already built.')
        if not hasattr(dataset, 'get_data_info'):
            raise TypeError(f'SignificanceSubset wraps a dataset with get_data_info (an mmengine '
                            f'BaseDataset), got {type(dataset).__name__}.')
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        self.dataset = dataset
        self.budget = budget
        self.significance_file = significance_file or default_significance_file(dataset)
        by_key = read_significance_file(self.significance_file)
        data_root = getattr(dataset, 'data_root', None)
        keys = [image_key(dataset.get_data_info(i)['img_path'], data_root)
                for i in range(len(dataset))]
        missing = [key for key in keys if key not in by_key]
        if missing:
            raise KeyError(
                f'Significance file {self.significance_file} has no entry for {len(missing)} of '
                f'the {len(keys)} images, e.g. {missing[:3]}: it was written for another '
                f'dataset. Write it again for this one with `python {WRITER} CONFIG '
                'TEACHER_CKPT`.')
        self._significance_by_key = {key: by_key[key] for key in keys}
        significance = [by_key[key] for key in keys]
        #: Indices into the wrapped dataset, ascending.
        self.indices = select_by_significance(significance, budget, min_significance)
        if not self.indices:
            raise ValueError(f'SignificanceSubset keeps no image: all {len(keys)} have a '
                             f'significance below min_significance={min_significance}.')
        #: Significance of each kept image, in the order of ``indices``.
        self.significance = [significance[i] for i in self.indices]
        self._metainfo = copy.deepcopy(dataset.metainfo)
        print_log(f'SignificanceSubset: training on {len(self.indices)} of {len(keys)} images '
                  f'(budget {budget}'
                  + (f', min_significance {min_significance}' if min_significance is not None
                     else '')
                  + f'; mean significance {sum(self.significance) / len(self.indices):.3f} kept, '
                  f'{sum(significance) / max(len(keys), 1):.3f} all) from '
                  f'{self.significance_file}', logger='current')

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Nothing to do: the wrapped dataset is fully initialised at construction."""

    def __len__(self) -> int:
        return len(self.indices)

    def get_data_info(self, idx: int) -> dict:
        """The wrapped dataset's annotation of the ``idx``-th kept image (samplers such as
        mmdet's ``AspectRatioBatchSampler`` read image sizes from it)."""
        info = self.dataset.get_data_info(self.indices[idx])
        info['significance'] = self.significance[idx]
        return info

    def __getitem__(self, idx: int) -> dict:
        data = self.dataset[self.indices[idx]]
        if not isinstance(data, dict) or 'data_samples' not in data:
            raise TypeError('SignificanceSubset stamps significance into data["data_samples"]; '
                            'the wrapped pipeline must pack its results (PackDetInputs, '
                            'PackSegInputs).')
        samples = data['data_samples']
        # mmengine's BaseDataset may return another, random image when the pipeline drops one
        # (returns None): stamp the significance of the image actually returned.
        img_path = samples.metainfo.get('img_path')
        key = None if img_path is None else image_key(img_path,
                                                      getattr(self.dataset, 'data_root', None))
        significance = self._significance_by_key.get(key, self.significance[idx])
        samples.set_metainfo(dict(significance=significance))
        return data
