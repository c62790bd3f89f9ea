"""Attribution methods (saliency.core), their registry (saliency.saliency_zoo) and the
Insertion/Deletion metric (saliency.metric). Depends on torch and captum only.

    from saliency import InsertionDeletion, attribute, normalized
    model = normalized(torchvision.models.resnet50(weights="DEFAULT"))   # logits of [0, 1] images
    maps = attribute("la", model, images)                                # explains the prediction
    scores = InsertionDeletion(model).scores(images, maps)               # scores.insertion: [N] AUCs
"""
from .errors import SaliencyError
from .metric import InsertionDeletion, Scores, auc
from .models import Normalize, normalized, probability_model
from .saliency_zoo import PAPER_ORDER, ZOO, Method, attribute, get_method, register

__all__ = ["attribute", "InsertionDeletion", "Scores", "auc", "SaliencyError", "Normalize", "normalized",
           "probability_model", "get_method", "register", "Method", "ZOO", "PAPER_ORDER"]
