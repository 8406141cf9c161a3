"""The bertcls desktop app: label a spreadsheet with a trained pipeline, inspect, correct, evaluate.

A thin Qt layer over :mod:`spacy_bertcls`: every step (reading tables, labeling, evaluating,
writing files) calls the same core functions the ``bertcls`` CLI calls. Start it with
``bertcls-gui`` or :func:`spacy_bertcls_gui.app.main`.
"""
