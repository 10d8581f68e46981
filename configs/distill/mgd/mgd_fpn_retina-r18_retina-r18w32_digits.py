# RetinaNet R18 -> R18 (half width), embedded digits. MGD (MGDLoss) on the 3 FPN levels, mask
# ratio 0.65, weight 2e-5 (the paper's detection setting).
_base_ = '../_base_/digits_det.py'
model = dict(recipes=[dict(type='MGD', on='neck')])
