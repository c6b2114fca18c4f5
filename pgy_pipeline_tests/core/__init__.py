"""Tests of the package's top-level modules: configuration, errors, the call plan and concurrent fetching."""
