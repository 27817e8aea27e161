"""Shared plumbing of the dss_xlrm phases: settings, paths, design of experiments, OpenDSS, I/O."""
