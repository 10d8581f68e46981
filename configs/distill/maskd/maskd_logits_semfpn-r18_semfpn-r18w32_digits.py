# Semantic FPN R18 -> R18 (half width), embedded digits. MasKD: the decode head's logits
# distilled under the masks of 8 receptive tokens learned on the teacher first (weight 0.5; the
# digits models have no auxiliary head):
#   python tools/maskd_tokens.py configs/distill/maskd/THIS_CONFIG --iters 200
# writes them next to the teacher checkpoint, where tokens points.
_base_ = '../_base_/digits_seg.py'
model = dict(recipes=[dict(type='MasKD', on='seg_logits',
                           tokens='work_dirs/semfpn_r18_digits/iter_600.maskd_tokens.pth')])
