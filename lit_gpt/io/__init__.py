"""Reading and writing files safely: atomic writes, allow-list loading, the run lock, sharded checkpoints."""
