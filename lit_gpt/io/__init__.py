"""Reading and writing files safely: allow-list loading of foreign weights, the run lock,
hyperparameters.yaml, and reading torch.distributed.checkpoint folders without unpickling."""
