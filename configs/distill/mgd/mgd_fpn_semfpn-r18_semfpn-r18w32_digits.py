# Semantic FPN R18 -> R18 (half width), embedded digits. MGD (MGDLoss) on the 4 FPN levels, mask
# ratio 0.75 (the paper's segmentation setting), weight 2e-5.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='MGD', on='neck', lambda_mgd=0.75)])
