"""Attribution methods (saliency.core), their registry (saliency.saliency_zoo) and the
Insertion/Deletion metric (saliency.metric). Depends on torch and captum only.

    from saliency import attribute, InsertionDeletion
    maps = attribute("la", logit_model, images, labels)
    curves = InsertionDeletion(probability_model(logit_model)).curves(images, maps)
"""
from .core.common import probability_model
from .errors import SaliencyError
from .metric import InsertionDeletion, auc
from .saliency_zoo import PAPER_ORDER, ZOO, Method, attribute, get_method

__all__ = ["attribute", "InsertionDeletion", "auc", "SaliencyError", "probability_model", "get_method", "Method",
           "ZOO", "PAPER_ORDER"]
