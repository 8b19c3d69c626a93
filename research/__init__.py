"""One-off experiments that chose shipped constants; see research/README.md."""
