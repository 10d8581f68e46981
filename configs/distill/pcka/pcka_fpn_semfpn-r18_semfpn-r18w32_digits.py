# Semantic FPN R18 -> R18 (half width), embedded digits. PCKA (PCKALoss, intra term) on the 4 FPN
# levels, weight 10 (a detection loss in the paper, applied here to the segmentation FPN). The
# patch side halves with each level (8, 4, 2, 1 cells, i.e. 32 px of the image everywhere): 16
# patches per level at 128 px, 4 at 64 px, enough for centered CKA (>= 3).
_base_ = '../_base_/digits_seg.py'
levels = (0, 1, 2, 3)
patch_sizes = (8, 4, 2, 1)  # feature cells per patch side, one per level
fpn = dict(type='ModuleOutputsRecorder', source='neck')
model = dict(
    student_recorders=dict(fpn=fpn),
    teacher_recorders=dict(fpn=fpn),
    distill_losses={
        f'loss_pcka_fpn{i}': dict(type='PCKALoss', loss_weight=10.0, patch_size=patch_sizes[i])
        for i in levels},
    loss_forward_mappings={
        f'loss_pcka_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in levels})
