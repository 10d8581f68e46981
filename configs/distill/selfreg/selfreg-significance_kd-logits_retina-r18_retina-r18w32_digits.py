# RetinaNet R18 -> R18 (half width), embedded digits. Self-regulated distillation,
# significance mode: the hybrid config's data budget (the 30% most significant images) and
# significance weights, without the student's self-regulation (student_logits is mapped but
# unused in this mode). Write the significance first:
#   python tools/significance.py configs/distill/selfreg/<this file>
_base_ = './selfreg-hybrid_kd-logits_retina-r18_retina-r18w32_digits.py'
model = dict(recipes=[dict(type='KD', on='dense_cls_logits', selfreg='significance')])
