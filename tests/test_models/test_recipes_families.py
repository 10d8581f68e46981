"""Recipes on the model-zoo families without a neck or a ``conv_seg`` (issue 24): the
``backbone`` place on a neck-less detector and segmentor, ``seg_logits`` on every kind of mmseg
decode head (cascade: OCRNet, PointRend; mask classification: Mask2Former, K-Net, Segmenter),
and a training step of a Mask2Former pair. Real model-zoo configs, random init, 64x64 inputs,
depths and widths cut through ``cfg_options`` where a model is slow."""
import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from model_steps import train_step_losses, train_steps

from mmkd.models.distillers.decode_heads import decode_heads
from mmkd.registry import MODELS
from mmkd.testing import det_batch, seg_batch

SIZE = 64
SEG = {'model.data_preprocessor.size': (SIZE, SIZE)}  # mmseg pads to its crop size
#: Mask2Former (mmseg) with a ResNet-18, 10 queries, 2 decoder layers, 1 encoder layer.
MASK2FORMER = ('mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py', {
    **SEG, 'model.backbone.depth': 18, 'model.decode_head.in_channels': [64, 128, 256, 512],
    'model.decode_head.num_queries': 10, 'model.decode_head.transformer_decoder.num_layers': 2,
    'model.decode_head.pixel_decoder.encoder.num_layers': 1,
    'model.decode_head.train_cfg.num_points': 256})


def build(student, recipes, teacher=None, scope='mmseg', **kwargs):
    """A Distiller of two model-zoo configs ``(name, cfg_options)`` (the teacher: the
    student's unless given), random init, SyncBN reverted as one training process does."""
    init_default_scope(scope)
    torch.manual_seed(0)
    teacher = teacher or student
    model = MODELS.build(dict(
        _scope_='mmkd', type='Distiller', recipes=recipes, input_size=SIZE,
        student=dict(cfg_path=student[0], pretrained=False, cfg_options=student[1]),
        teacher=dict(cfg_path=teacher[0], pretrained=False, cfg_options=teacher[1]), **kwargs))
    return revert_sync_batchnorm(model)


def loss_inputs(model, name):
    """The keyword arguments each call of distillation loss ``name`` receives."""
    seen = []
    model.distill_losses[name].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True)
    return seen


def grads_reach_the_student_only(model, loss, student_module):
    """``loss`` backpropagates into ``student_module`` and into no teacher parameter."""
    model.zero_grad()
    loss.backward()
    grad = sum(p.grad.abs().sum() for p in student_module.parameters() if p.grad is not None)
    return grad > 0 and all(p.grad is None for p in model.teacher.parameters())


# ---------------------------------------------------------------------- backbone place
def test_neckless_detector_reads_its_backbone_stages_by_default_and_trains():
    # Faster R-CNN C4: a ResNet-50 to stage 3 (stride 16), no neck; the RoI head's shared
    # ResLayer runs stage 4. Without on=, PKD reads the backbone and says so.
    c4 = ('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py',
          {'model.train_cfg.rcnn.sampler.num': 16})  # RoIs through the ResLayer: 16, not 512
    model = build(c4, [dict(type='PKD')], scope='mmdet')
    assert model.recorders['student']['backbone'].source == 'backbone'
    assert list(model.distill_losses) == ['loss_pkd_stage0']
    assert "have no neck, so the recipe (no on=) reads the backbone's stages" in \
        model.recipe_table
    assert 'PKD on backbone  stage0   stage0   16' in model.recipe_table
    assert model.teacher_forward_mode == 'extract_feat'
    losses = train_step_losses(model, det_batch(SIZE))
    loss = losses['distill.loss_pkd_stage0']
    assert torch.isfinite(loss) and loss > 0
    assert grads_reach_the_student_only(model, loss, model.student.backbone)


