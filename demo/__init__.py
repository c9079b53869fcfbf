"""PLM Playground's user interface: one module per tab plus shared helpers (no torch here)."""
