# GFL R101 -> R50, COCO 2x. Attention transfer (ATLoss, p = 2) on the 5 FPN levels. Weight 500 =
# beta / 2 with the AT paper's beta = 1000 (its code adds beta / 2 * the same mean squared
# error). AT was published for classification; this is the usual feature-map transfer.
_base_ = '../_base_/coco_gfl-r101_gfl-r50.py'
model = dict(recipes=[dict(type='AT', on='neck')])
