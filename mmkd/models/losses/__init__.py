from .afdcd import AfDCDLoss, EnhancedProjector, contrast_geometry, dense_contrastive_loss
from .at import ATLoss, attention_map, attention_transfer_loss
from .base import BaseDistillLoss, build_wrapped_loss, check_weight
from .cirkd import CIRKDLoss
from .cka import CKALoss, PCKALoss, batched_linear_cka, cka_loss, linear_cka, pcka_loss
from .crosskd import (CrossKDBoxLoss, CrossKDClsLoss, CrossKDDistributionLoss, crosskd_box_loss,
                      crosskd_cls_loss, crosskd_distribution_loss, dense_rows, num_positives,
                      teacher_score_weights)
from .cwd import CWDLoss, channel_wise_divergence
from .dense_head_kd import (DenseHeadLogitLoss, flatten_dense_labels, flatten_dense_logits,
                            flatten_dense_weights, select_dense_locations)
from .dist import DISTLoss, dist_terms, pearson_correlation
from .dkd import DKDLoss, dkd_loss, dkd_terms, dkd_warmup_factor
from .fbkd import FBKDLoss, build_non_local, spatial_attention
from .feature_imitation import (L1FeatureLoss, MSEFeatureLoss, l1_feature_loss,
                                mse_feature_loss)
from .fgd import (FGDLoss, GlobalContextBlock, fgd_attention, fgd_attention_loss,
                  fgd_feature_loss, fgd_global_loss, gt_foreground_masks)
from .gkd import GKDLoss, gradient_guided_map, gradient_weighted_imitation
from .kddetr import (KDDETRBoxLoss, KDDETRClsLoss, decoder_layers, kddetr_box_loss,
                     kddetr_cls_loss, point_box_distance, teacher_confidence)
from .kd import KDLoss, flatten_logits, kd_divergence, kd_loss, weighted_mean
from .mask_kd import MaskKDLoss, mask_kd_loss, positive_labels, select_mask_class
from .maskd import (MasKDLoss, dice_diversity, masked_logit_distance, receptive_masks,
                    token_objective)
from .mgd import MGDLoss, masked_generative_loss
from .pkd import PKDLoss, pearson_kd_loss
from .significance import (SignificanceWeightedLoss, detection_handled, segmentation_handled,
                           significance_weights, split_per_image)
from .sokd import (DistinctiveAreaModule, FeatureRefiner, SoKDLoss, attention_target,
                   box_center_targets, dam_consistency_loss, dam_supervision_loss,
                   mutual_interest_masks)
from .ssim import SSIMLoss, ssim_map_loss
from .topkd import (TopKDLoss, batch_contrastive_loss, sample_rows, top_k_decoupled_terms,
                    top_k_scaling)

__all__ = [
    # the contract every loss follows
    'BaseDistillLoss', 'build_wrapped_loss', 'check_weight',
    # feature losses
    'MSEFeatureLoss', 'L1FeatureLoss', 'CKALoss', 'PCKALoss', 'SSIMLoss', 'CWDLoss', 'PKDLoss',
    'ATLoss', 'MGDLoss', 'FGDLoss', 'FBKDLoss', 'GKDLoss', 'GlobalContextBlock',
    'SoKDLoss', 'FeatureRefiner', 'DistinctiveAreaModule', 'AfDCDLoss', 'EnhancedProjector',
    # relation losses (segmentation)
    'CIRKDLoss',
    # logit losses
    'KDLoss', 'DKDLoss', 'TopKDLoss', 'DenseHeadLogitLoss', 'DISTLoss', 'MasKDLoss',
    # mask-logit loss on the teacher's mask head replayed on the student's RoIs
    'MaskKDLoss',
    # dense-head prediction losses on the teacher head's outputs (CrossKD)
    'CrossKDClsLoss', 'CrossKDBoxLoss', 'CrossKDDistributionLoss',
    # DETR predictions at shared distillation points (KD-DETR)
    'KDDETRClsLoss', 'KDDETRBoxLoss',
    # per-image weighting of any loss
    'SignificanceWeightedLoss',
    # functional cores
    'significance_weights', 'segmentation_handled', 'detection_handled', 'split_per_image',
    'mutual_interest_masks', 'box_center_targets', 'attention_target',
    'dam_supervision_loss', 'dam_consistency_loss',
    'mse_feature_loss', 'l1_feature_loss', 'linear_cka', 'batched_linear_cka', 'cka_loss',
    'pcka_loss', 'spatial_attention', 'build_non_local', 'ssim_map_loss', 'channel_wise_divergence',
    'pearson_kd_loss', 'attention_map', 'attention_transfer_loss', 'masked_generative_loss',
    'gt_foreground_masks', 'fgd_attention', 'fgd_attention_loss', 'fgd_feature_loss',
    'fgd_global_loss', 'gradient_guided_map', 'gradient_weighted_imitation', 'kd_loss',
    'kd_divergence', 'flatten_logits', 'weighted_mean', 'dkd_loss', 'dkd_terms',
    'dkd_warmup_factor', 'top_k_scaling', 'top_k_decoupled_terms', 'batch_contrastive_loss',
    'sample_rows', 'select_dense_locations', 'flatten_dense_logits', 'flatten_dense_labels',
    'flatten_dense_weights', 'crosskd_cls_loss', 'crosskd_box_loss', 'crosskd_distribution_loss',
    'dense_rows', 'num_positives', 'teacher_score_weights', 'mask_kd_loss', 'select_mask_class',
    'positive_labels', 'kddetr_cls_loss', 'kddetr_box_loss', 'point_box_distance',
    'teacher_confidence', 'decoder_layers', 'dist_terms', 'pearson_correlation',
    'contrast_geometry', 'dense_contrastive_loss', 'receptive_masks', 'dice_diversity',
    'token_objective', 'masked_logit_distance'
]
