# PSPNet R101 -> R18, Cityscapes. RCKA on the decode head's logits with the published
# segmentation setting (intra = inter = 10, uncentered, rows l2-normalised; see CKALoss for how
# our terms differ): no flattened-feature term.
_base_ = '../_base_/cityscapes_pspnet-r101_pspnet-r18.py'
model = dict(recipes=[dict(type='CKA', on='seg_logits')])
