"""Pure enrollment rules (SPEC.md), free of I/O and frameworks.

Each function decides one rule and names its rule ID in its docstring.
"""
