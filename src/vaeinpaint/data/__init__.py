"""Data in: acquiring raw images (sources, downloads, archives), preparing them (images), the on-disk formats (dataset) and the split."""
