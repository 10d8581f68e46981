from .at import ATLoss, attention_map, attention_transfer_loss
from .cka import (CKALoss, PCKALoss, batched_linear_cka, cka_loss, linear_cka,
                  pcka_loop_reference, pcka_loss)
from .cwd import CWDLoss, channel_wise_divergence
from .feature_imitation import (L1FeatureLoss, MSEFeatureLoss, l1_feature_loss,
                                mse_feature_loss)
from .fgd import (FGDLoss, GlobalContextBlock, fgd_attention, fgd_attention_loss,
                  fgd_feature_loss, fgd_global_loss, gt_foreground_masks)
from .gkd import GKDLoss, gradient_guided_map, gradient_weighted_imitation
from .mgd import MGDLoss, masked_generative_loss
from .pkd import PKDLoss, pearson_kd_loss
from .ssim import SSIMLoss, ssim_map_loss

__all__ = [
    'MSEFeatureLoss', 'L1FeatureLoss', 'CKALoss', 'PCKALoss', 'SSIMLoss', 'CWDLoss', 'PKDLoss',
    'ATLoss', 'MGDLoss', 'FGDLoss', 'GKDLoss', 'gradient_guided_map',
    'gradient_weighted_imitation', 'GlobalContextBlock', 'mse_feature_loss', 'l1_feature_loss',
    'linear_cka', 'batched_linear_cka', 'cka_loss', 'pcka_loss', 'pcka_loop_reference',
    'ssim_map_loss', 'channel_wise_divergence', 'pearson_kd_loss', 'attention_map',
    'attention_transfer_loss', 'masked_generative_loss', 'gt_foreground_masks', 'fgd_attention',
    'fgd_attention_loss', 'fgd_feature_loss', 'fgd_global_loss'
]
