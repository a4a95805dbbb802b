"""Reading and writing files safely: all-or-nothing writes (atomic), allow-list loading of foreign
weights (safe_load), the run lock, hyperparameters.yaml, and sharded checkpoint folders read without unpickling."""
