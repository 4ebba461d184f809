"""One module per CLI subcommand (rasterio's `rio` style): parse, validate, make one library call."""
