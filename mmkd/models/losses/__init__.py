from .feature_imitation import (L1FeatureLoss, MSEFeatureLoss, l1_feature_loss,
                                mse_feature_loss)

__all__ = ['MSEFeatureLoss', 'L1FeatureLoss', 'mse_feature_loss', 'l1_feature_loss']