def test_tridentnet_teacher_runs_the_branches_its_student_trains():
    # TridentNet's backbone returns the batch once per branch (3) in training, one branch in
    # eval: the frozen teacher is set to run all three, so the two stage outputs pair.
    trident = ('mmdet::tridentnet/tridentnet_r50-caffe_1x_coco.py',
               {'model.train_cfg.rcnn.sampler.num': 16})
    model = build(trident, [dict(type='PKD')], scope='mmdet')
    for module in model.modules():  # TridentConv allocates its weights uninitialised
        if type(module).__name__ == 'TridentConv':
            torch.nn.init.kaiming_uniform_(module.weight.data, nonlinearity='relu')
            if module.bias is not None:
                module.bias.data.zero_()
    assert "the teacher's backbone runs all of them too (test_branch_idx=-1)" in \
        model.recipe_table
    seen = loss_inputs(model, 'loss_pkd_stage0')
    losses = train_step_losses(model, det_batch(SIZE))
    assert seen[0]['preds_S'].shape == seen[0]['preds_T'].shape == (6, 1024, 4, 4)
    assert torch.isfinite(losses['distill.loss_pkd_stage0'])
    c4 = ('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py', {})
    with pytest.raises(ValueError, match=r'The student \(TridentFasterRCNN\) trains 3 branches of '
                       r'its backbone .* which the teacher \(FasterRCNN\) does not have'):
        build(trident, [dict(type='PKD')], c4, scope='mmdet')


def test_neckless_segmentor_pairs_backbone_stages_by_stride_with_connectors():
    # PSPNet R18-d8 student, R50-d8 teacher: dilated stages of strides 4, 8, 8, 8, and
    # 64-512 against 256-2048 channels. levels select backbone stages.
    psp = 'mmseg::pspnet/pspnet_{}-d8_4xb2-80k_cityscapes-512x1024.py'
    model = build((psp.format('r18'), SEG), [dict(type='CWD', on='backbone', levels=(1, 3))],
                  (psp.format('r50'), SEG))
    assert sorted(model.distill_losses) == ['loss_cwd_stage1', 'loss_cwd_stage3']
    assert model.connectors['cwd_stage3_conv'].conv.conv.in_channels == 512
    assert model.connectors['cwd_stage3_conv'].conv.conv.out_channels == 2048
    assert "student level stage0 (stride 4) is not in levels (1, 3): left out" in \
        model.recipe_table
    losses = train_step_losses(model, seg_batch(SIZE, n=2))  # PSP pools to 1x1: BN needs 2
    loss = losses['distill.loss_cwd_stage3']
    assert torch.isfinite(loss) and loss > 0
    assert grads_reach_the_student_only(model, loss, model.student.backbone.layer4)


def test_neck_given_on_a_neckless_model_fails_naming_the_backbone_place():
    psp = ('mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py', SEG)
    with pytest.raises(ValueError, match=r"\(PKD on neck\): the student \(EncoderDecoder\) has no "
                       r"neck; .* Read its backbone's stages with on='backbone'"):
        build(psp, [dict(type='PKD', on='neck')])


# ---------------------------------------------------------------------- seg_logits per head
FAMILIES = {
    # cascade decode heads: the last one's classifier
    'ocrnet': (('mmseg::ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py', SEG),
               dict(type='ModuleOutputsRecorder', source='decode_head.1.conv_seg'), 19,
               'decode_head.1'),
    # PointRend: PointHead classifies sampled points, so the FPN head's map is read
    'pointrend': (('mmseg::point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
                   {**SEG, 'model.backbone.depth': 18, 'model.neck.in_channels': [64, 128, 256,
                                                                                  512]}),
                  dict(type='ModuleOutputsRecorder', source='decode_head.0.conv_seg'), 19,
                  'decode_head.0'),
    # mask classification: the decode head's forward, formed into per-pixel class scores
    'mask2former': (MASK2FORMER, dict(type='DecodeHeadLogitsRecorder',
                                      source='decode_head.forward', form='query_masks'), 19,
                    'decode_head'),
    'knet': (('mmseg::knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py',
              {**SEG, 'model.backbone.depth': 18, 'model.auxiliary_head.in_channels': 256,
               'model.decode_head.kernel_generate_head.in_channels': 512}),
             dict(type='DecodeHeadLogitsRecorder', source='decode_head.forward',
                  form='last_stage'), 150, 'decode_head'),
    'segmenter': (('mmseg::segmenter/segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py', SEG),
                  dict(type='DecodeHeadLogitsRecorder', source='decode_head.forward',
                       form='map'), 150, 'decode_head'),
}


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_seg_logits_of_every_decode_head_have_the_classes_and_train_the_student(family):
    config, recorder, num_classes, head = FAMILIES[family]
    model = build(config, [dict(type='KD', on='seg_logits')])
    for side in ('student', 'teacher'):
        built = model.recorders[side]['logits']
        assert type(built).__name__ == recorder['type'] and built.source == recorder['source']
        assert getattr(built, 'form', None) == recorder.get('form')
    if recorder['source'] != 'decode_head.conv_seg':
        assert f"on='seg_logits', the student's and the teacher's logits: " \
            f"{recorder['source']} (" in model.recipe_table
    assert model.teacher_forward_mode == 'tensor'
    seen = loss_inputs(model, 'loss_kd_logits')
    losses = train_step_losses(model, seg_batch(SIZE, n=1, num_classes=num_classes))
    for side in ('preds_S', 'preds_T'):  # the recorded maps, as the loss got them
        logits = seen[0][side]
        assert logits.dim() == 4 and logits.shape[:2] == (1, num_classes)
        assert torch.isfinite(logits).all()
    assert seen[0]['preds_S'].requires_grad and not seen[0]['preds_T'].requires_grad
    loss = losses['distill.loss_kd_logits']
    assert torch.isfinite(loss) and loss > 0
    assert grads_reach_the_student_only(model, loss, model.student.get_submodule(head))


