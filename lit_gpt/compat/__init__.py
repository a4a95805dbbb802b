"""APIs kept for scripts written against TinyLlama or the upstream MEAP code."""
