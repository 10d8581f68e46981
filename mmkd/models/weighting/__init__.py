from .base_weighting import BaseWeighting
from .fixed_weighting import FixedWeighting
from .gradient_similarity_weighting import GradientSimilarityWeighting
from .uncertainty_weighting import UncertaintyWeighting

__all__ = ['BaseWeighting', 'FixedWeighting', 'UncertaintyWeighting',
           'GradientSimilarityWeighting']
