"""The embedded sample dataset: synthetic SMART-DS feeders and EULP buildings in the real formats."""
