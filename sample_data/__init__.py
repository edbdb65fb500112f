"""Sample data shipped with napari-unet (a crop of the ISBI 2012 EM challenge training set).

This folder is a data-only package so ``importlib.resources.files("napari_unet.sample_data")`` finds the
files both in a wheel and in an editable install; see README.md for the source, terms and citations.
"""
