"""The 郾城区 demo dataset: a deterministic generator and its loader."""
