"""The networks: model names to logit models, and what the benchmark does to a network."""
