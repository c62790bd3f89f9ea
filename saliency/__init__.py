"""Attribution methods (saliency.core), their registry (saliency.saliency_zoo) and the
Insertion/Deletion metric (saliency.metric)."""