def test_a_head_without_a_per_pixel_map_fails_naming_its_type():
    from mmkd.models.distillers.decode_heads import seg_logits_recorder

    class Head(torch.nn.Module):  # classifies something, but has neither conv_seg nor a form
        pass

    model = torch.nn.Module()
    model.decode_head = Head()
    with pytest.raises(ValueError, match=r"the teacher's decode head \(Head\) gives no per-pixel "
                       r"class map .* no conv_seg .* Distill its features instead "
                       r"\(on='backbone'"):
        seg_logits_recorder(model, 'teacher')
    with pytest.raises(ValueError, match=r'the student \(Module\) has no decode_head'):
        seg_logits_recorder(torch.nn.Module(), 'student')


# ---------------------------------------------------------------------- training
def test_mask2former_pair_trains_with_cwd_on_its_seg_logits():
    model = build(MASK2FORMER, [dict(type='CWD', on='seg_logits')])
    assert len(decode_heads(model.teacher)) == 1 and model.teacher_runner.head_forward
    batch = seg_batch(SIZE, n=1, num_classes=19)
    before = model.student.decode_head.cls_embed.weight.detach().clone()
    teacher_before = model.teacher.decode_head.cls_embed.weight.detach().clone()
    logs = train_steps(model, batch, steps=2, lr=0.1)
    assert all(torch.isfinite(log['distill.loss_cwd_logits']) for log in logs)
    assert all(log['distill.loss_cwd_logits'] > 0 for log in logs)
    assert not torch.equal(model.student.decode_head.cls_embed.weight, before)
    assert torch.equal(model.teacher.decode_head.cls_embed.weight, teacher_before)


# ---------------------------------------------------------------------- detection logits
def test_dense_logits_on_condinst_read_the_box_head_without_ground_truth():
    # CondInst's own _forward runs the box head's loss (ground truth) for its mask head; the
    # probe and the teacher's tensor forward run backbone, neck and box head only
    condinst = ('mmdet::condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py',
                {'model.backbone.depth': 18, 'model.neck.in_channels': [64, 128, 256, 512]})
    model = build(condinst, [dict(type='KD', on='dense_cls_logits')], scope='mmdet')
    assert 'loss_kd_cls (DenseHeadLogitLoss)' in model.recipe_table
    losses = train_step_losses(model, det_batch(SIZE, masks=True))
    assert torch.isfinite(losses['distill.loss_kd_cls'])


@pytest.mark.parametrize('student, recipe, message', [
    (('mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', {}), 'dense_cls_logits',
     r"bbox_head.get_targets\), which YOLOXHead does not have .* use a feature recipe"),
    (('mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', {}), 'roi_cls_logits',
     r"the student's CascadeRoIHead runs 3 stages: use a feature recipe")])
def test_detection_logit_recipes_name_the_heads_they_cannot_read(student, recipe, message):
    with pytest.raises(ValueError, match=message):
        build(student, [dict(type='KD', on=recipe)], scope='mmdet')


def test_roi_logits_on_a_neckless_two_stage_detector_replay_the_teachers_backbone():
    c4 = ('mmdet::faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py',
          {'model.train_cfg.rcnn.sampler.num': 16})
    model = build(c4, [dict(type='KD', on='roi_cls_logits')], scope='mmdet')
    assert "replayed on its backbone's output" in model.recipe_table
    losses = train_step_losses(model, det_batch(SIZE))
    assert torch.isfinite(losses['distill.loss_kd_roi'])
    assert grads_reach_the_student_only(model, losses['distill.loss_kd_roi'],
                                        model.student.roi_head)
