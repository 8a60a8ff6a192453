"""A conformance suite for multimodal AI gateway APIs: checks, golden fixtures and reports.

Run it with ``conformance run --target URL|mock``; see ``conformance.cli``.
"""
