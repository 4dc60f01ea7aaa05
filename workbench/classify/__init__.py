"""Image-level classifiers from the catalog's image labels (`wb classify`)."""
