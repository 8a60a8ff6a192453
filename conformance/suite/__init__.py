"""The suite's test modules, run by ``conformance run`` against one target (see conformance.plugin)."""
