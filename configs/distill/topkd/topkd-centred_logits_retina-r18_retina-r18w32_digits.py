# RetinaNet R18 -> R18 (half width), embedded digits. TopKD as in topkd_logits_retina-*_digits.py,
# but with each location's logits centred before TSM and the cosines: the remedy under test for
# sigmoid mode's weak gradient on dense heads (TopKDLoss docstring, benchmarks/RESULTS.md). With
# no KD term (kd_weight=0), TopKDLoss's mode only decides that centring, so mode='softmax' is
# exactly "centred sigmoid TopKD" here: no softmax is taken anywhere.
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='TopKD', on='dense_cls_logits', mode='softmax')])
